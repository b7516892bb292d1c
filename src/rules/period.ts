import type { Period } from "./config.ts";
import { closest } from "./issues.ts";
import type { PeriodKey } from "./types.ts";

/*
 * Periods are computed from the wall-clock date in the rule's zone, read with Intl (no tz data of
 * our own). Keys are Gregorian and ASCII whatever the locale, because they are stored; labels are
 * for people and follow the locale.
 */

const partsFormatters = new Map<string, Intl.DateTimeFormat>();

/** The calendar date at `at` in `timeZone`, Gregorian, month 1–12. */
export function localDate(at: Date, timeZone: string): { year: number; month: number; day: number } {
  let f = partsFormatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US-u-ca-gregory-nu-latn", { timeZone, year: "numeric", month: "numeric", day: "numeric" });
    partsFormatters.set(timeZone, f);
  }
  const parts = f.formatToParts(at);
  const get = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.find((p) => p.type === type)?.value);
  return { year: get("year"), month: get("month"), day: get("day") };
}

/** ISO 8601 week: weeks start on Monday and belong to the year their Thursday is in. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = new Date(Date.UTC(year, month - 1, day));
  date.setUTCFullYear(year);
  const weekday = (date.getUTCDay() + 6) % 7; // Monday = 0
  const thursday = new Date(date.getTime() + (3 - weekday) * 86_400_000);
  const weekYear = thursday.getUTCFullYear();
  const jan1 = new Date(Date.UTC(weekYear, 0, 1));
  jan1.setUTCFullYear(weekYear);
  const week = 1 + Math.floor((thursday.getTime() - jan1.getTime()) / (7 * 86_400_000));
  return { year: weekYear, week };
}

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

const yearText = (year: number): string => pad(year, 4);

/** A date at noon UTC, so formatting it in UTC shows the same calendar day. setUTCFullYear keeps years below 100 from turning into 19xx. */
function noonUtc(year: number, month: number, day: number): Date {
  const d = new Date(Date.UTC(year, month - 1, day, 12));
  d.setUTCFullYear(year);
  return d;
}

/**
 * "week 48" in languages that write it that way (en "week 48", de "Woche 48", fr "semaine 48",
 * from Intl's name for the field); Chinese, Japanese and Korean put the number first.
 */
function weekLabel(week: number, locale: string): string {
  const language = new Intl.Locale(locale).language;
  if (language === "ja") return `第${week}週`;
  if (language === "zh") return `第${week}周`;
  if (language === "ko") return `${week}주`;
  const word = new Intl.DisplayNames(locale, { type: "dateTimeField" }).of("weekOfYear") ?? "week";
  return `${word} ${week}`;
}

/**
 * The period `at` falls in, in `timeZone`. Keys: day "2026-11-23", week "2026-W48" (ISO week, so
 * 2027-01-01 is "2026-W53"), month "2026-11", year "2026". Labels: day "November 23" / "11月23日",
 * week "week 48" / "第48週", month "November" / "11月", year "2026".
 */
export function periodOf(per: Period, at: Date, timeZone: string, locale: string): PeriodKey {
  const { year, month, day } = localDate(at, timeZone);
  switch (per) {
    case "day":
      return {
        per,
        key: `${yearText(year)}-${pad(month)}-${pad(day)}`,
        label: labelFormat(locale, "day").format(noonUtc(year, month, day)),
      };
    case "week": {
      const w = isoWeek(year, month, day);
      return { per, key: `${yearText(w.year)}-W${pad(w.week)}`, label: weekLabel(w.week, locale) };
    }
    case "month":
      return {
        per,
        key: `${yearText(year)}-${pad(month)}`,
        label: labelFormat(locale, "month").format(noonUtc(year, month, 1)),
      };
    case "year":
      return { per, key: yearText(year), label: String(year) };
  }
}

const labelFormats = new Map<string, Intl.DateTimeFormat>();

/** Building an Intl.DateTimeFormat costs more than using one; rules ask for the same few again and again. */
function labelFormat(locale: string, kind: "day" | "month"): Intl.DateTimeFormat {
  const key = `${locale}\u0000${kind}`;
  let f = labelFormats.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(locale, kind === "day" ? { month: "long", day: "numeric", timeZone: "UTC", calendar: "gregory" } : { month: "long", timeZone: "UTC", calendar: "gregory" });
    labelFormats.set(key, f);
  }
  return f;
}

/** An error message when `tz` is not a time zone Intl knows, else undefined. */
export function validateTimeZone(tz: string): string | undefined {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return undefined;
  } catch {
    const hint = closest(tz, Intl.supportedValuesOf("timeZone"));
    return `unknown time zone ${JSON.stringify(tz)}${hint ? ` (did you mean ${hint}?)` : ""}: use an IANA name such as Asia/Tokyo, Europe/Berlin, America/New_York or UTC`;
  }
}

/** An error message when `locale` is not a BCP 47 tag this Node has data for, else undefined. */
export function validateLocale(locale: string): string | undefined {
  let canonical: string;
  try {
    [canonical = locale] = Intl.getCanonicalLocales(locale);
  } catch {
    const hint = locale.includes("_") ? ` (${JSON.stringify(locale.replaceAll("_", "-"))}: a hyphen, not an underscore)` : "";
    return `invalid locale ${JSON.stringify(locale)}${hint}: write a BCP 47 tag such as en-US, ja-JP or de-DE`;
  }
  // Intl quietly falls back to the default locale for tags it has no data for; say so instead.
  if (Intl.NumberFormat.supportedLocalesOf([canonical]).length === 0 || Intl.DateTimeFormat.supportedLocalesOf([canonical]).length === 0) {
    return `locale ${JSON.stringify(locale)} is not available in this Node.js (it has no data for it): use a tag such as en-US, ja-JP or de-DE`;
  }
  return undefined;
}
