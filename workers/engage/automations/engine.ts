// The automation engine: an event cancels the waiting instances it matches, then starts an
// instance of every automation it triggers; an instance fires when due: grace period and capping
// are checked atomically with the reservation, and the send job goes to the Sender's subject with
// an idempotency key, so neither a replayed event nor a retried fire can send twice.
import type { Redis } from "ioredis";
import { ERASE_EVENT, ProfileFields, RedisKeys, Subjects } from "#runtime";
import type { EventMessage, Logger, SendJob } from "#runtime";
import type { AutomationRegistry, CompiledAutomation } from "./registry.ts";
import { instanceKey } from "./store.ts";
import type { AutomationStore, Instance } from "./store.ts";

export interface EngineDeps {
  registry: AutomationRegistry;
  store: AutomationStore;
  redis: Redis;
  /** Publishes a send job; resolves once JetStream stored it (msgID = job id). */
  publish: (subject: string, job: SendJob) => Promise<void>;
  now: () => number;
  log: Logger;
}

/** A profile as filters and skip rules see it. */
interface LoadedProfile {
  exists: boolean;
  cel: Record<string, unknown>;
  email: string | undefined;
  unsubscribed: boolean;
  suppressed: boolean;
  pushEndpoints: { field: string; endpoint: string }[];
}

const HOLD_WHILE_SUSPENDED_MS = 5000;

export function durationMs(duration: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 1e-6 };
  let total = 0;
  for (const [, value, unit] of duration.matchAll(/([0-9.]+)(ns|us|µs|ms|s|m|h)/g))
    total += Number(value) * (units[unit ?? "s"] ?? 0);
  return Math.round(duration.startsWith("-") ? -total : total);
}

function pathValue(object: unknown, path: string): unknown {
  let current: unknown = object;
  for (const segment of path.split(".")) {
    if (current === null || typeof current !== "object" || !Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

export type DueDecision = { kind: "due"; dueMs: number } | { kind: "skip"; reason: "past_date" | "no_date" };

/** When an instance of `automation` triggered by `event` is due, or why it is not started. */
export function dueTime(automation: CompiledAutomation, event: EventMessage, nowMs: number): DueDecision {
  const wait = automation.spec.wait;
  if (wait?.after !== undefined)
    return { kind: "due", dueMs: Math.min(Date.parse(event.timestamp), nowMs) + durationMs(wait.after) };
  if (wait?.until === undefined) return { kind: "due", dueMs: nowMs };
  const raw = pathValue(event, wait.until.field);
  const date = typeof raw === "string" ? Date.parse(raw) : Number.NaN;
  if (Number.isNaN(date)) return { kind: "skip", reason: "no_date" };
  const due = date + durationMs(wait.until.offset);
  if (due >= nowMs) return { kind: "due", dueMs: due };
  return wait.until.ifPast === "send" ? { kind: "due", dueMs: nowMs } : { kind: "skip", reason: "past_date" };
}

export class AutomationEngine {
  readonly #deps: EngineDeps;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  /** Applies one event: erase, cancels, then triggers. Rejects only when Redis or NATS fail. */
  async handleEvent(event: EventMessage): Promise<void> {
    const { registry } = this.#deps;
    if (event.name === ERASE_EVENT) {
      const instances = await this.#deps.store.instancesOf(event.namespace, event.profileId);
      await this.#deps.store.cancel(
        event.namespace,
        event.profileId,
        instances.map((instance) => instance.key),
        "erased",
      );
      return;
    }
    const cancelling = registry.cancelledBy(event.namespace, event.name);
    const triggered = registry.triggeredBy(event.namespace, event.name);
    if (cancelling.length === 0 && triggered.length === 0) return;
    const profile = await this.#loadProfile(event.namespace, event.profileId);
    if (cancelling.length > 0) await this.#cancel(event, cancelling, profile);
    for (const automation of triggered) await this.#trigger(event, automation, profile);
  }

  async #cancel(
    event: EventMessage,
    automations: readonly CompiledAutomation[],
    profile: LoadedProfile,
  ): Promise<void> {
    const names = new Set(automations.map((automation) => automation.name));
    const instances = (await this.#deps.store.instancesOf(event.namespace, event.profileId)).filter((instance) =>
      names.has(instance.automation),
    );
    const now = new Date(this.#deps.now());
    const matching = instances.filter((instance) => {
      const automation = this.#deps.registry.get(event.namespace, instance.automation);
      return automation?.cancels.some((cancel) => {
        if (cancel.event !== event.name) return false;
        if (cancel.filter === undefined) return true;
        if (cancel.filter.kind === "invalid") return false;
        const result = cancel.filter.evaluate({ event, trigger: instance.trigger, profile: profile.cel, now });
        return result.kind === "value" && result.value;
      });
    });
    await this.#deps.store.cancel(
      event.namespace,
      event.profileId,
      matching.map((instance) => instance.key),
    );
  }

  async #trigger(event: EventMessage, automation: CompiledAutomation, profile: LoadedProfile): Promise<void> {
    const { store } = this.#deps;
    if (automation.spec.suspend) return;
    const nowMs = this.#deps.now();
    if (automation.filter?.kind === "compiled") {
      const result = automation.filter.evaluate({ event, profile: profile.cel, now: new Date(nowMs) });
      if (result.kind !== "value" || !result.value) {
        await store.count(event.namespace, automation.name, "filteredOut");
        return;
      }
    }
    const due = dueTime(automation, event, nowMs);
    if (due.kind === "skip") {
      await store.count(event.namespace, automation.name, `skipped:${due.reason}`);
      return;
    }
    const instance: Instance = {
      key: instanceKey(automation.name, event.profileId, event.id),
      automation: automation.name,
      generation: automation.generation,
      profileId: event.profileId,
      trigger: event,
      dueMs: due.dueMs,
    };
    const created = await store.schedule(event.namespace, instance);
    if (created && due.dueMs <= nowMs) await this.fire(event.namespace, instance);
  }

  /** Fires one due instance: holds it while suspended, else guards and sends (or skips). */
  async fire(namespace: string, instance: Instance): Promise<void> {
    const { store, registry } = this.#deps;
    const automation = registry.get(namespace, instance.automation);
    if (automation === undefined) {
      await store.cancel(namespace, instance.profileId, [instance.key], "skipped:automation_deleted");
      return;
    }
    if (automation.spec.suspend) {
      await store.hold(namespace, instance.key, this.#deps.now() + HOLD_WHILE_SUSPENDED_MS);
      return;
    }
    const profile = await this.#loadProfile(namespace, instance.profileId);
    const channel = automation.spec.message.email !== undefined ? "email" : "webpush";
    const result = await store.guard(namespace, instance, {
      nowMs: this.#deps.now(),
      graceMs: automation.spec.gracePeriod === undefined ? 0 : durationMs(automation.spec.gracePeriod),
      capping:
        automation.spec.capping === undefined
          ? undefined
          : { max: automation.spec.capping.max, windowMs: durationMs(automation.spec.capping.per) },
      skip: skipReason(profile, channel, automation.spec.subscription),
    });
    if (result.kind !== "send") return;
    await this.#send({ namespace, instance, automation, profile, channel });
    await store.done(namespace, instance);
  }

  async #send(send: {
    namespace: string;
    instance: Instance;
    automation: CompiledAutomation;
    profile: LoadedProfile;
    channel: "email" | "webpush";
  }): Promise<void> {
    const { namespace, instance, automation, profile, channel } = send;
    const base: Omit<SendJob, "id"> = {
      namespace,
      sender: automation.spec.senderRef.name,
      profileId: instance.profileId,
      source: { kind: "Automation", name: automation.name, runId: instance.key },
      transactional: automation.spec.subscription === "all",
      event: instance.trigger,
      createdAt: new Date(this.#deps.now()).toISOString(),
    };
    const subject = Subjects.send(namespace, base.sender);
    if (channel === "email") {
      await this.#deps.publish(subject, { ...base, id: `${instance.key}|send` });
      return;
    }
    await Promise.all(
      profile.pushEndpoints.map(({ field, endpoint }) =>
        this.#deps.publish(subject, { ...base, id: `${instance.key}|send|${field}`, endpoint }),
      ),
    );
  }

  async #loadProfile(namespace: string, profileId: string): Promise<LoadedProfile> {
    const hash = await this.#deps.redis.hgetall(RedisKeys.profile(namespace, profileId));
    const attributes: Record<string, unknown> = {};
    const pushEndpoints: LoadedProfile["pushEndpoints"] = [];
    for (const [field, value] of Object.entries(hash)) {
      if (field.startsWith("a:")) attributes[field.slice(2)] = JSON.parse(value) as unknown;
      if (field.startsWith("w:"))
        pushEndpoints.push({ field: field.slice(2), endpoint: (JSON.parse(value) as { endpoint: string }).endpoint });
    }
    const email = hash.email;
    const suppressed =
      email === undefined ? false : (await this.#deps.redis.hexists(RedisKeys.suppressed(namespace), email)) === 1;
    return {
      exists: Object.keys(hash).length > 0,
      cel: {
        id: profileId,
        email: email ?? null,
        emailSubscription: hash.emailSubscription ?? null,
        language: hash.language ?? null,
        timezone: hash.timezone ?? null,
        attributes,
      },
      email,
      unsubscribed: hash.emailSubscription === "unsubscribed",
      suppressed,
      pushEndpoints: pushEndpoints.filter(({ endpoint }) => ProfileFields.push(endpoint).length > 0),
    };
  }
}

/** A skip decided from the profile at fire time; suppression wins even for transactional sends. */
function skipReason(
  profile: LoadedProfile,
  channel: "email" | "webpush",
  subscription: "optedIn" | "all",
): string | undefined {
  if (!profile.exists) return "no_profile";
  if (channel === "webpush") return profile.pushEndpoints.length === 0 ? "no_subscription" : undefined;
  if (profile.email === undefined) return "no_address";
  if (profile.suppressed) return "suppressed";
  if (subscription === "optedIn" && profile.unsubscribed) return "opt_out";
  return undefined;
}
