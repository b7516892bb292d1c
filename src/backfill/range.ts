/**
 * The range of arrival times a backfill reads, and the IMAP SEARCH dates that cover it. Pure.
 * `--since 2026-11-01` means from the start of that day in the rules' time zone (their totals'
 * zone, so a month is counted from its first minute; with several zones, the earliest start);
 * `--until` to the end of its day (the latest end). SEARCH
 * SINCE/BEFORE compare dates in the server's zone, which mailbell cannot know: the search is a day
 * wider on each side and each mail is then kept by its INTERNALDATE.
 */
import { UsageError } from "../errors.ts";
import type { Period } from "../rules/config.ts";
import { localDate } from "../rules/period.ts";

/** Arrival times from `since` (inclusive) to `until` (exclusive); either may be open. */
export interface ArrivalRange {
  since: Date | undefined;
  until: Date | undefined;
}

/** A calendar day as the user wrote it. */
export interface Day {
  year: number;
  month: number;
  day: number;
}

const dayPattern = /^(\d{4})-(\d{2})-(\d{2})$/;

/** "2026-11-01" as a day; anything else is refused with the form that is valid. */
export function parseDay(text: string, option: string): Day {
  const m = dayPattern.exec(text.trim());
  const day = m ? { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) } : undefined;
  const real = day && new Date(Date.UTC(day.year, day.month - 1, day.day)).getUTCDate() === day.day && day.month >= 1 && day.month <= 12;
  if (!day || !real) throw new UsageError(`${option} ${JSON.stringify(text)} is not a date: write the day as YYYY-MM-DD, e.g. ${option} 2026-11-01.`);
  return day;
}

/** Milliseconds `timeZone` is ahead of UTC at `at`. */
export function zoneOffsetMs(at: Date, timeZone: string): number {
  const f = new Intl.DateTimeFormat("en-US-u-ca-gregory-nu-latn", { timeZone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" });
  const parts = Object.fromEntries(f.formatToParts(at).map((p) => [p.type, Number(p.value)]));
  const wall = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
  return wall - Math.floor(at.getTime() / 1000) * 1000;
}

/**
 * The instant `day` begins in `timeZone`: the earliest instant whose local day is `day`. Its
 * midnight under each offset in force around it is a candidate; where clocks jump at 00:00
 * (America/Santiago, America/Havana) midnight does not exist and the day begins at 01:00, which is
 * midnight under the offset before the jump. A candidate in the day before is no start.
 */
export function startOfDay(day: Day, timeZone: string): Date {
  const utcMidnight = Date.UTC(day.year, day.month - 1, day.day);
  const wanted = dayText(new Date(utcMidnight), "UTC");
  const offsets = new Set([-14, 0, 14].map((h) => zoneOffsetMs(new Date(utcMidnight + h * 3_600_000), timeZone)));
  const starts = [...offsets].map((offset) => utcMidnight - offset).filter((at) => dayText(new Date(at), timeZone) === wanted);
  return new Date(starts.length > 0 ? Math.min(...starts) : utcMidnight - zoneOffsetMs(new Date(utcMidnight), timeZone));
}

function nextDay(day: Day): Day {
  const d = new Date(Date.UTC(day.year, day.month - 1, day.day + 1));
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/** The range `--since`/`--until` name, days in `timeZone`; `until` is included whole. */
export function arrivalRange(since: Day | undefined, until: Day | undefined, timeZone: string): ArrivalRange {
  const range = { since: since && startOfDay(since, timeZone), until: until && startOfDay(nextDay(until), timeZone) };
  if (range.since && range.until && range.until <= range.since) throw new UsageError(`--until is before --since: give an --until on or after the --since day.`);
  return range;
}

/** The zones days are read in: those the rules' totals are kept in (UTC when none keeps one). */
export function rangeZones(zones: readonly string[]): string[] {
  return zones.length > 0 ? [...new Set(zones)] : ["UTC"];
}

/**
 * The range the days name in every zone the rules keep totals in, together: from the earliest
 * start to the latest end, so no rule misses the first or last hours of its days. Each mail's
 * period is still its own rule's.
 */
export function arrivalRangeIn(since: Day | undefined, until: Day | undefined, zones: readonly string[]): ArrivalRange {
  const ranges = rangeZones(zones).map((zone) => arrivalRange(since, until, zone));
  const earliest = (dates: (Date | undefined)[]) => (dates[0] ? new Date(Math.min(...dates.map((d) => d!.getTime()))) : undefined);
  const latest = (dates: (Date | undefined)[]) => (dates[0] ? new Date(Math.max(...dates.map((d) => d!.getTime()))) : undefined);
  return { since: earliest(ranges.map((r) => r.since)), until: latest(ranges.map((r) => r.until)) };
}

/** SEARCH SINCE/BEFORE dates (UTC midnights, as imapflow sends their UTC date), a day wider each side. */
export function searchDates(range: ArrivalRange): { since?: Date; before?: Date } {
  const day = 86_400_000;
  const utcDay = (at: Date) => Math.floor(at.getTime() / day) * day;
  return {
    ...(range.since ? { since: new Date(utcDay(range.since) - day) } : {}),
    // BEFORE is exclusive: the day after the last instant's UTC day, and one more for the zones.
    ...(range.until ? { before: new Date(utcDay(new Date(range.until.getTime() - 1)) + 2 * day) } : {}),
  };
}

/** Whether a mail that arrived at `at` is in the range. */
export function inRange(at: Date, range: ArrivalRange): boolean {
  return (!range.since || at >= range.since) && (!range.until || at < range.until);
}

/**
 * The first day of the period `day` falls in, for a rebuild that replaces whole periods: a month
 * rule rebuilt --since 2026-11-15 recounts all of November.
 */
export function periodStartDay(per: Period, day: Day): Day {
  switch (per) {
    case "day":
      return day;
    case "month":
      return { ...day, day: 1 };
    case "year":
      return { year: day.year, month: 1, day: 1 };
    case "week": {
      const d = new Date(Date.UTC(day.year, day.month - 1, day.day));
      const monday = new Date(d.getTime() - ((d.getUTCDay() + 6) % 7) * 86_400_000);
      return { year: monday.getUTCFullYear(), month: monday.getUTCMonth() + 1, day: monday.getUTCDate() };
    }
  }
}

/** The day `at` is in `timeZone`, as YYYY-MM-DD. */
export function dayText(at: Date, timeZone: string): string {
  const { year, month, day } = localDate(at, timeZone);
  return `${String(year).padStart(4, "0")}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`;
}
