// Redis key builders. Every key of a namespace carries the hash tag {<namespace>} so a namespace's
// keys share a Redis Cluster slot and Lua scripts may touch several of them atomically.

import { createHash } from "node:crypto";

/** The start of every key of a namespace: `relais:{<namespace>}:`. */
export const prefix = (namespace: string): string => `relais:{${namespace}}:`;

/** Field names inside a profile hash that other processes read. */
export const ProfileFields = {
  attribute: (name: string): string => `a:${name}`,
  /** A push subscription's field: stable per endpoint, bounded length. */
  push: (endpoint: string): string => `w:${createHash("sha256").update(endpoint).digest("base64url").slice(0, 22)}`,
} as const;

export const RedisKeys = {
  /** HASH of one profile: a:<attribute>, email, emailSubscription, w:<endpoint hash>, ... */
  profile: (namespace: string, profileId: string): string => `${prefix(namespace)}p:${profileId}`,
  /** LIST of the profile's latest events (newest first), trimmed to a bound. */
  // Each per-profile key kind has its own prefix: an id may contain ":", so a suffix such as
  // "p:<id>:events" could be another profile's hash key.
  profileEvents: (namespace: string, profileId: string): string => `${prefix(namespace)}e:${profileId}`,
  /** LIST of the profile's email subscription changes (newest first), trimmed to a bound. */
  subscriptionHistory: (namespace: string, profileId: string): string => `${prefix(namespace)}s:${profileId}`,
  /** ZSET profileId -> last activity (ms): every profile of the namespace, oldest activity first. */
  activity: (namespace: string): string => `${prefix(namespace)}activity`,
  /** SET of profile ids with this (normalised) email address. */
  emailIndex: (namespace: string, email: string): string => `${prefix(namespace)}email:${email}`,
  /** SET of profile ids with an address in this domain. */
  domainIndex: (namespace: string, domain: string): string => `${prefix(namespace)}domain:${domain}`,
  /** HASH email -> JSON {reason, at}: addresses never to send to (hard bounce, complaint). */
  suppressed: (namespace: string): string => `${prefix(namespace)}suppressed`,
  /** HASH {tokens, ts}: a Sender's pool-wide token bucket (expires when idle). */
  rateBucket: (namespace: string, sender: string): string => `${prefix(namespace)}rate:${sender}`,
  /** HASH {tokens, ts}: a Sender's token bucket for one recipient domain. */
  domainRateBucket: (namespace: string, sender: string, domain: string): string =>
    `${prefix(namespace)}rate:${sender}:${domain}`,
  /** STRING with a TTL: "pending:<owner>" while a send is in flight, "done:<outcome>" after. */
  sendRecord: (namespace: string, sendId: string): string => `${prefix(namespace)}send:${sendId}`,
  /** ZSET instance -> due time (ms): automation instances waiting for their timer. */
  timers: (namespace: string): string => `${prefix(namespace)}timers`,
  /** ZSET instance -> lease expiry (ms): automation instances being fired by a worker. */
  timerLeases: (namespace: string): string => `${prefix(namespace)}lease`,
  /**
   * HASH of an Automation's counters, moved by the engine's scripts with the decisions they count
   * (fields in AutomationCounterFields; read them with readAutomationCounters).
   */
  automationCounters: (namespace: string, automation: string): string => `${prefix(namespace)}astats:${automation}`,
  /** STRING with a TTL: marks an event id as recorded in profile history. */
  eventSeen: (namespace: string, eventId: string): string => `${prefix(namespace)}evseen:${eventId}`,
  // Campaigns (workers/engage/campaigns; read by the operator and ingest through runtime/wire/campaigns.ts).
  /** STRING with a TTL: the engage replica planning this campaign (a lease renewed while it works). */
  campaignLease: (namespace: string, campaign: string): string => `${prefix(namespace)}cmp:${campaign}:lease`,
  /** HASH: the campaign's schedule state (since, onceDone, atDone, lastSlot, current run, nextRunAt). */
  campaignState: (namespace: string, campaign: string): string => `${prefix(namespace)}cmp:${campaign}:state`,
  /** ZSET runId -> started (ms): the campaign's latest runs, trimmed to a bound. */
  campaignRuns: (namespace: string, campaign: string): string => `${prefix(namespace)}cmp:${campaign}:runs`,
  /** HASH: one run's meta (status, startedAt, cursor, ...) and counters. */
  campaignRun: (namespace: string, campaign: string, runId: string): string =>
    `${prefix(namespace)}cmp:${campaign}:run:${runId}`,
  /** ZSET: the run's audience, a snapshot of the activity ZSET taken when it started (deleted when it ends). */
  campaignAudience: (namespace: string, campaign: string, runId: string): string =>
    `${prefix(namespace)}cmp:${campaign}:run:${runId}:audience`,
  /**
   * ZSET "<rank>|<profileId>" scored by send instant (ms): a local-time run's recipients not yet
   * planned (rank: the snapshot position, so equal instants keep the newest activity first).
   * Deleted when the run ends.
   */
  campaignDue: (namespace: string, campaign: string, runId: string): string =>
    `${prefix(namespace)}cmp:${campaign}:run:${runId}:due`,
  /** HASH email -> profileId: the address claims of a dedupeByEmail run (deleted when it ends). */
  campaignClaims: (namespace: string, campaign: string, runId: string): string =>
    `${prefix(namespace)}cmp:${campaign}:run:${runId}:claims`,
  /**
   * HASH: the preview of a suspended campaign, written by engage: `json` (audience, skips, samples;
   * read by the operator for status and by ingest for the preview API), its `generation`, and
   * `request` (the refresh request it answers). Deleted when the campaign resumes.
   */
  campaignPreview: (namespace: string, campaign: string): string => `${prefix(namespace)}cmp:${campaign}:preview`,
  /** STRING: a counter the preview API increments to ask for a fresh preview. */
  campaignPreviewRequest: (namespace: string, campaign: string): string =>
    `${prefix(namespace)}cmp:${campaign}:preview:request`,
} as const;

/** A profile hash as filters, segments and templates see it: one shape everywhere. */
export interface ProfileFromHash {
  id: string;
  email: string | null;
  emailSubscription: string | null;
  language: string | null;
  timezone: string | null;
  attributes: Record<string, unknown>;
}

/** Reads a profile hash (HGETALL of RedisKeys.profile): `a:<name>` fields are JSON attributes. */
export function profileFromHash(id: string, hash: Record<string, string>): ProfileFromHash {
  const attributes: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(hash)) {
    if (field.startsWith("a:")) attributes[field.slice(2)] = JSON.parse(value) as unknown;
  }
  return {
    id,
    email: hash.email ?? null,
    emailSubscription: hash.emailSubscription ?? null,
    language: hash.language ?? null,
    timezone: hash.timezone ?? null,
    attributes,
  };
}
