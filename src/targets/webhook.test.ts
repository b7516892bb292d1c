import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { after, describe, it } from "node:test";
import { startReceiver } from "../../test/support/receiver.ts";
import { amountField, notificationWith } from "../../test/support/targets.ts";
import { memoryTargetState } from "./state.ts";
import type { Target } from "./types.ts";
import { checkBody, signatureHeaders, webhookModule, type WebhookBody } from "./webhook.ts";

// Quotes, backslashes, line breaks, a fake JSON continuation, a lone surrogate, template braces.
const hostile = '"}, "admin": true, "x": "\\\n\u2028{{text}}\ud800</script>';
/** The same as a custom body carries it: made readable() for people, so U+2028 is a plain line break. */
const shown = hostile.replace("\u2028", "\n");

const notification = notificationWith({
  account: "personal",
  from: `Eve ${hostile} <eve@evil.example>`,
  subject: hostile,
  fields: { amount: { ...amountField, raw: `￥480${hostile}` }, item: null },
  total: { amount: "3200", currency: "JPY", text: "¥3,200", period: "2026-11", periodLabel: "November" },
  render: (escape) => `Paid ${escape(hostile)}`,
});

function create(options: Record<string, unknown> = {}): Target {
  return webhookModule.create(webhookModule.schema.parse({ name: "hook", type: "webhook", url: "http://127.0.0.1:1/x", ...options }), { state: memoryTargetState() });
}

describe("webhook default body", () => {
  it("is unchanged: the documented JSON, unescaped", () => {
    const payload = create().render(notification());
    assert.match(payload.contentType, /^application\/json/);
    const body = JSON.parse(payload.body) as WebhookBody;
    assert.equal(body.subject, hostile);
    assert.equal(body.text, `Paid ${hostile}`);
    assert.equal(body.total?.text, "¥3,200");
    assert.equal(body.link, null);
  });

  it("a digest lists the bodies, and copes with a body it cannot parse", () => {
    const t = create();
    const entries = [
      { rule: "receipts", subject: "a", summary: "one", body: t.render(notification()).body },
      { rule: "receipts", subject: "b", summary: "two", body: "{not json" },
    ];
    const digest = JSON.parse(t.renderDigest(entries, 5).body) as { digest: { count: number; listed: number; items: Partial<WebhookBody>[] } };
    assert.equal(digest.digest.count, 5);
    assert.equal(digest.digest.listed, 2);
    assert.equal(digest.digest.items[0]!.subject, hostile);
    assert.deepEqual(digest.digest.items[1], { rule: "receipts", subject: "b", text: "two" });
  });
});

describe("webhook body template", () => {
  const template = JSON.stringify({
    content: "**{{rule}}**: {{text}}",
    embeds: [{ title: "{{subject}}", description: "From {{from}} — {{fields.amount}} ({{fields.amount.raw}}) of {{total}} in {{periodLabel}}", url: "{{link}}" }],
    missing: "[{{fields.item}}]",
  });
  const typed = '{"uid": {{uid}}, "uidValidity": {{uidValidity}}, "subject": {{subject}}, "link": {{link}}, "amount": {{fields.amount.amount}}, "item": {{fields.item}}, "count": {{count}}, "nested": {"a": ["{{ mailbox }}", {{account}}]}}';

  it("inserts mail values inside strings with JSON escaping: valid JSON, values intact", () => {
    const payload = create({ body: template }).render(notification());
    const body = JSON.parse(payload.body) as { content: string; embeds: { title: string; description: string; url: string }[]; missing: string; admin?: unknown };
    assert.equal(body.admin, undefined, "a mail cannot add keys");
    assert.equal(body.content, `**receipts**: Paid ${shown}`);
    assert.equal(body.embeds[0]!.title, shown);
    assert.equal(body.embeds[0]!.description, `From Eve ${shown} <eve@evil.example> — ¥480 (￥480${shown}) of ¥3,200 in November`);
    assert.equal(body.embeds[0]!.url, "", "a missing value inside a string is empty");
    assert.equal(body.missing, "[]");
  });

  it("inserts a bare placeholder as a JSON value: number, string or null", () => {
    const body = JSON.parse(create({ body: typed }).render(notification()).body) as Record<string, unknown>;
    assert.deepEqual(body, { uid: 42, uidValidity: 7, subject: shown, link: null, amount: "480", item: null, count: 1, nested: { a: ["INBOX", "personal"] } });
  });

  it("sends the configured content type", () => {
    assert.equal(create({ body: typed, contentType: "application/vnd.example+json" }).render(notification()).contentType, "application/vnd.example+json");
  });

  it("renders a digest through the same template, still valid JSON", () => {
    const t = create({ body: typed.replace("{{count}}", "{{count}}, \"text\": \"{{text}}\", \"rule\": {{rule}}") });
    const entries = [
      { rule: "receipts", subject: "a", summary: `one ${hostile}`, body: "" },
      { rule: "alerts", subject: "b", summary: "two\nlines", body: "" },
    ];
    const body = JSON.parse(t.renderDigest(entries, 9).body) as Record<string, unknown>;
    assert.equal(body.count, 9);
    assert.equal(body.subject, "9 mails");
    assert.equal(body.uid, null);
    assert.equal(body.rule, "receipts, alerts");
    assert.equal(body.text, `9 mails:\n- one ${hostile.replace(/\s*\n\s*/g, " ")}\n- two lines\n…and 7 more`);
  });

  const invalid: [string, string, RegExp][] = [
    ["not JSON", "{content: {{text}}}", /is not valid JSON once its placeholders are filled in \(.*\)\. Write the body as JSON/],
    ["a placeholder glued to a string", '{"a": "x"{{uid}}}', /is not valid JSON/],
    ["a bare placeholder as a key", "{ {{rule}}: 1 }", /is not valid JSON/],
    ["an unknown placeholder", '{"a": "{{body}}"}', /unknown placeholder \{\{body\}\}: valid are \{\{text\}\}, \{\{subject\}\}/],
    ["an unknown field suffix", '{"a": "{{fields.amount.cents}}"}', /unknown placeholder \{\{fields\.amount\.cents\}\}/],
    ["an unclosed placeholder", '{"a": "{{text"}', /"\{\{" at character 8 has no closing "\}\}"/],
    ["a string left open", '{"a": "{{text}}}', /is not valid JSON/],
  ];
  for (const [what, body, message] of invalid) {
    it(`rejects ${what} at config time, under the body key`, () => {
      const r = webhookModule.schema.safeParse({ name: "h", type: "webhook", url: "http://127.0.0.1:1/x", body });
      assert.ok(!r.success);
      assert.deepEqual(r.error.issues[0]!.path, ["body"]);
      assert.match(r.error.issues[0]!.message, message);
    });
  }

  it("accepts a body with escapes and braces in its own strings", () => {
    assert.deepEqual(checkBody('{"a": "say \\"{{subject}}\\" {not a placeholder}", "b": [{{uid}}, "\\\\"]}'), []);
  });
});

const receiver = await startReceiver({ headers: { "content-type": "text/plain" } });
receiver.setDefault({ status: 204, body: "" });
after(() => receiver.close());

describe("webhook sending", () => {

  const secret = "whsec_0123456789abcdef0123456789abcdef";

  /** What a receiver does: HMAC over "<timestamp>.<raw body>", constant-time compare, recent timestamp. */
  function verify(headers: IncomingHttpHeaders, raw: Buffer, key: string): boolean {
    const timestamp = String(headers["x-mailbell-timestamp"]);
    const expected = `sha256=${createHmac("sha256", key).update(`${timestamp}.`).update(raw).digest("hex")}`;
    const given = String(headers["x-mailbell-signature"]);
    const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) < 300;
    return fresh && given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
  }

  it("POSTs with the Idempotency-Key, and no signature without a secret", async () => {
    const t = create({ url: receiver.url("/hook") });
    await t.send(t.render(notification()), { idempotencyKey: "personal/INBOX/7/42/receipts/hook" });
    const req = receiver.requests.at(-1)!;
    assert.equal(req.method, "POST");
    assert.equal(req.headers["idempotency-key"], "personal/INBOX/7/42/receipts/hook");
    assert.equal(req.headers["x-mailbell-signature"], undefined);
  });

  it("signs the exact body bytes with the timestamp, verifiable by a receiver", async () => {
    const t = create({ url: receiver.url("/hook"), secret, headers: { "X-Mailbell-Signature": "forged", "x-mailbell-timestamp": "1", Authorization: "Bearer t" } });
    await t.send(t.render(notification({ subject: "ünïcödé 😀" })));
    const req = receiver.requests.at(-1)!;
    assert.match(String(req.headers["x-mailbell-signature"]), /^sha256=[0-9a-f]{64}$/);
    assert.ok(verify(req.headers, req.body, secret), "signature verifies");
    assert.ok(!verify(req.headers, req.body, "another secret of some length"), "another key does not");
    assert.ok(!verify(req.headers, Buffer.concat([req.body, Buffer.from(" ")]), secret), "a changed body does not");
    assert.equal(req.headers.authorization, "Bearer t", "other configured headers still go out");
  });

  it("signatureHeaders follows the documented scheme", () => {
    const h = signatureHeaders("k".repeat(16), '{"a":1}', Date.parse("2026-11-23T00:00:00.750Z"));
    assert.equal(h["x-mailbell-timestamp"], "1795392000");
    assert.equal(h["x-mailbell-signature"], `sha256=${createHmac("sha256", "k".repeat(16)).update('1795392000.{"a":1}').digest("hex")}`);
  });

  it("PUTs when method is PUT, with the same headers", async () => {
    const t = create({ url: receiver.url("/put"), method: "PUT", secret, body: '{"t": "{{text}}"}', contentType: "application/json" });
    await t.send(t.render(notification()), { idempotencyKey: "k1" });
    const req = receiver.requests.at(-1)!;
    assert.equal(req.method, "PUT");
    assert.equal(req.headers["idempotency-key"], "k1");
    assert.equal(req.headers["content-type"], "application/json");
    assert.ok(verify(req.headers, req.body, secret));
    assert.equal((JSON.parse(req.body.toString()) as { t: string }).t, `Paid ${shown}`);
  });

});

describe("webhook config", () => {
  const invalid: [string, Record<string, unknown>, RegExp][] = [
    ["a short secret", { secret: "abc" }, /secret: use at least 16 characters/],
    ["GET", { method: "GET" }, /method: use POST or PUT/],
    ["a content type that is not one", { body: "{}", contentType: "json" }, /contentType: write a media type/],
  ];
  for (const [what, options, message] of invalid) {
    it(`rejects ${what}`, () => {
      const r = webhookModule.schema.safeParse({ name: "h", type: "webhook", url: "http://127.0.0.1:1/x", ...options });
      assert.ok(!r.success);
      assert.match(r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n"), message);
    });
  }

  it("describes itself without the secret, header values or the URL path", () => {
    const d = create({ url: "https://hooks.example/abc/secret-token", method: "PUT", secret: "s".repeat(20), headers: { A: "b" }, body: "{}" }).describe();
    assert.equal(d, "webhook PUT https://hooks.example/**** (+1 header(s), values hidden, signed, custom body)");
  });

  it("keeps the json:// URL form", () => {
    assert.deepEqual(webhookModule.fromUrl(new URL("jsons://example.test/x?+X-Token=abc&keep=1")), { url: "https://example.test/x?keep=1", headers: { "X-Token": "abc" } });
  });
});
