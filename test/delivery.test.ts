/**
 * Delivery against a real local HTTP receiver (issue 18): a 429's Retry-After is followed as given
 * after earlier 5xx answers, and a webhook with several requests in flight, killed with SIGKILL in
 * the middle of a backlog, posts every row and sends again at most the rows that were in flight.
 * Real Dispatcher, WebhookTarget and SQLite state file; the killed dispatcher runs in a child process.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { loadConfig, parseConfig } from "../src/config/load.ts";
import { runDaemon, startDaemon } from "../src/daemon/run.ts";
import { InternalError } from "../src/errors.ts";
import { silentLogger } from "../src/log.ts";
import { Dispatcher } from "../src/outbox/dispatcher.ts";
import type { NewOutboxRow } from "../src/outbox/store.ts";
import { State } from "../src/store/sqlite/state.ts";
import { WebhookTarget } from "../src/targets/webhook.ts";
import { waitUntilWatching, writeConfig } from "./support/daemon.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { CaptureLogger } from "./support/logger.ts";
import { buildMail } from "./support/mail.ts";
import { slackReplies, startReceiver, type Receiver } from "./support/receiver.ts";
import { sampleNotification } from "./support/targets.ts";
import { until } from "./support/until.ts";

let receiver: Receiver;
let dir: string;
before(async () => {
  receiver = await startReceiver();
  dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-delivery-"));
});
after(async () => {
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
});

const base = { overflow: "paced", digestAfter: 5 } as const;

function rows(count: number): NewOutboxRow[] {
  return Array.from({ length: count }, (_, i) => {
    const mail = { rule: "r", account: "a", mailbox: "INBOX", uidValidity: 1, uid: i + 1, messageId: `m${i + 1}@x`, subject: `s${i + 1}` };
    return { target: "hook", ...mail, notification: sampleNotification(mail) };
  });
}

describe("delivery to a real HTTP receiver", () => {
  it("after two 500s, a 429 with Retry-After: 1 brings the next post 1 s later, not the backoff's next step", async () => {
    receiver.clear();
    receiver.reply(slackReplies.rollupError(), slackReplies.rollupError(), slackReplies.rateLimited(1));
    const state = State.open(":memory:");
    const hook = new WebhookTarget({ ...base, name: "hook", type: "webhook", url: receiver.url("/hook"), concurrency: 1 });
    // Backoff near its ceiling each time: ~0.4 s, ~0.8 s, and ~1.6 s would be next.
    const dispatcher = new Dispatcher({
      outbox: state.outbox,
      targets: new Map([["hook", hook]]),
      pacing: new Map([["hook", { perSecond: 100, burst: 100, ...base }]]),
      retry: { baseMs: 400, capMs: 60_000, maxAttempts: 10 },
      logger: silentLogger,
      random: () => 0.99,
    });
    state.outbox.enqueue(rows(3));
    dispatcher.start();
    try {
      await receiver.waitFor(6, 10_000);
    } finally {
      await dispatcher.stop();
      state.close();
    }
    const at = receiver.requests.map((r) => r.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    assert.deepEqual(
      receiver.requests.map((r) => r.reply.status),
      [500, 500, 429, 200, 200, 200],
    );
    assert.ok(gaps[1]! >= 700, `the second 500 was followed ${gaps[1]!.toFixed(0)} ms later`);
    assert.ok(gaps[2]! >= 950 && gaps[2]! < 1400, `after the 429 the next post came ${gaps[2]!.toFixed(0)} ms later`);
    assert.ok(gaps[3]! < 200 && gaps[4]! < 200, `then the rest at once: ${gaps.slice(3).map((g) => g.toFixed(0)).join(", ")} ms`);
  });

  for (const thread of ["main", "own"] as const) {
    it(`a webhook with 8 requests in flight, killed mid-backlog, posts every row and again at most the 8 in flight (outbox.thread: ${thread})`, async () => {
      receiver.clear();
      // Each answer takes a while, so the 8 places are always taken when the kill comes.
      receiver.setDefault({ status: 200, headers: { "content-type": "text/plain" }, body: "ok", delayMs: 15 });
      const file = path.join(dir, `inflight-${thread}.db`);
      const total = 300;
      const state = State.open(file);
      state.outbox.enqueue(rows(total));
      state.close();
      // A file, not -e: a worker thread inherits --input-type and cannot start with it.
      const script = path.join(dir, `inflight-${thread}.mjs`);
      writeFileSync(script, childScript(file, receiver.url("/hook"), thread));
      const child = spawn(process.execPath, [script], { stdio: ["ignore", "ignore", "inherit"] });
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      try {
        await until(() => receiver.requests.length >= 120, "the child posting");
      } finally {
        child.kill("SIGKILL");
        await exited;
      }
      const beforeKill = receiver.requests.length;

      const again = State.open(file);
      const hook = new WebhookTarget({ ...base, name: "hook", type: "webhook", url: receiver.url("/hook") });
      const dispatcher = new Dispatcher({ outbox: again.outbox, targets: new Map([["hook", hook]]), pacing: new Map([["hook", { perSecond: Infinity, burst: 1000, ...base }]]), retry: { baseMs: 50, capMs: 500, maxAttempts: 10 }, logger: silentLogger });
      dispatcher.start();
      try {
        await until(() => again.outbox.counts().every((c) => c.state === "done"), "the restarted dispatcher finishing");
      } finally {
        await dispatcher.stop();
        again.close();
        receiver.setDefault(slackReplies.ok());
      }
      const posts = new Map<string, number>();
      for (const r of receiver.requests) {
        const key = String(r.headers["idempotency-key"]);
        posts.set(key, (posts.get(key) ?? 0) + 1);
      }
      const twice = [...posts.values()].filter((n) => n > 1).length;
      assert.equal(posts.size, total, "every row was posted");
      assert.ok([...posts.values()].every((n) => n <= 2), "none more than twice");
      assert.ok(twice <= 8, `${twice} rows posted again after the kill (${beforeKill} requests before it); at most the 8 in flight may be`);
    });
  }
});

/**
 * The daemon's sender where outbox.thread puts it (src/daemon/sender.ts): the same key cases on the
 * main thread, on its own thread, and with auto (the default, which the other daemon tests use),
 * which moves between the two for a big catch-up.
 */
for (const thread of ["main", "own", "auto"] as const) {
  describe(`the daemon's sender with outbox.thread: ${thread}`, () => {
    let dovecot: Dovecot;
    before(async () => {
      dovecot = await startDovecot();
    });
    after(async () => {
      await dovecot?.dispose();
    });

    const mail = (n: number): string => buildMail({ from: "shop@example.com", to: "alice@example.com", subject: `order ${n}`, messageId: `${thread}-${n}@x`, text: "hi" });
    const config = (hook: string): string => `state: ${dir}/${thread}.db
outbox: { thread: ${thread}, retryBaseSeconds: 0.05, retryMaxSeconds: 0.1 }
accounts:
  - { name: alice, host: 127.0.0.1, port: ${dovecot.imapsPort}, tls: implicit, ca: ${dovecot.caFile}, user: alice, pass: alicepw }
targets:
  - { name: hook, type: webhook, url: "${receiver.url(hook)}" }
rules:
  - { name: r, notify: [hook] }
`;
    const posted = (hook: string): string[] => receiver.requests.filter((r) => r.path === hook).map((r) => (r.json as { messageId: string }).messageId);

    it("posts new mail each once, retries a refused post, counts outcomes, and after a reload sends to the new URL", async () => {
      const first = `/${thread}-a`;
      const second = `/${thread}-b`;
      receiver.replyOn(first, { status: 500 });
      const yaml = config(first);
      const file = writeConfig(yaml, mkdtempSync(path.join(dir, `${thread}-`)));
      const logger = new CaptureLogger();
      const controller = new AbortController();
      const outcomes = new Map<string, number>();
      const daemon = startDaemon(parseConfig(yaml, file, {}), {
        logger,
        signal: controller.signal,
        reloadConfig: () => loadConfig(file, {}),
        onDelivery: (target, outcome, n) => outcomes.set(`${target} ${outcome}`, (outcomes.get(`${target} ${outcome}`) ?? 0) + n),
      });
      try {
        await waitUntilWatching(logger);
        await dovecot.appendMany("alice", "INBOX", [1, 2, 3, 4, 5, 6].map(mail));
        await until(() => new Set(posted(first)).size === 6, "the new mail posted (one refused, then again)");
        await until(() => outcomes.get("hook delivered") === 6, "6 outcomes counted");
        assert.equal(outcomes.get("hook retry"), 1);
        writeFileSync(file, config(second));
        const reloaded = await daemon.reload();
        assert.equal(reloaded.applied, true);
        await dovecot.append("alice", "INBOX", mail(7));
        await until(() => posted(second).length === 1, "the mail after the reload posted to the new URL");
        const switched = await (writeFileSync(file, config(second).replace(`thread: ${thread}`, `thread: ${thread === "main" ? "own" : "main"}`)), daemon.reload());
        assert.equal(switched.applied, false);
        assert.match(switched.applied ? "" : switched.reason, /outbox\.thread: changed from .*restart mailbell/);
      } finally {
        controller.abort();
        await daemon.done;
      }
      assert.deepEqual([...posted(first), ...posted(second)].toSorted(), [1, 1, 2, 3, 4, 5, 6, 7].map((n) => `${thread}-${n}@x`).toSorted(), "each once; the refused one twice");
      assert.equal(logger.find(/^mailbell stopped$/).length, 1);
      const after = State.open(`${dir}/${thread}.db`);
      try {
        assert.deepEqual(after.outbox.counts().filter((c) => c.state !== "done"), []);
      } finally {
        after.close();
      }
    });

    it("stopping sends what is still queued (outbox.drainSeconds) before it returns", async () => {
      const hook = `/${thread}-drain`;
      const yaml = config(hook);
      const file = writeConfig(yaml, mkdtempSync(path.join(dir, `${thread}-`)));
      // Each post takes 300 ms: most of the backlog is still queued when the stop comes.
      receiver.setDefault({ status: 200, delayMs: 300 });
      const logger = new CaptureLogger();
      const controller = new AbortController();
      const done = runDaemon(parseConfig(yaml, file, {}), { logger, signal: controller.signal });
      try {
        await waitUntilWatching(logger);
        await dovecot.appendMany("alice", "INBOX", [11, 12, 13, 14].map(mail));
        await until(() => posted(hook).length >= 1, "the first post");
      } finally {
        controller.abort();
        await done;
        receiver.setDefault(slackReplies.ok());
      }
      assert.equal(logger.find(/^stopped watching; sending what is queued$/).length, 1);
      assert.deepEqual(posted(hook).toSorted(), [11, 12, 13, 14].map((n) => `${thread}-${n}@x`).toSorted());
    });

    if (thread === "auto") {
      it("a big catch-up is sent from the delivery thread, and once it is over from the main thread again; each mail once", async () => {
        const hook = "/auto-catch-up";
        const yaml = config(hook);
        const file = writeConfig(yaml, mkdtempSync(path.join(dir, "auto-")));
        // A first start records the checkpoint at the mailbox's end (the earlier tests may have
        // already): the mails below arrive while mailbell is down.
        const first = new AbortController();
        const firstLogger = new CaptureLogger();
        const firstRun = runDaemon(parseConfig(yaml, file, {}), { logger: firstLogger, signal: first.signal });
        await waitUntilWatching(firstLogger);
        first.abort();
        await firstRun;
        const waiting = Array.from({ length: 40 }, (_, i) => 100 + i);
        await dovecot.appendMany("alice", "INBOX", waiting.map(mail));
        // Slow answers: posts are in flight on the main thread when the thread takes over.
        receiver.setDefault({ status: 200, delayMs: 30 });
        const logger = new CaptureLogger();
        const controller = new AbortController();
        const done = runDaemon(parseConfig(yaml, file, {}), { logger, signal: controller.signal, deliveryThreadFrom: 20, deliveryThreadIdleMs: 400 });
        try {
          await until(() => posted(hook).length === 40, "the catch-up posted");
          await until(() => logger.find(/^nothing to send for a while: notifications are sent from the main thread again/).length === 1, "the move back");
          await dovecot.append("alice", "INBOX", mail(200));
          await until(() => posted(hook).length === 41, "new mail posted from the main thread");
        } finally {
          controller.abort();
          await done;
          receiver.setDefault(slackReplies.ok());
        }
        assert.equal(logger.find(/^a big catch-up: sending notifications from a thread of their own while it lasts$/).length, 1);
        assert.deepEqual(posted(hook).toSorted(), [...waiting, 200].map((n) => `auto-${n}@x`).toSorted(), "each once");
      });
    }
  });
}

describe("the daemon's delivery thread", () => {
  it("dies: the daemon stops with an internal error (exit 70) once its watchers stopped; nothing queued is lost and the state lock is released", async () => {
    const statePath = path.join(dir, "dies.db");
    const queued = State.open(statePath);
    queued.outbox.enqueue(rows(3));
    queued.close();
    const entry = path.join(dir, "dying-worker.mjs");
    writeFileSync(entry, `import { parentPort } from "node:worker_threads";
      parentPort.postMessage({ type: "ready" });
      parentPort.on("message", (m) => { if (m.type === "start") setTimeout(() => { throw new Error("boom in the thread"); }, 200); });`);
    // Nothing listens there: the watcher retries its connection, and only the thread can end the run.
    const yaml = `state: ${statePath}
outbox: { thread: own }
accounts:
  - { name: a, host: 127.0.0.1, port: 9, tls: none, user: u, pass: p }
targets:
  - { name: hook, type: webhook, url: "${receiver.url("/hook")}" }
rules:
  - { name: r, notify: [hook] }
`;
    const logger = new CaptureLogger();
    const run = runDaemon(parseConfig(yaml, path.join(dir, "mailbell.yaml"), {}), { logger, signal: new AbortController().signal, deliveryWorkerFile: pathToFileURL(entry) });
    await assert.rejects(run, (err: unknown) => err instanceof InternalError && err.code === "INTERNAL" && /the delivery thread failed: boom in the thread/.test(err.message));
    assert.equal(logger.find(/^the delivery thread failed; nothing queued is lost/, "error").length, 1);
    assert.equal(existsSync(`${statePath}.lock`), false, "the lock is released");
    const after = State.open(statePath);
    try {
      assert.deepEqual(after.outbox.counts(), [{ target: "hook", state: "pending", count: 3 }]);
    } finally {
      after.close();
    }
  });
});

/**
 * The sender the test kills, as the daemon runs it (outbox.thread): the Dispatcher on the main
 * thread, or on its delivery thread with its own connection to the state file the main thread also
 * holds open; the state file's backlog to the receiver, 8 requests in flight (the webhook's own),
 * no pacing.
 */
function childScript(file: string, url: string, thread: "main" | "own"): string {
  const src = (p: string): string => JSON.stringify(new URL(`../src/${p}`, import.meta.url).href);
  const pacing = `new Map([["hook", { perSecond: Infinity, burst: 1000, overflow: "paced", digestAfter: 5 }]])`;
  const retry = `{ baseMs: 50, capMs: 500, maxAttempts: 10 }`;
  if (thread === "main") {
    return `
    import { Dispatcher } from ${src("outbox/dispatcher.ts")};
    import { State } from ${src("store/sqlite/state.ts")};
    import { WebhookTarget } from ${src("targets/webhook.ts")};
    import { silentLogger } from ${src("log.ts")};
    const state = State.open(${JSON.stringify(file)});
    const hook = new WebhookTarget({ name: "hook", type: "webhook", url: ${JSON.stringify(url)}, overflow: "paced", digestAfter: 5, concurrency: 8 });
    new Dispatcher({ outbox: state.outbox, targets: new Map([["hook", hook]]), pacing: ${pacing}, retry: ${retry}, logger: silentLogger }).start();
  `;
  }
  return `
    import { startDeliveryThread } from ${src("daemon/delivery-thread.ts")};
    import { State } from ${src("store/sqlite/state.ts")};
    import { targetSchema } from ${src("targets/index.ts")};
    import { silentLogger } from ${src("log.ts")};
    const state = State.open(${JSON.stringify(file)});
    const targets = [targetSchema.parse({ name: "hook", type: "webhook", url: ${JSON.stringify(url)} })];
    const thread = await startDeliveryThread({ statePath: ${JSON.stringify(file)}, targets, pacing: ${pacing}, retry: ${retry}, logger: silentLogger });
    thread.start();
    setInterval(() => state.outbox.counts(), 1000);
  `;
}
