import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import { ImapError } from "../errors.ts";
import type { WatchEvent } from "./types.ts";
import { ConnectionEvents, keepalive, waitForMail, type EventSource, type Waiting } from "./wait.ts";

/**
 * A stand-in for the three commands a wait sends: IDLE (ends at the next command or a close), NOOP
 * (whose reply may announce mail, or never come) and close. `script` says what each NOOP does.
 */
class Line extends EventEmitter {
  sent: string[] = [];
  #endIdle: (() => void) | undefined;
  readonly script: ("quiet" | "exists" | "silent")[];
  constructor(script: ("quiet" | "exists" | "silent")[] = []) {
    super();
    this.script = script;
  }
  idle(): Promise<boolean> {
    this.sent.push("IDLE");
    return new Promise((resolve) => (this.#endIdle = () => resolve(true)));
  }
  async noop(): Promise<void> {
    this.#endIdle?.();
    this.sent.push("NOOP");
    const answer = this.script.shift() ?? "quiet";
    if (answer === "silent") return new Promise(() => {});
    if (answer === "exists") this.emit("exists", { path: "INBOX", count: 2, prevCount: 1 });
  }
  close(): void {
    this.#endIdle?.();
    this.emit("close");
  }
}

function setUp(line: Line, o: Partial<Waiting> = {}) {
  const stop = new AbortController();
  const events = new ConnectionEvents(line as unknown as EventSource, stop.signal);
  events.roundStarts();
  const emitted: WatchEvent["type"][] = [];
  const waiting: Waiting = {
    polling: false,
    pollMs: 30,
    keepaliveMs: 20,
    keepaliveTimeoutMs: 50,
    first: true,
    retryWaiting: async () => false,
    emit: (e) => void emitted.push(e.type),
    where: { account: "a", mailbox: "INBOX" },
    signal: stop.signal,
    ...o,
  };
  return { events, emitted, stop, wait: () => waitForMail(line, events, waiting) };
}

describe("waitForMail", () => {
  it("IDLE woken by mail: 'mail', no keepalive sent", async () => {
    const line = new Line();
    const { wait, emitted } = setUp(line, { keepaliveMs: 60_000 });
    setTimeout(() => line.emit("exists", {}), 5);
    assert.deepEqual(await wait(), { why: "mail", retryDue: false });
    assert.deepEqual(line.sent, ["IDLE"]);
    assert.deepEqual(emitted, ["idle"]);
  });

  const keepalives: { name: string; script: ("quiet" | "exists")[]; retry?: boolean; woken: { why: string; retryDue: boolean }; sent: string[] }[] = [
    { name: "a NOOP whose reply announces mail: look at once", script: ["exists"], woken: { why: "look", retryDue: true }, sent: ["IDLE", "NOOP"] },
    { name: "quiet NOOPs go back to IDLE until mail comes", script: ["quiet", "quiet", "exists"], woken: { why: "look", retryDue: true }, sent: ["IDLE", "NOOP", "IDLE", "NOOP", "IDLE", "NOOP"] },
    { name: "a retry asked for: look at once", script: ["quiet"], retry: true, woken: { why: "look", retryDue: true }, sent: ["IDLE", "NOOP"] },
  ];
  for (const c of keepalives) {
    it(`keepalive: ${c.name}`, async () => {
      const line = new Line([...c.script]);
      const { wait, emitted } = setUp(line, { retryWaiting: async () => c.retry === true });
      assert.deepEqual(await wait(), c.woken);
      assert.deepEqual(line.sent, c.sent);
      assert.ok(emitted.includes("alive"), "a keepalive answered says the connection is alive");
    });
  }

  it("a NOOP that gets no answer within the timeout is a dead connection", async () => {
    const line = new Line(["silent"]);
    const { wait } = setUp(line, { keepaliveTimeoutMs: 10 });
    await assert.rejects(wait(), (err: unknown) => err instanceof ImapError && err.code === "IMAP_CONNECT" && /did not answer a NOOP within 10 ms/.test(err.message));
  });

  it("a closed connection: 'closed'", async () => {
    const line = new Line();
    const { wait } = setUp(line, { keepaliveMs: 60_000 });
    setTimeout(() => line.close(), 5);
    assert.equal((await wait()).why, "closed");
  });

  it("stopping ends the wait and closes the connection", async () => {
    const line = new Line();
    let closed = false;
    line.on("close", () => (closed = true));
    const { wait, stop } = setUp(line, { keepaliveMs: 60_000 });
    setTimeout(() => stop.abort(), 5);
    assert.equal((await wait()).why, "closed");
    assert.ok(closed);
  });

  it("polling: says so on the first wait only, sends nothing, and looks when pollMs passed", async () => {
    const line = new Line();
    const first = setUp(line, { polling: true });
    const started = Date.now();
    assert.deepEqual(await first.wait(), { why: "look", retryDue: true });
    assert.ok(Date.now() - started >= 25, "waited pollMs");
    assert.deepEqual(first.emitted, ["polling", "alive"]);
    const later = setUp(line, { polling: true, first: false });
    await later.wait();
    assert.deepEqual(later.emitted, ["alive"]);
    assert.deepEqual(line.sent, []);
  });

  it("polling: mail announced anyway cuts the wait short", async () => {
    const line = new Line();
    const { wait } = setUp(line, { polling: true, pollMs: 60_000 });
    setTimeout(() => line.emit("exists", {}), 5);
    assert.equal((await wait()).why, "look");
  });
});

describe("ConnectionEvents", () => {
  it("news: set by the server's announcement, cleared as a round starts", () => {
    const line = new Line();
    const events = new ConnectionEvents(line as unknown as EventSource, new AbortController().signal);
    assert.equal(events.news, true, "a new session looks at once");
    events.roundStarts();
    assert.equal(events.news, false);
    line.emit("exists", {});
    assert.equal(events.news, true);
  });

  it("a pause before reading a mail again is not cut short by mail after it", async () => {
    const line = new Line();
    const events = new ConnectionEvents(line as unknown as EventSource, new AbortController().signal);
    const started = Date.now();
    setTimeout(() => line.emit("exists", {}), 5);
    await events.pause(40, { ignoreMail: true });
    assert.ok(Date.now() - started >= 35);
  });

  it("keeps an error listener after dispose: a late socket error does not crash the process", () => {
    const line = new Line();
    const events = new ConnectionEvents(line as unknown as EventSource, new AbortController().signal);
    line.emit("error", new Error("first"));
    assert.equal((events.closeError as Error).message, "first");
    events.dispose();
    assert.doesNotThrow(() => line.emit("error", new Error("late")));
    assert.equal(line.listenerCount("exists"), 0);
  });
});

describe("keepalive", () => {
  it("returns when the NOOP is answered", async () => {
    await keepalive({ noop: async () => {} }, 50, "a", "INBOX");
  });
});
