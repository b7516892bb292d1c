import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import type { TargetPacing } from "../outbox/dispatcher.ts";
import type { NewOutboxRow } from "../outbox/store.ts";
import { State } from "../store/sqlite/state.ts";
import { createTargets, targetSchema, type TargetConfig } from "../targets/index.ts";
import { CaptureLogger } from "../../test/support/logger.ts";
import { slackReplies, startReceiver, type Receiver } from "../../test/support/receiver.ts";
import { sampleNotification } from "../../test/support/targets.ts";
import { until } from "../../test/support/until.ts";
import { startSender, type Sender, type SenderOptions } from "./sender.ts";

let receiver: Receiver;
let dir: string;
before(async () => {
  receiver = await startReceiver();
  dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-sender-"));
});
after(async () => {
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
});

const pacing = new Map<string, TargetPacing>([["hook", { perSecond: Infinity, burst: 1000, overflow: "paced", digestAfter: 5 }]]);
const retry = { baseMs: 50, capMs: 500, maxAttempts: 10 };
const movedToThread = /^a big catch-up: sending notifications from a thread of their own while it lasts$/;
const movedBack = /^nothing to send for a while: notifications are sent from the main thread again; the delivery thread stopped$/;

let nextUid = 1;
function queue(state: State, count: number): void {
  state.outbox.enqueue(
    Array.from({ length: count }, (): NewOutboxRow => {
      const uid = nextUid++;
      const mail = { rule: "r", account: "a", mailbox: "INBOX", uidValidity: 1, uid, messageId: `m${uid}@x`, subject: `s${uid}` };
      return { target: "hook", ...mail, notification: sampleNotification(mail) };
    }),
  );
}

interface Running {
  sender: Sender;
  state: State;
  logger: CaptureLogger;
  file: string;
}

async function autoSender(name: string, options: Partial<SenderOptions> = {}): Promise<Running> {
  const file = path.join(dir, `${name}.db`);
  const state = State.open(file);
  const targets: TargetConfig[] = [targetSchema.parse({ name: "hook", type: "webhook", url: receiver.url(`/${name}`) })];
  const logger = new CaptureLogger();
  const sender = await startSender({ thread: "auto", state, statePath: file, settings: { targets, made: createTargets(targets), pacing, retry }, logger, threadFrom: 100, threadIdleMs: 400, ...options });
  sender.start();
  return { sender, state, logger, file };
}

/** Posts per row (by its idempotency key) at one path of the receiver. */
function postsAt(name: string): Map<string, number> {
  const posts = new Map<string, number>();
  for (const r of receiver.requests.filter((q) => q.path === `/${name}`)) {
    const key = String(r.headers["idempotency-key"]);
    posts.set(key, (posts.get(key) ?? 0) + 1);
  }
  return posts;
}

function allDone(state: State): boolean {
  return state.outbox.counts().every((c) => c.state === "done");
}

describe("outbox.thread: auto", () => {
  it("stays on the main thread for a catch-up below threadFrom, and for mail that is not a catch-up", async () => {
    receiver.setDefault(slackReplies.ok());
    const r = await autoSender("small");
    try {
      queue(r.state, 50);
      r.sender.expect(99);
      r.sender.kick(["hook"]);
      await until(() => postsAt("small").size === 50 && allDone(r.state), "50 posts");
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      await r.sender.stop();
      r.state.close();
    }
    assert.equal(r.logger.find(movedToThread).length, 0);
    assert.ok([...postsAt("small").values()].every((n) => n === 1));
  });

  it("moves to its thread for a big catch-up while sends are in flight, and back once idle: every row posted once", async () => {
    // Slow answers: 8 requests are in flight on the main thread when the thread takes over.
    receiver.setDefault({ status: 200, headers: { "content-type": "text/plain" }, body: "ok", delayMs: 40 });
    const r = await autoSender("move");
    try {
      queue(r.state, 150);
      r.sender.expect(150);
      r.sender.kick(["hook"]);
      await until(() => r.logger.find(movedToThread).length === 1, "the move to the thread");
      queue(r.state, 50);
      r.sender.kick(["hook"]);
      await until(() => postsAt("move").size === 200 && allDone(r.state), "200 posts");
      await until(() => r.logger.find(movedBack).length === 1, "the move back to the main thread");
      // The main thread sends again.
      queue(r.state, 5);
      r.sender.kick(["hook"]);
      await until(() => postsAt("move").size === 205 && allDone(r.state), "the 5 after the move back");
    } finally {
      await r.sender.stop();
      r.state.close();
      receiver.setDefault(slackReplies.ok());
    }
    const posts = postsAt("move");
    assert.deepEqual([...posts.values()].filter((n) => n !== 1), [], "each row posted once");
    const delivered = r.logger.find(/^delivered$/, "info");
    assert.equal(delivered.length, 205, "one line per row, from whichever thread sent it");
  });

  it("a stop while the thread is starting ends both; rows not sent stay pending, none is posted twice", async () => {
    receiver.setDefault({ status: 200, headers: { "content-type": "text/plain" }, body: "ok", delayMs: 100 });
    const r = await autoSender("stop");
    try {
      queue(r.state, 300);
      r.sender.expect(300);
      r.sender.kick(["hook"]);
      await until(() => receiver.requests.some((q) => q.path === "/stop"), "the first post");
    } finally {
      await r.sender.stop();
      receiver.setDefault(slackReplies.ok());
    }
    const left = r.state.outbox.counts().find((c) => c.state === "pending")?.count ?? 0;
    r.state.close();
    assert.ok(left > 0, "the stop came before the backlog was sent");
    assert.deepEqual([...postsAt("stop").values()].filter((n) => n !== 1), []);
  });

  it("a Retry-After the main thread got is still followed once the thread has taken over, and the refused row goes first", async () => {
    receiver.setDefault(slackReplies.ok());
    receiver.replyOn("/pause", slackReplies.rateLimited(2));
    const r = await autoSender("pause");
    try {
      queue(r.state, 150);
      r.sender.kick(["hook"]);
      await until(() => receiver.requests.filter((q) => q.path === "/pause").length >= 8, "the first posts, one refused with a 429");
      const refused = receiver.requests.find((q) => q.path === "/pause")!;
      r.sender.expect(150);
      await until(() => r.logger.find(movedToThread).length === 1, "the move to the thread");
      await until(() => postsAt("pause").size === 150 && allDone(r.state), "150 posts", 15_000);
      const after = receiver.requests.filter((q) => q.path === "/pause" && q.index > refused.index + 7);
      assert.ok(after[0]!.at - refused.at >= 1950, `the first post after the pause came ${(after[0]!.at - refused.at).toFixed(0)} ms after the 429 (Retry-After: 2)`);
      assert.equal(after[0]!.headers["idempotency-key"], refused.headers["idempotency-key"], "the refused row went first: the queue kept its order");
    } finally {
      await r.sender.stop();
      r.state.close();
    }
  });

  it("moving back to the main thread during a Retry-After keeps the pause", async () => {
    receiver.setDefault(slackReplies.ok());
    const r = await autoSender("pause-back", { threadIdleMs: 300 });
    try {
      queue(r.state, 150);
      r.sender.expect(150);
      r.sender.kick(["hook"]);
      await until(() => r.logger.find(movedToThread).length === 1 && postsAt("pause-back").size === 150 && allDone(r.state), "the catch-up sent from the thread");
      receiver.replyOn("/pause-back", slackReplies.rateLimited(2));
      queue(r.state, 1);
      r.sender.kick(["hook"]);
      await until(() => receiver.requests.filter((q) => q.path === "/pause-back").length > 150, "the 429");
      const refused = receiver.requests.filter((q) => q.path === "/pause-back")[150]!;
      assert.equal(refused.reply.status, 429);
      // Nothing is sent during the pause, so the thread is idle and sending moves back, pause and all.
      await until(() => r.logger.find(movedBack).length === 1, "the move back during the pause");
      // Rows behind the refused one wait with it.
      queue(r.state, 2);
      r.sender.kick(["hook"]);
      await until(() => postsAt("pause-back").size === 153 && allDone(r.state), "the 3 after the pause");
      const after = receiver.requests.filter((q) => q.path === "/pause-back" && q.index > refused.index);
      assert.ok(after[0]!.at - refused.at >= 1950, `the first post after the 429 came ${(after[0]!.at - refused.at).toFixed(0)} ms after it (Retry-After: 2)`);
      assert.equal(after[0]!.headers["idempotency-key"], refused.headers["idempotency-key"]);
    } finally {
      await r.sender.stop();
      r.state.close();
    }
  });

  it("a drain during a move keeps its deadline, though the main thread's sends in flight take 3 s", async () => {
    receiver.setDefault({ status: 200, headers: { "content-type": "text/plain" }, body: "ok", delayMs: 3000 });
    const r = await autoSender("drain");
    let tookMs: number;
    try {
      queue(r.state, 50);
      r.sender.kick(["hook"]);
      await until(() => receiver.requests.filter((q) => q.path === "/drain").length >= 8, "8 posts in flight");
      r.sender.expect(150);
      await until(() => r.logger.find(/^the delivery thread is up; the main thread finishes its sends in flight first$/, "debug").length === 1, "the thread up, the main thread's sends settling");
      const started = performance.now();
      await r.sender.drain(500);
      tookMs = performance.now() - started;
    } finally {
      await r.sender.stop();
      r.state.close();
      receiver.setDefault(slackReplies.ok());
    }
    assert.ok(tookMs < 1500, `drain(500) took ${tookMs.toFixed(0)} ms`);
    assert.equal(r.logger.find(movedToThread).length, 0, "the thread never took over");
    assert.deepEqual([...postsAt("drain").values()].filter((n) => n !== 1), []);
  });

  it("a thread whose module fails to load is a warning, not the end of the run: sending stays on the main thread", async () => {
    receiver.setDefault(slackReplies.ok());
    const entry = path.join(dir, "unloadable-worker.mjs");
    writeFileSync(entry, `throw new Error("cannot load this module");`);
    const failures: unknown[] = [];
    const r = await autoSender("unloadable", { workerFile: pathToFileURL(entry), onFailure: (e) => failures.push(e) });
    try {
      queue(r.state, 120);
      r.sender.expect(120);
      r.sender.kick(["hook"]);
      await until(() => postsAt("unloadable").size === 120 && allDone(r.state), "120 posts from the main thread");
      await until(() => r.logger.find(/^the delivery thread could not start/, "warn").length === 1, "the warning");
    } finally {
      await r.sender.stop();
      r.state.close();
    }
    assert.deepEqual(failures, [], "the run is not ended");
    assert.match(String(r.logger.find(/^the delivery thread could not start/, "warn")[0]!.fields.err), /cannot load this module/);
    assert.equal(r.logger.find(/^the delivery thread failed/).length, 0);
  });

  it("a thread that cannot start leaves sending on the main thread, says so once, and is not tried again", async () => {
    receiver.setDefault(slackReplies.ok());
    const entry = path.join(dir, "refusing-worker.mjs");
    writeFileSync(entry, `import { parentPort } from "node:worker_threads";
      parentPort.postMessage({ type: "failed", error: { message: "no thread today" } });`);
    const r = await autoSender("broken", { workerFile: pathToFileURL(entry) });
    try {
      queue(r.state, 120);
      r.sender.expect(120);
      r.sender.kick(["hook"]);
      await until(() => r.logger.find(/^the delivery thread could not start/, "warn").length === 1, "the warning");
      queue(r.state, 120);
      r.sender.expect(120);
      r.sender.kick(["hook"]);
      await until(() => postsAt("broken").size === 240 && allDone(r.state), "240 posts from the main thread");
    } finally {
      await r.sender.stop();
      r.state.close();
    }
    assert.equal(r.logger.find(/^the delivery thread could not start/, "warn").length, 1);
    assert.match(String(r.logger.find(/^the delivery thread could not start/, "warn")[0]!.fields.err), /no thread today/);
    assert.deepEqual([...postsAt("broken").values()].filter((n) => n !== 1), []);
  });
});
