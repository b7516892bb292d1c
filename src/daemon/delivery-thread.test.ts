import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import { InternalError, type MailbellError } from "../errors.ts";
import type { DeliveryOutcome, TargetPacing } from "../outbox/dispatcher.ts";
import type { NewOutboxRow } from "../outbox/store.ts";
import { State } from "../store/sqlite/state.ts";
import { targetSchema, type TargetConfig } from "../targets/index.ts";
import { CaptureLogger } from "../../test/support/logger.ts";
import { slackReplies, startReceiver, type Receiver } from "../../test/support/receiver.ts";
import { sampleNotification } from "../../test/support/targets.ts";
import { startDeliveryThread } from "./delivery-thread.ts";

let receiver: Receiver;
let dir: string;
before(async () => {
  receiver = await startReceiver();
  dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-delivery-thread-"));
});
after(async () => {
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
});

const pacing = new Map<string, TargetPacing>([["hook", { perSecond: Infinity, burst: 1000, overflow: "paced", digestAfter: 5 }]]);
const retry = { baseMs: 50, capMs: 500, maxAttempts: 10 };
const hook = (): TargetConfig[] => [targetSchema.parse({ name: "hook", type: "webhook", url: receiver.url("/hook") })];

function stateWith(file: string, count: number): void {
  const state = State.open(file);
  state.outbox.enqueue(
    Array.from({ length: count }, (_, i): NewOutboxRow => {
      const mail = { rule: "r", account: "a", mailbox: "INBOX", uidValidity: 1, uid: i + 1, messageId: `m${i + 1}@x`, subject: `s${i + 1}` };
      return { target: "hook", ...mail, notification: sampleNotification(mail) };
    }),
  );
  state.close();
}

function pending(file: string): number {
  const state = State.open(file);
  try {
    return state.outbox.counts().reduce((n, c) => n + (c.state === "pending" ? c.count : 0), 0);
  } finally {
    state.close();
  }
}

describe("delivery thread", () => {
  it("sends the state file's rows from its own thread: outcomes in batches, log lines through the caller's logger, drain, stop", async () => {
    receiver.clear();
    receiver.setDefault(slackReplies.ok());
    const file = path.join(dir, "send.db");
    stateWith(file, 40);
    const logger = new CaptureLogger();
    const outcomes: [string, DeliveryOutcome, number][] = [];
    const thread = await startDeliveryThread({ statePath: file, targets: hook(), pacing, retry, logger, onOutcome: (...o) => outcomes.push(o) });
    try {
      thread.start();
      thread.kick(["hook"]);
      assert.deepEqual(await thread.drain(10_000), { left: 0 });
    } finally {
      await thread.stop();
    }
    assert.equal(pending(file), 0);
    assert.equal(new Set(receiver.requests.map((r) => r.headers["idempotency-key"])).size, 40);
    assert.equal(outcomes.reduce((n, [target, outcome, rows]) => n + (target === "hook" && outcome === "delivered" ? rows : 0), 0), 40);
    assert.ok(outcomes.length < 40, `${outcomes.length} outcome messages for 40 rows: batched`);
    const delivered = logger.find(/^delivered$/, "info");
    assert.equal(delivered.length, 40);
    assert.deepEqual(Object.keys(delivered[0]!.fields).sort(), ["account", "id", "mailbox", "rows", "rule", "target", "uid"]);
    assert.equal(delivered[0]!.fields.target, "hook");
  });

  it("a drain whose deadline passes leaves the rows the service has not taken pending, for the next start", async () => {
    receiver.clear();
    receiver.setDefault({ status: 200, headers: { "content-type": "text/plain" }, body: "ok", delayMs: 400 });
    const file = path.join(dir, "drain.db");
    stateWith(file, 30);
    const thread = await startDeliveryThread({ statePath: file, targets: hook(), pacing, retry, logger: new CaptureLogger() });
    try {
      thread.start();
      const started = performance.now();
      const { left } = await thread.drain(150);
      assert.ok(performance.now() - started < 2000, "the drain's deadline holds with requests in flight");
      assert.equal(left, 30, "nothing was answered before the deadline");
    } finally {
      await thread.stop();
      receiver.setDefault(slackReplies.ok());
    }
    assert.equal(pending(file), 30, "every row kept, none dead");
  });

  it("a state file the thread cannot open fails its start with the StateError an open on the main thread gives", async () => {
    const notAFolder = path.join(dir, "a-file");
    writeFileSync(notAFolder, "");
    await assert.rejects(
      startDeliveryThread({ statePath: path.join(notAFolder, "state.db"), targets: hook(), pacing, retry, logger: new CaptureLogger() }),
      (err: MailbellError) => err.code === "STATE" && err.name === "StateError" && /cannot write the state database .*a-file is a file, not a folder/.test(err.message),
    );
  });

  it("a thread that dies is reported once, as an InternalError the run ends with; what waits on it is rejected", async () => {
    const file = path.join(dir, "dies.db");
    stateWith(file, 1);
    const entry = path.join(dir, "dying-worker.mjs");
    writeFileSync(entry, `import { parentPort } from "node:worker_threads";
      parentPort.postMessage({ type: "ready" });
      parentPort.on("message", (m) => { if (m.type === "start") throw new Error("boom in the thread"); });`);
    const logger = new CaptureLogger();
    const failures: MailbellError[] = [];
    const thread = await startDeliveryThread({ statePath: file, targets: hook(), pacing, retry, logger, workerFile: pathToFileURL(entry), onFailure: (e) => failures.push(e) });
    const drained = thread.drain(60_000);
    thread.start();
    await assert.rejects(drained, /boom in the thread/);
    await thread.stop();
    assert.equal(failures.length, 1);
    assert.ok(failures[0] instanceof InternalError);
    assert.match(failures[0].message, /the delivery thread failed: boom in the thread/);
    assert.equal(logger.find(/^the delivery thread failed; nothing queued is lost/, "error").length, 1);
    assert.equal(pending(file), 1);
  });
});
