/**
 * The double-post window (issue 13, item 4): a row is marked done as soon as its target can tell
 * success, not when the whole reply has been read. Real Dispatcher, targets and SQLite state
 * against a local receiver that sends the status line and headers at once and the body 500 ms
 * later; BENCHMARKS.md has the window measured (bench/commit-window.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { silentLogger } from "../src/log.ts";
import { Dispatcher } from "../src/outbox/dispatcher.ts";
import { outboxId, type NewOutboxRow, type OutboxRow } from "../src/store/sqlite/outbox.ts";
import { State } from "../src/store/sqlite/state.ts";
import { memoryTargetState } from "../src/targets/state.ts";
import { SlackApiTarget } from "../src/targets/slack.ts";
import type { Target } from "../src/targets/types.ts";
import { WebhookTarget } from "../src/targets/webhook.ts";
import { startReceiver, type Receiver, type Reply } from "./support/receiver.ts";
import { sampleNotification } from "./support/targets.ts";

const bodyAfterMs = 500;
let receiver: Receiver;
before(async () => {
  receiver = await startReceiver();
});
after(() => receiver.close());

const base = { overflow: "paced", digestAfter: 5 } as const;

interface Outcome {
  row: OutboxRow;
  /** ms from the receiver's status line to the row leaving "pending". */
  settledAfterMs: number;
}

/** Queues one notification for `target`, answers it with `reply`, and waits until the row is no longer pending. */
async function deliver(target: Target, reply: Reply): Promise<Outcome> {
  receiver.clear();
  receiver.reply(reply);
  const state = State.open(":memory:");
  const payload = target.render(sampleNotification());
  const row: NewOutboxRow = { target: target.name, rule: "r", account: "a", mailbox: "INBOX", uidValidity: 1, uid: 1, messageId: "m@x", subject: "s", contentType: payload.contentType, body: payload.body, summary: "s" };
  state.outbox.enqueue([row]);
  const id = outboxId(row);
  const dispatcher = new Dispatcher({
    outbox: state.outbox,
    targets: new Map([[target.name, target]]),
    pacing: new Map([[target.name, { perSecond: 10, burst: 10, overflow: "paced", digestAfter: 5 }]]),
    retry: { baseMs: 60_000, capMs: 60_000, maxAttempts: 5 },
    logger: silentLogger,
  });
  dispatcher.start();
  try {
    for (const until = Date.now() + 5000; state.outbox.get(id)!.state === "pending" && state.outbox.get(id)!.attempts === 0; await new Promise((r) => setTimeout(r, 2))) {
      assert.ok(Date.now() < until, "the row was never settled");
    }
    const settledAt = process.hrtime.bigint();
    const answeredAt = receiver.requests[0]?.answeredAt;
    assert.ok(answeredAt !== undefined, "the receiver answered");
    return { row: state.outbox.get(id)!, settledAfterMs: Number(settledAt - answeredAt) / 1e6 };
  } finally {
    await dispatcher.stop();
    state.close();
  }
}

describe("a row is marked done as soon as the target can tell success", () => {
  it("webhook: done at the 2xx status line, long before the reply's body arrives", async () => {
    const hook = new WebhookTarget({ ...base, name: "hook", type: "webhook", url: receiver.url("/hook") });
    const { row, settledAfterMs } = await deliver(hook, { status: 200, headers: { "content-type": "text/plain" }, body: "ok", bodyAfterMs });
    assert.equal(row.state, "done");
    assert.ok(settledAfterMs < bodyAfterMs / 2, `done ${settledAfterMs.toFixed(1)} ms after the status line; the body came ${bodyAfterMs} ms after it`);
  });

  const slack = (): SlackApiTarget => new SlackApiTarget({ ...base, name: "slack", type: "slack", token: "xoxb-test", channel: "#c", apiUrl: receiver.url("/api") }, memoryTargetState());
  const json = (value: unknown): Reply => ({ status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify(value), bodyAfterMs });

  it("Slack Web API: a 200 whose late body says ok:false is still a failure", async () => {
    const { row } = await deliver(slack(), json({ ok: false, error: "channel_not_found" }));
    assert.equal(row.state, "dead");
    assert.match(row.lastError ?? "", /ok:false "channel_not_found"/);
  });

  it("Slack Web API: ok:true is known only from the body, so done waits for it", async () => {
    const { row, settledAfterMs } = await deliver(slack(), json({ ok: true, channel: "C1", ts: "1700000000.000100" }));
    assert.equal(row.state, "done");
    assert.ok(settledAfterMs >= bodyAfterMs - 50, `done ${settledAfterMs.toFixed(1)} ms after the status line`);
  });
});
