import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { after, describe, it } from "node:test";
import { retryWhileBusy } from "./busy.ts";
import { State } from "./state.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-busy-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("retryWhileBusy", () => {
  it("waits for another connection's transaction in short steps, not SQLite's 1-2-5-10 ms sleeps", async () => {
    const file = path.join(dir, "busy.db");
    const state = State.open(file);
    state.db.exec("PRAGMA busy_timeout = 0");
    // Another thread holds the write lock until a time it tells: 20 ms from when it took it.
    const holder = new Worker(
      `const { parentPort, workerData } = require("node:worker_threads");
       const { DatabaseSync } = require("node:sqlite");
       const db = new DatabaseSync(workerData);
       db.exec("BEGIN IMMEDIATE");
       const until = performance.timeOrigin + performance.now() + 20;
       parentPort.postMessage(until);
       while (performance.timeOrigin + performance.now() < until) {}
       db.exec("COMMIT");
       db.close();`,
      { eval: true, workerData: file },
    );
    try {
      const until = await new Promise<number>((resolve) => holder.once("message", resolve));
      retryWhileBusy(() => state.db.exec("BEGIN IMMEDIATE; COMMIT"));
      const late = performance.timeOrigin + performance.now() - until;
      // SQLite's own handler (busy_timeout) sleeps 1, 2, 5, 10, 15 ms: it tries again at 33 ms, 13 after.
      assert.ok(late < 5, `got the lock ${late.toFixed(2)} ms after it was free`);
    } finally {
      state.close();
      await holder.terminate();
    }
  });

  it("gives up after timeoutMs with SQLite's own error, and passes any other error at once", () => {
    let calls = 0;
    const busy = Object.assign(new Error("database is locked"), { errcode: 5 });
    const locked = (): never => {
      calls++;
      throw busy;
    };
    assert.throws(() => retryWhileBusy(locked, { timeoutMs: 20 }), /database is locked/);
    assert.ok(calls > 10, `${calls} tries in 20 ms`);
    calls = 0;
    const broken = (): never => {
      calls++;
      throw Object.assign(new Error("disk I/O error"), { errcode: 10 });
    };
    assert.throws(() => retryWhileBusy(broken), /disk I\/O error/);
    assert.equal(calls, 1);
  });

  it("waits for a lock held long in longer steps (a few hundred tries a second, not thousands)", () => {
    let calls = 0;
    const locked = (): never => {
      calls++;
      throw Object.assign(new Error("database is locked"), { errcode: 5 });
    };
    assert.throws(() => retryWhileBusy(locked, { timeoutMs: 1000 }), /database is locked/);
    // 0.1 ms steps for the first 50 ms (~250–500 tries), then up to 5 ms: ~200 more in the rest
    // (in 0.1 ms steps throughout, ~5,000).
    assert.ok(calls < 1200, `${calls} tries in 1 s`);
  });
});
