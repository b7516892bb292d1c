import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { arrivalRange, arrivalRangeIn, dayText, inRange, parseDay, periodStartDay, searchDates, startOfDay } from "./range.ts";

describe("backfill range", () => {
  it("starts a day at its first minute in the zone, across DST too", () => {
    assert.equal(startOfDay({ year: 2026, month: 11, day: 1 }, "Asia/Tokyo").toISOString(), "2026-10-31T15:00:00.000Z");
    assert.equal(startOfDay({ year: 2026, month: 11, day: 1 }, "UTC").toISOString(), "2026-11-01T00:00:00.000Z");
    // New York leaves DST at 02:00 on 2026-11-01: the day begins at 00:00 EDT (-4).
    assert.equal(startOfDay({ year: 2026, month: 11, day: 1 }, "America/New_York").toISOString(), "2026-11-01T04:00:00.000Z");
    assert.equal(startOfDay({ year: 2026, month: 3, day: 8 }, "America/New_York").toISOString(), "2026-03-08T05:00:00.000Z");
  });

  it("starts a day whose midnight does not exist at its first minute, not in the day before", () => {
    // Santiago springs forward at 00:00 on 2026-09-06 (-4 to -3): the day begins at 01:00 -03.
    assert.equal(startOfDay({ year: 2026, month: 9, day: 6 }, "America/Santiago").toISOString(), "2026-09-06T04:00:00.000Z");
    // Havana at 00:00 on 2026-03-08 (-5 to -4): the day begins at 01:00 -04.
    assert.equal(startOfDay({ year: 2026, month: 3, day: 8 }, "America/Havana").toISOString(), "2026-03-08T05:00:00.000Z");
    // Santiago falls back at 00:00 on 2026-04-05 (-3 to -4): 23:00 on the 4th again, the day begins an hour later.
    assert.equal(startOfDay({ year: 2026, month: 4, day: 5 }, "America/Santiago").toISOString(), "2026-04-05T04:00:00.000Z");
    assert.equal(dayText(startOfDay({ year: 2026, month: 9, day: 6 }, "America/Santiago"), "America/Santiago"), "2026-09-06");
  });

  it("includes the --until day whole and keeps mail by arrival time", () => {
    const range = arrivalRange({ year: 2026, month: 11, day: 1 }, { year: 2026, month: 11, day: 30 }, "Asia/Tokyo");
    assert.equal(range.until!.toISOString(), "2026-11-30T15:00:00.000Z");
    assert.ok(inRange(new Date("2026-10-31T15:00:00Z"), range));
    assert.ok(!inRange(new Date("2026-10-31T14:59:59Z"), range));
    assert.ok(inRange(new Date("2026-11-30T14:59:59Z"), range));
    assert.ok(!inRange(new Date("2026-11-30T15:00:00Z"), range));
    assert.throws(() => arrivalRange({ year: 2026, month: 11, day: 2 }, { year: 2026, month: 11, day: 1 }, "UTC"), /--until is before --since/);
  });

  it("with rules in different zones, reads from the earliest start to the latest end of the days", () => {
    const range = arrivalRangeIn({ year: 2026, month: 11, day: 1 }, { year: 2026, month: 11, day: 30 }, ["UTC", "Asia/Tokyo", "UTC"]);
    assert.equal(range.since!.toISOString(), "2026-10-31T15:00:00.000Z", "Tokyo's 1 November begins 9 hours before UTC's");
    assert.equal(range.until!.toISOString(), "2026-12-01T00:00:00.000Z", "UTC's 30 November ends 9 hours after Tokyo's");
    assert.deepEqual(arrivalRangeIn({ year: 2026, month: 11, day: 1 }, undefined, []), arrivalRange({ year: 2026, month: 11, day: 1 }, undefined, "UTC"));
  });

  it("searches a day wider on each side, as UTC dates", () => {
    const dates = searchDates(arrivalRange({ year: 2026, month: 11, day: 1 }, { year: 2026, month: 11, day: 30 }, "Asia/Tokyo"));
    assert.equal(dates.since!.toISOString(), "2026-10-30T00:00:00.000Z");
    assert.equal(dates.before!.toISOString(), "2026-12-02T00:00:00.000Z");
    assert.deepEqual(searchDates({ since: undefined, until: undefined }), {});
  });

  it("refuses what is not a YYYY-MM-DD day", () => {
    assert.deepEqual(parseDay("2026-02-28", "--since"), { year: 2026, month: 2, day: 28 });
    assert.throws(() => parseDay("2026-02-30", "--since"), /--since "2026-02-30" is not a date: write the day as YYYY-MM-DD/);
    assert.throws(() => parseDay("11/01/2026", "--until"), /--until "11\/01\/2026"/);
  });

  it("finds the first day of the period a day is in", () => {
    const day = { year: 2026, month: 11, day: 15 };
    assert.deepEqual(periodStartDay("month", day), { year: 2026, month: 11, day: 1 });
    assert.deepEqual(periodStartDay("year", day), { year: 2026, month: 1, day: 1 });
    assert.deepEqual(periodStartDay("week", day), { year: 2026, month: 11, day: 9 }); // a Sunday: its week began Monday the 9th
    assert.deepEqual(periodStartDay("day", day), day);
  });
});
