import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { HealthSnapshot } from "./health.ts";
import { collectStatus, minimalHealth, statusLimits, totalsByRule, type StatusSources } from "./status-view.ts";

const mailbox = (account: string, healthy: boolean, state: HealthSnapshot["mailboxes"][number]["state"]) => ({ account, mailbox: "INBOX", state, connected: healthy, lastEventAt: 1, lastRoundTripAt: 1, reconnects: 0, lastError: null, healthy });

describe("collectStatus", () => {
  it("joins health with checkpoints, counts the outbox per target (configured ones too), and lists the latest notifications", () => {
    const sources: StatusSources = {
      health: () => ({ healthy: true, mailboxes: [mailbox("a", true, "idle"), mailbox("b", true, "idle")] }),
      checkpoints: { load: (account) => (account === "a" ? { uidValidity: 7, lastUid: 42, savedAt: 1000 } : undefined) },
      outbox: {
        counts: () => [
          { target: "team", state: "pending", count: 2 },
          { target: "team", state: "dead", count: 1 },
          { target: "team", state: "done", count: 5 },
          { target: "gone", state: "dead", count: 3 },
        ],
        oldestPending: () => [{ target: "team", createdAt: 900 }],
        recent: (limit) => [{ rule: "r", target: "team", subject: "s", state: "done" as const, attempts: 1, createdAt: 1, updatedAt: 2 }].slice(0, limit),
      },
      totals: { report: () => [] },
      targets: () => ["team", "quiet"],
      totalRules: () => [],
    };
    const view = collectStatus(sources, 5000);
    assert.equal(view.generatedAt, 5000);
    assert.deepEqual(view.mailboxes.map((m) => m.checkpoint), [{ uidValidity: 7, lastUid: 42, savedAt: 1000 }, null]);
    assert.deepEqual(view.outbox, [
      { target: "team", waiting: 2, dead: 1, sent: 5, oldestWaitingAt: 900 },
      { target: "quiet", waiting: 0, dead: 0, sent: 0, oldestWaitingAt: null },
      { target: "gone", waiting: 0, dead: 3, sent: 0, oldestWaitingAt: null },
    ]);
    assert.equal(view.notifications.length, 1);
  });
});

describe("totalsByRule", () => {
  it("groups per rule and currency, oldest period first, keeping the last periods; a configured rule with nothing counted is listed", () => {
    const months = Array.from({ length: statusLimits.periods + 2 }, (_, i) => `20${25 + Math.floor(i / 12)}-${String((i % 12) + 1).padStart(2, "0")}`);
    const rows = [
      ...months.map((period, i) => ({ rule: "play", period, currency: "JPY", amount: String(100 * (i + 1)), mails: 1 })).reverse(),
      { rule: "play", period: "2026-01", currency: "USD", amount: "1.50", mails: 1 },
      { rule: "old", period: "2024", currency: "EUR", amount: "3", mails: 2 },
    ];
    const totals = totalsByRule(rows, [
      { name: "play", per: "month" },
      { name: "new", per: "week" },
    ]);
    assert.deepEqual(
      totals.map((t) => [t.rule, t.per, t.currencies.map((c) => c.currency)]),
      [
        ["play", "month", ["JPY", "USD"]],
        ["new", "week", []],
        ["old", "", ["EUR"]],
      ],
    );
    const jpy = totals[0]!.currencies[0]!.periods;
    assert.equal(jpy.length, statusLimits.periods);
    assert.deepEqual(jpy.at(0), { period: months[2], amount: "300", mails: 1 });
    assert.deepEqual(jpy.at(-1), { period: months.at(-1), amount: String(100 * months.length), mails: 1 });
  });
});

describe("minimalHealth", () => {
  it("says up or down and why in counts, naming no account or mailbox", () => {
    assert.deepEqual(minimalHealth({ healthy: true, mailboxes: [mailbox("secret-account", true, "idle")] }), { healthy: true, why: "all 1 mailbox watching" });
    const down = minimalHealth({ healthy: false, mailboxes: [mailbox("secret-account", false, "connecting"), mailbox("b", false, "disconnected"), mailbox("c", true, "idle")] });
    assert.deepEqual(down, { healthy: false, why: "2 of 3 mailboxes unhealthy (1 connecting, 1 disconnected); the status page or the log says which and why" });
    assert.doesNotMatch(JSON.stringify(down), /secret-account|INBOX/);
  });
});
