import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { createProgress } from "./progress.ts";

describe("progress", () => {
  it("on a terminal draws a bar with done/total, mails per second and time left", () => {
    let drawn = "";
    const stream = Object.assign(new Writable({ write: (chunk: Buffer, _enc, done) => ((drawn += chunk.toString()), done()) }), { isTTY: true, columns: 120 });
    let now = 0;
    const bar = createProgress("backfill", { tty: true, line: () => assert.fail("no plain lines on a terminal"), stream, now: () => now });
    bar.onFound(200);
    now = 2000;
    bar.onRead(100);
    bar.stop();
    assert.match(drawn, /backfill \[[█░]+\] 100\/200 mails \| 50 mails\/s \| \S+ left/);
  });

  it("elsewhere writes a plain line at the start, every few seconds and at the end", () => {
    const lines: string[] = [];
    let now = 0;
    const p = createProgress("backfill", { tty: false, line: (t) => lines.push(t), everyMs: 5000, now: () => now });
    p.onFound(100);
    now = 1000;
    p.onRead(10);
    now = 5000;
    p.onRead(50);
    now = 6000;
    p.onRead(60);
    now = 9000;
    p.onRead(90);
    now = 10_000;
    p.onRead(100);
    p.stop();
    p.stop();
    assert.deepEqual(lines, [
      "backfill: 0/100 mails read (0 mails/s)",
      "backfill: 50/100 mails read (10 mails/s, about 5 s left)",
      "backfill: 100/100 mails read (10 mails/s)",
    ]);
  });
});
