import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ImapError, StateError } from "../errors.ts";
import { Health } from "./health.ts";
import { createMailbellMetrics, Metrics } from "./metrics.ts";

describe("Metrics", () => {
  it("renders counters and gauges in exposition format 0.0.4, sorted", () => {
    const registry = new Metrics();
    const requests = registry.counter("zz_requests_total", "Requests.", ["path", "code"]);
    const temp = registry.gauge("aa_temperature", "Temperature.");
    requests.inc({ path: "/b", code: "200" });
    requests.inc({ code: "500", path: "/a" }, 2);
    requests.inc({ path: "/a", code: "200" });
    requests.inc({ path: "/a", code: "200" }, 0.5);
    temp.set({}, -3.25);
    registry.gaugeFn("mm_queue", "Queue depth.", ["q"], () => [
      { labels: { q: "b" }, value: 2 },
      { labels: { q: "a" }, value: 0 },
    ]);
    registry.counter("nn_unused_total", "Declared, never used.");
    assert.equal(
      registry.render(),
      [
        "# HELP aa_temperature Temperature.",
        "# TYPE aa_temperature gauge",
        "aa_temperature -3.25",
        "# HELP mm_queue Queue depth.",
        "# TYPE mm_queue gauge",
        'mm_queue{q="a"} 0',
        'mm_queue{q="b"} 2',
        "# HELP nn_unused_total Declared, never used.",
        "# TYPE nn_unused_total counter",
        "# HELP zz_requests_total Requests.",
        "# TYPE zz_requests_total counter",
        'zz_requests_total{path="/a",code="200"} 1.5',
        'zz_requests_total{path="/a",code="500"} 2',
        'zz_requests_total{path="/b",code="200"} 1',
        "",
      ].join("\n"),
    );
  });

  it("escapes label values and help text", () => {
    const registry = new Metrics();
    registry.gauge("g", 'Back\\slash and\nnewline, "quotes" kept.', ["v"]).set({ v: 'a\\b"c\nd' }, 1);
    assert.equal(registry.render(), ['# HELP g Back\\\\slash and\\nnewline, "quotes" kept.', "# TYPE g gauge", 'g{v="a\\\\b\\"c\\nd"} 1', ""].join("\n"));
  });

  it("writes special values the way Prometheus reads them", () => {
    const registry = new Metrics();
    const g = registry.gauge("g", "x", ["k"]);
    g.set({ k: "a" }, Number.NaN);
    g.set({ k: "b" }, Infinity);
    g.set({ k: "c" }, -Infinity);
    g.set({ k: "d" }, 1e21);
    assert.equal(registry.render().split("\n").slice(2).join("\n"), 'g{k="a"} NaN\ng{k="b"} +Inf\ng{k="c"} -Inf\ng{k="d"} 1e+21\n');
  });

  it("renders nothing for an empty registry", () => {
    assert.equal(new Metrics().render(), "");
  });

  it("rejects mistakes with messages that say what is valid", () => {
    const registry = new Metrics();
    const c = registry.counter("c_total", "x", ["a"]);
    assert.throws(() => c.inc({}), /metric c_total: got labels \{\} but it takes exactly \{a\}/);
    assert.throws(() => c.inc({ a: "1", b: "2" }), /got labels \{a, b\} but it takes exactly \{a\}/);
    assert.throws(() => c.inc({ a: "1" }, -1), /a counter only goes up/);
    assert.throws(() => registry.counter("c_total", "again"), /declared twice/);
    assert.throws(() => registry.gauge("1bad", "x"), /metric name "1bad" is not valid/);
    assert.throws(() => registry.gauge("ok", "x", ["__reserved"]), /label name "__reserved" is not valid/);
    assert.throws(() => registry.gauge("ok2", "x", ["a", "a"]), /label a is listed twice/);
  });

  it("fails the scrape when a callback reports bad or duplicate series", () => {
    const bad = new Metrics();
    bad.gaugeFn("g", "x", ["k"], () => [{ labels: { wrong: "1" }, value: 1 }]);
    assert.throws(() => bad.render(), /metric g: got labels \{wrong\} but it takes exactly \{k\}/);
    const twice = new Metrics();
    twice.gaugeFn("g", "x", ["k"], () => [
      { labels: { k: "1" }, value: 1 },
      { labels: { k: "1" }, value: 2 },
    ]);
    assert.throws(() => twice.render(), /two samples have the same labels \{k="1"\}/);
  });
});

describe("createMailbellMetrics", () => {
  it("declares mailbell's metrics, reading state at scrape time", () => {
    const health = new Health({ staleAfterMs: 60_000, reconnectBudgetMs: 120_000 });
    health.register("personal", "INBOX", 0);
    health.register("work", "Billing", 0);
    health.onEvent("personal", "INBOX", { type: "connected", uidValidity: 1, lastUid: 5 }, 1000);
    health.onEvent("personal", "INBOX", { type: "idle" }, 2000);
    let now = 12_500;
    let outbox = [
      { target: "slack", state: "pending", count: 3 },
      { target: "hook", state: "dead", count: 1 },
    ];
    const registry = new Metrics();
    const metrics = createMailbellMetrics(registry, {
      health: () => health.snapshot(now),
      outboxRows: () => outbox,
      outboxOldestPending: () => outbox.filter((r) => r.state === "pending").map((r) => ({ target: r.target, createdAt: 2500 })),
      now: () => now,
      known: { mailboxes: [{ account: "personal", mailbox: "INBOX" }], rules: ["receipts"], targets: ["slack"] },
    });
    metrics.mailProcessed("personal", "INBOX");
    metrics.mailProcessed("personal", "INBOX");
    metrics.ruleMatched("receipts");
    metrics.ruleMatched("big-spend");
    metrics.delivery("slack", "delivered");
    metrics.delivery("hook", "retry");
    metrics.delivery("slack", "delivered", 4);
    metrics.sessionFailed("work", "Billing", undefined);
    metrics.sessionFailed("work", "Billing", new ImapError("IMAP_SERVER", "work", "Billing", "no UIDVALIDITY"));
    metrics.sessionFailed("work", "Billing", new ImapError("IMAP_SERVER", "work", "Billing", "no UIDVALIDITY"));
    metrics.sessionFailed("work", "Billing", new StateError("disk full"));
    metrics.mailUnverified("receipts", "not_aligned");
    metrics.mailActions("personal", "INBOX", "done", 3);
    metrics.mailActions("personal", "INBOX", "refused", 2, "move");
    metrics.mailActions("personal", "INBOX", "given_up", 1);

    assert.equal(
      registry.render(),
      [
        "# HELP mailbell_deliveries_total Outbox rows sent by target and outcome: delivered, retry (failed, will be tried again) or dead (given up).",
        "# TYPE mailbell_deliveries_total counter",
        'mailbell_deliveries_total{target="hook",outcome="retry"} 1',
        'mailbell_deliveries_total{target="slack",outcome="dead"} 0',
        'mailbell_deliveries_total{target="slack",outcome="delivered"} 5',
        'mailbell_deliveries_total{target="slack",outcome="retry"} 0',
        "# HELP mailbell_mail_action_refusals_total Mails an action of the rules (then:) was refused for, by action: seen, flag, label or move; each refusal is logged at warn with the server's reason.",
        "# TYPE mailbell_mail_action_refusals_total counter",
        'mailbell_mail_action_refusals_total{account="personal",mailbox="INBOX",action="move"} 2',
        "# HELP mailbell_mail_actions_total Mails the rules' actions (then:) were done to, by result: done, refused (the server said no; tried again later, and each refused try counts) or given_up (the mail left the mailbox before it could be done).",
        "# TYPE mailbell_mail_actions_total counter",
        'mailbell_mail_actions_total{account="personal",mailbox="INBOX",result="done"} 3',
        'mailbell_mail_actions_total{account="personal",mailbox="INBOX",result="given_up"} 1',
        'mailbell_mail_actions_total{account="personal",mailbox="INBOX",result="refused"} 2',
        "# HELP mailbell_mailbox_last_event_age_seconds Seconds since the watcher last reported anything for the mailbox; absent before its first event.",
        "# TYPE mailbell_mailbox_last_event_age_seconds gauge",
        'mailbell_mailbox_last_event_age_seconds{account="personal",mailbox="INBOX"} 10.5',
        "# HELP mailbell_mailbox_up 1 when the mailbox is really watched (checkpoint settled, in IDLE or polling), 0 otherwise.",
        "# TYPE mailbell_mailbox_up gauge",
        'mailbell_mailbox_up{account="personal",mailbox="INBOX"} 1',
        'mailbell_mailbox_up{account="work",mailbox="Billing"} 0',
        "# HELP mailbell_mails_processed_total Mails read from the mailbox and run through the rules.",
        "# TYPE mailbell_mails_processed_total counter",
        'mailbell_mails_processed_total{account="personal",mailbox="INBOX"} 2',
        "# HELP mailbell_mails_set_aside_total Mails that could not be read after watch.maxReadAttempts tries and were set aside (see mailbell unreadable).",
        "# TYPE mailbell_mails_set_aside_total counter",
        'mailbell_mails_set_aside_total{account="personal",mailbox="INBOX"} 0',
        "# HELP mailbell_mails_unverified_total Mails a rule with verify: did not count or notify because the sender was not verified, by reason: not_signed, dkim_fail, other_domain, not_aligned, not_checked, no_auth_results, auth_results_fail.",
        "# TYPE mailbell_mails_unverified_total counter",
        'mailbell_mails_unverified_total{rule="receipts",reason="not_aligned"} 1',
        "# HELP mailbell_outbox_oldest_pending_age_seconds Seconds the oldest notification still waiting for the target has waited (0 when none waits); it grows while the target takes no posts, while pacing spreads out a flood, or while a catch-up's digest is gathered.",
        "# TYPE mailbell_outbox_oldest_pending_age_seconds gauge",
        'mailbell_outbox_oldest_pending_age_seconds{target="slack"} 10',
        "# HELP mailbell_outbox_rows Rows in the outbox by target and state.",
        "# TYPE mailbell_outbox_rows gauge",
        'mailbell_outbox_rows{target="hook",state="dead"} 1',
        'mailbell_outbox_rows{target="slack",state="dead"} 0',
        'mailbell_outbox_rows{target="slack",state="done"} 0',
        'mailbell_outbox_rows{target="slack",state="pending"} 3',
        "# HELP mailbell_reconnects_total Times the IMAP connection of the mailbox was lost or could not be opened.",
        "# TYPE mailbell_reconnects_total counter",
        'mailbell_reconnects_total{account="personal",mailbox="INBOX"} 0',
        'mailbell_reconnects_total{account="work",mailbox="Billing"} 0',
        "# HELP mailbell_rule_matches_total Mails that matched the rule.",
        "# TYPE mailbell_rule_matches_total counter",
        'mailbell_rule_matches_total{rule="big-spend"} 1',
        'mailbell_rule_matches_total{rule="receipts"} 1',
        "# HELP mailbell_session_failures_total Watching sessions of the mailbox that ended in failure, by reason: connect (network, TLS, timeouts), auth, mailbox, server (an answer mailbell cannot use), closed (the server hung up), state (the state database), internal (a bug).",
        "# TYPE mailbell_session_failures_total counter",
        'mailbell_session_failures_total{account="work",mailbox="Billing",reason="closed"} 1',
        'mailbell_session_failures_total{account="work",mailbox="Billing",reason="server"} 2',
        'mailbell_session_failures_total{account="work",mailbox="Billing",reason="state"} 1',
        "# HELP mailbell_up 1 when every watched mailbox is healthy (as /healthz reports), 0 otherwise.",
        "# TYPE mailbell_up gauge",
        "mailbell_up 1",
        "",
      ].join("\n"),
    );

    // State moves on without anyone telling the registry.
    health.onEvent("personal", "INBOX", { type: "disconnected", error: undefined, retryInMs: 1000 }, 13_000);
    now = 200_000;
    outbox = [{ target: "slack", state: "done", count: 3 }];
    const lines = registry.render().split("\n");
    for (const expected of [
      'mailbell_mailbox_up{account="personal",mailbox="INBOX"} 0',
      'mailbell_reconnects_total{account="personal",mailbox="INBOX"} 1',
      'mailbell_mailbox_last_event_age_seconds{account="personal",mailbox="INBOX"} 187',
      'mailbell_outbox_rows{target="slack",state="pending"} 0',
      'mailbell_outbox_rows{target="slack",state="done"} 3',
      'mailbell_outbox_oldest_pending_age_seconds{target="slack"} 0',
      "mailbell_up 0",
    ]) {
      assert.ok(lines.includes(expected), `missing ${expected}`);
    }
    assert.ok(!lines.some((l) => l.startsWith('mailbell_outbox_rows{target="hook"')), "a target that is not configured disappears with its rows");
  });

  it("refuses a delivery outcome outside delivered, retry and dead", () => {
    const metrics = createMailbellMetrics(new Metrics(), { health: () => ({ healthy: true, mailboxes: [] }), outboxRows: () => [] });
    assert.throws(() => metrics.delivery("slack", "lost" as "dead"), /outcome "lost" is not one of delivered, retry, dead/);
  });
});
