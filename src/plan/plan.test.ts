import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AccountConfig } from "../imap/config.ts";
import type { NormalizedMail } from "../mail/types.ts";
import { ruleSchema } from "../rules/config.ts";
import { addr, googlePlayBody, googlePlayMail, mail } from "../rules/fixtures.test.ts";
import { formatMoney } from "../rules/money.ts";
import { compileRules, type CompiledRule } from "../rules/rules.ts";
import type { Money } from "../rules/types.ts";
import type { SeenMail } from "./store.ts";
import { digestHoldMs, judgeMail, nothingSeen, planMail, seenMail, type MailAt, type MailPlan, type PlanReads } from "./plan.ts";

function compiled(raw: unknown[]): CompiledRule[] {
  const c = compileRules(
    raw.map((r) => ruleSchema.parse(r)),
    { locale: "ja-JP" },
  );
  if (!c.ok) assert.fail(JSON.stringify(c.issues));
  return c.rules;
}

const rules = compiled([
  {
    name: "play",
    match: { from: "googleplay-noreply@google.com" },
    extract: { amount: { regex: "合計:\\s*(?<value>[^\\r\\n]+)", as: "money" } },
    total: { sum: "amount", per: "month", timezone: "Asia/Tokyo" },
    notify: ["team", "hook", "gone"],
    template: "Play: {{amount}} — {{total}} in {{period}}",
  },
  { name: "invoices", match: { subject: "invoice" }, notify: ["hook"], template: "Invoice: {{subject}}" },
]);

const now = 1_800_000_000_000;
const context = { rules, targets: new Set(["team", "hook"]), accounts: new Map<string, AccountConfig>(), backlogLimit: 2, now };

function at(m: NormalizedMail, over: Partial<MailAt> = {}): MailAt {
  return { account: "personal", mailbox: "INBOX", uidValidity: 7, uid: 42, receivedAt: new Date("2026-11-23T10:00:00Z"), size: 1234, mail: m, ...over };
}

const yen = (units: bigint): Money => ({ units, scale: 0, currency: "JPY" });

/** A store that knows the given totals, and that the mail of `identity` was counted and notified where said. */
function knows(facts: { totals?: Record<string, Money>; counted?: Record<string, string>; notified?: Record<string, string>; acted?: string; identity: string }): PlanReads {
  const mine = (mail: SeenMail): boolean => mail.identity === facts.identity;
  return {
    totals: {
      get: (rule, period, currency) => facts.totals?.[`${rule}/${period}/${currency}`],
      countedAt: (rule, mail) => (mine(mail) ? facts.counted?.[rule] : undefined),
    },
    notified: { notifiedAt: (rule, target, mail) => (mine(mail) ? facts.notified?.[`${rule}/${target}`] : undefined) },
    actions: { actedAt: (mail) => (mine(mail) ? facts.acted : undefined) },
  };
}

const play = at(googlePlayMail);
const playIdentity = seenMail(play).identity;
const noTotalLine = at(mail({ ...googlePlayMail, headers: {}, text: googlePlayBody.replace(/合計.*\n/, "") }));
const invoice = at(mail({ from: [addr("billing@example.com")], subject: "Your invoice 2026-11" }));

/** A plan in a few words, to compare against each row's expectation. */
function summary(plan: MailPlan): unknown {
  return plan.matches.map((m) => ({
    rule: m.rule,
    missing: m.match.missing.map((f) => f.field),
    total:
      m.total === undefined
        ? undefined
        : m.total.kind === "missing"
          ? `missing ${m.total.field}`
          : `${m.total.kind} ${m.total.kind === "add" ? formatMoney(m.total.amount, "ja-JP") : m.total.earlier} → ${formatMoney(m.total.after, "ja-JP")} (${m.total.period.key})`,
    deliveries: m.deliveries.map((d) => ("row" in d ? `${d.target}${d.row.digestGroup ? ` in ${d.row.digestGroup}` : ""}` : `${d.target} not again (${d.earlier})`)),
  }));
}

const rows: { name: string; mail: MailAt; reads: PlanReads; expect: unknown }[] = [
  {
    name: "a receipt matches: its amount starts the month's total, one row per existing target",
    mail: play,
    reads: nothingSeen,
    expect: [{ rule: "play", missing: [], total: "add ￥480 → ￥480 (2026-11)", deliveries: ["team", "hook"] }],
  },
  { name: "no rule matches", mail: at(mail({ from: [addr("friend@example.com")], subject: "hi" })), reads: nothingSeen, expect: [] },
  { name: "another rule matches, without a total", mail: invoice, reads: nothingSeen, expect: [{ rule: "invoices", missing: [], total: undefined, deliveries: ["hook"] }] },
  {
    name: "the money field is missing: notified with it marked missing, nothing added",
    mail: noTotalLine,
    reads: nothingSeen,
    expect: [{ rule: "play", missing: ["amount"], total: "missing amount", deliveries: ["team", "hook"] }],
  },
  {
    name: "the amount is added to the period's running total",
    mail: play,
    reads: knows({ identity: playIdentity, totals: { "play/2026-11/JPY": yen(3200n) } }),
    expect: [{ rule: "play", missing: [], total: "add ￥480 → ￥3,680 (2026-11)", deliveries: ["team", "hook"] }],
  },
  {
    name: "the same mail counted before (elsewhere): the total stays",
    mail: at(googlePlayMail, { mailbox: "Receipts", uid: 3 }),
    reads: knows({ identity: playIdentity, totals: { "play/2026-11/JPY": yen(3680n) }, counted: { play: "personal/INBOX/7/42" } }),
    expect: [{ rule: "play", missing: [], total: "counted personal/INBOX/7/42 → ￥3,680 (2026-11)", deliveries: ["team", "hook"] }],
  },
  {
    name: "counted before, with no total of this period: the total is zero, as the store says",
    mail: play,
    reads: knows({ identity: playIdentity, counted: { play: "personal/INBOX/7/41" } }),
    expect: [{ rule: "play", missing: [], total: "counted personal/INBOX/7/41 → ￥0 (2026-11)", deliveries: ["team", "hook"] }],
  },
  {
    name: "already notified to one target: that one is skipped with where from, the other queued",
    mail: play,
    reads: knows({ identity: playIdentity, notified: { "play/team": "personal/INBOX/6/9" } }),
    expect: [{ rule: "play", missing: [], total: "add ￥480 → ￥480 (2026-11)", deliveries: ["team not again (personal/INBOX/6/9)", "hook"] }],
  },
  {
    name: "another mail's history does not stop this one",
    mail: invoice,
    reads: knows({ identity: playIdentity, notified: { "invoices/hook": "personal/INBOX/6/9" } }),
    expect: [{ rule: "invoices", missing: [], total: undefined, deliveries: ["hook"] }],
  },
  {
    name: "a catch-up within the backlog limit is posted one by one",
    mail: at(googlePlayMail, { catchUp: { id: "c1", index: 1, count: 5 } }),
    reads: nothingSeen,
    expect: [{ rule: "play", missing: [], total: "add ￥480 → ￥480 (2026-11)", deliveries: ["team", "hook"] }],
  },
  {
    name: "a catch-up beyond the backlog limit goes into the mailbox's digest",
    mail: at(googlePlayMail, { catchUp: { id: "c1", index: 2, count: 5 } }),
    reads: nothingSeen,
    expect: [{ rule: "play", missing: [], total: "add ￥480 → ￥480 (2026-11)", deliveries: ["team in backlog:personal/INBOX/c1", "hook in backlog:personal/INBOX/c1"] }],
  },
];

describe("planMail", () => {
  for (const row of rows) {
    test(row.name, () => {
      assert.deepEqual(summary(planMail(row.mail, context, row.reads)), row.expect);
    });
  }

  test("lists every rule in config order, matched or not", () => {
    const plan = planMail(invoice, context, nothingSeen);
    assert.deepEqual(
      plan.rules.map((r) => [r.rule, r.matched]),
      [
        ["play", false],
        ["invoices", true],
      ],
    );
  });

  test("the notification carries the total after this mail and its fields; the row names the mail's place", () => {
    const plan = planMail(play, context, knows({ identity: playIdentity, totals: { "play/2026-11/JPY": yen(3200n) } }));
    const [match] = plan.matches;
    assert.equal(match?.notification.total?.text, "￥3,680");
    assert.equal(match?.notification.fields.amount?.text, "￥480");
    assert.deepEqual(
      match?.notification.message.map((s) => ("literal" in s ? s.literal : `[${s.fromMail}]`)).join(""),
      "Play: [￥480] — [￥3,680] in [11月]",
    );
    const delivery = match?.deliveries[0];
    assert.ok(delivery && "row" in delivery);
    assert.deepEqual(
      { ...delivery.row, notification: undefined },
      { target: "team", rule: "play", account: "personal", mailbox: "INBOX", uidValidity: 7, uid: 42, messageId: googlePlayMail.messageId, subject: googlePlayMail.subject, notification: undefined, digestGroup: undefined, notBefore: undefined },
    );
    assert.equal(plan.seen.place, "personal/INBOX/7/42");
  });

  test("a digest's rows wait for the hold from now", () => {
    const plan = planMail(at(googlePlayMail, { catchUp: { id: "c1", index: 4, count: 5 } }), context, nothingSeen);
    const delivery = plan.matches[0]?.deliveries[0];
    assert.ok(delivery && "row" in delivery);
    assert.equal(delivery.row.notBefore, now + digestHoldMs);
  });
});

describe("judgeMail: the part of planning that reads no store", () => {
  test("planned with it, a mail plans exactly as without it", () => {
    for (const m of [play, noTotalLine, invoice]) {
      const reads = knows({ totals: { "play/2026-11/JPY": yen(3200n) }, identity: playIdentity });
      assert.deepEqual(planMail(m, context, reads, judgeMail(m, rules)), planMail(m, context, reads));
    }
  });

  test("the plan takes the rules' verdicts and the identity from it, not again from the mail", () => {
    const judged = judgeMail(invoice, rules);
    const plan = planMail(play, context, nothingSeen, judged);
    assert.deepEqual(plan.matches.map((m) => m.rule), ["invoices"]);
    assert.equal(plan.seen.identity, judged.seen.identity);
  });
});

describe("planMail: the rules' actions (then:)", () => {
  const acting = compiled([
    { name: "play", match: { from: "googleplay-noreply@google.com" }, notify: ["hook"], then: { seen: true, flag: "$Notified", move: "Receipts/2026" } },
    { name: "google", match: { from: "/@google\\.com$/" }, then: { flag: ["\\flagged", "$Notified"], move: "Google" } },
    { name: "filed", match: { from: "googleplay-noreply@google.com" }, then: { move: "INBOX" } },
    { name: "quiet", match: { subject: "invoice" }, notify: ["hook"] },
  ]);
  const actingContext = { ...context, rules: acting };

  test("every matched rule's actions merged: flags add up, the first move wins, and why the rest were left out", () => {
    const plan = planMail(play, actingContext, nothingSeen);
    assert.deepEqual(plan.actions, {
      kind: "act",
      actions: { seen: true, flags: ["$Notified", "\\Flagged"], labels: [], move: "Receipts/2026" },
      rules: ["play", "google", "filed"],
      notes: ["rule google: not moved to Google: rule play moves it to Receipts/2026 first", "rule filed: not moved to INBOX: the mail is already there"],
    });
  });

  test("the same mail acted on before (it came back): not again, with where", () => {
    const plan = planMail(at(googlePlayMail, { mailbox: "Receipts/2026", uid: 3 }), actingContext, knows({ identity: playIdentity, acted: "personal/INBOX/7/42" }));
    assert.equal(plan.actions?.kind, "acted");
    assert.equal(plan.actions?.kind === "acted" && plan.actions.earlier, "personal/INBOX/7/42");
  });

  test("only a move into the mailbox the mail is in: nothing to do", () => {
    const only = compiled([{ name: "filed", match: { from: "googleplay-noreply@google.com" }, then: { move: "Receipts" } }]);
    const plan = planMail(at(googlePlayMail, { mailbox: "Receipts" }), { ...context, rules: only }, nothingSeen);
    assert.equal(plan.actions?.kind, "nothing");
    assert.deepEqual(plan.actions?.notes, ["rule filed: not moved to Receipts: the mail is already there"]);
  });

  test("no matched rule acts: no actions", () => {
    assert.equal(planMail(invoice, actingContext, nothingSeen).actions, undefined);
    assert.equal(planMail(play, context, nothingSeen).actions, undefined);
  });
});
