import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConnectGate } from "./connect-gate.ts";

/** A connect that finishes when the test says so. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("ConnectGate", () => {
  it("runs at most `concurrency` connects at once, the rest in the order they asked", async () => {
    const gate = new ConnectGate({ concurrency: 2 });
    const started: number[] = [];
    const connects = Array.from({ length: 5 }, () => deferred());
    const runs = connects.map((d, i) =>
      gate.run(async () => {
        started.push(i);
        await d.promise;
        return i;
      }),
    );
    await tick();
    assert.deepEqual(started, [0, 1]);
    assert.equal(gate.active, 2);
    assert.equal(gate.waiting, 3);
    connects[1]!.resolve();
    await tick();
    assert.deepEqual(started, [0, 1, 2]);
    connects[0]!.resolve();
    connects[2]!.resolve();
    await tick();
    assert.deepEqual(started, [0, 1, 2, 3, 4]);
    connects[3]!.resolve();
    connects[4]!.resolve();
    assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3, 4]);
    assert.equal(gate.active, 0);
  });

  it("hands the slot on when a connect fails, and passes its error through", async () => {
    const gate = new ConnectGate({ concurrency: 1 });
    const failing = gate.run(() => Promise.reject(new Error("refused")));
    const next = gate.run(async () => "connected");
    await assert.rejects(failing, /refused/);
    assert.equal(await next, "connected");
    assert.equal(gate.active, 0);
  });

  it("gives a slot held longer than maxHoldMs to the next connect (a server that never answers)", async () => {
    const gate = new ConnectGate({ concurrency: 1, maxHoldMs: 30 });
    const hung = deferred();
    const first = gate.run(() => hung.promise);
    const startedAt = performance.now();
    const second = await gate.run(async () => performance.now() - startedAt);
    assert.ok(second >= 25, `the second connect waited ${second} ms`);
    assert.ok(second < 5000);
    // The late finisher does not free a slot twice: the count stays right.
    hung.resolve();
    await first;
    assert.equal(gate.active, 0);
    const a = deferred();
    const b = deferred();
    let bStarted = false;
    const runA = gate.run(() => a.promise);
    const runB = gate.run(async () => {
      bStarted = true;
      await b.promise;
    });
    await tick();
    assert.equal(bStarted, false, "concurrency 1 still holds after a slot was handed on early");
    a.resolve();
    b.resolve();
    await Promise.all([runA, runB]);
  });

  it("stops waiting when the signal aborts, without running the connect", async () => {
    const gate = new ConnectGate({ concurrency: 1 });
    const busy = deferred();
    const first = gate.run(() => busy.promise);
    const stop = new AbortController();
    let ran = false;
    const waiting = gate.run(async () => {
      ran = true;
    }, stop.signal);
    await tick();
    assert.equal(gate.waiting, 1);
    stop.abort();
    await assert.rejects(waiting, { name: "AbortError" });
    assert.equal(ran, false);
    assert.equal(gate.waiting, 0);
    busy.resolve();
    await first;
    assert.equal(gate.active, 0);
    await assert.rejects(gate.run(async () => {}, stop.signal), { name: "AbortError" }, "an aborted signal is refused at once");
  });

  it("refuses a concurrency below 1", () => {
    assert.throws(() => new ConnectGate({ concurrency: 0 }), RangeError);
  });
});
