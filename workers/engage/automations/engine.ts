// The automation engine: an event cancels the waiting instances it matches, then starts an
// instance of every automation it triggers; instances fire when due, a claimed batch at a time:
// one script decides the whole batch (cancelled, held, skipped by grace, capping, opt-out or
// suppression, or reserved to send), the send jobs go to the Sender's subject in windows of
// concurrent publishes, each with an idempotency key, and one script ends the sent instances. So
// neither a replayed event nor a retried fire can send twice.
import type { Redis } from "ioredis";
import { AutomationCounterFields, ERASE_EVENT, profileFromHash, RedisKeys, Subjects } from "#runtime";
import type { EventMessage, Logger, SendJob } from "#runtime";
import type { AutomationRegistry, CompiledAutomation } from "./registry.ts";
import { instanceKey } from "./store.ts";
import type { AutomationStore, FiredInstance, FireRule, Instance, PushEndpoint } from "./store.ts";

export interface EngineDeps {
  registry: AutomationRegistry;
  store: AutomationStore;
  redis: Redis;
  /** Publishes a send job; resolves once JetStream stored it (msgID: sendMessageId(namespace, id)). */
  publish: (subject: string, job: EncodedSendJob) => Promise<void>;
  now: () => number;
  log: Logger;
  /** Publishes awaited together (default 500): a fire never waits on them one by one. */
  publishWindow?: number;
}

/** A send job as published: its id and namespace (for the Nats-Msg-Id), and its JSON (a SendJob). */
export interface EncodedSendJob {
  id: string;
  namespace: string;
  json: string;
}

/** What firing a batch came to. */
export interface FireSummary {
  /** Instances whose send jobs are published (and which ended). */
  sent: number;
  /** Instances left leased because a publish failed: they fire again when the lease ends. */
  failed: number;
}

/** Instances claimed by fireDue: their keys, and their sends under way. */
export interface DueBatch {
  keys: string[];
  sending: Promise<FireSummary>;
}

/** A reserved instance and what its send needs. */
interface Send {
  instance: FiredInstance;
  automation: CompiledAutomation;
  endpoints: PushEndpoint[];
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

const rules = new WeakMap<CompiledAutomation, FireRule>();

/** What the fire script checks for `automation`, computed once per compiled generation. */
export function fireRule(automation: CompiledAutomation): FireRule {
  let rule = rules.get(automation);
  if (rule === undefined) {
    const { spec } = automation;
    rule = {
      graceMs: spec.gracePeriod === undefined ? 0 : durationMs(spec.gracePeriod),
      capMax: spec.capping?.max ?? 0,
      capWindowMs: spec.capping === undefined ? 0 : durationMs(spec.capping.per),
      push: spec.message.email === undefined,
      optedIn: spec.subscription === "optedIn",
      suspended: spec.suspend,
    };
    rules.set(automation, rule);
  }
  return rule;
}

/** The profile as filters see it (`profile` in CEL), read once per event and only if a filter needs it. */
type ProfileLoader = () => Promise<Record<string, unknown>>;

export class AutomationEngine {
  readonly #deps: EngineDeps;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  /** Applies one event: erase, cancels, then triggers. Rejects only when Redis or NATS fail. */
  async handleEvent(event: EventMessage): Promise<void> {
    const { registry, store } = this.#deps;
    if (event.name === ERASE_EVENT) {
      const instances = await store.instancesOf(event.namespace, event.profileId);
      await store.cancel(
        event.namespace,
        event.profileId,
        instances.map((instance) => instance.key),
        AutomationCounterFields.erased,
      );
      return;
    }
    const cancelling = registry.cancelledBy(event.namespace, event.name);
    const triggered = registry.triggeredBy(event.namespace, event.name);
    if (cancelling.length === 0 && triggered.length === 0) return;
    let profile: Promise<Record<string, unknown>> | undefined;
    const loadProfile: ProfileLoader = () => (profile ??= this.#loadProfile(event.namespace, event.profileId));
    if (cancelling.length > 0) await this.#cancel(event, cancelling, loadProfile);
    // Each automation's instance is its own (grace and capping are per automation): in parallel.
    await Promise.all(triggered.map((automation) => this.#trigger(event, automation, loadProfile)));
  }

  async #cancel(event: EventMessage, automations: readonly CompiledAutomation[], loadProfile: ProfileLoader) {
    const names = new Set(automations.map((automation) => automation.name));
    const instances = (await this.#deps.store.instancesOf(event.namespace, event.profileId)).filter((instance) =>
      names.has(instance.automation),
    );
    const now = new Date(this.#deps.now());
    const matching: string[] = [];
    for (const instance of instances) {
      const cancels = this.#deps.registry.get(event.namespace, instance.automation)?.cancels ?? [];
      for (const cancel of cancels) {
        if (cancel.event !== event.name || cancel.filter?.kind === "invalid") continue;
        const holds =
          cancel.filter === undefined ||
          this.#holds(cancel.filter, { event, trigger: instance.trigger, profile: await loadProfile(), now });
        if (holds) {
          matching.push(instance.key);
          break;
        }
      }
    }
    await this.#deps.store.cancel(event.namespace, event.profileId, matching);
  }

  #holds(filter: NonNullable<CompiledAutomation["filter"]>, context: Record<string, unknown>): boolean {
    if (filter.kind === "invalid") return false;
    const result = filter.evaluate(context);
    return result.kind === "value" && result.value;
  }

  async #trigger(event: EventMessage, automation: CompiledAutomation, loadProfile: ProfileLoader): Promise<void> {
    const { store } = this.#deps;
    if (automation.spec.suspend) return;
    const nowMs = this.#deps.now();
    if (automation.filter !== undefined) {
      const context = { event, profile: await loadProfile(), now: new Date(nowMs) };
      if (!this.#holds(automation.filter, context)) {
        await store.count(event.namespace, automation.name, AutomationCounterFields.filteredOut);
        return;
      }
    }
    const due = dueTime(automation, event, nowMs);
    if (due.kind === "skip") {
      await store.count(event.namespace, automation.name, `${AutomationCounterFields.skippedPrefix}${due.reason}`);
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
    if (due.dueMs > nowMs) {
      await store.schedule(event.namespace, instance);
      return;
    }
    // Due now: created and decided in one script; a replayed event finds it and does nothing.
    const { decision } = await store.schedule(event.namespace, instance, { nowMs, rule: fireRule(automation) });
    if (decision?.kind !== "send") return;
    const fired = { ...instance, triggerJson: JSON.stringify(event) };
    const sent = await this.#publish(event.namespace, [{ instance: fired, automation, endpoints: decision.endpoints }]);
    if (sent.length === 0) throw new Error(`the send job of ${instance.key} was not published`);
    await store.done(event.namespace, sent);
  }

  /** Fires one due instance (see fireBatch). */
  async fire(namespace: string, instance: Instance): Promise<void> {
    await this.fireBatch(namespace, [instance]);
  }

  /**
   * Claims up to `limit` due instances of `namespace` and fires them: one script claims and
   * decides them all (see fireBatch for the decisions), then their send jobs are published and one
   * script ends those published. The timer poller's path: it resolves once claimed, with the keys
   * claimed (whose leases the caller renews) and the sending still going on.
   */
  async fireDue(namespace: string, limit: number): Promise<DueBatch> {
    const automations = new Map<string, CompiledAutomation>();
    const byName = new Map<string, FireRule>();
    for (const automation of this.#deps.registry.inNamespace(namespace)) {
      automations.set(automation.name, automation);
      byName.set(automation.name, fireRule(automation));
    }
    const nowMs = this.#deps.now();
    const claimed = await this.#deps.store.claimAndFire(namespace, limit, {
      nowMs,
      holdUntilMs: nowMs + HOLD_WHILE_SUSPENDED_MS,
      rules: byName,
    });
    const sends: Send[] = [];
    for (const { instance, decision } of claimed) {
      const automation = automations.get(instance.automation);
      if (decision.kind === "send" && automation !== undefined)
        sends.push({ instance, automation, endpoints: decision.endpoints });
    }
    return { keys: claimed.map(({ instance }) => instance.key), sending: this.#sendAndEnd(namespace, sends) };
  }

  /**
   * Fires instances already claimed (claimDue): one script decides them all (an instance of a
   * suspended automation is held, one of a deleted automation is dropped), the reserved ones' send
   * jobs are published, and one script ends those published. Rejects only when Redis fails; a
   * failed publish leaves its instance leased, to fire again when the lease ends.
   */
  async fireBatch(namespace: string, instances: readonly Instance[]): Promise<FireSummary> {
    const { registry, store } = this.#deps;
    const automations = new Map<string, CompiledAutomation>();
    const byName = new Map<string, FireRule>();
    for (const { automation: name } of instances) {
      const automation = registry.get(namespace, name);
      if (automation === undefined || automations.has(name)) continue;
      automations.set(name, automation);
      byName.set(name, fireRule(automation));
    }
    const nowMs = this.#deps.now();
    const decisions = await store.fire(namespace, instances, {
      nowMs,
      holdUntilMs: nowMs + HOLD_WHILE_SUSPENDED_MS,
      rules: byName,
    });
    const sends: Send[] = [];
    decisions.forEach((decision, index) => {
      const instance = instances[index];
      const automation = instance === undefined ? undefined : automations.get(instance.automation);
      if (decision.kind === "send" && instance !== undefined && automation !== undefined)
        sends.push({
          instance: { ...instance, triggerJson: JSON.stringify(instance.trigger) },
          automation,
          endpoints: decision.endpoints,
        });
    });
    return this.#sendAndEnd(namespace, sends);
  }

  /** Publishes the reserved instances' send jobs, then ends those published in one script. */
  async #sendAndEnd(namespace: string, sends: readonly Send[]): Promise<FireSummary> {
    const sent = await this.#publish(namespace, sends);
    await this.#deps.store.done(namespace, sent);
    return { sent: sent.length, failed: sends.length - sent.length };
  }

  /** Publishes the sends' jobs in windows of concurrent publishes; resolves with the instances fully published. */
  async #publish(namespace: string, sends: readonly Send[]): Promise<FiredInstance[]> {
    const createdAt = new Date(this.#deps.now()).toISOString();
    const jobs = sends.flatMap((send) => this.#jobs(namespace, send, createdAt).map((job) => ({ send, job })));
    const window = this.#deps.publishWindow ?? 500;
    const failed = new Set<Send>();
    let error: unknown;
    for (let start = 0; start < jobs.length; start += window) {
      const slice = jobs.slice(start, start + window);
      const results = await Promise.allSettled(
        slice.map(({ job, send }) =>
          this.#deps.publish(Subjects.send(namespace, send.automation.spec.senderRef.name), job),
        ),
      );
      results.forEach((result, index) => {
        const entry = slice[index];
        if (result.status === "rejected" && entry !== undefined) {
          failed.add(entry.send);
          error = result.reason;
        }
      });
    }
    if (failed.size > 0)
      this.#deps.log.warn(
        { err: error, namespace, failed: failed.size },
        "send jobs not published; retried after their lease",
      );
    return sends.filter((send) => !failed.has(send)).map((send) => send.instance);
  }

  /**
   * The send jobs of a reserved instance: one email, or one per push subscription. The trigger's
   * JSON, as stored, goes in as the job's `event` without a parse and a stringify.
   */
  #jobs(namespace: string, send: Send, createdAt: string): EncodedSendJob[] {
    const { instance, automation, endpoints } = send;
    const base: Omit<SendJob, "id" | "event"> = {
      namespace,
      sender: automation.spec.senderRef.name,
      profileId: instance.profileId,
      source: { kind: "Automation", name: automation.name, runId: instance.key },
      transactional: automation.spec.subscription === "all",
      createdAt,
    };
    const encode = (job: Omit<SendJob, "event">): EncodedSendJob => ({
      id: job.id,
      namespace,
      json: `${JSON.stringify(job).slice(0, -1)},"event":${instance.triggerJson}}`,
    });
    if (automation.spec.message.email !== undefined) return [encode({ ...base, id: `${instance.key}|send` })];
    return endpoints.map(({ field, endpoint }) => encode({ ...base, id: `${instance.key}|send|${field}`, endpoint }));
  }

  /** The profile as CEL filters see it: one HGETALL. */
  async #loadProfile(namespace: string, profileId: string): Promise<Record<string, unknown>> {
    const hash = await this.#deps.redis.hgetall(RedisKeys.profile(namespace, profileId));
    return { ...profileFromHash(profileId, hash) };
  }
}
