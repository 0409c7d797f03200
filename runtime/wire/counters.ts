// An Automation's counters, kept by engage in Redis (RedisKeys.automationCounters) and moved in the
// same scripts that make the decisions they count, so every replica adds to the same exact figures.
// The operator reads them with readAutomationCounters to fold them into the Automation's status.

import { RedisKeys } from "./keys.ts";

/** The counter hash's fields. A skip is counted as `skipped:<reason>`. */
export const AutomationCounterFields = {
  /** Instances started (the trigger matched and the filter held). */
  triggered: "triggered",
  /** Trigger events whose filter did not hold: no instance. */
  filteredOut: "filteredOut",
  /** Instances waiting now (a gauge: +1 when started, -1 when ended). */
  waiting: "waiting",
  /** Instances ended by a cancel event. */
  cancelled: "cancelled",
  /** Instances ended because their profile was erased. */
  erased: "erased",
  /** Instances whose send job was published. */
  sent: "sent",
  skippedPrefix: "skipped:",
} as const;

/**
 * Why an instance (or a trigger) was skipped. `past_date` and `no_date` are decided at the trigger
 * (no instance starts); the others end an instance when it fires.
 */
export const SkipReasons = [
  "grace",
  "capping",
  "opt_out",
  "suppressed",
  "past_date",
  "no_date",
  "no_profile",
  "no_address",
  "no_subscription",
  "automation_deleted",
] as const;
export type SkipReason = (typeof SkipReasons)[number];

/** Reasons decided before an instance starts: not part of `triggered`. */
const TRIGGER_SKIPS: ReadonlySet<string> = new Set<SkipReason>(["past_date", "no_date"]);

export interface AutomationCounters {
  triggered: number;
  filteredOut: number;
  waiting: number;
  cancelled: number;
  erased: number;
  sent: number;
  /** By reason; reasons never seen are absent. */
  skipped: Partial<Record<SkipReason, number>>;
}

/** What the reader needs of a Redis client (ioredis' Redis and Cluster fit). */
export interface CountersRedis {
  hgetall(key: string): Promise<Record<string, string>>;
}

/** The Automation's counters (all 0 for an automation that never triggered). */
export async function readAutomationCounters(
  redis: CountersRedis,
  namespace: string,
  automation: string,
): Promise<AutomationCounters> {
  const raw = await redis.hgetall(RedisKeys.automationCounters(namespace, automation));
  const value = (field: string): number => Number(raw[field] ?? 0);
  const skipped: Partial<Record<SkipReason, number>> = {};
  for (const [field, count] of Object.entries(raw)) {
    if (field.startsWith(AutomationCounterFields.skippedPrefix))
      skipped[field.slice(AutomationCounterFields.skippedPrefix.length) as SkipReason] = Number(count);
  }
  return {
    triggered: value(AutomationCounterFields.triggered),
    filteredOut: value(AutomationCounterFields.filteredOut),
    waiting: value(AutomationCounterFields.waiting),
    cancelled: value(AutomationCounterFields.cancelled),
    erased: value(AutomationCounterFields.erased),
    sent: value(AutomationCounterFields.sent),
    skipped,
  };
}

/**
 * Instances started minus those accounted for (waiting, cancelled, erased, sent, skipped when
 * fired): 0 when the counters add up. An instance being fired still counts as waiting.
 */
export function unaccountedInstances(counters: AutomationCounters): number {
  let ended = counters.waiting + counters.cancelled + counters.erased + counters.sent;
  for (const [reason, count] of Object.entries(counters.skipped)) if (!TRIGGER_SKIPS.has(reason)) ended += count;
  return counters.triggered - ended;
}
