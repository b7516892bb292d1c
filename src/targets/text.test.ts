import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { notificationWith } from "../../test/support/targets.ts";
import { targetSchema } from "./index.ts";
import { createTargets } from "./index.ts";
import { escapeTerminal, readable } from "./text.ts";

// NUL, ESC[2J (clear screen), BEL, RLO…PDF (reverses what it encloses), CR, tab, LF, C1 NEL and
// CSI, DEL, CRLF, LRI…PDI.
const hostile = "a\u0000b\u001b[2Jc\u0007d\u202Ee\u202Cf\rg\th\ni\u0085j\u009bk\u007fl\r\nm\u2066n\u2069o";
// Controls U+FFFD, bidi controls gone, every line break LF, tab kept.
const shown = "a\uFFFDb\uFFFD[2Jc\uFFFDdef\ng\th\ni\uFFFDj\uFFFDk\uFFFDl\nmno";

// eslint-disable-next-line no-control-regex -- looking for control characters is the test
const unreadable = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe("readable", () => {
  const cases: [string, string][] = [
    [hostile, shown],
    ["Google Play のご注文明細 ¥480\ttab", "Google Play のご注文明細 ¥480\ttab"],
    ["a\u2028b\u2029c", "a\nb\nc"],
    // The marks stay: Arabic and Hebrew mail needs them, and they cannot reorder letters.
    ["\u200fשלום\u200e 42", "\u200fשלום\u200e 42"],
    ["\u000b\u000c\u001f", "\uFFFD\uFFFD\uFFFD"],
  ];
  // Named by code points: the raw text would act on the terminal showing the test's name.
  const named = (s: string) => [...s].map((c) => (/[\p{L}\p{N}\p{Sc} .[\]]/u.test(c) ? c : `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`)).join("");
  for (const [input, output] of cases) it(`${named(input)} → ${named(output)}`, () => assert.equal(readable(input), output));

  it("escapeTerminal is readable with line breaks as spaces", () => {
    assert.equal(escapeTerminal(hostile), shown.replace(/\n/g, " "));
  });
});

// The convention through every target's payload, and the command's variables, are checked by the
// table in contract.test.ts. A webhook's custom body is the one payload a user writes themselves.
describe("a webhook's custom body follows the convention for text people read", () => {
  const notification = notificationWith({
    subject: hostile,
    from: `Eve ${hostile} <eve@evil.example>`,
    fields: { item: { text: hostile, raw: hostile } },
    render: (escape) => `New: ${escape(hostile)}`,
  });
  it("every value it fills in is readable", () => {
    const config = { type: "webhook", url: "http://127.0.0.1:1/x", body: '{"t": "{{text}}", "s": {{subject}}, "f": "{{fields.item}} {{fields.item.raw}}"}' };
    const [target] = createTargets([targetSchema.parse({ name: "t", ...config })]).values();
    const body = JSON.parse(target!.render(notification()).body) as { t: string; s: string; f: string };
    for (const text of Object.values(body)) assert.doesNotMatch(text, unreadable, `${JSON.stringify(text)} carries a control`);
    assert.equal(body.t, `New: ${shown}`);
    assert.equal(body.s, shown);
    assert.equal(body.f, `${shown} ${shown}`);
  });
});
