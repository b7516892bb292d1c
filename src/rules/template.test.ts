import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { builtinNames, compileTemplate, renderTemplate } from "./template.ts";
import type { CompiledTemplate, TemplateValues } from "./template.ts";

function compiled(source: string, fields: readonly string[] = []): CompiledTemplate {
  const c = compileTemplate(source, fields);
  if (Array.isArray(c)) assert.fail(`expected the template to compile: ${JSON.stringify(c)}`);
  return c;
}

const slack = (s: string): string => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
const upper = (s: string): string => `«${s}»`;

const values: TemplateValues = {
  fields: {
    amount: { kind: "money", raw: "￥480（税込）", money: { units: 480n, scale: 0, currency: "JPY" } },
    item: { kind: "text", raw: "マンスリーパス" },
  },
  subject: "Google Play のご注文明細",
  from: "Google Play <googleplay-noreply@google.com>",
  to: "a@x.example, B <b@x.example>",
  attachments: "Receipt.pdf, [image/png]",
  date: new Date("2026-11-23T10:04:11Z"),
  total: { money: { units: 3200n, scale: 0, currency: "JPY" }, period: { per: "month", key: "2026-11", label: "November" } },
  link: "https://mail.google.com/mail/u/0/#search/rfc822msgid%3Aabc",
  rule: "google-play",
  account: "personal",
  mailbox: "INBOX",
  locale: "en-US",
  timeZone: "Asia/Tokyo",
};

describe("renderTemplate", () => {
  const cases: [source: string, expected: string, over?: Partial<TemplateValues>][] = [
    ["Google Play: {{amount}} ({{item}}) — {{total}} so far in {{period}}", "Google Play: «¥480» («マンスリーパス») — «¥3,200» so far in «November»"],
    ["{{ amount }}|{{amount.raw}}|{{  item.raw  }}", "«¥480»|«￥480（税込）»|«マンスリーパス»"],
    ["{{subject}}", "«Google Play のご注文明細»"],
    ["{{from}} → {{to}}", "«Google Play <googleplay-noreply@google.com>» → «a@x.example, B <b@x.example>»"],
    ["{{date}}", "«Nov 23, 2026, 7:04 PM»"],
    ["with {{attachments}}", "with «Receipt.pdf, [image/png]»"],
    ["with {{attachments}}", "with «»", { attachments: "" }],
    ["{{date}}", "«2026/11/23 19:04»", { locale: "ja-JP" }],
    ["{{date}}", "«[no date]»", { date: undefined }],
    ["{{link}}", "«https://mail.google.com/mail/u/0/#search/rfc822msgid%3Aabc»"],
    ["{{link}}", "«[no link]»", { link: undefined }],
    ["{{rule}} {{account}} {{mailbox}}", "«google-play» «personal» «INBOX»"],
    ["{{amount}} / {{total}}", "«￥480» / «￥3,200»", { locale: "ja-JP" }],
    ["{{total}} in {{period}}", "«[no total]» in «[no period]»", { total: undefined }],
    ["{{period}}", "«December»", { total: undefined, period: { per: "month", key: "2026-12", label: "December" } }],
    ["{{amount}} ({{amount.raw}})", "«[amount missing]» («[amount missing]»)", { fields: {} }],
    ["no placeholders, *bold* <!here>", "no placeholders, *bold* <!here>"],
    ["", ""],
    ["{{item}}{{item}}", "«マンスリーパス»«マンスリーパス»"],
    ["a } b { c }} d", "a } b { c }} d"],
  ];
  for (const [source, expected, over] of cases) {
    test(`${JSON.stringify(source)}${over ? ` with ${Object.keys(over).join(", ")}` : ""}`, () => {
      assert.equal(renderTemplate(compiled(source, ["amount", "item"]), { ...values, ...over }, upper), expected);
    });
  }

  test("literal text is trusted, substituted values are escaped", () => {
    const t = compiled("<!here> *{{subject}}* from {{from}}");
    const out = renderTemplate(t, { ...values, subject: "<!channel> free money <http://evil|click>", from: "A & B <a@b.example>" }, slack);
    assert.equal(out, "<!here> *&lt;!channel&gt; free money &lt;http://evil|click&gt;* from A &amp; B &lt;a@b.example&gt;");
  });

  test("the missing stand-in is escaped too", () => {
    assert.equal(renderTemplate(compiled("{{x}}", ["x"]), { ...values, fields: {} }, upper), "«[x missing]»");
  });

  test("a field named like an Object.prototype member is not found on the prototype", () => {
    assert.equal(renderTemplate(compiled("{{constructor}}", ["constructor"]), { ...values, fields: {} }, (s) => s), "[constructor missing]");
  });
});

describe("compileTemplate errors", () => {
  const cases: [source: string, fields: string[], message: RegExp][] = [
    ["{{amout}}", ["amount"], /^unknown placeholder \{\{amout\}\} \(did you mean \{\{amount\}\}\?\): valid names are amount, subject, from, to, date, total, period, link, rule, account, mailbox, attachments, verified; \{\{amount\.raw\}\} gives the text as captured$/],
    ["{{ nope }}", [], /^unknown placeholder \{\{ nope \}\}: valid names are subject, from/],
    ["{{subjct}}", [], /did you mean \{\{subject\}\}/],
    ["{{subject.raw}}", ["amount"], /^\{\{subject\.raw\}\}: subject is built in, not an extracted field; \.raw works on amount$/],
    ["{{x.raw}}", [], /x is not an extracted field; \.raw works on extracted fields, and this rule extracts none/],
    ["{{amount.text}}", ["amount"], /unknown suffix "\.text"; the only suffix is \.raw/],
    ["{{}}", [], /^\{\{\}\} is not a placeholder: write \{\{name\}\}/],
    ["{{a b}}", [], /^\{\{a b\}\} is not a placeholder/],
    ["{{amount", ["amount"], /^"\{\{" without a closing "\}\}"/],
  ];
  for (const [source, fields, message] of cases) {
    test(JSON.stringify(source), () => {
      const issues = compileTemplate(source, fields);
      assert.ok(Array.isArray(issues), "expected issues");
      assert.equal(issues.length, 1);
      assert.equal(issues[0]!.path, "template");
      assert.match(issues[0]!.message, message);
    });
  }

  test("all problems at once, under the given path", () => {
    const issues = compileTemplate("{{a}} {{b}} {{subject}}", [], "rules[3].template");
    assert.ok(Array.isArray(issues));
    assert.deepEqual(issues.map((i) => i.path), ["rules[3].template", "rules[3].template"]);
  });

  test("every built-in name compiles", () => {
    assert.ok(!Array.isArray(compileTemplate(builtinNames.map((n) => `{{${n}}}`).join(" "), [])));
  });
});
