import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { RuleConfig } from "./config.ts";
import { ruleSchema } from "./config.ts";
import { addr, appleMail, germanBody, googlePlayMail, input, mail } from "./fixtures.test.ts";
import { bodyNeedIn, compileRules, evaluateRules, needsBody, renderRuleMessage } from "./rules.ts";
import type { CompiledRule } from "./rules.ts";
import type { RunningTotal } from "./types.ts";
import type { ConfigIssue } from "../errors.ts";

/** A rule as the config loader hands it over: parsed by the schema, so defaults are filled in. */
const rule = (raw: unknown): RuleConfig => ruleSchema.parse(raw);

function compiled(rules: RuleConfig[], locale = "en-US"): CompiledRule[] {
  const c = compileRules(rules, { locale });
  if (!c.ok) assert.fail(`expected the rules to compile: ${JSON.stringify(c.issues)}`);
  return c.rules;
}

function issuesOf(c: ReturnType<typeof compileRules>): ConfigIssue[] {
  if (c.ok) assert.fail("expected config issues");
  return c.issues;
}

const slackEscape = (s: string): string => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

const googlePlay = rule({
  name: "google-play",
  match: { from: "googleplay-noreply@google.com" },
  extract: {
    amount: { regex: "(?:合計|Total):?\\s*(?<value>[^\\r\\n]+)", as: "money" },
    item: { regex: "(?<value>.+?) *\\(" },
  },
  total: { sum: "amount", per: "month", timezone: "Asia/Tokyo" },
  notify: ["slack-main"],
  template: "Google Play: {{amount}} ({{item}}) — {{total}} so far in {{period}}",
});

const apple = rule({
  name: "apple",
  match: { from: "/@email\\.apple\\.com$/", subject: "receipt" },
  extract: { amount: { regex: "/^TOTAL\\s+(.+)$/m", as: "money" } },
  total: { sum: "amount", per: "week" },
  notify: ["slack-main", "hook"],
  template: "*Apple*: {{amount}} <{{link}}|open>",
});

const everything = rule({ name: "log-all", notify: ["hook"] });

describe("compileRules", () => {
  test("keeps name, notify, locale and total", () => {
    const [gp, ap] = compiled([googlePlay, { ...apple, locale: "ja-JP" }]);
    assert.equal(gp?.name, "google-play");
    assert.deepEqual(gp?.notify, ["slack-main"]);
    assert.equal(gp?.locale, "en-US");
    assert.deepEqual(gp?.total, { sum: "amount", per: "month", timezone: "Asia/Tokyo" });
    assert.equal(ap?.locale, "ja-JP");
    assert.deepEqual(ap?.total, { sum: "amount", per: "week", timezone: "UTC" });
  });

  test("an empty rule list compiles", () => {
    assert.deepEqual(compileRules([], { locale: "en-US" }), { ok: true, rules: [], warnings: [] });
  });

  test("collects every issue, with full paths", () => {
    const issues = issuesOf(compileRules(
      [
        googlePlay,
        rule({ name: "bad-template", notify: ["x"], template: "{{amount}}" }),
        rule({
          name: "bad-everything",
          notify: ["x"],
          locale: "en_US",
          match: { subject: "/(/" },
          extract: { amount: { regex: "(?<value>", as: "money" }, item: { regex: "x" } },
          total: { sum: "item", timezone: "Asia/Tokio" },
          template: "{{nope}}",
        }),
        rule({ name: "sum-unknown", notify: ["x"], extract: { amount: { regex: "(\\d+)", as: "money" } }, total: { sum: "amt" } }),
        rule({ name: "sum-nothing", notify: ["x"], total: { sum: "amount" } }),
      ],
      { locale: "en-US" },
    ));
    assert.deepEqual(
      issues.map((i) => i.path),
      [
        "rules[1].template",
        "rules[2].locale",
        "rules[2].match.subject",
        "rules[2].extract.amount.regex",
        "rules[2].total.sum",
        "rules[2].total.timezone",
        "rules[2].template",
        "rules[3].total.sum",
        "rules[4].total.sum",
      ],
    );
    const byPath = (p: string): string => issues.find((i) => i.path === p)?.message ?? "";
    assert.match(byPath("rules[1].template"), /unknown placeholder \{\{amount\}\}/);
    assert.match(byPath("rules[2].locale"), /hyphen, not an underscore/);
    assert.match(byPath("rules[2].total.sum"), /"item" is extracted as text, so it cannot be added up: set as: money on extract\.item/);
    assert.match(byPath("rules[2].total.timezone"), /did you mean Asia\/Tokyo/);
    assert.match(byPath("rules[3].total.sum"), /^"amt" is not an extracted field: the money fields are amount$/);
    assert.match(byPath("rules[4].total.sum"), /this rule extracts no field with as: money/);
  });

  test("an invalid top-level locale is reported once, at locale", () => {
    const issues = issuesOf(compileRules([googlePlay, apple], { locale: "english" }));
    assert.deepEqual(issues.map((i) => i.path), ["locale"]);
  });

  test("a rule's own valid locale does not hide a bad top-level one", () => {
    const issues = issuesOf(compileRules([{ ...googlePlay, locale: "ja-JP" }], { locale: "xx" }));
    assert.deepEqual(issues.map((i) => i.path), ["locale"]);
  });
});

describe("evaluateRules", () => {
  const rules = compiled([googlePlay, apple, everything]);

  test("the Google Play receipt", () => {
    const matches = evaluateRules(rules, input(googlePlayMail, { receivedAt: new Date("2026-11-30T15:30:00Z") }));
    assert.deepEqual(matches, [
      {
        rule: "google-play",
        fields: {
          amount: { kind: "money", raw: "￥480（税込）", money: { units: 480n, scale: 0, currency: "JPY" } },
          item: { kind: "text", raw: "商品名: マンスリーパス" },
        },
        missing: [],
        // received on Dec 1 in Tokyo: the December total
        total: { field: "amount", amount: { units: 480n, scale: 0, currency: "JPY" }, period: { per: "month", key: "2026-12", label: "December" } },
        notify: ["slack-main"],
      },
      { rule: "log-all", fields: {}, missing: [], notify: ["hook"] },
    ]);
  });

  test("the Apple receipt: every matching rule, in order", () => {
    const matches = evaluateRules(rules, input(appleMail));
    assert.deepEqual(matches.map((m) => m.rule), ["apple", "log-all"]);
    assert.deepEqual(matches[0]?.total, {
      field: "amount",
      amount: { units: 1514n, scale: 2, currency: "USD" },
      period: { per: "week", key: "2026-W48", label: "week 48" },
    });
    assert.deepEqual(matches[0]?.notify, ["slack-main", "hook"]);
  });

  test("a missing money field leaves the total's amount undefined", () => {
    const odd = { ...googlePlayMail, text: "ご注文ありがとうございます。" };
    const [m] = evaluateRules(rules, input(odd));
    assert.equal(m?.rule, "google-play");
    assert.equal(m?.total?.amount, undefined);
    assert.equal(m?.total?.period.key, "2026-11");
    assert.deepEqual(m?.missing.map((x) => x.field), ["amount", "item"]);
  });

  test("no rule matches", () => {
    assert.deepEqual(evaluateRules(compiled([googlePlay, apple]), input(mail({ from: [addr("x@y.example")] }))), []);
  });

  test("the result does not share the rule's notify list", () => {
    const [m] = evaluateRules(rules, input(googlePlayMail));
    m?.notify.push("mutated");
    assert.deepEqual(rules[0]?.notify, ["slack-main"]);
  });
});

describe("renderRuleMessage", () => {
  test("end to end: the Google Play message", () => {
    const [gp] = compiled([googlePlay]);
    assert.ok(gp);
    const i = input(googlePlayMail);
    const [m] = evaluateRules([gp], i);
    assert.ok(m?.total?.amount);
    const total: RunningTotal = { money: { units: 3200n, scale: 0, currency: "JPY" }, period: m.total.period };
    assert.equal(renderRuleMessage(gp, m, i, { total }, slackEscape), "Google Play: ¥480 (商品名: マンスリーパス) — ¥3,200 so far in November");
    assert.equal(renderRuleMessage({ ...gp, locale: "ja-JP" }, m, i, { total }, slackEscape), "Google Play: ￥480 (商品名: マンスリーパス) — ￥3,200 so far in November");
  });

  test("without a running total the period still comes from the match", () => {
    const [gp] = compiled([googlePlay]);
    assert.ok(gp);
    const i = input(googlePlayMail);
    const [m] = evaluateRules([gp], i);
    assert.ok(m);
    assert.equal(renderRuleMessage(gp, m, i, {}, slackEscape), "Google Play: ¥480 (商品名: マンスリーパス) — [no total] so far in November");
  });

  test("a European receipt, with a missing field", () => {
    const [de] = compiled([
      rule({
        name: "shop-de",
        locale: "de-DE",
        extract: { amount: { regex: "Gesamt: (.+)", as: "money" }, order: { regex: "Bestellnummer: (\\S+)" } },
        notify: ["hook"],
        template: "{{amount}} (Bestellung {{order}}) am {{date}}",
      }),
    ]);
    assert.ok(de);
    const i = input(mail({ text: germanBody, date: new Date("2026-11-23T10:04:11Z") }));
    const [m] = evaluateRules([de], i);
    assert.ok(m);
    assert.deepEqual(m.missing, [{ field: "order", reason: "regex /Bestellnummer: (\\S+)/ found nothing in the body" }]);
    assert.equal(renderRuleMessage(de, m, i, { timeZone: "Europe/Berlin" }, (s) => s), "15,14\u00a0€ (Bestellung [order missing]) am 23.11.2026, 11:04");
  });

  test("a hostile subject cannot produce live Slack mrkdwn, while the template's own markup stays", () => {
    const [r] = compiled([
      rule({
        name: "alerts",
        match: { from: "@example.com" },
        extract: { amount: { regex: "Total: (.+)", as: "money" } },
        notify: ["slack-main"],
        template: "<!here> *New mail* from {{from}}: {{subject}} — {{amount.raw}} <{{link}}|open>",
      }),
    ]);
    assert.ok(r);
    const hostile = mail({
      from: [addr("attacker@example.com", "<!everyone> & co")],
      subject: "<!channel> free money <http://evil|click>",
      text: "Total: <@U123> $5.00",
    });
    const i = input(hostile);
    const [m] = evaluateRules([r], i);
    assert.ok(m);
    const out = renderRuleMessage(r, m, i, { link: "https://mail.example/?q=a&b=<c>" }, slackEscape);
    assert.equal(
      out,
      "<!here> *New mail* from &lt;!everyone&gt; &amp; co &lt;attacker@example.com&gt;: &lt;!channel&gt; free money &lt;http://evil|click&gt; — &lt;@U123&gt; $5.00 <https://mail.example/?q=a&amp;b=&lt;c&gt;|open>",
    );
    // the only live Slack controls are the template's own
    const live = [...out.matchAll(/<([^>]*)>/g)].map((x) => x[1]);
    assert.deepEqual(live, ["!here", "https://mail.example/?q=a&amp;b=&lt;c&gt;|open"]);
  });

  test("each target gets its own escaping of the same match", () => {
    const [r] = compiled([rule({ name: "r", notify: ["a", "b"], template: "{{subject}}" })]);
    assert.ok(r);
    const i = input(mail({ subject: "a < b" }));
    const [m] = evaluateRules([r], i);
    assert.ok(m);
    assert.equal(renderRuleMessage(r, m, i, {}, slackEscape), "a &lt; b");
    assert.equal(renderRuleMessage(r, m, i, {}, (s) => s), "a < b");
  });

  test("the default template", () => {
    const [r] = compiled([rule({ name: "r", notify: ["a"] })]);
    assert.ok(r);
    const i = input(appleMail);
    const [m] = evaluateRules([r], i);
    assert.ok(m);
    assert.equal(renderRuleMessage(r, m, i, {}, (s) => s), "Apple <no_reply@email.apple.com>: Your receipt from Apple.");
  });
});

describe("needsBody: is the body worth fetching?", () => {
  const everyMail = rule({ name: "every-mail", notify: ["slack-main"], template: "{{from}}: {{subject}}" });
  const bodyTest = rule({ name: "shipped", match: { from: "/@shop\\.example$/", body: "has shipped" }, notify: ["slack-main"] });
  const subjectField = rule({ name: "order", match: { subject: "Order" }, extract: { order: { regex: "#(?<value>\\d+)", in: "subject" } }, notify: ["slack-main"] });
  const headerOnly = (m: ReturnType<typeof mail>) => input({ ...m, text: "", html: undefined });

  test("rules that look only at the header never need it", () => {
    const rules = compiled([everyMail, subjectField]);
    assert.equal(needsBody(rules, headerOnly(googlePlayMail)), false);
    assert.equal(needsBody(rules, headerOnly(mail({ subject: "Order #12" }))), false);
  });

  test("a rule that extracts from the body needs it when its header conditions hold, and only then", () => {
    const rules = compiled([everyMail, googlePlay]);
    assert.equal(needsBody(rules, headerOnly(googlePlayMail)), true);
    assert.equal(needsBody(rules, headerOnly(appleMail)), false);
  });

  test("a body condition counts too; its other conditions still decide", () => {
    const rules = compiled([bodyTest]);
    assert.equal(needsBody(rules, headerOnly(mail({ from: [addr("news@shop.example")] }))), true);
    assert.equal(needsBody(rules, headerOnly(mail({ from: [addr("news@elsewhere.example")] }))), false);
  });

  test("per mailbox: always, never, or depends on the header", () => {
    const here = { account: "personal", mailbox: "INBOX" };
    assert.equal(bodyNeedIn(compiled([everyMail, subjectField]), here), "never");
    assert.equal(bodyNeedIn(compiled([everyMail, googlePlay]), here), "depends");
    const everyBody = rule({ name: "all-bodies", match: { mailbox: "Receipts" }, extract: { first: { regex: "(?<value>\\S+)" } }, notify: ["hook"] });
    assert.equal(bodyNeedIn(compiled([googlePlay, everyBody]), { ...here, mailbox: "Receipts" }), "always");
    assert.equal(bodyNeedIn(compiled([everyMail, everyBody]), here), "never", "the rule reading every body is for another mailbox");
    assert.equal(bodyNeedIn(compiled([rule({ name: "b", match: { body: "x" }, notify: ["hook"] })]), here), "always");
    // Place conditions are decided here, as the rules decide them: regex names, INBOX in any case, accounts.
    const placed = (match: Record<string, unknown>) => compiled([rule({ name: "p", match, extract: { first: { regex: "(?<value>\\S+)" } }, notify: ["hook"] })]);
    assert.equal(bodyNeedIn(placed({ mailbox: "/^Rec/" }), { ...here, mailbox: "Receipts" }), "always");
    assert.equal(bodyNeedIn(placed({ mailbox: "/^Rec/" }), here), "never");
    assert.equal(bodyNeedIn(placed({ mailbox: "inbox" }), here), "always");
    assert.equal(bodyNeedIn(placed({ account: "work" }), here), "never");
    assert.equal(bodyNeedIn(placed({ account: ["work", "personal"], subject: "receipt" }), here), "depends");
  });

  test("whenever it says no, the header alone gives exactly what the whole mail gives", () => {
    const rules = compiled([everyMail, googlePlay, apple, bodyTest, subjectField]);
    const mails = [
      googlePlayMail,
      appleMail,
      mail({ from: [addr("news@shop.example")], subject: "Order #7", text: "Your order has shipped" }),
      mail({ from: [addr("news@elsewhere.example")], subject: "Order #8", text: "has shipped" }),
      mail({ from: [addr("a@b.example")], subject: "hello", text: "合計: ￥480", html: "<p>合計: ￥480</p>" }),
      mail({ from: [addr("no_reply@email.apple.com")], subject: "Apple News", text: "TOTAL ¥100" }),
    ];
    let skipped = 0;
    for (const m of mails) {
      if (needsBody(rules, headerOnly(m))) continue;
      skipped++;
      assert.deepEqual(evaluateRules(rules, headerOnly(m)), evaluateRules(rules, input(m)), m.subject);
    }
    assert.equal(skipped, 3);
  });
});
