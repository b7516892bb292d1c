import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Backoff, sleep } from "./backoff.ts";

describe("Backoff", () => {
  it("doubles its ceiling per attempt up to the cap, and reset starts over", () => {
    const top = new Backoff({ baseMs: 100, capMs: 1000, random: () => 1 });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => top.next()), [100, 200, 400, 800, 1000, 1000]);
    top.reset();
    assert.equal(top.next(), 100);
  });

  it("spreads delays between a tenth of the ceiling and the ceiling (jitter)", () => {
    const low = new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0 });
    assert.deepEqual([low.next(), low.next(), low.next()], [100, 200, 400]);
    const real = new Backoff({ baseMs: 1000, capMs: 60_000 });
    const samples = Array.from({ length: 50 }, () => {
      real.reset();
      return real.next();
    });
    assert.ok(samples.every((d) => d >= 100 && d <= 1000));
    assert.ok(new Set(samples).size > 10, "delays differ from one watcher to the next");
  });
});

describe("sleep", () => {
  it("ends early when the signal aborts", async () => {
    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => controller.abort(), 20);
    await sleep(10_000, controller.signal);
    assert.ok(performance.now() - started < 5000);
  });
});
