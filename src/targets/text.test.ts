import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { notificationWith } from "../../test/support/targets.ts";
import { targetSchema } from "./index.ts";
import { createTargets } from "./index.ts";
import { escapeTerminal, readable } from "./text.ts";
import type { WebhookBody } from "./webhook.ts";

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

/** Every string in a JSON value, at any depth. */
function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (value === null || typeof value !== "object") return [];
  return Object.values(value).flatMap(strings);
}

// Markdown escapes put a backslash before "[": the text still reads the same.
const unbackslash = (s: string) => s.replace(/\\(.)/g, "$1");
const oneLine = (s: string) => s.replace(/\s+/g, " ");

interface Row {
  name: string;
  config: Record<string, unknown>;
  /** What a person sees of the hostile text, where the service allows line breaks and where it wants one line. */
  expect: string;
  /** Undoes the service's own escaping, which is not what this test is about. */
  unescape?: (s: string) => string;
}

const rows: Row[] = [
  { name: "slack webhook", config: { type: "slack", url: "https://hooks.slack.example/services/T/B/x" }, expect: shown },
  { name: "slack Web API", config: { type: "slack", token: "xoxb-test", channel: "#c" }, expect: shown },
  { name: "discord", config: { type: "discord", url: "https://discord.example/api/webhooks/1/t" }, expect: shown, unescape: unbackslash },
  { name: "teams", config: { type: "teams", url: "https://flow.example/workflows/w/triggers/manual/paths/invoke?sig=s" }, expect: shown, unescape: unbackslash },
  { name: "telegram", config: { type: "telegram", token: "123456:AAHtest", chatId: 1 }, expect: shown },
  { name: "line", config: { type: "line", token: "t", to: `U${"0".repeat(32)}` }, expect: shown },
  // The title is one line; the message keeps its line breaks.
  { name: "ntfy title", config: { type: "ntfy", topic: "alerts" }, expect: oneLine(shown) },
  { name: "ntfy message", config: { type: "ntfy", topic: "alerts" }, expect: shown },
  { name: "ifttt", config: { type: "ifttt", key: "k", event: "e" }, expect: shown },
  { name: "webhook with a custom body", config: { type: "webhook", url: "http://127.0.0.1:1/x", body: '{"t": "{{text}}", "s": {{subject}}, "f": "{{fields.item}} {{fields.item.raw}}"}' }, expect: shown },
  { name: "stdout (line breaks as spaces)", config: { type: "stdout" }, expect: shown.replace(/\n/g, " ") },
];

const notification = notificationWith({
  subject: hostile,
  from: `Eve ${hostile} <eve@evil.example>`,
  fields: { item: { text: hostile, raw: hostile } },
  render: (escape) => `New: ${escape(hostile)}`,
});

describe("one convention for text people read, in every target's payload", () => {
  for (const row of rows) {
    it(row.name, () => {
      const [target] = createTargets([targetSchema.parse({ name: "t", ...row.config })]).values();
      const payload = target!.render(notification());
      const texts = payload.contentType.startsWith("application/json") ? strings(JSON.parse(payload.body)) : [payload.body];
      for (const text of texts) assert.doesNotMatch(text, unreadable, `${JSON.stringify(text)} carries a control`);
      const unescape = row.unescape ?? ((s: string) => s);
      assert.ok(
        texts.some((t) => unescape(t).includes(row.expect)),
        `none of the payload's texts shows ${JSON.stringify(row.expect)}: ${JSON.stringify(texts)}`,
      );
      assert.doesNotMatch(target!.summarize(notification()), unreadable, "digest lines too");
    });
  }

  it("webhook: the default JSON is data for programs and carries the mail's text as it is", () => {
    const [target] = createTargets([targetSchema.parse({ name: "t", type: "webhook", url: "http://127.0.0.1:1/x" })]).values();
    const body = JSON.parse(target!.render(notification()).body) as WebhookBody;
    assert.equal(body.subject, hostile);
    assert.equal(body.text, `New: ${hostile}`);
    assert.equal(body.fields.item?.raw, hostile);
  });

  describe("command", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-text-"));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const recorder = 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => require("node:fs").writeFileSync(process.env.OUT, JSON.stringify({ env: process.env, stdin: s })));';

    it("MAILBELL_* variables follow the convention; stdin is the webhook JSON, as it is", async () => {
      const out = path.join(dir, "out.json");
      const [target] = createTargets([targetSchema.parse({ name: "t", type: "command", command: [process.execPath, "-e", recorder], env: { OUT: out } })]).values();
      await target!.send(target!.render(notification()));
      const { env, stdin } = JSON.parse(readFileSync(out, "utf8")) as { env: Record<string, string>; stdin: string };
      const mail = Object.entries(env).filter(([k]) => k.startsWith("MAILBELL_"));
      for (const [k, v] of mail) assert.doesNotMatch(v, unreadable, `${k} carries a control`);
      assert.equal(env.MAILBELL_SUBJECT, shown);
      assert.equal(env.MAILBELL_TEXT, `New: ${shown}`);
      assert.equal(env.MAILBELL_FROM, `Eve ${shown} <eve@evil.example>`);
      assert.equal(env.MAILBELL_FIELD_ITEM_RAW, shown);
      assert.equal((JSON.parse(stdin) as WebhookBody).subject, hostile);
      assert.doesNotMatch(target!.summarize(notification()), unreadable);
    });
  });
});
