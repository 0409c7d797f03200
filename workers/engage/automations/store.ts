// The automation engine's Redis side: instances, their timers and leases, grace and capping
// records, and per-automation counters. Every call is one script, one round trip.
import type { Redis } from "ioredis";
import { RedisKeys } from "#runtime";
import type { EventMessage } from "#runtime";
import { CANCEL, CLAIM, DONE, GUARD, HOLD, INSTANCES, RENEW, SCHEDULE } from "./scripts.ts";

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

export type GuardResult = { kind: "send" } | { kind: "skip"; reason: string } | { kind: "cancelled" };

export interface GuardInput {
  nowMs: number;
  graceMs: number;
  capping: { max: number; windowMs: number } | undefined;
  /** Skip decided before the guard (opt-out, suppression); the guard finalises it. */
  skip: string | undefined;
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

export class AutomationStore {
  readonly #redis: Redis;
  readonly #run: Record<string, ScriptRunner> = {};

  constructor(redis: Redis) {
    this.#redis = redis;
    const scripts = { SCHEDULE, CLAIM, RENEW, HOLD, GUARD, DONE, CANCEL, INSTANCES };
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

  /** Creates a waiting instance; false when it exists already (the trigger was replayed). */
  async schedule(namespace: string, instance: Instance): Promise<boolean> {
    const created = await this.#script(
      "SCHEDULE",
      prefixOf(namespace),
      instance.key,
      instance.profileId,
      instance.automation,
      instance.dueMs,
      JSON.stringify(instance),
    );
    return created === 1;
  }

  /** Claims up to `limit` due instances (and re-claims instances whose worker died). */
  async claimDue(namespace: string, nowMs: number, limit: number): Promise<Instance[]> {
    const flat = (await this.#script("CLAIM", prefixOf(namespace), nowMs, limit, LEASE_MS)) as string[];
    return pairs(flat).map(([, json]) => JSON.parse(json) as Instance);
  }

  /** Extends the leases of instances this worker is still firing. */
  async renew(namespace: string, keys: readonly string[], nowMs: number): Promise<void> {
    if (keys.length === 0) return;
    await this.#script("RENEW", prefixOf(namespace), nowMs + LEASE_MS, ...keys);
  }

  async hold(namespace: string, key: string, dueMs: number): Promise<void> {
    await this.#script("HOLD", prefixOf(namespace), key, dueMs);
  }

  async guard(namespace: string, instance: Instance, input: GuardInput): Promise<GuardResult> {
    const result = (await this.#script(
      "GUARD",
      prefixOf(namespace),
      instance.key,
      instance.profileId,
      instance.automation,
      input.nowMs,
      input.graceMs,
      input.capping?.max ?? 0,
      input.capping?.windowMs ?? 0,
      input.skip ?? "",
    )) as string;
    if (result === "send") return { kind: "send" };
    if (result === "cancelled") return { kind: "cancelled" };
    return { kind: "skip", reason: result.slice("skip:".length) };
  }

  async done(namespace: string, instance: Instance): Promise<void> {
    await this.#script("DONE", prefixOf(namespace), instance.key, instance.profileId, instance.automation);
  }

  /** Cancels these instances of the profile (unless already reserved for sending). */
  async cancel(namespace: string, profileId: string, keys: readonly string[], counter = "cancelled"): Promise<number> {
    if (keys.length === 0) return 0;
    return (await this.#script("CANCEL", prefixOf(namespace), profileId, counter, ...keys)) as number;
  }

  /** The profile's live instances. */
  async instancesOf(namespace: string, profileId: string): Promise<Instance[]> {
    const flat = (await this.#script("INSTANCES", prefixOf(namespace), profileId)) as string[];
    return pairs(flat).map(([, json]) => JSON.parse(json) as Instance);
  }

  /** The automation's counters: triggered, waiting, cancelled, sent, filteredOut, skipped:<reason>. */
  async stats(namespace: string, automation: string): Promise<Record<string, number>> {
    const raw = await this.#redis.hgetall(`${prefixOf(namespace)}astats:${automation}`);
    return Object.fromEntries(Object.entries(raw).map(([field, value]) => [field, Number(value)]));
  }

  async count(namespace: string, automation: string, counter: string, by = 1): Promise<void> {
    await this.#redis.hincrby(`${prefixOf(namespace)}astats:${automation}`, counter, by);
  }

  /** Due time of the earliest waiting instance, for tests and metrics. */
  async pending(namespace: string): Promise<number> {
    return this.#redis.zcard(RedisKeys.timers(namespace));
  }
}
