/**
 * A plain part that says less than its HTML alternative: how `match.body`, `extract` (`in: body`,
 * `in: html`) and needsHtml() read a mail's HTML, table-driven over the kinds of mail that matter.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { htmlText } from "../mail/normalize.ts";
import type { NormalizedMail } from "../mail/types.ts";
import { ruleSchema } from "./config.ts";
import { addr, input, mail } from "./fixtures.test.ts";
import { compileRules, evaluateRules, needsHtml, type CompiledRule } from "./rules.ts";

const from = [addr("receipts@shop.example", "Shop")];
const receiptHtml = "<html><body><p>Thanks for your order</p><table><tr><td>Order</td><td>A-1001</td></tr><tr><td>Total</td><td>$12.34</td></tr></table></body></html>";

/** The multipart/alternative this is about: the plain part only points at the browser. */
const shortPlain = mail({ from, subject: "Your receipt", text: "Your receipt is ready. View this mail in a browser: https://shop.example/r/1001", html: receiptHtml });
/** Both parts carry everything; the plain one differs, so a field read from it is told apart. */
const fullPlain = mail({ from, subject: "Your receipt", text: "Order A-1001\nTotal $12.00 (plain)\n", html: receiptHtml });
/** No HTML at all. */
const plainOnly = mail({ from, subject: "Your receipt", text: "Order A-1001\nTotal $12.00 (plain)\n" });
/** HTML only: `text` is made from it (as normalizeMail and readTextParts do). */
const htmlOnly = mail({ from, subject: "Your receipt", text: "Order A-1001\nTotal $12.34", html: receiptHtml, textFromHtml: true });
/** The same short-plain mail as the daemon has it before fetching the HTML alternative. */
const shortPlainUnread = { ...shortPlain, html: undefined };

function compiled(raw: unknown): CompiledRule {
  const c = compileRules([ruleSchema.parse({ name: "r", notify: ["hook"], ...(raw as object) })], { locale: "en-US" });
  if (!c.ok) assert.fail(JSON.stringify(c.issues));
  return c.rules[0]!;
}

const amount = (where?: "body" | "html") => ({ extract: { amount: { regex: "Total\\s*(?<value>\\$[\\d.]+)", as: "money", ...(where ? { in: where } : {}) } } });

/** The rule's amount as text ("$12.34"), "missing: <reason>", or "no match". */
function outcome(raw: unknown, m: NormalizedMail): string {
  const [result] = evaluateRules([compiled(raw)], input(m));
  if (!result) return "no match";
  const value = result.fields["amount"];
  if (value) return value.raw;
  return `missing: ${result.missing[0]?.reason}`;
}

describe("the HTML part's text", () => {
  test("is made as for HTML-only mail: one cell per column, one row per line", () => {
    assert.equal(htmlText(shortPlain), "Thanks for your order\n\nOrder A-1001\nTotal $12.34\n");
    assert.equal(htmlText(htmlOnly), htmlOnly.text, "HTML-only: the text it already is");
    assert.equal(htmlText(plainOnly), undefined);
  });
});

describe("extract in: body and in: html", () => {
  const cases: [name: string, rule: unknown, m: NormalizedMail, expected: string][] = [
    ["in: body finds it in the plain text: the HTML is not looked at", amount(), fullPlain, "$12.00"],
    ["in: body, not in the plain text, falls back to the HTML alternative", amount(), shortPlain, "$12.34"],
    ["in: body on HTML-only mail reads its text", amount(), htmlOnly, "$12.34"],
    ["in: body on plain-only mail: the plain text, as before", amount(), plainOnly, "$12.00"],
    ["in: html reads the HTML even when the plain text has it", amount("html"), fullPlain, "$12.34"],
    ["in: html on HTML-only mail", amount("html"), htmlOnly, "$12.34"],
    ["in: html without HTML: missing, with the fix", amount("html"), plainOnly, "missing: the mail has no HTML part to look in (in: html); use in: body for its plain text"],
    [
      "found in neither: both reasons",
      { extract: { amount: { regex: "Grand total (?<value>\\S+)", as: "money" } } },
      shortPlain,
      "missing: regex /Grand total (?<value>\\S+)/ found nothing in the body; regex /Grand total (?<value>\\S+)/ found nothing in the HTML part's text",
    ],
    [
      "matched in the plain text but no amount there: the HTML is tried",
      { extract: { amount: { regex: "(?:Total|browser):?\\s*(?<value>\\S+)", as: "money" } } },
      mail({ from, text: "Total: see the web version", html: receiptHtml }),
      "$12.34",
    ],
  ];
  for (const [name, rule, m, expected] of cases) test(name, () => assert.equal(outcome(rule, m), expected));
});

describe("match.body", () => {
  const cases: [name: string, body: string, m: NormalizedMail, expected: boolean][] = [
    ["holds on the plain text", "Order A-1001", fullPlain, true],
    ["fails on the plain text, holds on the HTML alternative", "$12.34", shortPlain, true],
    ["a regex too", "/Total\\s+\\$12\\.34/", shortPlain, true],
    ["in neither part", "refund", shortPlain, false],
    ["no HTML to fall back to", "$12.34", plainOnly, false],
    ["the HTML alternative not read (the daemon before needsHtml)", "$12.34", shortPlainUnread, false],
    ["markup is not text: a tag name does not match", "<td>", shortPlain, false],
  ];
  for (const [name, body, m, expected] of cases) {
    test(name, () => assert.equal(evaluateRules([compiled({ match: { body } })], input(m)).length === 1, expected));
  }
});

describe("needsHtml: is the HTML alternative worth fetching?", () => {
  const cases: [name: string, rule: unknown, m: NormalizedMail, expected: boolean][] = [
    ["a field found in the plain text: no", amount(), { ...fullPlain, html: undefined }, false],
    ["a field the plain text lacks: yes", amount(), shortPlainUnread, true],
    ["in: html: always, once the header conditions hold", amount("html"), { ...fullPlain, html: undefined }, true],
    ["in: html, but the header conditions fail: no", { match: { from: "@other.example" }, ...amount("html") }, shortPlainUnread, false],
    ["a body condition the plain text satisfies: no", { match: { body: "View this mail" } }, shortPlainUnread, false],
    ["a body condition the plain text fails: yes", { match: { body: "$12.34" } }, shortPlainUnread, true],
    ["a rule that reads no body: no", { match: { subject: "receipt" }, extract: { s: { regex: "(?<value>\\w+)", in: "subject" } } }, shortPlainUnread, false],
    ["its header conditions fail: no", { match: { from: "@other.example" }, ...amount() }, shortPlainUnread, false],
  ];
  for (const [name, rule, m, expected] of cases) test(name, () => assert.equal(needsHtml([compiled(rule)], input(m)), expected));

  test("whenever it says no, the mail without its HTML gives exactly what it gives with it", () => {
    const rules = cases.map(([, rule], i) => compileRules([ruleSchema.parse({ name: `r${i}`, notify: ["hook"], ...(rule as object) })], { locale: "en-US" })).flatMap((c) => (c.ok ? c.rules : []));
    for (const whole of [shortPlain, fullPlain]) {
      const without = input({ ...whole, html: undefined });
      for (const rule of rules) {
        if (needsHtml([rule], without)) continue;
        assert.deepEqual(evaluateRules([rule], without), evaluateRules([rule], input(whole)), `${rule.name} on "${whole.text.slice(0, 20)}"`);
      }
    }
  });
});
