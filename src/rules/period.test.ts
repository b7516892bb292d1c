import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Period } from "./config.ts";
import { isoWeek, localDate, periodOf, validateLocale, validateTimeZone } from "./period.ts";

describe("periodOf", () => {
  const cases: [at: string, tz: string, locale: string, per: Period, key: string, label: string][] = [
    ["2026-11-23T10:00:00Z", "UTC", "en-US", "day", "2026-11-23", "November 23"],
    ["2026-11-23T10:00:00Z", "UTC", "en-US", "week", "2026-W48", "week 48"],
    ["2026-11-23T10:00:00Z", "UTC", "en-US", "month", "2026-11", "November"],
    ["2026-11-23T10:00:00Z", "UTC", "en-US", "year", "2026", "2026"],
    ["2026-11-23T10:00:00Z", "Asia/Tokyo", "ja-JP", "day", "2026-11-23", "11月23日"],
    ["2026-11-23T10:00:00Z", "Asia/Tokyo", "ja-JP", "week", "2026-W48", "第48週"],
    ["2026-11-23T10:00:00Z", "Asia/Tokyo", "ja-JP", "month", "2026-11", "11月"],
    ["2026-11-23T10:00:00Z", "Asia/Tokyo", "ja-JP", "year", "2026", "2026"],
    ["2026-11-23T10:00:00Z", "Europe/Berlin", "de-DE", "day", "2026-11-23", "23. November"],
    ["2026-11-23T10:00:00Z", "Europe/Berlin", "de-DE", "week", "2026-W48", "Woche 48"],
    // the zone decides the boundary: 15:30Z on Nov 30 is already December 1 in Tokyo
    ["2026-11-30T15:30:00Z", "Asia/Tokyo", "en-US", "month", "2026-12", "December"],
    ["2026-11-30T15:30:00Z", "Asia/Tokyo", "en-US", "day", "2026-12-01", "December 1"],
    ["2026-11-30T15:30:00Z", "UTC", "en-US", "month", "2026-11", "November"],
    ["2026-11-30T14:59:59Z", "Asia/Tokyo", "en-US", "month", "2026-11", "November"],
    ["2026-12-31T15:00:00Z", "Asia/Tokyo", "en-US", "year", "2027", "2027"],
    ["2027-01-01T03:00:00Z", "America/New_York", "en-US", "year", "2026", "2026"],
    ["2027-01-01T03:00:00Z", "America/New_York", "en-US", "month", "2026-12", "December"],
    // ISO weeks at year ends: 2027-01-01 (Friday) is in 2026's week 53
    ["2027-01-01T12:00:00Z", "UTC", "en-US", "week", "2026-W53", "week 53"],
    ["2027-01-04T12:00:00Z", "UTC", "en-US", "week", "2027-W01", "week 1"],
    // 2025-12-29 (Monday) starts 2026's week 1
    ["2025-12-29T12:00:00Z", "UTC", "en-US", "week", "2026-W01", "week 1"],
    ["2025-12-28T12:00:00Z", "UTC", "en-US", "week", "2025-W52", "week 52"],
    // 2021-01-03 (Sunday) is still 2020's week 53
    ["2021-01-03T12:00:00Z", "UTC", "en-US", "week", "2020-W53", "week 53"],
    // a Sunday evening in New York is Monday in UTC: a new ISO week only in UTC
    ["2026-11-30T02:00:00Z", "America/New_York", "en-US", "week", "2026-W48", "week 48"],
    ["2026-11-30T02:00:00Z", "UTC", "en-US", "week", "2026-W49", "week 49"],
    // daylight saving change does not move the day
    ["2026-03-08T07:30:00Z", "America/Los_Angeles", "en-US", "day", "2026-03-07", "March 7"],
    ["2026-03-08T08:30:00Z", "America/Los_Angeles", "en-US", "day", "2026-03-08", "March 8"],
    // half-hour zones
    ["2026-11-30T18:29:00Z", "Asia/Kolkata", "en-US", "day", "2026-11-30", "November 30"],
    ["2026-11-30T18:30:00Z", "Asia/Kolkata", "en-US", "day", "2026-12-01", "December 1"],
    // labels are Gregorian even when the locale's calendar is not
    ["2026-11-23T10:00:00Z", "UTC", "ja-JP-u-ca-japanese", "year", "2026", "2026"],
    ["2026-11-23T10:00:00Z", "UTC", "th-TH", "month", "2026-11", "พฤศจิกายน"],
  ];
  for (const [at, tz, locale, per, key, label] of cases) {
    test(`${per} of ${at} in ${tz} (${locale})`, () => {
      assert.deepEqual(periodOf(per, new Date(at), tz, locale), { per, key, label });
    });
  }
});

describe("isoWeek", () => {
  const cases: [y: number, m: number, d: number, year: number, week: number][] = [
    [2026, 1, 1, 2026, 1],
    [2026, 12, 31, 2026, 53],
    [2027, 1, 3, 2026, 53],
    [2024, 12, 30, 2025, 1],
    [2023, 1, 1, 2022, 52],
    [2020, 12, 31, 2020, 53],
  ];
  for (const [y, m, d, year, week] of cases) {
    test(`${y}-${m}-${d}`, () => assert.deepEqual(isoWeek(y, m, d), { year, week }));
  }
});

describe("localDate", () => {
  test("reads the wall date in the zone", () => {
    assert.deepEqual(localDate(new Date("2026-11-30T15:30:00Z"), "Asia/Tokyo"), { year: 2026, month: 12, day: 1 });
    assert.deepEqual(localDate(new Date("2026-11-30T15:30:00Z"), "Pacific/Honolulu"), { year: 2026, month: 11, day: 30 });
  });
});

describe("validateTimeZone", () => {
  test("accepts IANA names", () => {
    for (const tz of ["UTC", "Asia/Tokyo", "Europe/Berlin", "America/Argentina/Buenos_Aires"]) assert.equal(validateTimeZone(tz), undefined, tz);
  });

  test("refuses others, naming the input and the form, with a hint for typos", () => {
    assert.match(validateTimeZone("Asia/Tokio") ?? "", /^unknown time zone "Asia\/Tokio" \(did you mean Asia\/Tokyo\?\): use an IANA name such as Asia\/Tokyo/);
    assert.match(validateTimeZone("Mars/Olympus") ?? "", /^unknown time zone "Mars\/Olympus": use an IANA name/);
    assert.match(validateTimeZone("") ?? "", /unknown time zone ""/);
  });
});

describe("validateLocale", () => {
  test("accepts locales Node has data for", () => {
    for (const l of ["en-US", "ja-JP", "de-DE", "ja", "en-US-u-ca-japanese"]) assert.equal(validateLocale(l), undefined, l);
  });

  test("explains an underscore", () => {
    assert.equal(validateLocale("en_US"), 'invalid locale "en_US" ("en-US": a hyphen, not an underscore): write a BCP 47 tag such as en-US, ja-JP or de-DE');
  });

  test("refuses malformed and unknown tags", () => {
    assert.match(validateLocale("english please") ?? "", /^invalid locale "english please": write a BCP 47 tag/);
    assert.match(validateLocale("xx") ?? "", /^locale "xx" is not available in this Node\.js/);
  });
});
