import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { TargetError } from "../errors.ts";
import { silentLogger, type Logger } from "../log.ts";
import { createLogger } from "../pino-logger.ts";
import type { NewOutboxRow } from "./store.ts";
import { State } from "../store/sqlite/state.ts";
import { sampleNotification } from "../../test/support/targets.ts";
import type { DigestEntry, Notification, SendOptions, Target, TargetPayload } from "../targets/types.ts";
import { Dispatcher, pageSize, type TargetPacing } from "./dispatcher.ts";

interface Sent {
  payload: TargetPayload;
  key: string | undefined;
  at: number;
}

/** A target whose replies a test scripts: each call takes the next reply (default success). */
class FakeTarget implements Target {
  readonly type = "fake";
  readonly defaultPacing = { perSecond: 1000, burst: 1000 };
  readonly name: string;
  readonly sent: Sent[] = [];
  readonly attempts: number[] = [];
  readonly replies: (Error | "ok")[] = [];
  constructor(name: string) {
    this.name = name;
  }
  render(n: Notification): TargetPayload {
    return { contentType: "text/plain", body: `body ${n.uid}` };
  }
  summarize(n: Notification): string {
    return `sum${n.uid}`;
  }
  describe(): string {
    return `fake ${this.name}`;
  }
  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    return { contentType: "text/plain", body: `digest ${total}: ${entries.map((e) => e.summary).join(",")}` };
  }
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    this.attempts.push(performance.now());
    const reply = this.replies.shift() ?? "ok";
    if (reply !== "ok") throw reply;
    this.sent.push({ payload, key: options.idempotencyKey, at: performance.now() });
  }
}

/** A row as the pipeline queues it: the notification for mail UID n, which the target renders at send time. */
function row(n: number, overrides: Partial<NewOutboxRow> = {}): NewOutboxRow {
  const mail = { rule: "r", account: "a", mailbox: "INBOX", uidValidity: 1, uid: n, messageId: `m${n}@x`, subject: `s${n}` };
  return { target: "t", ...mail, notification: sampleNotification(mail), ...overrides } as NewOutboxRow;
}

const fast: TargetPacing = { perSecond: 1000, burst: 1000, overflow: "paced", digestAfter: 5 };

function setup(targets: FakeTarget[], opts: { pacing?: Partial<TargetPacing>; maxAttempts?: number; now?: () => number; logger?: Logger } = {}) {
  const state = State.open(":memory:");
  const dispatcher = new Dispatcher({
    outbox: state.outbox,
    targets: new Map(targets.map((t) => [t.name, t])),
    pacing: new Map(targets.map((t) => [t.name, { ...fast, ...opts.pacing }])),
    retry: { baseMs: 20, capMs: 40, maxAttempts: opts.maxAttempts ?? 5 },
    logger: opts.logger ?? silentLogger,
    now: opts.now,
  });
  return { state, dispatcher };
}

/** A FakeTarget whose sends each wait until the test lets them go, so it can act while one is in flight. */
class GatedTarget extends FakeTarget {
  readonly #gates: (() => void)[] = [];
  override async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    await new Promise<void>((resolve) => this.#gates.push(resolve));
    return super.send(payload, options);
  }
  get waiting(): number {
    return this.#gates.length;
  }
  release(): void {
    this.#gates.shift()?.();
  }
}

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const retryable = (status: number, retryAfterSeconds?: number) => new TargetError("t", `answered ${status}`, { status, retryable: true, retryAfterSeconds });
const final = (status: number, text: string) => new TargetError("t", `answered ${status}: ${text}`, { status, retryable: false });

describe("Dispatcher", () => {
  it("sends queued rows oldest first, with the row id as idempotency key, and marks them done", async () => {
    const t = new FakeTarget("t");
    const { state, dispatcher } = setup([t]);
    state.outbox.enqueue([row(1), row(2), row(3)]);
    dispatcher.start();
    await until(() => t.sent.length === 3);
    await dispatcher.stop();
    assert.deepEqual(t.sent.map((s) => s.payload.body), ["body 1", "body 2", "body 3"]);
    assert.deepEqual(t.sent.map((s) => s.key), ["a/INBOX/1/1/r/t", "a/INBOX/1/2/r/t", "a/INBOX/1/3/r/t"]);
    assert.deepEqual(state.outbox.counts(), [{ target: "t", state: "done", count: 3 }]);
  });

  it("queues a row only once however often the same mail is enqueued", () => {
    const { state } = setup([new FakeTarget("t")]);
    assert.equal(state.outbox.enqueue([row(1), row(1)]), 1);
    assert.equal(state.outbox.enqueue([row(1)]), 0);
  });

  it("retries 5xx with backoff, keeps order, and delivers each row once", async () => {
    const t = new FakeTarget("t");
    t.replies.push(retryable(500), retryable(503));
    const { state, dispatcher } = setup([t]);
    state.outbox.enqueue([row(1), row(2)]);
    dispatcher.start();
    await until(() => t.sent.length === 2);
    await dispatcher.stop();
    assert.deepEqual(t.sent.map((s) => s.payload.body), ["body 1", "body 2"]);
    assert.equal(t.attempts.length, 4);
    assert.ok(t.attempts[1]! - t.attempts[0]! >= 2, "a pause before the retry");
    assert.equal(state.outbox.get("a/INBOX/1/1/r/t")!.attempts, 3);
  });

  it("waits at least Retry-After after a 429 before sending anything to that target", async () => {
    const t = new FakeTarget("t");
    t.replies.push(retryable(429, 0.3));
    const { state, dispatcher } = setup([t]);
    state.outbox.enqueue([row(1), row(2)]);
    dispatcher.start();
    await until(() => t.sent.length === 2);
    await dispatcher.stop();
    assert.ok(t.attempts[1]! - t.attempts[0]! >= 295, `retried after ${t.attempts[1]! - t.attempts[0]!} ms`);
  });

  it("moves a row with a final error to the dead letters with the reason, and goes on", async () => {
    const t = new FakeTarget("t");
    t.replies.push(final(404, "no_service"));
    const { state, dispatcher } = setup([t]);
    state.outbox.enqueue([row(1), row(2)]);
    dispatcher.start();
    await until(() => t.sent.length === 1);
    await dispatcher.stop();
    const dead = state.outbox.get("a/INBOX/1/1/r/t")!;
    assert.equal(dead.state, "dead");
    assert.match(dead.lastError!, /answered 404: no_service/);
    assert.equal(t.sent[0]!.payload.body, "body 2");
    assert.equal(state.outbox.requeue({ allDead: true }), 1);
    assert.equal(state.outbox.get("a/INBOX/1/1/r/t")!.state, "pending");
  });

  it("gives up after maxAttempts retryable failures", async () => {
    const t = new FakeTarget("t");
    t.replies.push(retryable(500), retryable(500), retryable(500));
    const { state, dispatcher } = setup([t], { maxAttempts: 3 });
    state.outbox.enqueue([row(1)]);
    dispatcher.start();
    await until(() => state.outbox.get("a/INBOX/1/1/r/t")!.state === "dead");
    await dispatcher.stop();
    assert.match(state.outbox.get("a/INBOX/1/1/r/t")!.lastError!, /gave up after 3 attempts/);
    assert.equal(t.sent.length, 0);
  });

  it("paces sends to the target's rate", async () => {
    const t = new FakeTarget("t");
    const { state, dispatcher } = setup([t], { pacing: { perSecond: 20, burst: 1 } });
    state.outbox.enqueue([1, 2, 3, 4, 5].map((n) => row(n)));
    dispatcher.start();
    await until(() => t.sent.length === 5);
    await dispatcher.stop();
    const span = t.sent[4]!.at - t.sent[0]!.at;
    assert.ok(span >= 190, `5 sends at 20/s took ${span} ms`);
  });

  it("with overflow: digest, sends one summary when more than digestAfter are waiting", async () => {
    const t = new FakeTarget("t");
    const { state, dispatcher } = setup([t], { pacing: { overflow: "digest", digestAfter: 3 } });
    state.outbox.enqueue([1, 2, 3, 4, 5].map((n) => row(n)));
    dispatcher.start();
    await until(() => state.outbox.counts().every((c) => c.state === "done"));
    await dispatcher.stop();
    assert.deepEqual(t.sent.map((s) => s.payload.body), ["digest 5: sum1,sum2,sum3,sum4,sum5"]);
  });

  it("sends a backlog group as one digest and the rest one by one", async () => {
    const t = new FakeTarget("t");
    const { state, dispatcher } = setup([t]);
    state.outbox.enqueue([row(1), row(2), row(3, { digestGroup: "g" }), row(4, { digestGroup: "g" }), row(5, { digestGroup: "g" })]);
    dispatcher.start();
    await until(() => state.outbox.counts().every((c) => c.state === "done"));
    await dispatcher.stop();
    assert.deepEqual(t.sent.map((s) => s.payload.body), ["body 1", "body 2", "digest 3: sum3,sum4,sum5"]);
  });

  it("keeps one failing target from holding up another", async () => {
    const bad = new FakeTarget("bad");
    const good = new FakeTarget("good");
    for (let i = 0; i < 50; i++) bad.replies.push(retryable(503));
    const { state, dispatcher } = setup([bad, good]);
    state.outbox.enqueue([row(1, { target: "bad" }), row(1, { target: "good" }), row(2, { target: "good" })]);
    dispatcher.start();
    await until(() => good.sent.length === 2);
    await dispatcher.stop();
    assert.equal(bad.sent.length, 0);
    assert.equal(state.outbox.get("a/INBOX/1/1/r/bad")!.state, "pending");
  });

  it("reads the queue a page at a time, not once per row, and still sends every row once in order", async () => {
    const t = new FakeTarget("t");
    const { state, dispatcher } = setup([t]);
    const total = pageSize * 2 + 50;
    state.outbox.enqueue(Array.from({ length: total }, (_, i) => row(i + 1)));
    let reads = 0;
    const ready = state.outbox.ready.bind(state.outbox);
    state.outbox.ready = (...args) => {
      reads++;
      return ready(...args);
    };
    dispatcher.start();
    await until(() => t.sent.length >= pageSize);
    // Queued by the pipeline while a page is being sent: after it, in order.
    state.outbox.enqueue([row(total + 1), row(total + 2)]);
    dispatcher.kick();
    await until(() => t.sent.length === total + 2);
    await dispatcher.stop();
    assert.deepEqual(
      t.sent.map((s) => s.payload.body),
      Array.from({ length: total + 2 }, (_, i) => `body ${i + 1}`),
    );
    assert.ok(reads <= 6, `${reads} reads for ${total + 2} rows`);
    assert.deepEqual(state.outbox.counts(), [{ target: "t", state: "done", count: total + 2 }]);
  });

  it("a row re-queued by another process goes out next once the page is a second old, not after the whole page", async () => {
    const t = new GatedTarget("t");
    let offset = 0;
    const { state, dispatcher } = setup([t], { now: () => Date.now() + offset });
    state.outbox.enqueue([row(1), row(2), row(3), row(4)]);
    state.outbox.markDead(["a/INBOX/1/1/r/t"], "answered 404", Date.now());
    dispatcher.start();
    await until(() => t.waiting === 1);
    // `mailbell outbox retry a/INBOX/1/1/r/t` while row 2 is in flight; rows 3 and 4 are in the page.
    assert.equal(state.outbox.requeue({ id: "a/INBOX/1/1/r/t" }, Date.now()), 1);
    offset += 1000;
    for (let i = 0; i < 4; i++) {
      t.release();
      await until(() => t.sent.length === i + 1 && (i === 3 || t.waiting === 1));
    }
    await dispatcher.stop();
    assert.deepEqual(t.sent.map((s) => s.payload.body), ["body 2", "body 1", "body 3", "body 4"]);
  });

  it("does not send a backlog group from the page once the pipeline has held it back again", async () => {
    const t = new GatedTarget("t");
    const { state, dispatcher } = setup([t]);
    state.outbox.enqueue([row(1), row(2, { digestGroup: "g" }), row(3, { digestGroup: "g" }), row(4)]);
    dispatcher.start();
    await until(() => t.waiting === 1);
    // The page holds rows 2–4; the catch-up goes on, so the group waits for its last mail.
    state.outbox.holdGroup("g", Date.now() + 60_000);
    t.release();
    await until(() => t.waiting === 1 || t.sent.length > 1);
    t.release();
    await until(() => t.sent.length === 2);
    assert.deepEqual(t.sent.map((s) => s.payload.body), ["body 1", "body 4"]);
    state.outbox.enqueue([row(5, { digestGroup: "g" })]);
    state.outbox.releaseGroup("g");
    dispatcher.kick();
    await until(() => t.waiting === 1);
    t.release();
    await until(() => t.sent.length === 3);
    await dispatcher.stop();
    assert.equal(t.sent[2]!.payload.body, "digest 3: sum2,sum3,sum5");
  });

  it("after a failure in the middle of a page, retries that row before the rest of the page", async () => {
    const t = new FakeTarget("t");
    t.replies.push("ok", retryable(500));
    const { state, dispatcher } = setup([t]);
    state.outbox.enqueue([row(1), row(2), row(3), row(4)]);
    dispatcher.start();
    await until(() => t.sent.length === 4);
    await dispatcher.stop();
    assert.deepEqual(t.sent.map((s) => s.payload.body), ["body 1", "body 2", "body 3", "body 4"]);
    assert.equal(state.outbox.get("a/INBOX/1/2/r/t")!.attempts, 2);
    assert.equal(state.outbox.get("a/INBOX/1/3/r/t")!.attempts, 1);
  });

  it("at a high rate, wakes for several tokens at once instead of one per row, within rate and burst", async () => {
    const t = new FakeTarget("t");
    const { state, dispatcher } = setup([t], { pacing: { perSecond: 1000, burst: 10 } });
    state.outbox.enqueue(Array.from({ length: 50 }, (_, i) => row(i + 1)));
    dispatcher.start();
    await until(() => t.sent.length === 50);
    await dispatcher.stop();
    const gaps = t.sent.slice(1).map((s, i) => s.at - t.sent[i]!.at);
    const span = t.sent[49]!.at - t.sent[0]!.at;
    // 10 at once, then 40 more at 1000/s: at least ~40 ms, however they are grouped.
    assert.ok(span >= 35, `50 sends at 1000/s with a burst of 10 took ${span} ms`);
    // A wake-up per token would put a timer (≥ 1 ms) between every paced send.
    const backToBack = gaps.filter((g) => g < 0.5).length;
    assert.ok(backToBack >= 30, `only ${backToBack} of 49 sends followed the previous at once: ${gaps.map((g) => g.toFixed(1)).join(" ")}`);
  });

  it("drain sends what is due and reports what it had to leave", async () => {
    const t = new FakeTarget("t");
    const { state, dispatcher } = setup([t]);
    dispatcher.start();
    state.outbox.enqueue([row(1), row(2)]);
    dispatcher.kick();
    const { left } = await dispatcher.drain(2000);
    assert.equal(left, 0);
    assert.equal(t.sent.length, 2);

    const slow = new FakeTarget("t");
    slow.replies.push(retryable(429, 60));
    const second = setup([slow]);
    second.state.outbox.enqueue([row(1)]);
    second.dispatcher.start();
    await until(() => slow.attempts.length === 1);
    const started = performance.now();
    const result = await second.dispatcher.drain(200);
    assert.ok(performance.now() - started < 1500, "drain does not wait out a Retry-After beyond its deadline");
    assert.equal(result.left, 1, "the row it could not send before the deadline is reported");
    assert.equal(second.state.outbox.get("a/INBOX/1/1/r/t")!.state, "pending", "nothing is lost: the row stays queued");
  });
});

describe("digests from stored notifications", () => {
  it("list each row by the target's summarize, with its rendered body and thread", async () => {
    class ThreadedTarget extends FakeTarget {
      override render(n: Notification): TargetPayload {
        return { contentType: "text/plain", body: `body ${n.uid}`, thread: `thread ${n.uid % 2}` };
      }
      override renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
        return { contentType: "text/plain", body: `digest ${total}: ${entries.map((e) => `${e.summary}|${e.body}|${e.thread}`).join(",")}` };
      }
    }
    const t = new ThreadedTarget("t");
    const { state, dispatcher } = setup([t]);
    state.outbox.enqueue([row(1, { digestGroup: "g" }), row(2, { digestGroup: "g" })]);
    dispatcher.start();
    await until(() => t.sent.length === 1);
    await dispatcher.stop();
    assert.equal(t.sent[0]!.payload.body, "digest 2: sum1|body 1|thread 1,sum2|body 2|thread 0");
  });
});

describe("rows queued before schema 7, their payload rendered then", () => {
  /** A row written the way mailbell queued it before: the payload and its digest line, no notification. */
  const queuedBefore = (n: number, overrides: Partial<NewOutboxRow> = {}): NewOutboxRow => {
    const { notification: _notification, ...place } = row(n) as NewOutboxRow & { notification: Notification };
    return { ...place, contentType: "application/json", body: `{"text":"queued ${n}"}`, summary: `queued line ${n}`, ...overrides } as NewOutboxRow;
  };

  it("are sent as they were queued, and listed in a digest by their stored line beside rows rendered now", async () => {
    const t = new FakeTarget("t");
    const { state, dispatcher } = setup([t]);
    state.outbox.enqueue([queuedBefore(1), queuedBefore(2, { digestGroup: "g" }), row(3, { digestGroup: "g" })]);
    dispatcher.start();
    await until(() => t.sent.length === 2);
    await dispatcher.stop();
    assert.deepEqual(
      t.sent.map((s) => s.payload),
      [
        { contentType: "application/json", body: '{"text":"queued 1"}' },
        { contentType: "text/plain", body: "digest 2: queued line 2,sum3" },
      ],
    );
  });

  it("a state file of schema 5 upgrades, and its pending row is sent as queued", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-dispatch-v5-"));
    const file = path.join(dir, "state.db");
    copyFileSync(path.resolve(import.meta.dirname, "../../test/fixtures/state-v5.sqlite"), file);
    const state = State.open(file);
    const team = new FakeTarget("team");
    const dispatcher = new Dispatcher({ outbox: state.outbox, targets: new Map([["team", team]]), pacing: new Map([["team", fast]]), retry: { baseMs: 20, capMs: 40, maxAttempts: 5 }, logger: silentLogger });
    try {
      dispatcher.start();
      await until(() => team.sent.length === 1);
      await dispatcher.stop();
      assert.deepEqual(team.sent[0]!.payload, { contentType: "application/json", body: '{"text":"order 2"}' });
      assert.equal(state.outbox.get("alice/INBOX/1700000000/11/shop/team")!.state, "done");
    } finally {
      state.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Dispatcher.reconfigure (config reload)", () => {
  it("lets a replaced target's send in flight finish and commit, then sends the rest through the new one, each row once", async () => {
    const old = new GatedTarget("t");
    const { state, dispatcher } = setup([old]);
    state.outbox.enqueue([row(1), row(2)]);
    dispatcher.start();
    await until(() => old.waiting === 1);
    const replacement = new FakeTarget("t");
    const switched = dispatcher.reconfigure({ targets: new Map([["t", replacement]]), pacing: new Map([["t", fast]]), retry: { baseMs: 20, capMs: 40, maxAttempts: 5 } }, new Set(["t"]));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(replacement.sent.length, 0, "the new loop waits for the old one's send in flight");
    old.release();
    await switched;
    await until(() => replacement.sent.length === 1);
    await dispatcher.stop();
    assert.deepEqual(old.sent.map((s) => s.payload.body), ["body 1"]);
    assert.deepEqual(replacement.sent.map((s) => s.payload.body), ["body 2"]);
    assert.deepEqual(state.outbox.counts(), [{ target: "t", state: "done", count: 2 }]);
  });

  it("starts a loop for an added target, stops a removed one's, and leaves an unchanged one running", async () => {
    const kept = new FakeTarget("kept");
    const gone = new FakeTarget("gone");
    const { state, dispatcher } = setup([kept, gone]);
    dispatcher.start();
    const added = new FakeTarget("added");
    await dispatcher.reconfigure({ targets: new Map([["kept", kept], ["added", added]]), pacing: new Map(), retry: { baseMs: 20, capMs: 40, maxAttempts: 5 } }, new Set());
    state.outbox.enqueue([row(1, { target: "kept" }), row(2, { target: "added" }), row(3, { target: "gone" })]);
    dispatcher.kick();
    await until(() => kept.sent.length === 1 && added.sent.length === 1);
    await new Promise((r) => setTimeout(r, 30));
    await dispatcher.stop();
    assert.equal(gone.sent.length, 0, "no loop sends for a removed target");
    assert.equal(state.outbox.get("a/INBOX/1/3/r/gone")?.state, "pending");
  });

  it("stops waiting for a replaced target's send in flight once the run stops: shutdown is not held by a slow service (the row is kept, to be sent once)", async () => {
    const old = new HangingTarget("t");
    const { state, dispatcher } = setup([old]);
    state.outbox.enqueue([row(1)]);
    dispatcher.start();
    await until(() => old.attempts.length === 1);
    const stopping = new AbortController();
    const replacement = new FakeTarget("t");
    const switched = dispatcher.reconfigure({ targets: new Map([["t", replacement]]), pacing: new Map([["t", fast]]), retry: { baseMs: 20, capMs: 40, maxAttempts: 5 } }, new Set(["t"]), stopping.signal);
    stopping.abort();
    const outcome = await Promise.race([switched.then(() => "returned"), new Promise((r) => setTimeout(() => r("still waiting"), 500))]);
    assert.equal(outcome, "returned");
    await dispatcher.stop();
    // Abandoned by the old sender, it stays pending, unless the new one (which a drain would use) sent it.
    assert.equal(old.sent.length, 0);
    assert.equal(state.outbox.get("a/INBOX/1/1/r/t")?.state, replacement.sent.length === 1 ? "done" : "pending");
  });
});

/** A target whose send never answers; only its abort signal ends it (a service that hangs). */
class HangingTarget extends FakeTarget {
  override async send(_payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    this.attempts.push(performance.now());
    await new Promise<void>((_resolve, reject) => options.signal?.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
  }
}

describe("several requests in flight (Target.concurrency)", () => {
  /**
   * Allows `concurrency` requests at once, each answered when the test releases it (or given up
   * when the dispatcher aborts it); `took` lists every post the service received.
   */
  class ConcurrentTarget extends FakeTarget {
    readonly concurrency: number;
    readonly took: string[] = [];
    readonly #gates: (() => void)[] = [];
    constructor(name: string, concurrency: number) {
      super(name);
      this.concurrency = concurrency;
    }
    override async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
      this.took.push(options.idempotencyKey!);
      await new Promise<void>((resolve, reject) => {
        this.#gates.push(resolve);
        options.signal?.addEventListener("abort", () => reject(new Error("aborted")), { once: true });
      });
      return super.send(payload, options);
    }
    get waiting(): number {
      return this.#gates.length;
    }
    release(): void {
      this.#gates.shift()?.();
    }
  }

  it("keeps up to `concurrency` requests in flight, never more, and sends every row once", async () => {
    const t = new ConcurrentTarget("t", 3);
    const { state, dispatcher } = setup([t]);
    state.outbox.enqueue(Array.from({ length: 10 }, (_, i) => row(i + 1)));
    dispatcher.start();
    await until(() => t.waiting === 3);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(t.waiting, 3, "a fourth request waits for a free place");
    while (t.sent.length < 10) {
      const before = t.sent.length;
      t.release();
      await until(() => t.sent.length === before + 1 && t.waiting === Math.min(3, 10 - before - 1));
      assert.ok(t.waiting <= 3);
    }
    await dispatcher.stop();
    assert.deepEqual(t.took.toSorted(), Array.from({ length: 10 }, (_, i) => `a/INBOX/1/${i + 1}/r/t`).toSorted());
    assert.deepEqual(state.outbox.counts(), [{ target: "t", state: "done", count: 10 }]);
  });

  it("marks the rows answered in one turn of the event loop done in one transaction, their \"delivered\" lines in one write", async () => {
    const t = new ConcurrentTarget("t", 4);
    const written: string[] = [];
    const logger = createLogger({ format: "json", destination: new Writable({ write: (chunk: Buffer, _e, done) => (written.push(chunk.toString()), done()) }) });
    const { state, dispatcher } = setup([t], { logger });
    const commits: number[] = [];
    const markDone = state.outbox.markDone.bind(state.outbox);
    state.outbox.markDone = (ids, now) => {
      commits.push(ids.length);
      markDone(ids, now);
    };
    state.outbox.enqueue(Array.from({ length: 4 }, (_, i) => row(i + 1)));
    dispatcher.start();
    await until(() => t.waiting === 4);
    for (let i = 0; i < 4; i++) t.release();
    await until(() => state.outbox.counts().every((c) => c.state === "done"));
    await dispatcher.stop();
    assert.deepEqual(commits, [4]);
    const delivered = written.filter((w) => w.includes('"delivered"'));
    assert.equal(delivered.length, 1, `one write: ${delivered.join("|")}`);
    assert.deepEqual(delivered[0]!.trimEnd().split("\n").map((l) => (JSON.parse(l) as { uid: number }).uid), [1, 2, 3, 4]);
  });

  it("stopped with rows in flight, sends again at most those rows on the next start, and loses none", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-dispatch-inflight-"));
    const file = path.join(dir, "state.db");
    try {
      const first = new ConcurrentTarget("t", 4);
      const state = State.open(file);
      const dispatcher = new Dispatcher({ outbox: state.outbox, targets: new Map([["t", first]]), pacing: new Map([["t", fast]]), retry: { baseMs: 20, capMs: 40, maxAttempts: 5 }, logger: silentLogger });
      state.outbox.enqueue(Array.from({ length: 20 }, (_, i) => row(i + 1)));
      dispatcher.start();
      for (let answered = 0; answered < 7; answered++) {
        await until(() => first.waiting === 4);
        first.release();
      }
      await until(() => first.waiting === 4);
      // The service has received these four posts; their answers never reach us.
      const inFlight = first.took.filter((key) => !first.sent.some((s) => s.key === key));
      assert.equal(inFlight.length, 4);
      await dispatcher.stop();
      state.close();

      const again = State.open(file);
      const second = new FakeTarget("t");
      const restarted = new Dispatcher({ outbox: again.outbox, targets: new Map([["t", second]]), pacing: new Map([["t", fast]]), retry: { baseMs: 20, capMs: 40, maxAttempts: 5 }, logger: silentLogger });
      restarted.start();
      await until(() => again.outbox.counts().every((c) => c.state === "done"));
      await restarted.stop();
      again.close();

      const posts = new Map<string, number>();
      for (const key of [...first.took, ...second.sent.map((s) => s.key!)]) posts.set(key, (posts.get(key) ?? 0) + 1);
      assert.equal(posts.size, 20, "every row reached the service");
      const twice = [...posts].filter(([, n]) => n > 1).map(([key]) => key);
      assert.deepEqual(twice.toSorted(), inFlight.toSorted(), "only the rows in flight were sent again");
      assert.ok([...posts.values()].every((n) => n <= 2));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("after an outage", () => {
  it("after five 500s, a 429 with Retry-After: 2 brings the next try 2 s later, not the backoff's next step", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
    const target = new FakeTarget("t");
    const tries: number[] = [];
    const send = target.send.bind(target);
    target.send = (payload, options) => {
      tries.push(Date.now());
      return send(payload, options);
    };
    target.replies.push(retryable(500), retryable(500), retryable(500), retryable(500), retryable(500), retryable(429, 2));
    const state = State.open(":memory:");
    const dispatcher = new Dispatcher({
      outbox: state.outbox,
      targets: new Map([["t", target]]),
      pacing: new Map([["t", fast]]),
      retry: { baseMs: 1000, capMs: 600_000, maxAttempts: 12 },
      logger: silentLogger,
      random: () => 0.99,
    });
    state.outbox.enqueue([row(1), row(2)]);
    dispatcher.start();
    for (let i = 0; i < 800 && target.sent.length < 2; i++) {
      await new Promise((r) => setImmediate(r));
      t.mock.timers.tick(100);
    }
    await dispatcher.stop();
    const gaps = tries.slice(1).map((at, i) => at - tries[i]!);
    // The backoff's steps (1, 2, 4, 8, 16 s, near their ceilings), then what the 429 asked for.
    assert.equal(gaps.length, 7, `tries at ${gaps.join(", ")} ms`);
    assert.ok(gaps[4]! >= 15_000, `the fifth 500 waited ${gaps[4]} ms`);
    assert.ok(gaps[5]! >= 2000 && gaps[5]! <= 2100, `after the 429 the next try came ${gaps[5]} ms later`);
    assert.deepEqual(target.sent.map((s) => s.payload.body), ["body 1", "body 2"]);
    assert.ok(gaps[6]! <= 100, "and the next row at once");
  });

  it("a Retry-After of 0, or negative, still waits a second: the retries do not burst the queue into the dead letters", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
    const target = new FakeTarget("t");
    const tries: number[] = [];
    const send = target.send.bind(target);
    target.send = (payload, options) => {
      tries.push(Date.now());
      return send(payload, options);
    };
    target.replies.push(retryable(429, 0), retryable(429, -5), retryable(429, 0));
    const state = State.open(":memory:");
    const dispatcher = new Dispatcher({ outbox: state.outbox, targets: new Map([["t", target]]), pacing: new Map([["t", fast]]), retry: { baseMs: 20, capMs: 40, maxAttempts: 5 }, logger: silentLogger });
    state.outbox.enqueue([row(1)]);
    dispatcher.start();
    for (let i = 0; i < 400 && target.sent.length < 1; i++) {
      await new Promise((r) => setImmediate(r));
      t.mock.timers.tick(50);
    }
    await dispatcher.stop();
    assert.deepEqual(target.sent.map((x) => x.payload.body), ["body 1"], "sent after three 429s, not dead");
    const gaps = tries.slice(1).map((at, i) => at - tries[i]!);
    assert.equal(gaps.length, 3);
    // Retry-After 0 waits the floor of a second; a negative one is no Retry-After: our backoff (20–40 ms).
    assert.ok(gaps[0]! >= 1000 && gaps[2]! >= 1000, `tries ${gaps.join(", ")} ms apart`);
    assert.ok(gaps[1]! > 0, `tries ${gaps.join(", ")} ms apart`);
  });

  it("a success that was already in flight when another row failed does not release that row at once or reset the backoff", async () => {
    /** Two requests at once: row 1 fails 10 ms after it was sent the first time; row 2 answers 50 ms after it was sent. */
    class TwoAtOnce extends FakeTarget {
      readonly concurrency = 2;
      readonly tries: { body: string; at: number }[] = [];
      override async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
        this.tries.push({ body: String(payload.body), at: performance.now() });
        if (payload.body === "body 1" && this.tries.filter((x) => x.body === "body 1").length === 1) {
          await new Promise((r) => setTimeout(r, 10));
          throw retryable(500);
        }
        if (payload.body === "body 2") await new Promise((r) => setTimeout(r, 50));
        return super.send(payload, options);
      }
    }
    const target = new TwoAtOnce("t");
    const state = State.open(":memory:");
    const dispatcher = new Dispatcher({ outbox: state.outbox, targets: new Map([["t", target]]), pacing: new Map([["t", fast]]), retry: { baseMs: 400, capMs: 800, maxAttempts: 5 }, logger: silentLogger, random: () => 0.99 });
    state.outbox.enqueue([row(1), row(2)]);
    dispatcher.start();
    await until(() => target.sent.length === 2, 5000);
    await dispatcher.stop();
    const first = target.tries.filter((x) => x.body === "body 1").map((x) => x.at);
    assert.equal(first.length, 2);
    assert.ok(first[1]! - first[0]! >= 300, `row 1 was tried again ${Math.round(first[1]! - first[0]!)} ms after its 500: the backoff, not at row 2's success (50 ms)`);
  });

  it("once the target answers again, its backlog flows at its normal rate: no backoff left on any row", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
    const target = new FakeTarget("t");
    Object.assign(target, { concurrency: 4 });
    const tries: number[] = [];
    const send = target.send.bind(target);
    // Each answer takes 10 ms, so four requests are in flight at once.
    target.send = async (payload, options) => {
      tries.push(Date.now());
      await new Promise((r) => setTimeout(r, 10));
      return send(payload, options);
    };
    // The four in flight fail together: one pause, one step of the backoff, not four.
    target.replies.push(retryable(503), retryable(503), retryable(503), retryable(503));
    const state = State.open(":memory:");
    const dispatcher = new Dispatcher({
      outbox: state.outbox,
      targets: new Map([["t", target]]),
      pacing: new Map([["t", { ...fast, perSecond: 10, burst: 4 }]]),
      retry: { baseMs: 1000, capMs: 600_000, maxAttempts: 12 },
      logger: silentLogger,
      random: () => 0.99,
    });
    state.outbox.enqueue(Array.from({ length: 24 }, (_, i) => row(i + 1)));
    // A row an earlier run left to retry in an hour: it goes as soon as the target takes a post.
    state.outbox.enqueue([row(99)]);
    state.outbox.markRetry(["a/INBOX/1/99/r/t"], Date.now() + 3600_000, "answered 503", Date.now());
    const start = Date.now();
    dispatcher.start();
    for (let i = 0; i < 400 && target.sent.length < 25; i++) {
      await new Promise((r) => setImmediate(r));
      t.mock.timers.tick(10);
    }
    await dispatcher.stop();
    assert.equal(target.sent.length, 25, `${target.sent.length} sent`);
    assert.deepEqual(tries.slice(0, 4), [start, start, start, start], "four in flight at once");
    assert.ok(tries[4]! - start <= 1100, `the first try after the outage came ${tries[4]! - start} ms after it began (one backoff step: ~1 s)`);
    assert.ok(target.sent.some((s) => s.payload.body === "body 99"), "the row left to retry by an earlier run went too");
    // ~1 s pause, then 25 rows at 10/s with a burst of 4: about 2.1 s more.
    const lastTry = tries.at(-1)!;
    assert.ok(lastTry - start <= 1000 + 2300, `the backlog was all sent ${lastTry - start} ms after the outage began`);
    assert.deepEqual(state.outbox.counts(), [{ target: "t", state: "done", count: 25 }]);
  });
});
