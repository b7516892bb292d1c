import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ExtractConfig } from "./config.ts";
import { compileExtract, extractFields, snippet } from "./extract.ts";
import type { CompiledExtract } from "./extract.ts";
import { addr, appleMail, germanBody, googlePlayMail, input, mail } from "./fixtures.test.ts";
import type { FieldValue, MissingField, RuleInput } from "./types.ts";

/** ExtractConfig as the schema leaves it after defaults. */
const field = (regex: string, more: Partial<ExtractConfig> = {}): ExtractConfig => ({ regex, as: "text", in: "body", ...more });

function compiled(fields: Record<string, ExtractConfig>): CompiledExtract {
  const c = compileExtract(fields);
  if (Array.isArray(c)) assert.fail(`expected extract to compile: ${JSON.stringify(c)}`);
  return c;
}

function run(fields: Record<string, ExtractConfig>, i: RuleInput): { fields: Record<string, FieldValue>; missing: MissingField[] } {
  return extractFields(compiled(fields), i);
}

const googlePlayRule = {
  amount: field("(?:合計|Total):?\\s*(?<value>[^\\r\\n]+)", { as: "money" }),
  item: field("(?<value>.+?) *\\("),
};

describe("extractFields", () => {
  test("the Google Play receipt", () => {
    assert.deepEqual(run(googlePlayRule, input(googlePlayMail)), {
      fields: {
        amount: { kind: "money", raw: "￥480（税込）", money: { units: 480n, scale: 0, currency: "JPY" } },
        item: { kind: "text", raw: "商品名: マンスリーパス" },
      },
      missing: [],
    });
  });

  test("the Apple receipt: TOTAL, not Subtotal, via a line anchor", () => {
    const r = run({ amount: field("/^TOTAL\\s+(.+)$/m", { as: "money" }), billed: field("BILLED TO\\n(.+)") }, input(appleMail));
    assert.deepEqual(r.fields["amount"], { kind: "money", raw: "$15.14", money: { units: 1514n, scale: 2, currency: "USD" } });
    assert.deepEqual(r.fields["billed"], { kind: "text", raw: "Visa .... 1234" });
  });

  test("a European receipt", () => {
    const r = run({ amount: field("Gesamt: (?<value>.+)", { as: "money" }) }, input(mail({ text: germanBody })));
    assert.deepEqual(r.fields["amount"], { kind: "money", raw: "15,14 €", money: { units: 1514n, scale: 2, currency: "EUR" } });
  });

  const valueCases: [name: string, regex: string, flags: string | undefined, text: string, expected: string][] = [
    ["named group value wins over group 1", "(Order) (?<value>\\d+)", undefined, "Order 42", "42"],
    ["else group 1", "Order (\\d+) of (\\d+)", undefined, "Order 3 of 5", "3"],
    ["else the whole match", "\\d+ items?", undefined, "you bought 3 items", "3 items"],
    ["value is trimmed", "Item:(?<value>[^\\n]*)", undefined, "Item:   Pass  \nnext", "Pass"],
    ["flags key applies", "total: (\\S+)", "i", "TOTAL: $5", "$5"],
    ["/regex/flags form", "/total: (\\S+)/i", undefined, "TOTAL: $5", "$5"],
    ["/regex/ form plus the flags key", "/^total: (\\S+)/", "im", "x\nTOTAL: $5", "$5"],
    ["g flag: first match, every time", "/#(\\d+)/g", undefined, "#1 #2", "1"],
    ["s flag", "/begin(.*)end/s", undefined, "begin\nmiddle\nend", "middle"],
  ];
  for (const [name, regex, flags, text, expected] of valueCases) {
    test(name, () => {
      const fields = { v: field(regex, flags === undefined ? {} : { flags }) };
      const c = compiled(fields);
      // twice, so a stateful g/y regex would show
      for (let n = 0; n < 2; n++) {
        assert.deepEqual(extractFields(c, input(mail({ text }))).fields["v"], { kind: "text", raw: expected });
      }
    });
  }

  test("in: subject", () => {
    const r = run({ ordered: field("（(?<value>[\\d/]+)）", { in: "subject" }) }, input(googlePlayMail));
    assert.deepEqual(r.fields["ordered"], { kind: "text", raw: "2026/11/23" });
  });

  test("in: from sees 'Name <address>'", () => {
    const r = run({ sender: field("^(.+?) <", { in: "from" }), domain: field("@([^>]+)>", { in: "from" }) }, input(googlePlayMail));
    assert.deepEqual(r.fields["sender"], { kind: "text", raw: "Google Play" });
    assert.deepEqual(r.fields["domain"], { kind: "text", raw: "google.com" });
  });

  test("in: from with no name is the bare address", () => {
    const r = run({ who: field(".+", { in: "from" }) }, input(mail({ from: [addr("a@x.example"), addr("b@x.example")] })));
    assert.deepEqual(r.fields["who"], { kind: "text", raw: "a@x.example" });
  });

  test("money with the field's currency when the text has none", () => {
    const r = run({ amount: field("Amount: (\\S+)", { as: "money", currency: "JPY" }) }, input(mail({ text: "Amount: 1,200" })));
    assert.deepEqual(r.fields["amount"], { kind: "money", raw: "1,200", money: { units: 1200n, scale: 0, currency: "JPY" } });
  });

  test("a refund is negative", () => {
    const r = run({ amount: field("Refund: (.+)", { as: "money" }) }, input(mail({ text: "Refund: -$3.00" })));
    assert.deepEqual(r.fields["amount"], { kind: "money", raw: "-$3.00", money: { units: -300n, scale: 2, currency: "USD" } });
  });
});

describe("missing fields", () => {
  const cases: [name: string, fields: Record<string, ExtractConfig>, text: string, reason: RegExp][] = [
    ["no match in the body", { amount: field("合計: (.+)", { as: "money" }) }, "nothing", /^regex \/合計: \(\.\+\)\/ found nothing in the body$/],
    ["no match in the subject", { x: field("/abc/i", { in: "subject" }) }, "abc", /^regex \/abc\/i found nothing in the subject$/],
    ["no match in From", { x: field("abc", { in: "from" }) }, "", /found nothing in the From address$/],
    ["no amount in the capture", { amount: field("Total: (.+)", { as: "money" }) }, "Total: free", /^no amount in "free"$/],
    ["no currency in the capture", { amount: field("Total: (.+)", { as: "money" }) }, "Total: 480", /^no currency in "480": .*set currency \(e\.g\. JPY\)/],
    ["long captures are cut", { amount: field("Total: (.+)", { as: "money" }) }, `Total: ${"x".repeat(200)}`, /^no amount in "x{59}…"$/],
    ["empty capture", { v: field("Item:(?<value>[ ]*)$") }, "Item:   ", /matched in the body, but the group \(\?<value>…\) is empty/],
    ["optional group that did not take part", { v: field("Item(:(\\d+))?") }, "Item", /but group 1 is empty/],
  ];
  for (const [name, fields, text, reason] of cases) {
    test(name, () => {
      const r = run(fields, input(mail({ text, subject: "xyz" })));
      assert.deepEqual(r.fields, {});
      assert.equal(r.missing.length, 1);
      assert.equal(r.missing[0]!.field, Object.keys(fields)[0]);
      assert.match(r.missing[0]!.reason, reason);
    });
  }

  test("found and missing fields side by side", () => {
    const r = run({ ...googlePlayRule, order: field("Order ID: (\\S+)") }, input(googlePlayMail));
    assert.deepEqual(Object.keys(r.fields), ["amount", "item"]);
    assert.deepEqual(r.missing.map((m) => m.field), ["order"]);
  });
});

describe("compileExtract errors", () => {
  test("invalid regexes, all of them, with paths and the regex shown", () => {
    const issues = compileExtract({ ok: field("x"), amount: field("(?<value>[^\\n]+", { as: "money" }), item: field("/a/q") });
    assert.ok(Array.isArray(issues));
    assert.deepEqual(issues.map((i) => i.path), ["extract.amount.regex", "extract.item.regex"]);
    assert.match(issues[0]!.message, /^invalid regex \/\(\?<value>\[\^\\n\]\+\/: Unterminated group/);
    assert.match(issues[1]!.message, /invalid regex flag "q"/);
  });

  test("a field may not shadow a built-in name", () => {
    const issues = compileExtract({ total: field("x"), subject: field("y") });
    assert.ok(Array.isArray(issues));
    assert.deepEqual(issues.map((i) => i.path), ["extract.total", "extract.subject"]);
    assert.match(issues[0]!.message, /taken by the built-in \{\{total\}\}: rename the field/);
  });

  test("a field called __proto__ is refused", () => {
    const issues = compileExtract(Object.fromEntries([["__proto__", field("(a)")]]));
    assert.ok(Array.isArray(issues));
    assert.deepEqual(issues.map((i) => i.path), ["extract.__proto__"]);
  });
});

describe("snippet", () => {
  test("flattens whitespace and cuts", () => {
    assert.equal(snippet("a \n b"), "a b");
    assert.equal(snippet("abcdef", 4), "abc…");
    assert.equal(snippet("abcd", 4), "abcd");
  });
});
