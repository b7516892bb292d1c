import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { startReceiver } from "../../test/support/receiver.ts";
import { amountField, failureOf, notificationWith } from "../../test/support/targets.ts";
import { maskUrl, parseRetryAfter, postPayload } from "./http.ts";
import { targetSchema } from "./index.ts";
import { createTargets as createFromConfig } from "./index.ts";
import { escapeSlack } from "./slack.ts";
import { truncate } from "./text.ts";

/** Targets from config as the loader would hand them over (defaults filled in). */
const createTargets = (configs: unknown[]) => createFromConfig(configs.map((c) => targetSchema.parse(c)));

const notification = notificationWith({
  rule: "r",
  subject: "<!channel> hi & bye",
  fields: { amount: amountField, item: null },
  render: (escape) => `*New:* ${escape("<@U1> & <https://evil|x>")}`,
});

describe("escapeSlack", () => {
  it("escapes exactly &, < and >", () => {
    assert.equal(escapeSlack("<!here> a&b <@U1|x> *b*"), "&lt;!here&gt; a&amp;b &lt;@U1|x&gt; *b*");
    assert.equal(escapeSlack("&amp;"), "&amp;amp;");
  });
});

describe("truncate", () => {
  it("leaves short text alone and cuts long text with an ellipsis", () => {
    assert.equal(truncate("abc", 3), "abc");
    assert.equal(truncate("abcdef", 4), "abc…");
  });
  it("never splits a surrogate pair or an entity", () => {
    assert.equal(truncate("ab😀cd", 4), "ab…");
    assert.equal(truncate("abc &amp; def", 7), "abc …");
  });
});

describe("maskUrl", () => {
  it("keeps scheme and host only", () => {
    assert.equal(maskUrl("https://hooks.slack.example/services/T1/B2/secret"), "https://hooks.slack.example/****");
    assert.equal(maskUrl("https://user:pw@host.example/x?token=1"), "https://****@host.example/****");
    assert.equal(maskUrl("http://127.0.0.1:9000/"), "http://127.0.0.1:9000");
    assert.equal(maskUrl("not a url"), "****");
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    assert.equal(parseRetryAfter("30"), 30);
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter("soon"), undefined);
    const now = Date.parse("2026-11-23T00:00:00Z");
    assert.equal(parseRetryAfter("Mon, 23 Nov 2026 00:00:10 GMT", now), 10);
  });
});

describe("slack payload", () => {
  const [slack] = createTargets([{ name: "team", type: "slack", url: "https://hooks.slack.example/services/T/B/x", username: "mailbell", icon_emoji: ":bell:", channel: "#receipts" }]).values();
  it("carries text, a section and a context block, and the options", () => {
    const body = JSON.parse(slack!.render(notification()).body) as Record<string, unknown> & { blocks: { type: string; text?: { type: string; text: string }; elements?: { text: string }[] }[] };
    assert.equal(body.text, "*New:* &lt;@U1&gt; &amp; &lt;https://evil|x&gt;");
    assert.deepEqual(body.blocks[0], { type: "section", text: { type: "mrkdwn", text: body.text } });
    assert.equal(body.blocks[1]!.type, "context");
    assert.equal(body.blocks[1]!.elements![0]!.text, "*From:* Eve &lt;eve@evil.example&gt;  ·  *Subject:* &lt;!channel&gt; hi &amp; bye");
    assert.equal(body.username, "mailbell");
    assert.equal(body.icon_emoji, ":bell:");
    assert.equal(body.channel, "#receipts");
    assert.equal(body.unfurl_links, false);
  });
  it("keeps a huge message within Slack's limits", () => {
    const long = "x".repeat(50_000);
    const body = JSON.parse(slack!.render(notification({ render: (e) => e(long) })).body) as { text: string; blocks: { text?: { text: string } }[] };
    assert.equal(body.text.length, 40_000);
    assert.equal(body.blocks[0]!.text!.text.length, 3000);
  });
});

describe("webhook payload", () => {
  const [hook] = createTargets([{ name: "hook", type: "webhook", url: "http://127.0.0.1:1/x", headers: { Authorization: "Bearer s3cret" } }]).values();
  it("is the documented JSON, unescaped", () => {
    const body = JSON.parse(hook!.render(notification()).body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body), ["rule", "account", "mailbox", "uidValidity", "uid", "messageId", "from", "subject", "date", "fields", "attachments", "total", "link", "verified", "text"]);
    assert.equal(body.text, "*New:* <@U1> & <https://evil|x>");
    // A notification queued before attachments were known reads as one without any.
    assert.deepEqual(body.attachments, []);
    assert.deepEqual(body.fields, { amount: { text: "¥480", raw: "￥480", amount: "480", currency: "JPY" }, item: null });
    assert.equal(body.link, null);
    assert.equal(body.verified, null, "null when the rule does not verify the sender");
  });

  it("lists the attachments, never their content", () => {
    const pdf = { filename: "Receipt.pdf", contentType: "application/pdf", size: 2048 };
    const body = JSON.parse(hook!.render({ ...notification(), attachments: [pdf] }).body) as Record<string, unknown>;
    assert.deepEqual(body.attachments, [pdf]);
  });
});

const receiver = await startReceiver({ headers: { "content-type": "text/plain" } });
after(() => receiver.close());

describe("sending", () => {
  // Every service's answers are classified by the table in contract.test.ts; a reply that never comes is http.ts's own.
  it("no reply within the timeout is retryable", async () => {
    receiver.reply({ status: 200, body: "", hang: true });
    const url = receiver.url("/services/T/B/secret");
    const [t] = createTargets([{ name: "team", type: "slack", url }]).values();
    const err = await failureOf(postPayload(t!.render(notification()), { target: "team", url, maskedUrl: maskUrl(receiver.url("/x")), timeoutMs: 200 }));
    assert.equal(err?.retryable, true);
    assert.match(err!.message, /no reply within 200 ms/);
  });
});

describe("one-line URL form", () => {
  const parse = (entry: unknown) => targetSchema.safeParse(entry);
  it("expands slack:// to the incoming webhook, with channel and username", () => {
    const r = parse({ name: "team", url: "slack://bot@T_000/B_000/X_XXX/#receipts?icon_emoji=:bell:" });
    assert.ok(r.success, JSON.stringify(r.error?.issues));
    assert.deepEqual(
      { ...r.data, rateLimit: undefined },
      { name: "team", type: "slack", url: "https://hooks.slack.com/services/T_000/B_000/X_XXX", username: "bot", channel: "#receipts", icon_emoji: ":bell:", overflow: "paced", digestAfter: 5, rateLimit: undefined },
    );
  });
  it("expands json:// and jsons:// to a webhook, with +headers", () => {
    const r = parse({ name: "hook", url: "json://127.0.0.1:9000/mail?+X-Token=abc&keep=1" });
    assert.ok(r.success);
    assert.equal((r.data as { url: string }).url, "http://127.0.0.1:9000/mail?keep=1");
    assert.deepEqual((r.data as { headers: unknown }).headers, { "X-Token": "abc" });
    assert.equal((parse({ name: "h", url: "jsons://example.test/x" }).data as { url: string }).url, "https://example.test/x");
  });
  it("accepts a bare URL string and names the target after the service", () => {
    const r = parse("slack://T_000/B_000/X_XXX");
    assert.ok(r.success);
    assert.equal(r.data.name, "slack");
  });
  it("explains an unknown scheme and a malformed URL", () => {
    const unknown = parse({ name: "x", url: "pigeon://coop/1" });
    assert.ok(!unknown.success);
    assert.match(unknown.error.issues[0]!.message, /unknown service URL scheme "pigeon:\/\/"\. Known: slack:\/\/, json:\/\/, jsons:\/\//);
    const bad = parse({ name: "x", url: "slack://only-one-part" });
    assert.ok(!bad.success);
    assert.match(bad.error.issues[0]!.message, /slack:\/\/TokenA\/TokenB\/TokenC/);
  });
  it("reads Apprise's usual Telegram form, whose bot token has a colon where a port would be", () => {
    const r = parse({ name: "tg", url: "tgram://123456:AAHsecretToken/-1001234567" });
    assert.ok(r.success, JSON.stringify(r.error?.issues));
    assert.equal(r.data.type, "telegram");
    assert.equal((r.data as { token: string }).token, "123456:AAHsecretToken");
    assert.equal(String((r.data as { chatId: string | number }).chatId), "-1001234567");
  });


});

describe("rateLimit: off and concurrency", () => {
  it("rateLimit: off means no pacing; concurrency defaults per service (webhook 8, chats 1) and the config can set it", () => {
    const [hook, chat, four] = [
      ...createTargets([
        { name: "hook", type: "webhook", url: "http://127.0.0.1:9/h" },
        { name: "chat", type: "slack", url: "https://hooks.slack.com/services/EXAMPLE/EXAMPLE/x" },
        { name: "four", type: "webhook", url: "http://127.0.0.1:9/h", concurrency: 4 },
      ]).values(),
    ];
    assert.deepEqual([hook!.concurrency, chat!.concurrency, four!.concurrency], [8, 1, 4]);
    const parsed = targetSchema.parse({ name: "hook", type: "webhook", url: "http://127.0.0.1:9/h", rateLimit: "off" }) as { rateLimit?: unknown };
    assert.deepEqual(parsed.rateLimit, { perSecond: Infinity, burst: 1000 });
  });

  it("refuses a concurrency outside 1–64 and a rateLimit that is neither off nor { perSecond, burst }", () => {
    for (const bad of [{ concurrency: 0 }, { concurrency: 65 }, { concurrency: 1.5 }, { rateLimit: "none" }, { rateLimit: { perSecond: 2000 } }]) {
      assert.equal(targetSchema.safeParse({ name: "hook", type: "webhook", url: "http://127.0.0.1:9/h", ...bad }).success, false, JSON.stringify(bad));
    }
  });
});
