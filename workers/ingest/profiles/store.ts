// The unified profile store: one Redis hash per profile, bounded histories, and the indexes that
// campaigns and suppression need. Every write is one Lua script, so it is atomic.
import type { Redis } from "ioredis";
import { ProfileFields, RedisKeys } from "#runtime";
import type { EventMessage } from "#runtime";
import { ERASE, IDENTIFY, RECORD_EVENTS } from "./scripts.ts";

/** Bounds that keep every key from growing without limit. */
export const ProfileLimits = {
  /** Fields of a profile hash: attributes, push subscriptions and a dozen of our own. */
  maxFields: 512,
  /** Events kept in a profile's history. */
  historyEvents: 100,
  /** How long an event id is remembered for idempotent retries. */
  eventIdTtlSeconds: 7 * 24 * 3600,
} as const;

export type AttributeValue = string | number | boolean | string[];

export interface PushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface ProfilePatch {
  attributes?: Record<string, AttributeValue | null>;
  /** Normalised address; null removes it. */
  email?: string | null;
  emailSubscription?: { status: "subscribed" | "unsubscribed"; source: string };
  language?: string | null;
  timezone?: string | null;
  webPush?: { add?: PushSubscription[]; remove?: string[] };
}

export type IdentifyResult =
  { kind: "created" } | { kind: "updated" } | { kind: "tooManyFields"; max: number } | { kind: "notFound" };

export interface ProfileView {
  id: string;
  createdAt: string | null;
  updatedAt: string | null;
  lastActivityAt: string | null;
  attributes: Record<string, AttributeValue>;
  email: {
    address: string | null;
    subscription: string | null;
    subscriptionChangedAt: string | null;
    history: { status: string; at: string; source: string }[];
    suppressed: { reason: string; at: string } | null;
  };
  language: string | null;
  timezone: string | null;
  webPushSubscriptions: { endpoint: string; addedAt: string; keys: "redacted" }[];
  events: { id: string; name: string; timestamp: string; attributes: Record<string, unknown> }[];
}

export interface EraseSummary {
  existed: boolean;
  events: number;
  pushSubscriptions: number;
  email: boolean;
}

/** The field of a push subscription in the profile hash, without its "w:" prefix. */
export function pushField(endpoint: string): string {
  return ProfileFields.push(endpoint).slice(2);
}

type ScriptRunner = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

function prefixOf(namespace: string): string {
  return RedisKeys.activity(namespace).slice(0, -"activity".length);
}

function attributeChanges(attributes: ProfilePatch["attributes"] = {}) {
  const set: Record<string, string> = {};
  const unset: string[] = [];
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null) unset.push(name);
    else set[name] = JSON.stringify(value);
  }
  return { set, unset };
}

function pushChanges(webPush: ProfilePatch["webPush"] = {}, nowIso: string) {
  const pushAdd: Record<string, string> = {};
  for (const subscription of webPush.add ?? []) {
    pushAdd[pushField(subscription.endpoint)] = JSON.stringify({ ...subscription, addedAt: nowIso });
  }
  return { pushAdd, pushRemove: (webPush.remove ?? []).map(pushField) };
}

function toLuaPatch(patch: ProfilePatch, nowIso: string) {
  return {
    ...attributeChanges(patch.attributes),
    ...pushChanges(patch.webPush, nowIso),
    ...(patch.email !== undefined && { email: patch.email ?? "" }),
    ...(patch.emailSubscription !== undefined && { subscription: patch.emailSubscription }),
    ...(patch.language !== undefined && { language: patch.language ?? "" }),
    ...(patch.timezone !== undefined && { timezone: patch.timezone ?? "" }),
  };
}

/** cjson encodes an empty Lua table as {} and decodes [] and {} alike: send objects, never []. */
function luaJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => (Array.isArray(inner) && inner.length === 0 ? {} : inner));
}

export class ProfileStore {
  readonly #redis: Redis;
  readonly #identify: ScriptRunner;
  readonly #record: ScriptRunner;
  readonly #erase: ScriptRunner;
  readonly #now: () => Date;

  constructor(redis: Redis, now: () => Date = () => new Date()) {
    this.#redis = redis;
    this.#now = now;
    const define = (name: string, lua: string): ScriptRunner => {
      redis.defineCommand(name, { lua });
      return (redis as unknown as Record<string, ScriptRunner>)[name]?.bind(redis) as ScriptRunner;
    };
    this.#identify = define("relaisIdentify", IDENTIFY);
    this.#record = define("relaisRecordEvents", RECORD_EVENTS);
    this.#erase = define("relaisErase", ERASE);
  }

  /**
   * Upserts a profile: merges the named fields, never clobbers the others. With `mustExist`, an
   * unknown (or erased) profile is left alone and `notFound` returned.
   */
  async identify(
    namespace: string,
    id: string,
    patch: ProfilePatch,
    options: { mustExist?: boolean } = {},
  ): Promise<IdentifyResult> {
    const now = this.#now();
    const lua = toLuaPatch(patch, now.toISOString());
    const [created, error] = (await this.#identify(
      0,
      prefixOf(namespace),
      id,
      now.getTime(),
      now.toISOString(),
      luaJson(lua),
      ProfileLimits.maxFields,
      options.mustExist === true ? "1" : "0",
    )) as [number, string];
    if (error === "too_many_fields") return { kind: "tooManyFields", max: ProfileLimits.maxFields };
    if (error === "not_found") return { kind: "notFound" };
    return created === 1 ? { kind: "created" } : { kind: "updated" };
  }

  /**
   * Appends accepted events to their profiles' histories (creating unknown profiles) and moves
   * last activity. Idempotent per event id: resolves with, per event, whether it was new.
   */
  async recordEvents(namespace: string, events: readonly EventMessage[]): Promise<boolean[]> {
    if (events.length === 0) return [];
    const now = this.#now();
    const args: (string | number)[] = [
      prefixOf(namespace),
      now.getTime(),
      now.toISOString(),
      ProfileLimits.historyEvents,
      ProfileLimits.eventIdTtlSeconds,
    ];
    for (const event of events) {
      const history = { id: event.id, name: event.name, timestamp: event.timestamp, attributes: event.attributes };
      args.push(event.id, event.profileId, JSON.stringify(history), Date.parse(event.timestamp), event.timestamp);
    }
    const results = (await this.#record(0, ...args)) as number[];
    return results.map((result) => result === 1);
  }

  /** Everything known about a profile, push keys redacted; undefined when it does not exist. */
  async view(namespace: string, id: string, eventCount = 20): Promise<ProfileView | undefined> {
    const key = RedisKeys.profile(namespace, id);
    const [hash, events, history] = (await this.#redis
      .multi()
      .hgetall(key)
      .lrange(RedisKeys.profileEvents(namespace, id), 0, eventCount - 1)
      .lrange(RedisKeys.subscriptionHistory(namespace, id), 0, 49)
      .exec()
      .then((replies) => (replies ?? []).map(([error, value]) => (error === null ? value : undefined)))) as [
      Record<string, string> | undefined,
      string[] | undefined,
      string[] | undefined,
    ];
    if (hash === undefined || Object.keys(hash).length === 0) return undefined;
    const email = hash.email ?? null;
    const suppressed = email === null ? null : await this.suppression(namespace, email);
    return buildView({ id, hash, events: events ?? [], history: history ?? [], suppressed });
  }

  async suppression(namespace: string, email: string): Promise<{ reason: string; at: string } | null> {
    const raw = await this.#redis.hget(RedisKeys.suppressed(namespace), email);
    return raw === null ? null : (JSON.parse(raw) as { reason: string; at: string });
  }

  /** Never send to `email` again in this namespace (hard bounce, complaint). */
  async suppress(namespace: string, email: string, reason: string): Promise<void> {
    await this.#redis.hset(
      RedisKeys.suppressed(namespace),
      email,
      JSON.stringify({ reason, at: this.#now().toISOString() }),
    );
  }

  /** Removes the profile, its histories and index entries, and says what was there. */
  async erase(namespace: string, id: string): Promise<EraseSummary> {
    const [existed, events, push, email] = (await this.#erase(0, prefixOf(namespace), id)) as number[];
    return { existed: existed === 1, events: events ?? 0, pushSubscriptions: push ?? 0, email: email === 1 };
  }

  /** Up to `limit` profile ids whose last activity is before `cutoff`, oldest first. */
  async inactiveSince(namespace: string, cutoff: Date, limit: number): Promise<string[]> {
    return this.#redis.zrangebyscore(RedisKeys.activity(namespace), "-inf", `(${cutoff.getTime()}`, "LIMIT", 0, limit);
  }
}

interface StoredProfile {
  id: string;
  hash: Record<string, string>;
  events: string[];
  history: string[];
  suppressed: { reason: string; at: string } | null;
}

function buildView({ id, hash, events, history, suppressed }: StoredProfile): ProfileView {
  const attributes: Record<string, AttributeValue> = {};
  const webPushSubscriptions: ProfileView["webPushSubscriptions"] = [];
  for (const [field, value] of Object.entries(hash)) {
    if (field.startsWith("a:")) attributes[field.slice(2)] = JSON.parse(value) as AttributeValue;
    if (field.startsWith("w:")) {
      const subscription = JSON.parse(value) as { endpoint: string; addedAt: string };
      webPushSubscriptions.push({ endpoint: subscription.endpoint, addedAt: subscription.addedAt, keys: "redacted" });
    }
  }
  return {
    id,
    createdAt: hash.createdAt ?? null,
    updatedAt: hash.updatedAt ?? null,
    lastActivityAt: hash.lastActivityAt ?? null,
    attributes,
    email: {
      address: hash.email ?? null,
      subscription: hash.emailSubscription ?? null,
      subscriptionChangedAt: hash.emailSubscriptionAt ?? null,
      history: history.map((entry) => JSON.parse(entry) as { status: string; at: string; source: string }),
      suppressed,
    },
    language: hash.language ?? null,
    timezone: hash.timezone ?? null,
    webPushSubscriptions,
    events: events.map((entry) => JSON.parse(entry) as ProfileView["events"][number]),
  };
}
