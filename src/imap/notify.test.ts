import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FolderWakeups } from "./notify.ts";

const never = new AbortController().signal;

describe("FolderWakeups", () => {
  it("matches the server's name as sent or as decoded, and INBOX in any case", () => {
    const w = new FolderWakeups(["inbox", "R&D", "Reçus"]);
    w.setMode("on");
    w.changed("INBOX");
    // Dovecot sends "R&D" plain; decoding it as modified UTF-7 would give "R".
    w.changed("R&D", "R");
    w.changed("Re&AOc-us", "Reçus");
    w.changed("Other", "Other");
    assert.deepEqual([w.count("inbox"), w.count("R&D"), w.count("Reçus")], [1, 1, 1]);
  });

  it("wakes a folder whose count moved past the one its round started with, and only that folder", async () => {
    const w = new FolderWakeups(["A", "B"]);
    w.setMode("on");
    const sinceA = w.count("A");
    const sinceB = w.count("B");
    const a = w.wait("A", sinceA, 5000, never);
    w.changed("A");
    assert.equal(await a, "change");
    assert.equal(await w.wait("B", sinceB, 20, never), "timeout");
    w.changed("Unwatched");
    assert.equal(await w.wait("B", sinceB, 20, never), "timeout");
  });

  it("does not miss a change that came while the folder was reading (before it waits)", async () => {
    const w = new FolderWakeups(["A"]);
    w.setMode("on");
    const since = w.count("A");
    w.changed("A"); // during the round
    assert.equal(await w.wait("A", since, 20, never), "change");
  });

  it("wakes every folder when the notifier (re)connects, and says off when NOTIFY is unusable", async () => {
    const w = new FolderWakeups(["A", "B"]);
    const waiting = w.wait("B", w.count("B"), 5000, never);
    w.setMode("on");
    w.changedAll();
    assert.equal(await waiting, "change");
    const off = w.wait("A", w.count("A"), 5000, never);
    w.setMode("off");
    assert.equal(await off, "off");
  });

  it("tells whether the notifier's connection proved alive lately (its folders have none of their own)", async () => {
    const w = new FolderWakeups(["INBOX"]);
    assert.equal(w.aliveWithin(60_000), false, "never connected");
    w.notifierAlive();
    assert.equal(w.aliveWithin(60_000), true);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(w.aliveWithin(10), false, "no keepalive answered within the last 10 ms");
  });

  it("waits while the mode is unknown, and stops on the signal", async () => {
    const w = new FolderWakeups(["A"]);
    w.changed("A");
    assert.equal(await w.wait("A", 0, 20, never), "timeout");
    const stop = new AbortController();
    const waiting = w.wait("A", 5, 5000, stop.signal);
    stop.abort();
    assert.equal(await waiting, "stopped");
  });

  it("lets only readingConnections sessions hold a connection at once, none once NOTIFY is off", async () => {
    const w = new FolderWakeups(["A", "B", "C"], 2);
    const r1 = await w.slot(never);
    await w.slot(never);
    let third = false;
    const pending = w.slot(never).then((slot) => ((third = true), slot));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(third, false, "the third waits for a free connection");
    r1.release();
    r1.release(); // a second release frees nothing more
    (await pending).release();
    assert.equal(third, true);
    await w.slot(never);
    let fourth = false;
    const p4 = w.slot(never).then(() => (fourth = true));
    w.setMode("off");
    await p4;
    assert.equal(fourth, true, "with NOTIFY off each folder has its own connection");
  });

  it("hands a freed connection to the folder that waited longest, and says when one waits", async () => {
    const w = new FolderWakeups(["A", "B"], 1, { minHoldMs: 0 });
    w.setMode("on");
    const a = await w.slot(never);
    assert.equal(w.slotWanted, false);
    assert.equal(a.handOver(), false, "nobody waits");
    const order: string[] = [];
    const b = w.slot(never).then((slot) => (order.push("B"), slot));
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(w.slotWanted, true, "B waits");
    assert.equal(a.handOver(), true, "A gives its connection up after its round");
    assert.equal(w.slotWanted, false, "it is being given up for B");
    // A gives it up and asks again at once, as a folder with mail still flowing does.
    a.release();
    const againA = w.slot(never).then((slot) => (order.push("A"), slot));
    (await b).release();
    (await againA).release();
    assert.deepEqual(order, ["B", "A"]);
    assert.equal(w.slotWanted, false);
  });

  it("hands over only as many connections as folders wait, and only after minHoldMs while its mail flows", async () => {
    const w = new FolderWakeups(["A", "B", "C"], 2, { minHoldMs: 200, idleHandOverMs: 60_000 });
    w.setMode("on");
    const stop = new AbortController();
    try {
      const a = await w.slot(never);
      const b = await w.slot(never);
      const c = w.slot(stop.signal);
      await new Promise((r) => setTimeout(r, 5));
      assert.equal(a.handOver(), false, "A logged in just now and its mail flows: it reads a while first");
      await new Promise((r) => setTimeout(r, 250));
      assert.equal(a.handOver(), true);
      assert.equal(a.handOver(), true, "stays true until released");
      assert.equal(b.handOver(), false, "one folder waits: one hand-over (the slot is free only after LOGOUT)");
      a.release();
      const slotC = await c;
      assert.equal(b.handOver(), false, "nobody waits now");
      b.release();
      slotC.release();
    } finally {
      stop.abort(); // a failed assertion leaves no slot wait holding the test up
    }
  });

  it("hands over sooner when the holder's mail stopped (idleHandOverMs)", async () => {
    const w = new FolderWakeups(["A", "B"], 1, { minHoldMs: 60_000, idleHandOverMs: 100 });
    w.setMode("on");
    const stop = new AbortController();
    try {
      const a = await w.slot(never);
      const b = w.slot(stop.signal);
      a.mailRead();
      assert.equal(a.handOver(), false, "mail just read");
      await new Promise((r) => setTimeout(r, 120));
      assert.equal(a.handOver(), true, "no mail for 100 ms while B waits");
      a.release();
      (await b).release();
    } finally {
      stop.abort();
    }
  });

  it("says a folder's mail built up unseen when the notifier (re)connected since its last round started", () => {
    const w = new FolderWakeups(["A", "B"]);
    w.setMode("on");
    const since = w.count("A");
    w.changed("A");
    assert.equal(w.missedSince("A", since), false, "told of by the server: no catch-up");
    const later = w.count("A");
    w.changedAll();
    assert.equal(w.missedSince("A", later), true, "the notifier was away: a catch-up");
    assert.equal(w.missedSince("A", w.count("A")), false, "and not again for the next round");
  });

  it("tells the notifier when a reload adds or removes a folder", async () => {
    const w = new FolderWakeups(["A"]);
    const version = w.listVersion;
    const changed = w.listChanged(version, never);
    w.add("B");
    await changed;
    assert.deepEqual(w.mailboxes, ["A", "B"]);
    w.remove("A");
    assert.deepEqual(w.mailboxes, ["B"]);
    assert.equal(w.listVersion, version + 2);
  });
});
