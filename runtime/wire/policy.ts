// What the send-policy stage keeps in Redis, shared by every deliver pool of a namespace (caps count
// across Senders) and read by the operator (pauses and decision counts go into status) and by the
// people who clear a pause.
import type { Redis } from "ioredis";
import { z } from "zod";
import { prefix } from "./keys.ts";

export const PolicyKeys = {
  /** ZSET send id -> time (ms): the sends a frequency cap counted for one profile. */
  cap: (namespace: string, policy: string, scope: string, profileId: string): string =>
    `${prefix(namespace)}cap:${policy}:${scope}:${profileId}`,
  /** HASH <bucket>:<outcome> -> count: a Sender's or Campaign's outcomes per 10 s bucket, for auto-pause. */
  outcomes: (namespace: string, target: string): string => `${prefix(namespace)}outcomes:${target}`,
  /** HASH <Kind>/<name> -> JSON Pause: what auto-pause stopped, until a person resumes it. */
  pauses: (namespace: string): string => `${prefix(namespace)}pauses`,
  /** STRING with a TTL, one per held send and reason: a hold is counted once, not at every look. */
  heldMarker: (namespace: string): string => `${prefix(namespace)}policy-held:`,
  /** HASH <policy>:<reason> -> count: every decision of the policy stage, for status. */
  decisions: (namespace: string): string => `${prefix(namespace)}policy-decisions`,
} as const;

export const PauseTargets = {
  sender: (name: string): string => `Sender/${name}`,
  campaign: (name: string): string => `Campaign/${name}`,
} as const;

export const pauseSchema = z.strictObject({
  /** The SendPolicy whose autoPause fired. */
  policy: z.string(),
  /** Which rate crossed its threshold: bounceRate or failureRate. */
  reason: z.enum(["bounceRate", "failureRate"]),
  /** The observed rate and the counts behind it. */
  rate: z.number(),
  sends: z.int(),
  at: z.string(),
});
export type Pause = z.infer<typeof pauseSchema>;

/** Every current pause of a namespace, keyed by target (`Sender/<name>`, `Campaign/<name>`). */
export async function readPauses(redis: Redis, namespace: string): Promise<Map<string, Pause>> {
  const raw = await redis.hgetall(PolicyKeys.pauses(namespace));
  const pauses = new Map<string, Pause>();
  for (const [target, json] of Object.entries(raw)) {
    const parsed = pauseSchema.safeParse(safeParse(json));
    if (parsed.success) pauses.set(target, parsed.data);
  }
  return pauses;
}

/**
 * Resumes a paused Sender or Campaign: its held sends go out at their next look. The outcome window
 * is cleared with it, or the rates that paused it would pause it again at once. True when it was paused.
 */
export async function clearPause(redis: Redis, namespace: string, target: string): Promise<boolean> {
  const [[, removed]] = (await redis
    .multi()
    .hdel(PolicyKeys.pauses(namespace), target)
    .del(PolicyKeys.outcomes(namespace, target))
    .exec()) as [[Error | null, number], [Error | null, number]];
  return removed === 1;
}

/** Decisions of the policy stage by policy and reason, for the SendPolicy's status. */
export async function readPolicyDecisions(
  redis: Redis,
  namespace: string,
  policy: string,
): Promise<Record<string, number>> {
  const raw = await redis.hgetall(PolicyKeys.decisions(namespace));
  const decisions: Record<string, number> = {};
  for (const [field, count] of Object.entries(raw)) {
    const separator = field.lastIndexOf(":");
    if (field.slice(0, separator) === policy) decisions[field.slice(separator + 1)] = Number(count);
  }
  return decisions;
}

function safeParse(json: string): unknown {
  try {
    return JSON.parse(json) as unknown;
  } catch {
    return undefined;
  }
}
