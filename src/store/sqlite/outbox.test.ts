import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NewOutboxRow } from "./outbox.ts";
import { State } from "./state.ts";

function row(n: number): NewOutboxRow {
  return { target: "t", rule: "r", account: "a", mailbox: "INBOX", uidValidity: 1, uid: n, messageId: `m${n}@x`, subject: `s${n}`, contentType: "text/plain", body: `body ${n}`, summary: `sum${n}` };
}
const id = (n: number) => `a/INBOX/1/${n}/r/t`;

describe("Outbox", () => {
  it("ready pages through due rows oldest first, skipping rows not yet due", () => {
    const { outbox } = State.open(":memory:");
    outbox.enqueue([row(1), row(2), { ...row(3), notBefore: 5000 }, row(4), row(5)], 1000);
    assert.deepEqual(outbox.ready("t", 2000, 2).map((r) => r.uid), [1, 2]);
    assert.deepEqual(outbox.ready("t", 2000, 100).map((r) => r.uid), [1, 2, 4, 5]);
    assert.deepEqual(outbox.ready("t", 6000, 100).map((r) => r.uid), [1, 2, 3, 4, 5]);
  });

  it("markDone of one row commits it on its own, and joins a transaction it is called in", () => {
    const state = State.open(":memory:");
    const { outbox } = state;
    outbox.enqueue([row(1), row(2), row(3)], 1000);
    outbox.markDone([id(1)], 2000);
    assert.deepEqual([outbox.get(id(1))!.state, outbox.get(id(1))!.attempts, outbox.get(id(1))!.updatedAt], ["done", 1, 2000]);
    assert.equal(state.db.isTransaction, false, "nothing left open");
    assert.throws(() =>
      state.transaction(() => {
        outbox.markDone([id(2)], 3000);
        throw new Error("rolled back");
      }),
    );
    assert.equal(outbox.get(id(2))!.state, "pending", "rolled back with the transaction around it");
    outbox.markDone([id(2), id(3)], 4000);
    assert.deepEqual(outbox.counts(), [{ target: "t", state: "done", count: 3 }]);
  });

  it("oldestPending: per target, when its oldest waiting row was queued; delivered and dead rows do not count", () => {
    const { outbox } = State.open(":memory:");
    assert.deepEqual(outbox.oldestPending(), []);
    outbox.enqueue([row(1), row(2)], 1000);
    outbox.enqueue([row(3), { ...row(4), target: "u" }], 5000);
    outbox.markDone([id(1)], 6000);
    outbox.markDead([id(2)], "answered 404", 6000);
    assert.deepEqual(outbox.oldestPending(), [
      { target: "t", createdAt: 5000 },
      { target: "u", createdAt: 5000 },
    ]);
    outbox.markDone([id(3), "a/INBOX/1/4/r/u"], 7000);
    assert.deepEqual(outbox.oldestPending(), []);
    // Put back by `mailbell outbox retry`, a dead row waits from then, not from the outage.
    assert.equal(outbox.requeue({ allDead: true }, 9000), 1);
    assert.deepEqual(outbox.oldestPending(), [{ target: "t", createdAt: 9000 }]);
  });

  it("markDone leaves a row that is no longer pending as it is", () => {
    const { outbox } = State.open(":memory:");
    outbox.enqueue([row(1)], 1000);
    outbox.markDead([id(1)], "answered 404", 2000);
    outbox.markDone([id(1)], 3000);
    assert.deepEqual([outbox.get(id(1))!.state, outbox.get(id(1))!.lastError], ["dead", "answered 404"]);
  });

  it("recent: the latest queued rows first, with their outcome and no payload or error text", () => {
    const { outbox } = State.open(":memory:");
    outbox.enqueue([row(1), row(2)], 1000);
    outbox.enqueue([row(3)], 1500);
    outbox.markDone([id(1)], 2000);
    outbox.markDead([id(2)], "POST https://hooks.slack.com/services/SECRET failed", 3000);
    const recent = outbox.recent(2);
    assert.deepEqual(recent, [
      { rule: "r", target: "t", subject: "s3", state: "pending", attempts: 0, createdAt: 1500, updatedAt: 1500 },
      { rule: "r", target: "t", subject: "s2", state: "dead", attempts: 1, createdAt: 1000, updatedAt: 3000 },
    ]);
    assert.doesNotMatch(JSON.stringify(outbox.recent(10)), /SECRET|body/);
  });
});
