import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ImapError, StateError } from "../errors.ts";
import { Health, type HealthEvent, type MailboxHealth } from "./health.ts";

const stale = 60_000;
const budget = 120_000;
const connected: HealthEvent = { type: "connected", uidValidity: 1, lastUid: 10 };
const idle: HealthEvent = { type: "idle" };
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
    health.onEvent("a", "INBOX", idle, 23_000);
    m = one(health, 23_000);
    assert.deepEqual([m.healthy, m.reconnects, m.lastError], [true, 1, "socket hang up"], "the last error stays visible after recovery");

    // Up for longer than the 60 s that count as stable: the blip is behind it.
    health.onEvent("a", "INBOX", { type: "alive" }, 85_000);
    health.onEvent("a", "INBOX", { type: "disconnected", error: undefined, retryInMs: 1000 }, 90_000);
    for (let t = 91_000; t < 90_000 + budget; t += 10_000) {
      health.onEvent("a", "INBOX", { type: "connecting" }, t);
      health.onEvent("a", "INBOX", refused("connect ETIMEDOUT"), t + 5000);
    }
    assert.equal(one(health, 90_000 + budget - 1).healthy, true, "repeated failures do not restart the budget");
    m = one(health, 90_000 + budget);
    assert.equal(m.healthy, false);
    assert.match(m.reason!, /^has not been watching for 120 s \(reconnect budget 120 s\), now disconnected; last error: connect ETIMEDOUT$/);
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
    health.onEvent("a", "INBOX", idle, 0);
    assert.equal(one(health, stale - 1).healthy, true);
    const m = one(health, stale);
    assert.equal(m.healthy, false);
    assert.equal(m.connected, true);
    assert.equal(m.reason, "watching, but the server has not answered for 60 s (limit 60 s); the connection may be dead without having closed");

    health.onEvent("a", "INBOX", { type: "alive" }, stale + 1000);
    assert.equal(one(health, stale + 1000).healthy, true);
    assert.equal(one(health, stale + 1000).lastRoundTripAt, stale + 1000);
    assert.equal(one(health, stale + 1000).state, "idle", "alive is a round trip, not a state change");

    health.onEvent("a", "INBOX", { type: "polling", intervalMs: 30_000 }, 2 * stale);
    assert.equal(one(health, 2 * stale + 1000).lastRoundTripAt, 2 * stale);
  });

  it("counts the reconnect budget from when a stale connection stopped being healthy", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.onEvent("a", "INBOX", idle, 0);
    // A blackholed link: silent for minutes before TCP gives up.
    health.onEvent("a", "INBOX", refused("connection timed out"), 200_000);
    const m = one(health, 200_000);
    assert.equal(m.healthy, false, "a dead link that took long to fail does not get a fresh budget");
    assert.match(m.reason!, /not been watching for 140 s/);

    const quick = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    quick.onEvent("a", "INBOX", idle, 0);
    quick.onEvent("a", "INBOX", refused("reset"), 30_000);
    assert.equal(one(quick, 30_000 + budget - 1).healthy, true, "a fresh connection gets the whole budget from the moment it failed");
    assert.equal(one(quick, 30_000 + budget).healthy, false);
  });

  it("ignores event types it does not know, and uidvalidity changes leave the connection alone", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.onEvent("a", "INBOX", idle, 0);
    health.onEvent("a", "INBOX", { type: "something-new" } as unknown as HealthEvent, 50_000);
    let m = one(health, 50_000);
    assert.deepEqual([m.state, m.lastEventAt, m.lastRoundTripAt], ["idle", 0, 0]);

    health.onEvent("a", "INBOX", { type: "uidvalidity-changed", previous: 1, current: 2 }, 55_000);
    m = one(health, 55_000);
    assert.deepEqual([m.state, m.lastEventAt, m.lastRoundTripAt], ["idle", 55_000, 0]);
    assert.equal(one(health, stale).healthy, false, "it is not a round trip");
  });

  it("is healthy only when every mailbox is, and keeps registration order", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    assert.deepEqual(health.snapshot(0), { healthy: true, mailboxes: [] }, "nothing to watch is not a failure");
    health.register("b", "INBOX", 0);
    health.register("a", "Work", 0);
    health.register("b", "INBOX", 99_999);
    health.onEvent("b", "INBOX", idle, 1000);
    health.onEvent("a", "Work", idle, 1000);
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

  it("counts a mailbox as up only once it is watching, not when a session is merely connected", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.register("a", "INBOX", 0);
    // A server that lets every session connect, then fails it before IDLE (the UIDNEXT loop).
    for (let t = 1000; t < 2 * budget; t += 5000) {
      health.onEvent("a", "INBOX", { type: "connecting" }, t);
      health.onEvent("a", "INBOX", connected, t + 100);
      health.onEvent("a", "INBOX", refused("NOT NULL constraint failed"), t + 200);
    }
    const m = one(health, budget);
    assert.equal(m.healthy, false);
    assert.equal(m.connected, false);
    assert.match(m.reason!, /^has not connected|^has not been watching for 120 s/);
    health.onEvent("a", "INBOX", connected, 2 * budget);
    assert.equal(one(health, 2 * budget).healthy, false, "connected is not watching");
    health.onEvent("a", "INBOX", idle, 2 * budget);
    assert.equal(one(health, 2 * budget).connected, true);
  });

  it("stays unhealthy while every session fails soon after IDLE, until one has lasted 60 s", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.register("a", "INBOX", 0);
    let t = 0;
    const healthySeen: boolean[] = [];
    // Sessions that reach IDLE and are dropped 2 s later, with a growing backoff between them.
    for (let wait = 1000; t < 3 * budget; wait = Math.min(wait * 2, 30_000)) {
      health.onEvent("a", "INBOX", connected, t);
      health.onEvent("a", "INBOX", idle, t);
      if (t >= budget + 1000) healthySeen.push(one(health, t + 1000).healthy);
      health.onEvent("a", "INBOX", refused("connection closed at IDLE"), t + 2000);
      if (t >= budget + 1000) healthySeen.push(one(health, t + 2500).healthy);
      t += 2000 + wait;
    }
    assert.ok(healthySeen.length > 4);
    assert.deepEqual(new Set(healthySeen), new Set([false]), "never flips back to healthy between two failures");
    assert.match(one(health, t).reason!, /has not been watching/);
    // Then the server is fixed: a session stays up.
    health.onEvent("a", "INBOX", idle, t);
    health.onEvent("a", "INBOX", { type: "alive" }, t + 30_000);
    let m = one(health, t + 30_000);
    assert.equal(m.healthy, false);
    assert.match(m.reason!, /^sessions keep failing: \d+ failed in the last .* and the current one has been up 30 s of the 60 s that count as stable/);
    health.onEvent("a", "INBOX", { type: "alive" }, t + 60_000);
    m = one(health, t + 60_000);
    assert.equal(m.healthy, true, m.reason);
    // And a single clean reconnect later is within the budget again.
    health.onEvent("a", "INBOX", refused("bye"), t + 70_000);
    health.onEvent("a", "INBOX", idle, t + 71_000);
    assert.equal(one(health, t + 72_000).healthy, true);
  });

  it("a first start that connects ends its trouble at once; a short budget shortens the settling", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: 2000 });
    health.register("a", "INBOX", 0);
    health.onEvent("a", "INBOX", connected, 500);
    health.onEvent("a", "INBOX", idle, 500);
    assert.equal(one(health, 10_000).healthy, true);
    health.onEvent("a", "INBOX", refused("kicked"), 20_000);
    health.onEvent("a", "INBOX", idle, 21_000);
    assert.equal(one(health, 22_500).healthy, false, "up 1.5 s of the 2 s that count as stable with a 2 s budget");
    assert.equal(one(health, 23_000).healthy, true);
  });

  it("counts a settled session that is reading mail (a long catch-up) as up", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: 2000 });
    health.register("a", "INBOX", 0);
    health.onEvent("a", "INBOX", connected, 100);
    for (let t = 1000; t <= 10_000; t += 1000) health.onEvent("a", "INBOX", { type: "alive" }, t);
    const m = one(health, 10_000);
    assert.deepEqual([m.state, m.connected, m.healthy], ["reading", true, true]);
    health.onEvent("a", "INBOX", idle, 11_000);
    assert.equal(one(health, 11_000).state, "idle");
  });

  it("marks mailbell's own failure (state database, bug) unhealthy at once, until a session settles", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.onEvent("a", "INBOX", idle, 0);
    health.onEvent("a", "INBOX", { type: "failed", error: new StateError("could not save the checkpoint: disk I/O error"), retryInMs: 5000 }, 1000);
    const m = one(health, 1000);
    assert.equal(m.healthy, false);
    assert.equal(m.state, "failed");
    assert.match(m.reason!, /^mailbell's own error, not the server's .*disk I\/O error/);
    health.onEvent("a", "INBOX", { type: "connecting" }, 6000);
    health.onEvent("a", "INBOX", idle, 6500);
    assert.equal(one(health, 7000).healthy, false, "one session is not yet proof");
    health.onEvent("a", "INBOX", { type: "alive" }, 6500 + 60_000);
    assert.equal(one(health, 6500 + 60_000).healthy, true);
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

describe("Health after a config reload", () => {
  it("forgets a mailbox no longer watched, so it cannot hold /healthz down", () => {
    const health = new Health({ staleAfterMs: 10 * budget, reconnectBudgetMs: budget });
    health.register("a", "INBOX", 0);
    health.register("a", "Old", 0);
    health.onEvent("a", "INBOX", idle, 10);
    assert.equal(health.snapshot(budget + 1).healthy, false, "Old never connected");
    health.forget("a", "Old");
    assert.deepEqual(one(health, budget + 1).mailbox, "INBOX");
    assert.equal(health.snapshot(budget + 1).healthy, true);
  });

  it("takes new limits and keeps what each mailbox went through", () => {
    const health = new Health({ staleAfterMs: stale, reconnectBudgetMs: budget });
    health.register("a", "INBOX", 0);
    health.onEvent("a", "INBOX", idle, 0);
    assert.equal(one(health, 30_000).healthy, true);
    health.setLimits({ staleAfterMs: 20_000, reconnectBudgetMs: budget });
    assert.match(one(health, 30_000).reason ?? "", /has not answered for 30 s \(limit 20 s\)/);
  });
});
