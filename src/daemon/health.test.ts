import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ImapError } from "../errors.ts";
import { Health, type HealthEvent, type MailboxHealth } from "./health.ts";

const stale = 60_000;
const budget = 120_000;
const connected: HealthEvent = { type: "connected", uidValidity: 1, lastUid: 10 };
const refused = (message: string): HealthEvent => ({ type: "disconnected", error: new ImapError("IMAP_CONNECT", "a", "INBOX", message), retryInMs: 1000 });

function one(health: Health, now: number): MailboxHealth {
  const { mailboxes } = health.snapshot(now);
  assert.equal(mailboxes.length, 1);
  return mailboxes[0]!;
}

describe("Health", () => {
  it("reports a connected mailbox in full", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.register("a", "INBOX", 0);
    health.onEvent("a", "INBOX", { type: "connecting" }, 100);
    health.onEvent("a", "INBOX", connected, 200);
    health.onEvent("a", "INBOX", { type: "idle" }, 300);
    assert.deepEqual(health.snapshot(1000), {
      healthy: true,
      mailboxes: [{ account: "a", mailbox: "INBOX", state: "idle", connected: true, lastEventAt: 300, lastRoundTripAt: 300, reconnects: 0, lastError: null, healthy: true }],
    });
  });

  it("gives a mailbox that never connects the reconnect budget, counted from registration", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.register("a", "INBOX", 1000);
    assert.equal(one(health, 1000 + budget - 1).healthy, true);
    health.onEvent("a", "INBOX", { type: "connecting" }, 5000);
    health.onEvent("a", "INBOX", refused("connect ECONNREFUSED 127.0.0.1:993"), 6000);
    const late = one(health, 1000 + budget);
    assert.equal(late.healthy, false);
    assert.equal(late.reason, "has not connected for 120 s (reconnect budget 120 s), now disconnected; last error: connect ECONNREFUSED 127.0.0.1:993");
    assert.equal(health.snapshot(1000 + budget).healthy, false);
  });

  it("starts the budget at the first time it sees when registered without one", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.register("a", "INBOX");
    assert.equal(one(health, 50_000).healthy, true);
    assert.equal(one(health, 50_000 + budget - 1).healthy, true);
    assert.equal(one(health, 50_000 + budget).healthy, false);
  });

  it("tolerates a brief blip but not a long outage", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.register("a", "INBOX", 0);
    health.onEvent("a", "INBOX", connected, 0);
    health.onEvent("a", "INBOX", { type: "idle" }, 10_000);
    health.onEvent("a", "INBOX", refused("socket hang up"), 20_000);
    health.onEvent("a", "INBOX", { type: "connecting" }, 21_000);
    let m = one(health, 22_000);
    assert.deepEqual([m.state, m.connected, m.healthy, m.reconnects, m.lastError], ["connecting", false, true, 1, "socket hang up"]);

    health.onEvent("a", "INBOX", connected, 23_000);
    m = one(health, 23_000);
    assert.deepEqual([m.healthy, m.reconnects, m.lastError], [true, 1, "socket hang up"], "the last error stays visible after recovery");

    health.onEvent("a", "INBOX", { type: "disconnected", error: undefined, retryInMs: 1000 }, 30_000);
    for (let t = 31_000; t < 30_000 + budget; t += 10_000) {
      health.onEvent("a", "INBOX", { type: "connecting" }, t);
      health.onEvent("a", "INBOX", refused("connect ETIMEDOUT"), t + 5000);
    }
    assert.equal(one(health, 30_000 + budget - 1).healthy, true, "repeated failures do not restart the budget");
    m = one(health, 30_000 + budget);
    assert.equal(m.healthy, false);
    assert.match(m.reason!, /^has had no working connection for 120 s \(reconnect budget 120 s\), now disconnected; last error: connect ETIMEDOUT$/);
    assert.equal(m.reconnects, 14, "two earlier disconnects and twelve failed attempts");
  });

  it("says 'connection closed' when a disconnect carries no error", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.onEvent("a", "INBOX", connected, 0);
    health.onEvent("a", "INBOX", { type: "disconnected", error: undefined, retryInMs: 1000 }, 1);
    assert.equal(one(health, 2).lastError, "connection closed");
  });

  it("marks a connection stale when the server stops answering, and alive/polling refresh it", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.onEvent("a", "INBOX", connected, 0);
    health.onEvent("a", "INBOX", { type: "idle" }, 0);
    assert.equal(one(health, stale - 1).healthy, true);
    const m = one(health, stale);
    assert.equal(m.healthy, false);
    assert.equal(m.connected, true);
    assert.equal(m.reason, "connected, but the server has not answered for 60 s (limit 60 s); the connection may be dead without having closed");

    health.onEvent("a", "INBOX", { type: "alive" }, stale + 1000);
    assert.equal(one(health, stale + 1000).healthy, true);
    assert.equal(one(health, stale + 1000).lastRoundTripAt, stale + 1000);
    assert.equal(one(health, stale + 1000).state, "idle", "alive is a round trip, not a state change");

    health.onEvent("a", "INBOX", { type: "polling", intervalMs: 30_000 }, 2 * stale);
    assert.equal(one(health, 2 * stale + 1000).lastRoundTripAt, 2 * stale);
  });

  it("counts the reconnect budget from when a stale connection stopped being healthy", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.onEvent("a", "INBOX", connected, 0);
    // A blackholed link: silent for minutes before TCP gives up.
    health.onEvent("a", "INBOX", refused("connection timed out"), 200_000);
    const m = one(health, 200_000);
    assert.equal(m.healthy, false, "a dead link that took long to fail does not get a fresh budget");
    assert.match(m.reason!, /no working connection for 140 s/);

    const quick = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    quick.onEvent("a", "INBOX", connected, 0);
    quick.onEvent("a", "INBOX", refused("reset"), 30_000);
    assert.equal(one(quick, 30_000 + budget - 1).healthy, true, "a fresh connection gets the whole budget from the moment it failed");
    assert.equal(one(quick, 30_000 + budget).healthy, false);
  });

  it("ignores event types it does not know, and uidvalidity changes leave the connection alone", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.onEvent("a", "INBOX", connected, 0);
    health.onEvent("a", "INBOX", { type: "something-new" } as unknown as HealthEvent, 50_000);
    let m = one(health, 50_000);
    assert.deepEqual([m.state, m.lastEventAt, m.lastRoundTripAt], ["connected", 0, 0]);

    health.onEvent("a", "INBOX", { type: "uidvalidity-changed", previous: 1, current: 2 }, 55_000);
    m = one(health, 55_000);
    assert.deepEqual([m.state, m.lastEventAt, m.lastRoundTripAt], ["connected", 55_000, 0]);
    assert.equal(one(health, stale).healthy, false, "it is not a round trip");
  });

  it("is healthy only when every mailbox is, and keeps registration order", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    assert.deepEqual(health.snapshot(0), { healthy: true, mailboxes: [] }, "nothing to watch is not a failure");
    health.register("b", "INBOX", 0);
    health.register("a", "Work", 0);
    health.register("b", "INBOX", 99_999);
    health.onEvent("b", "INBOX", connected, 1000);
    health.onEvent("a", "Work", connected, 1000);
    assert.equal(health.snapshot(2000).healthy, true);
    assert.deepEqual(
      health.snapshot(2000).mailboxes.map((m) => `${m.account}/${m.mailbox}`),
      ["b/INBOX", "a/Work"],
    );
    health.onEvent("a", "Work", refused("bye"), 3000);
    assert.equal(health.snapshot(3000 + budget).healthy, false);
    assert.deepEqual(
      health.snapshot(3000 + budget).mailboxes.map((m) => m.healthy),
      [false, false],
      "b went stale meanwhile",
    );
    health.onEvent("b", "INBOX", { type: "alive" }, 3000 + budget);
    assert.deepEqual(
      health.snapshot(3000 + budget).mailboxes.map((m) => m.healthy),
      [true, false],
    );
  });

  it("keeps mailboxes whose names contain separators apart", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.register("a:b", "c", 0);
    health.register("a", "b:c", 0);
    assert.equal(health.snapshot(0).mailboxes.length, 2);
  });

  it("rejects budgets that are not positive", () => {
    assert.throws(() => new Health({ staleAfterMs: 0, reconnectBudgetMs: budget }), /staleAfterMs must be a positive number of milliseconds, got 0/);
    assert.throws(() => new Health({ staleAfterMs: stale, reconnectBudgetMs: Number.NaN }), /reconnectBudgetMs must be a positive number of milliseconds, got NaN/);
  });
});
