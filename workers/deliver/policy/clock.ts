// Local wall-clock arithmetic for quiet hours, with Intl's time-zone database (DST included).

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let format = formatters.get(zone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone,
      hourCycle: "h23",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(zone, format);
  }
  return format;
}

/** Seconds since local midnight in the zone at this instant. */
export function localSeconds(at: Date, zone: string): number {
  let seconds = 0;
  for (const part of formatter(zone).formatToParts(at)) {
    if (part.type === "hour") seconds += Number(part.value) * 3600;
    else if (part.type === "minute") seconds += Number(part.value) * 60;
    else if (part.type === "second") seconds += Number(part.value);
  }
  return seconds;
}

/** "21:00" → seconds since midnight. */
export function clockSeconds(time: string): number {
  const [hours = 0, minutes = 0] = time.split(":").map(Number);
  return hours * 3600 + minutes * 60;
}

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
