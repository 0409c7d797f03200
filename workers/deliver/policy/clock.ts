// Quiet hours as a daily window of local time; the zone arithmetic is runtime's (zones.ts).
import { clockSeconds, localSeconds } from "#runtime";

const DAY = 86_400;

/**
 * How long until the daily window [start, end) of local time ends, or 0 when `at` is outside it.
 * A window whose end is earlier than its start spans midnight (21:00–08:00). The wall-clock
 * distance is corrected once by the zone's offset change, so a window across a DST change still
 * ends at the local time it names.
 */
export function remainingInWindowMs(at: Date, zone: string, window: { start: string; end: string }): number {
  const now = localSeconds(at, zone);
  const start = clockSeconds(window.start);
  const end = clockSeconds(window.end);
  const inside = start < end ? now >= start && now < end : now >= start || now < end;
  if (!inside) return 0;
  const wall = (end - now + DAY) % DAY;
  const candidate = new Date(at.getTime() + wall * 1000);
  // Across a DST change the local clock moved by the offset difference: shift by what is missing.
  const drift = ((end - localSeconds(candidate, zone) + DAY + DAY / 2) % DAY) - DAY / 2;
  return (wall + drift) * 1000;
}
