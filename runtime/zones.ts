// Local wall-clock arithmetic in IANA time zones, with Intl's time-zone database (DST included):
// what the local time is at an instant (quiet hours), and which instant a local date and time
// names (campaigns sent in each recipient's local time).
import { isTimeZone } from "#crds";

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let format = formatters.get(zone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(zone, format);
  }
  return format;
}

/**
 * The zone to use for a recipient: the profile's `timezone` when Intl knows it, else `fallback` (a
 * profile's zone is free text from the API; a bad one must not stop its send).
 */
export function recipientZone(timezone: string | null | undefined, fallback: string): string {
  return timezone !== null && timezone !== undefined && timezone !== "" && isTimeZone(timezone) ? timezone : fallback;
}

/** The local calendar fields of an instant in a zone. */
function localFields(at: Date, zone: string): Record<"year" | "month" | "day" | "hour" | "minute" | "second", number> {
  const fields = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  for (const part of formatter(zone).formatToParts(at)) {
    if (part.type in fields) fields[part.type as keyof typeof fields] = Number(part.value);
  }
  return fields;
}

/** Seconds since local midnight in the zone at this instant. */
export function localSeconds(at: Date, zone: string): number {
  const { hour, minute, second } = localFields(at, zone);
  return hour * 3600 + minute * 60 + second;
}

/** The local date in the zone at this instant, "YYYY-MM-DD". */
export function localDate(at: Date, zone: string): string {
  const { year, month, day } = localFields(at, zone);
  return `${String(year).padStart(4, "0")}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`;
}

/** "21:00" → seconds since midnight. */
export function clockSeconds(time: string): number {
  const [hours = 0, minutes = 0] = time.split(":").map(Number);
  return hours * 3600 + minutes * 60;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** The zone's offset from UTC at this instant (ms, east positive), to the second. */
function offsetMs(atMs: number, zone: string): number {
  const f = localFields(new Date(atMs), zone);
  const wall = Date.UTC(f.year, f.month - 1, f.day, f.hour, f.minute, f.second);
  return wall - Math.floor(atMs / 1000) * 1000;
}

/**
 * The instant a local date ("YYYY-MM-DD") and time ("HH:MM") name in a zone. Where the clocks go
 * forward and the time does not exist, it is moved forward by the gap (02:30 → 03:30); where they
 * go back and the time exists twice, the first one counts (Temporal's "compatible").
 */
export function zonedInstant(date: string, time: string, zone: string): number {
  const [year = 0, month = 1, day = 1] = date.split("-").map(Number);
  const wall = Date.UTC(year, month - 1, day) + clockSeconds(time) * 1000;
  // Offset changes are months apart: the offsets a day either side bracket any change at `wall`.
  const before = offsetMs(wall - DAY_MS, zone);
  const after = offsetMs(wall + DAY_MS, zone);
  const early = wall - before;
  const late = wall - after;
  const valid = [early, late].filter((instant) => offsetMs(instant, zone) === wall - instant);
  // Both valid: the repeated hour, take the first. None: the skipped hour, `early` reads as the
  // local time shifted forward by the gap.
  return valid.length === 0 ? early : Math.min(...valid);
}

/** The furthest east any zone is (UTC+14, Pacific/Kiritimati): a local time arrives there first. */
export const EARLIEST_OFFSET_MS = 14 * HOUR_MS;
