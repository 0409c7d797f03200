// When a campaign runs. Pure: given the spec, what the campaign remembers (its schedule state in
// Redis) and the time, is a run due, for which slot, and what to remember once it starts.
// Cron slots come from croner (time zones and DST done by a maintained library: a 02:30 slot on the
// night clocks go forward runs at 03:00 local, and on the night they go back it runs once).
//
// With schedule.localTime the schedule names days, not instants: each recipient receives the
// message at that time of day in its own zone, on the date of `at` or of each recurring slot (in
// the cron's zone), and the run for a day starts when that time arrives first anywhere (UTC+14).
import { Cron } from "croner";
import type { CampaignSpec } from "#crds";
import { EARLIEST_OFFSET_MS, localDate, zonedInstant } from "#runtime";

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

/** A run in each recipient's local time: the day, the time of day, the zone of profiles without one. */
export interface LocalDelivery {
  day: string;
  time: string;
  fallbackZone: string;
}

export type Due =
  | {
      kind: "run";
      slot: number;
      remember: Partial<Record<"onceDone" | "atDone" | "lastSlot", string>>;
      local?: LocalDelivery;
    }
  | { kind: "none"; nextAt: number | undefined };

type Schedule = NonNullable<CampaignSpec["schedule"]>;
type Recurring = NonNullable<Schedule["recurring"]>;

/**
 * The run due at `nowMs`, if any. A recurring campaign whose slots passed while engage was down
 * runs once, for the latest of them, not once per missed slot.
 */
export function dueRun(spec: CampaignSpec, state: ScheduleState, nowMs: number): Due {
  const schedule = spec.schedule;
  if (schedule?.localTime !== undefined) return dueLocal(schedule, schedule.localTime, state, nowMs);
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

const HOUR_MS = 3_600_000;
/**
 * How far ahead of a recurring slot its local-time run may start: the slot is at most at the end
 * of its day at UTC-12, the run begins at the day's localTime at UTC+14.
 */
const LOCAL_LEAD_MS = 50 * HOUR_MS;

/** When the run of a local-time day starts: that time of day at UTC+14, where it arrives first. */
export function localRunStart(day: string, time: string): number {
  return zonedInstant(day, time, "UTC") - EARLIEST_OFFSET_MS;
}

function dueLocal(schedule: Schedule, time: string, state: ScheduleState, nowMs: number): Due {
  const fallbackZone = schedule.fallbackTimeZone ?? schedule.recurring?.timeZone ?? "UTC";
  if (schedule.recurring !== undefined)
    return dueRecurringLocal(schedule.recurring, { time, fallbackZone }, state, nowMs);
  if (schedule.at === undefined) return { kind: "none", nextAt: undefined };
  // The date as written in `at` (its own offset) is the day: what its author reads.
  const day = schedule.at.slice(0, 10);
  const at = Date.parse(schedule.at);
  const start = localRunStart(day, time);
  if (state.atDone === at) return { kind: "none", nextAt: undefined };
  if (nowMs < start) return { kind: "none", nextAt: start };
  return { kind: "run", slot: start, remember: { atDone: String(at) }, local: { day, time, fallbackZone } };
}

/**
 * The latest day with a cron slot (in the cron's zone) whose local-time run has started, once per
 * day however often the cron fires in it; slots missed while engage was down produce one run.
 */
function dueRecurringLocal(
  recurring: Recurring,
  local: { time: string; fallbackZone: string },
  state: ScheduleState,
  nowMs: number,
): Due {
  const zone = recurring.timeZone;
  const cron = new Cron(recurring.cron, { timezone: zone, paused: true });
  const startAt = recurring.startAt === undefined ? Number.NEGATIVE_INFINITY : Date.parse(recurring.startAt);
  const endAt = recurring.endAt === undefined ? Number.POSITIVE_INFINITY : Date.parse(recurring.endAt);
  const after = Math.max(state.lastSlot ?? state.since, startAt - 1);
  const doneDay = state.lastSlot === undefined ? undefined : localDate(new Date(state.lastSlot), zone);
  const open = (slot: number, day: string) =>
    slot > after && slot >= startAt && (doneDay === undefined || day > doneDay);
  let reference = Math.min(nowMs + LOCAL_LEAD_MS, endAt) + 1;
  // Each step moves to an earlier day; the lead spans at most three.
  for (let step = 0; step < 4; step++) {
    const slot = cron.previousRuns(1, new Date(reference))[0]?.getTime();
    if (slot === undefined) break;
    const day = localDate(new Date(slot), zone);
    if (!open(slot, day)) break;
    const start = localRunStart(day, local.time);
    if (start <= nowMs)
      return { kind: "run", slot: start, remember: { lastSlot: String(slot) }, local: { day, ...local } };
    reference = zonedInstant(day, "00:00", zone);
  }
  const from = doneDay === undefined ? after : Math.max(after, zonedInstant(nextDay(doneDay), "00:00", zone) - 1);
  const next = cron.nextRun(new Date(Math.max(from, startAt - 1)))?.getTime();
  return {
    kind: "none",
    nextAt:
      next !== undefined && next <= endAt ? localRunStart(localDate(new Date(next), zone), local.time) : undefined,
  };
}

function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + 24 * HOUR_MS).toISOString().slice(0, 10);
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
