import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { startReceiver } from "../../test/support/receiver.ts";
import { notificationWith, sendResult } from "../../test/support/targets.ts";
import type { TargetError } from "../errors.ts";
import { memoryTargetState } from "./state.ts";
import { TargetUrlError } from "./module.ts";
import { escapeTelegram, telegramModule, truncateTelegramHtml } from "./telegram.ts";
import type { DigestEntry, Target } from "./types.ts";

const botToken = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const hostile = '<a href="tg://user?id=1">@admin</a> </b><script>&amp; "quote"';

const notification = notificationWith({
  rule: "r",
  subject: "<b>hi</b>",
  // The template's own text uses Telegram HTML on purpose; the substituted value is the mail's.
  render: (escape) => `<b>New:</b> ${escape(hostile)}`,
});

function create(options: Record<string, unknown> = {}): Target {
  return telegramModule.create(telegramModule.schema.parse({ name: "tg", type: "telegram", token: botToken, chatId: -1001234567890, ...options }), { state: memoryTargetState() });
}

interface SendMessage {
  chat_id: number | string;
  text: string;
  parse_mode: string;
  link_preview_options: { is_disabled: boolean };
  message_thread_id?: number;
  disable_notification?: boolean;
}
const parse = (body: string) => JSON.parse(body) as SendMessage;

/** What Telegram checks: tags balanced, and the length after entity parsing. */
function checkHtml(html: string): { visible: number } {
  const stack: string[] = [];
  let visible = 0;
  for (const m of html.matchAll(/<(\/?)([a-z-]+)[^<>]*>|&(#\d+|#x[0-9a-f]+|[a-z]+);|[\s\S]/gi)) {
    if (m[2]) {
      if (m[1]) assert.equal(stack.pop(), m[2], `unbalanced </${m[2]}> in ${html.slice(-80)}`);
      else stack.push(m[2]);
    } else if (m[3]) {
      assert.ok(["amp", "lt", "gt", "quot"].includes(m[3]) || m[3].startsWith("#"), `unknown entity &${m[3]};`);
      visible += 1;
    } else visible += m[0].length;
  }
  assert.deepEqual(stack, [], "every tag is closed");
  return { visible };
}

describe("escapeTelegram", () => {
  const cases: [string, string][] = [
    ["a < b > c & d", "a &lt; b &gt; c &amp; d"],
    ['<a href="x">', "&lt;a href=&quot;x&quot;&gt;"],
    ["&amp;", "&amp;amp;"],
    ["plain *md* _x_", "plain *md* _x_"],
  ];
  for (const [input, output] of cases) it(`${JSON.stringify(input)} → ${JSON.stringify(output)}`, () => assert.equal(escapeTelegram(input), output));
});

describe("telegram payload", () => {
  it("is sendMessage JSON in HTML mode, previews off; mail content stays text", () => {
    const body = parse(create().render(notification()).body);
    assert.equal(body.chat_id, -1001234567890);
    assert.equal(body.parse_mode, "HTML");
    assert.deepEqual(body.link_preview_options, { is_disabled: true });
    assert.equal(body.text, "<b>New:</b> &lt;a href=&quot;tg://user?id=1&quot;&gt;@\u2060admin&lt;/a&gt; &lt;/b&gt;&lt;script&gt;&amp;amp; &quot;quote&quot;", "no tag, and @admin cannot become a mention");
    checkHtml(body.text);
    assert.equal(body.disable_notification, undefined);
    assert.equal(body.message_thread_id, undefined);
  });

  it("carries the options: @channel, topic, silent, previews", () => {
    const body = parse(create({ chatId: "@receipts", threadId: 7, silent: true, linkPreview: true }).render(notification()).body);
    assert.equal(body.chat_id, "@receipts");
    assert.equal(body.message_thread_id, 7);
    assert.equal(body.disable_notification, true);
    assert.deepEqual(body.link_preview_options, { is_disabled: false });
  });

  it("never sends an empty text", () => {
    assert.equal(parse(create().render(notification({ render: () => "<b> </b>" })).body).text, "(empty message)");
  });

  it("cuts a huge message to 4,096 characters after entity parsing, closing open tags", () => {
    const text = parse(create().render(notification({ render: (e) => `<b>Big:</b> <i>${e("<&>".repeat(3000))}</i>` })).body).text;
    const { visible } = checkHtml(text);
    assert.ok(visible <= 4096 && visible > 4000, `visible ${visible}`);
    assert.ok(text.endsWith("…</i>"));
  });

  it("a digest of long HTML summaries is valid and within the limit", () => {
    const t = create();
    const entries: DigestEntry[] = Array.from({ length: 20 }, (_, i) => ({
      rule: "r",
      subject: `s${i}`,
      summary: t.summarize(notification({ render: (e) => `<b>${i}</b> <i>${e("&<".repeat(400))}</i>` })),
      body: "",
    }));
    for (const e of entries) assert.ok(checkHtml(e.summary).visible <= 300);
    const body = parse(t.renderDigest(entries, 23).body);
    const { visible } = checkHtml(body.text);
    assert.ok(visible <= 4096);
    assert.match(body.text, /^<b>23 mails<\/b>/);
    assert.match(parse(t.renderDigest(entries.slice(0, 2), 23).body).text, /…and 21 more$/);
  });
});

describe("truncateTelegramHtml", () => {
  const cases: [string, string, number, string][] = [
    ["leaves text within the limit alone", "<b>abc</b> &amp;", 5, "<b>abc</b> &amp;"],
    ["counts an entity as one character", "&lt;&lt;&lt;&lt;&lt;", 5, "&lt;&lt;&lt;&lt;&lt;"],
    ["never cuts inside an entity", "ab&amp;cdef", 4, "ab&amp;…"],
    ["never cuts inside a tag, and closes what is open", 'x<a href="https://e.example/very/long">link text</a>', 4, 'x<a href="https://e.example/very/long">li…</a>'],
    ["closes nested tags in order", "<b><i>abcdef</i></b>", 3, "<b><i>ab…</i></b>"],
    ["does not reopen closed tags", "<b>ab</b>cdef", 4, "<b>ab</b>c…"],
    ["never splits a surrogate pair", "a😀bcd", 3, "a…"],
  ];
  for (const [what, input, max, output] of cases) it(what, () => assert.equal(truncateTelegramHtml(input, max), output));
});

const receiver = await startReceiver({ headers: { "content-type": "application/json" } });
receiver.setDefault({ status: 200, body: JSON.stringify({ ok: true, result: { message_id: 1, date: 1763856000, chat: { id: -1001234567890, type: "supergroup" }, text: "x" } }) });
after(() => receiver.close());

describe("telegram sending", () => {
  /** Every Bot API answer is JSON, so `body` is sent JSON-encoded (a string too). */
  async function sendOnce(reply?: { status: number; body: unknown; headers?: Record<string, string> }): Promise<TargetError | undefined> {
    if (reply) receiver.reply({ ...reply, body: JSON.stringify(reply.body) });
    return sendResult(create({ apiUrl: receiver.url() }), notification());
  }

  it("POSTs to /bot<token>/sendMessage", async () => {
    assert.equal(await sendOnce(), undefined);
    assert.equal(receiver.requests.at(-1)!.method, "POST");
    assert.equal(receiver.requests.at(-1)!.path, `/bot${botToken}/sendMessage`);
    assert.equal(parse(receiver.requests.at(-1)!.text).parse_mode, "HTML");
  });

  const error = (code: number, description: string, parameters?: unknown) => ({ ok: false, error_code: code, description, ...(parameters ? { parameters } : {}) });
  const cases = [
    { status: 400, body: error(400, "Bad Request: chat not found"), retryable: false, says: /answered 400: Bad Request: chat not found; check chatId, and that the bot has been added/ },
    { status: 400, body: error(400, "Bad Request: can't parse entities: Unsupported start tag \"br\" at byte offset 3"), retryable: false, says: /can't parse entities.*template's own HTML/ },
    { status: 400, body: error(400, "Bad Request: group chat was upgraded to a supergroup chat", { migrate_to_chat_id: -1009876543210 }), retryable: false, says: /set chatId to -1009876543210/ },
    { status: 401, body: error(401, "Unauthorized"), retryable: false, says: /Unauthorized; check the bot token/ },
    { status: 403, body: error(403, "Forbidden: bot was blocked by the user"), retryable: false, says: /bot was blocked by the user; the bot cannot post/ },
    { status: 404, body: error(404, "Not Found"), retryable: false, says: /Not Found; check the bot token/ },
    { status: 500, body: error(500, "Internal Server Error"), retryable: true, says: /Internal Server Error; will retry/ },
  ];
  for (const c of cases) {
    it(`${c.status} ${JSON.stringify(c.body).slice(0, 60)} is ${c.retryable ? "retryable" : "final"}`, async () => {
      const err = await sendOnce({ status: c.status, body: c.body });
      assert.ok(err);
      assert.equal(err.status, c.status);
      assert.equal(err.retryable, c.retryable);
      assert.match(err.message, c.says);
      assert.ok(!err.message.includes("AAHdqTcv"), "the token stays out of messages");
    });
  }

  it("429 takes the wait from parameters.retry_after", async () => {
    const err = await sendOnce({ status: 429, body: error(429, "Too Many Requests: retry after 17", { retry_after: 17 }) });
    assert.equal(err?.retryable, true);
    assert.equal(err?.retryAfterSeconds, 17);
    assert.match(err!.message, /Too Many Requests: retry after 17; will retry/);
  });

  it("a Retry-After header wins when both are given", async () => {
    const err = await sendOnce({ status: 429, body: error(429, "Too Many Requests: retry after 3", { retry_after: 3 }), headers: { "retry-after": "9" } });
    assert.equal(err?.retryAfterSeconds, 9);
  });
});

describe("telegram config", () => {
  const invalid: [string, Record<string, unknown>, RegExp][] = [
    ["a token without the bot id", { token: "AAHdqTcv" }, /token: use the token @BotFather gave you/],
    ["a chat name without @", { chatId: "receipts" }, /chatId: use the numeric chat id/],
    ["a fractional chat id", { chatId: 1.5 }, /chatId: /],
    ["a non-http api URL", { apiUrl: "file:///x" }, /apiUrl: must be the Bot API server's URL/],
  ];
  for (const [what, options, message] of invalid) {
    it(`rejects ${what}`, () => {
      const r = telegramModule.schema.safeParse({ name: "t", type: "telegram", token: botToken, chatId: 1, ...options });
      assert.ok(!r.success);
      assert.match(r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n"), message);
    });
  }

});

describe("telegram URL form", () => {
  const valid: [string, Record<string, unknown>][] = [
    [`tgram:///${botToken}/-1001234567890`, { token: botToken, chatId: "-1001234567890" }],
    [`tgram:///bot${botToken}/@receipts`, { token: botToken, chatId: "@receipts" }],
    [`tgram://${botToken.replace(":", "%3A")}/12345`, { token: botToken, chatId: "12345" }],
    [`tgram:///${botToken}/12345?silent=yes&preview=no&thread=9`, { token: botToken, chatId: "12345", silent: true, linkPreview: false, threadId: 9 }],
    [`tgram:///${botToken}/12345?topic=4`, { token: botToken, chatId: "12345", threadId: 4 }],
  ];
  for (const [url, expected] of valid) {
    it(`reads ${url.replace(/AAH\w+/, "AAH…")}`, () => {
      const options = telegramModule.fromUrl(new URL(url));
      assert.deepEqual(options, expected);
      const r = telegramModule.schema.safeParse({ name: "t", type: "telegram", ...options });
      assert.ok(r.success, JSON.stringify(r.error?.issues));
    });
  }

  const invalid: [string, RegExp][] = [
    ["tgram://", /no bot token: a Telegram URL is tgram:\/\/\/\{bot_token\}\/\{chat_id\}/],
    ["tgram:///notatoken/123", /not in the form 123456789:AAH/],
    [`tgram:///${botToken}`, /no chat id after the bot token/],
    [`tgram:///${botToken}/1/2`, /one chat per target, got 2/],
    [`tgram:///${botToken}/receipts`, /chat id "receipts" is neither numeric nor @channelusername/],
    [`tgram:///${botToken}/1?silent=maybe`, /silent=maybe: write silent=yes or silent=no/],
    [`tgram:///${botToken}/1?thread=x`, /thread=x: the forum topic is a number/],
  ];
  for (const [url, message] of invalid) {
    it(`explains what is wrong with ${url.replace(/AAH\w+/, "AAH…")}`, () => {
      assert.throws(
        () => telegramModule.fromUrl(new URL(url)),
        (err: unknown) => err instanceof TargetUrlError && message.test(err.message),
      );
    });
  }
});
