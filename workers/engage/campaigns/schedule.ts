// When a campaign runs. Pure: given the spec, what the campaign remembers (its schedule state in
// Redis) and the time, is a run due, for which slot, and what to remember once it starts.
// Cron slots come from croner (time zones and DST done by a maintained library: a 02:30 slot on the
// night clocks go forward runs at 03:00 local, and on the night they go back it runs once).
import { Cron } from "croner";
import type { CampaignSpec } from "#crds";

/** What a campaign remembers about its schedule (the HASH RedisKeys.campaignState). */
export interface ScheduleState {
  /** When engage first saw the campaign (ms): a recurring campaign runs for slots after it. */
  since: number;
  /** The run of a campaign without a schedule has started. */
  onceDone: boolean;
  /** The `at` (ms) whose run has started: a new `at` is a new run. */
  atDone: number | undefined;
  /** The latest recurring slot (ms) a run was started for. */
  lastSlot: number | undefined;
}

export type Due =
  | { kind: "run"; slot: number; remember: Partial<Record<"onceDone" | "atDone" | "lastSlot", string>> }
  | { kind: "none"; nextAt: number | undefined };

/**
 * The run due at `nowMs`, if any. A recurring campaign whose slots passed while engage was down
 * runs once, for the latest of them, not once per missed slot.
 */
export function dueRun(spec: CampaignSpec, state: ScheduleState, nowMs: number): Due {
  const schedule = spec.schedule;
  if (schedule?.recurring !== undefined) return dueRecurring(schedule.recurring, state, nowMs);
  if (schedule?.at !== undefined) {
    const at = Date.parse(schedule.at);
    if (state.atDone === at) return { kind: "none", nextAt: undefined };
    if (nowMs < at) return { kind: "none", nextAt: at };
    return { kind: "run", slot: at, remember: { atDone: String(at) } };
  }
  if (state.onceDone) return { kind: "none", nextAt: undefined };
  return { kind: "run", slot: nowMs, remember: { onceDone: "1" } };
}

type Recurring = NonNullable<NonNullable<CampaignSpec["schedule"]>["recurring"]>;

function dueRecurring(recurring: Recurring, state: ScheduleState, nowMs: number): Due {
  const cron = new Cron(recurring.cron, { timezone: recurring.timeZone, paused: true });
  const startAt = recurring.startAt === undefined ? Number.NEGATIVE_INFINITY : Date.parse(recurring.startAt);
  const endAt = recurring.endAt === undefined ? Number.POSITIVE_INFINITY : Date.parse(recurring.endAt);
  // Slots at or before this have run, or passed before the campaign existed.
  const after = Math.max(state.lastSlot ?? state.since, startAt - 1);
  // croner's previousRuns includes a slot earlier in the same second as the reference.
  const reference = Math.min(nowMs, endAt) + 1;
  const latest = cron.previousRuns(1, new Date(reference))[0]?.getTime();
  if (latest !== undefined && latest > after && latest >= startAt && latest <= endAt) {
    return { kind: "run", slot: latest, remember: { lastSlot: String(latest) } };
  }
  const next = cron.nextRun(new Date(Math.max(nowMs, after)))?.getTime();
  return { kind: "none", nextAt: next !== undefined && next <= endAt ? next : undefined };
}

/** A readable, sortable run id for a slot: 20261127t090000z-3f9a. Unique per start (random tail). */
export function runIdFor(slotMs: number, random: string): string {
  const stamp = new Date(slotMs)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "z")
    .toLowerCase();
  return `${stamp}-${random}`;
}
