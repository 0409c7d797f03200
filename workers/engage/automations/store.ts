// The automation engine's Redis side: instances, their timers and leases, grace and capping
// records, and per-automation counters. Every call is one script, one round trip; fire and done
// take a whole claimed batch at once.
import type { Redis } from "ioredis";
import { RedisKeys } from "#runtime";
import type { EventMessage } from "#runtime";
import { CANCEL, CLAIM, CLAIM_FIRE, DONE, FIRE, INSTANCES, RENEW, SCHEDULE } from "./scripts.ts";

type ScriptRunner = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/** What an instance remembers: its automation, the profile, and the event that triggered it. */
export interface Instance {
  key: string;
  automation: string;
  generation: number;
  profileId: string;
  trigger: EventMessage;
  dueMs: number;
}

/**
 * A claimed instance as the fire path needs it: its trigger stays the JSON text kept in Redis,
 * spliced into the send job without being parsed.
 */
export interface FiredInstance {
  key: string;
  automation: string;
  profileId: string;
  triggerJson: string;
}

/** What the fire script needs to know of an automation to decide its due instances. */
export interface FireRule {
  graceMs: number;
  /** 0: no capping. */
  capMax: number;
  capWindowMs: number;
  /** A push message: the profile's push subscriptions are read, not its address. */
  push: boolean;
  /** Skip profiles that unsubscribed (false: transactional, sent to them too). */
  optedIn: boolean;
  suspended: boolean;
}

/** A push subscription as stored in the profile hash (its field without "w:", and the endpoint). */
export interface PushEndpoint {
  field: string;
  endpoint: string;
}

export type FireDecision =
  | { kind: "send"; endpoints: PushEndpoint[] }
  | { kind: "skip"; reason: string }
  | { kind: "held" }
  | { kind: "cancelled" };

export interface FireInput {
  nowMs: number;
  /** Where instances of a suspended automation go back to wait. */
  holdUntilMs: number;
  /** By automation name; an automation absent here was deleted. */
  rules: ReadonlyMap<string, FireRule>;
}

/**
 * How long a claimed instance stays with its worker without a renewal. Short, so a killed
 * worker's claims fire again within seconds; a worker still firing renews its leases every
 * LEASE_RENEW_MS. A repeated fire is harmless: the instance is reserved and its send id is the same.
 */
export const LEASE_MS = 3000;
export const LEASE_RENEW_MS = 1000;

export function instanceKey(automation: string, profileId: string, eventId: string): string {
  return `${automation}|${profileId}|${eventId}`;
}

function prefixOf(namespace: string): string {
  return RedisKeys.timers(namespace).slice(0, -"timers".length);
}

function pairs(flat: string[]): [string, string][] {
  const result: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) result.push([flat[i] ?? "", flat[i + 1] ?? ""]);
  return result;
}

function decision(reply: string[]): FireDecision {
  const [kind, ...rest] = reply;
  if (kind === "send")
    return {
      kind,
      endpoints: pairs(rest).map(([field, json]) => ({
        field,
        endpoint: (JSON.parse(json) as { endpoint: string }).endpoint,
      })),
    };
  if (kind === "skip") return { kind, reason: rest[0] ?? "" };
  return kind === "held" ? { kind } : { kind: "cancelled" };
}

function rulesJson(rules: ReadonlyMap<string, FireRule>): string {
  return JSON.stringify(Object.fromEntries(rules));
}

/** An instance from its stored {json, trigger} (trigger '' when json holds it: older instances). */
function instanceOf(json: string, trigger: string): Instance {
  const instance = JSON.parse(json) as Instance;
  if (trigger !== "") instance.trigger = JSON.parse(trigger) as Instance["trigger"];
  return instance;
}

/** (key, profileId, automation) per instance, as fire and done take them. */
function triples(instances: readonly Pick<Instance, "key" | "profileId" | "automation">[]): string[] {
  return instances.flatMap((instance) => [instance.key, instance.profileId, instance.automation]);
}

export class AutomationStore {
  readonly #redis: Redis;
  readonly #run: Record<string, ScriptRunner> = {};

  constructor(redis: Redis) {
    this.#redis = redis;
    const scripts = { SCHEDULE, CLAIM, CLAIM_FIRE, RENEW, FIRE, DONE, CANCEL, INSTANCES };
    for (const [name, lua] of Object.entries(scripts)) {
      const command = `relaisEngage${name}`;
      redis.defineCommand(command, { lua });
      this.#run[name] = ((redis as unknown as Record<string, ScriptRunner>)[command] as ScriptRunner).bind(redis);
    }
  }

  #script(name: string, ...args: (string | number)[]): Promise<unknown> {
    const run = this.#run[name];
    if (run === undefined) throw new Error(`no script ${name}`);
    return run(0, ...args);
  }

  /**
   * Creates a waiting instance; `created` is false when it exists already (the trigger was
   * replayed). With `fireNow` (an instance due at once) it is created leased and decided in the
   * same script: `decision` says whether to send it.
   */
  async schedule(
    namespace: string,
    instance: Instance,
    fireNow?: { nowMs: number; rule: FireRule },
  ): Promise<{ created: boolean; decision?: FireDecision }> {
    const { trigger, ...rest } = instance;
    const args: (string | number)[] = [
      prefixOf(namespace),
      instance.key,
      instance.profileId,
      instance.automation,
      instance.dueMs,
      JSON.stringify(rest),
      JSON.stringify(trigger),
    ];
    if (fireNow !== undefined) args.push(fireNow.nowMs, LEASE_MS, JSON.stringify(fireNow.rule));
    const [created, reply] = (await this.#script("SCHEDULE", ...args)) as [number, string[] | undefined];
    return reply === undefined ? { created: created === 1 } : { created: created === 1, decision: decision(reply) };
  }

  /** Claims up to `limit` due instances (and re-claims instances whose worker died). */
  async claimDue(namespace: string, nowMs: number, limit: number): Promise<Instance[]> {
    const flat = (await this.#script("CLAIM", prefixOf(namespace), nowMs, limit, LEASE_MS)) as string[];
    return pairs(flat).map(([json, trigger]) => instanceOf(json, trigger));
  }

  /**
   * Claims up to `limit` due instances and decides them in the same script (as fire does); `rules`
   * holds every automation of the namespace. The timer poller's path: one script per batch.
   */
  async claimAndFire(
    namespace: string,
    limit: number,
    input: FireInput,
  ): Promise<{ instance: FiredInstance; decision: FireDecision }[]> {
    const replies = (await this.#script(
      "CLAIM_FIRE",
      prefixOf(namespace),
      input.nowMs,
      limit,
      LEASE_MS,
      input.holdUntilMs,
      rulesJson(input.rules),
    )) as string[][];
    return replies.map(([key = "", automation = "", profileId = "", triggerJson = "", ...reply]) => ({
      instance: { key, automation, profileId, triggerJson },
      decision: decision(reply),
    }));
  }

  /** Extends the leases of instances this worker is still firing. */
  async renew(namespace: string, keys: readonly string[], nowMs: number): Promise<void> {
    if (keys.length === 0) return;
    await this.#script("RENEW", prefixOf(namespace), nowMs + LEASE_MS, ...keys);
  }

  /**
   * Decides claimed instances, one decision each in order: cancelled, held (suspended), skipped
   * (ended and counted), or send (reserved: grace and capping recorded atomically, so two
   * replicas cannot both pass them).
   */
  async fire(namespace: string, instances: readonly Instance[], input: FireInput): Promise<FireDecision[]> {
    if (instances.length === 0) return [];
    const replies = (await this.#script(
      "FIRE",
      prefixOf(namespace),
      input.nowMs,
      input.holdUntilMs,
      rulesJson(input.rules),
      ...triples(instances),
    )) as string[][];
    return replies.map(decision);
  }

  /** Ends instances whose send jobs are published (counted as sent). */
  async done(
    namespace: string,
    instances: readonly Pick<Instance, "key" | "profileId" | "automation">[],
  ): Promise<void> {
    if (instances.length === 0) return;
    await this.#script("DONE", prefixOf(namespace), ...triples(instances));
  }

  /** Cancels these instances of the profile (unless already reserved for sending). */
  async cancel(namespace: string, profileId: string, keys: readonly string[], counter = "cancelled"): Promise<number> {
    if (keys.length === 0) return 0;
    return (await this.#script("CANCEL", prefixOf(namespace), profileId, counter, ...keys)) as number;
  }

  /** The profile's live instances. */
  async instancesOf(namespace: string, profileId: string): Promise<Instance[]> {
    const flat = (await this.#script("INSTANCES", prefixOf(namespace), profileId)) as string[];
    return pairs(flat).map(([json, trigger]) => instanceOf(json, trigger));
  }

  /** The automation's counter hash as stored (see readAutomationCounters for the typed view). */
  async stats(namespace: string, automation: string): Promise<Record<string, number>> {
    const raw = await this.#redis.hgetall(RedisKeys.automationCounters(namespace, automation));
    return Object.fromEntries(Object.entries(raw).map(([field, value]) => [field, Number(value)]));
  }

  /** Counts a decision taken before any instance exists (filtered out, a skipped date). */
  async count(namespace: string, automation: string, counter: string): Promise<void> {
    await this.#redis.hincrby(RedisKeys.automationCounters(namespace, automation), counter, 1);
  }

  /** How many instances wait for their timer, for tests and metrics. */
  async pending(namespace: string): Promise<number> {
    return this.#redis.zcard(RedisKeys.timers(namespace));
  }
}
