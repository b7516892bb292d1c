import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { startReceiver, type Reply } from "../../test/support/receiver.ts";
import { amountField, assertFailure, gmailLink, notificationWith, sendResult, type NotificationOverrides } from "../../test/support/targets.ts";
import type { TargetError } from "../errors.ts";
import { memoryTargetState } from "./state.ts";
import { discordModule, escapeDiscord } from "./discord.ts";
import { TargetUrlError } from "./module.ts";
import type { DigestEntry, Notification, Target } from "./types.ts";

const hostile = "@everyone <@123> [x](https://evil) <!channel> **bold**";

const notification = notificationWith({
  from: "@here <@&55> <eve@evil.example>",
  subject: hostile,
  fields: { amount: amountField, item: { text: hostile, raw: hostile }, shop: null },
  link: gmailLink,
  render: (escape) => `**New:** ${escape(hostile)}`,
});

function create(extra: Record<string, unknown> = {}): Target {
  return discordModule.create(discordModule.schema.parse({ name: "dc", type: "discord", url: "https://discord.com/api/webhooks/1234567890/s3cretToken", ...extra }), { state: memoryTargetState() });
}

interface Embed {
  title?: string;
  url?: string;
  description?: string;
  timestamp?: string;
  fields?: { name: string; value: string; inline?: boolean }[];
  footer?: { text: string };
}
interface Body {
  content: string;
  embeds: Embed[];
  allowed_mentions: unknown;
  username?: string;
  avatar_url?: string;
}
const parse = (t: Target, n: Notification) => JSON.parse(t.render(n).body) as Body;
const embedTotal = (e: Embed) => (e.title?.length ?? 0) + (e.description?.length ?? 0) + (e.footer?.text.length ?? 0) + (e.fields ?? []).reduce((s, f) => s + f.name.length + f.value.length, 0);


describe("escapeDiscord", () => {
  const cases: [string, string][] = [
    [hostile, "@\u200beveryone \\<@123\\> \\[x\\](https://evil) \\<!channel\\> \\*\\*bold\\*\\*"],
    ["<#42> <@&7> <t:1700000000> </cmd:1> <:e:1>", "\\<#42\\> \\<@&7\\> \\<t:1700000000\\> \\</cmd:1\\> \\<:e:1\\>"],
    ["||spoiler|| `code` ~~s~~ __u__ a\\b", "\\|\\|spoiler\\|\\| \\`code\\` \\~\\~s\\~\\~ \\_\\_u\\_\\_ a\\\\b"],
    ["# h\n-# sub\n- li\n+ li\n1. one\n> q", "\\# h\n\\-# sub\n\\- li\n\\+ li\n1\\. one\n\\> q"],
    ["@HERE and @Everyone", "@\u200bHERE and @\u200bEveryone"],
    // A URL stays a URL (its text is its target); brackets in it cannot open or close a link.
    ["see https://shop.example/a_b(1)[2]?q=*x* now", "see https://shop.example/a_b%281%29%5B2%5D?q=*x* now"],
    ["https://x.example/@here", "https://x.example/%40here"],
    ["¥480 — 2026-11-23", "¥480 — 2026-11-23"],
  ];
  for (const [input, expected] of cases) {
    it(`escapes ${JSON.stringify(input).slice(0, 40)}`, () => assert.equal(escapeDiscord(input), expected));
  }
});

describe("discord payload", () => {
  const t = create({ username: "mailbell", avatar_url: "https://img.example/bell.png" });

  it("has content, one embed, the options, and never lets anything ping", () => {
    const body = parse(t, notification());
    assert.deepEqual(Object.keys(body), ["content", "embeds", "allowed_mentions", "username", "avatar_url"]);
    assert.deepEqual(body.allowed_mentions, { parse: [] });
    assert.equal(body.username, "mailbell");
    assert.equal(body.avatar_url, "https://img.example/bell.png");
    assert.equal(body.embeds.length, 1);
    const [embed] = body.embeds;
    assert.equal(body.content, `**New:** ${escapeDiscord(hostile)}`, "template markup kept, mail text escaped");
    assert.equal(embed!.title, escapeDiscord(hostile));
    assert.equal(embed!.url, "https://mail.google.com/mail/u/0/#search/rfc822msgid%3Am%40x");
    assert.equal(embed!.timestamp, "2026-11-23T00:00:00.000Z");
    assert.deepEqual(embed!.footer, { text: "receipts" });
    assert.deepEqual(
      embed!.fields!.map((f) => f.name),
      ["From", "amount", "item", "shop"],
    );
    assert.equal(embed!.fields![1]!.value, "¥480");
    assert.equal(embed!.fields![3]!.value, "\\[shop missing\\]");
  });


  it("leaves out an embed url that is not http(s), and a missing date", () => {
    const body = parse(t, notification({ link: "javascript:alert(1)", date: undefined }));
    assert.equal(body.embeds[0]!.url, undefined);
    assert.equal(body.embeds[0]!.timestamp, undefined);
    assert.equal(parse(t, notification({ rule: "" })).embeds[0]!.footer, undefined, "Discord refuses an empty footer");
  });

  const limits: { name: string; n: NotificationOverrides; check: (b: Body) => void }[] = [
    { name: "content at 2,000", n: { render: (e) => e("x".repeat(5000)) }, check: (b) => assert.equal(b.content.length, 2000) },
    { name: "content of escaped text at 2,000", n: { render: (e) => e("*".repeat(1500)) }, check: (b) => assert.ok(b.content.length <= 2000 && b.content.endsWith("…")) },
    { name: "title at 256", n: { subject: "s".repeat(300) }, check: (b) => assert.equal(b.embeds[0]!.title!.length, 256) },
    {
      name: "fields at 1,024 each, 25 at most, 6,000 in all",
      n: { fields: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}`, { text: "v".repeat(3000), raw: "" }])) },
      check: (b) => {
        const e = b.embeds[0]!;
        assert.ok(e.fields!.length <= 25);
        assert.ok(e.fields!.every((f) => f.value.length <= 1024 && f.value.length > 0));
        assert.ok(embedTotal(e) <= 6000, `embed total ${embedTotal(e)}`);
      },
    },
    { name: "an empty message and subject still make a valid message", n: { render: () => "  ", subject: "", from: "" }, check: (b) => assert.ok(b.content.length > 0 && b.embeds[0]!.title!.length > 0 && b.embeds[0]!.fields![0]!.value.length > 0) },
    { name: "no surrogate pair is split", n: { render: (e) => e("😀".repeat(1500)) }, check: (b) => assert.doesNotMatch(b.content, /[\ud800-\udbff](?![\udc00-\udfff])/) },
  ];
  for (const c of limits) it(`keeps ${c.name}`, () => c.check(parse(t, notification(c.n))));

  it("summarize is one escaped line", () => {
    const s = t.summarize(notification({ render: (e) => `a\n${e("@everyone")}\n b` }));
    assert.equal(s, "a @\u200beveryone b");
  });

  it("a digest is valid: description within 4,096 and the embed within 6,000, naming what was left out", () => {
    const entries: DigestEntry[] = Array.from({ length: 20 }, (_, i) => ({ rule: "r", subject: hostile, summary: t.summarize(notification({ render: (e) => e(`${i} ${hostile} ${"y".repeat(400)}`) })), body: "{}" }));
    const body = JSON.parse(t.renderDigest(entries, 57).body) as Body;
    const e = body.embeds[0]!;
    assert.ok(e.description!.length <= 4096);
    assert.ok(embedTotal(e) <= 6000);
    assert.ok(body.content.length <= 2000);
    assert.match(e.description!, /\n…and \d+ more$/);
    assert.deepEqual(body.allowed_mentions, { parse: [] });
    const small = JSON.parse(t.renderDigest(entries.slice(0, 2), 2).body) as Body;
    assert.equal(small.embeds[0]!.description!.split("\n").length, 2);
  });
});

const receiver = await startReceiver({ headers: { "content-type": "application/json" } });
// With wait=true Discord answers with the message it created.
receiver.setDefault({ status: 200, body: JSON.stringify({ id: "1", content: "" }) });
after(() => receiver.close());

describe("discord sending", () => {
  async function attempt(reply?: Reply, url = receiver.url("/api/webhooks/1234567890/s3cretToken")): Promise<TargetError | undefined> {
    if (reply) receiver.reply(reply);
    return sendResult(create({ url }), notification(), { idempotencyKey: "row-1" });
  }

  it("posts the JSON to the webhook with wait=true, keeping other query parameters", async () => {
    assert.equal(await attempt(), undefined);
    assert.equal(receiver.requests.at(-1)!.path, "/api/webhooks/1234567890/s3cretToken?wait=true");
    assert.match(String(receiver.requests.at(-1)!.headers["content-type"]), /^application\/json/);
    assert.deepEqual((receiver.requests.at(-1)!.json as Body).allowed_mentions, { parse: [] });
    assert.equal(await attempt(undefined, receiver.url("/api/webhooks/1/t?thread_id=99")), undefined);
    assert.equal(receiver.requests.at(-1)!.path, "/api/webhooks/1/t?thread_id=99&wait=true");
  });

  const formError = JSON.stringify({ code: 50035, errors: { embeds: { "0": { title: { _errors: [{ code: "BASE_TYPE_MAX_LENGTH", message: "Must be 256 or fewer in length." }] } } } }, message: "Invalid Form Body" });
  const cases: { name: string; reply: Reply; retryable: boolean; retryAfter?: number; message: RegExp }[] = [
    { name: "400 form error", reply: { status: 400, body: formError }, retryable: false, message: /answered 400: Invalid Form Body \(code 50035\); embeds\.0\.title: Must be 256 or fewer in length\./ },
    { name: "400 empty message", reply: { status: 400, body: '{"message": "Cannot send an empty message", "code": 50006}' }, retryable: false, message: /Cannot send an empty message \(code 50006\)/ },
    { name: "401 bad token", reply: { status: 401, body: '{"message": "Invalid Webhook Token", "code": 50027}' }, retryable: false, message: /Invalid Webhook Token \(code 50027\); the webhook token is wrong/ },
    { name: "403", reply: { status: 403, body: '{"message": "Missing Access", "code": 50001}' }, retryable: false, message: /Missing Access/ },
    { name: "404 deleted webhook", reply: { status: 404, body: '{"message": "Unknown Webhook", "code": 10015}' }, retryable: false, message: /Unknown Webhook \(code 10015\); the webhook was deleted .* update url/ },
    {
      name: "429 with header and body",
      reply: { status: 429, body: '{"message": "You are being rate limited.", "retry_after": 0.8, "global": false}', headers: { "retry-after": "1" } },
      retryable: true,
      retryAfter: 1,
      message: /answered 429: You are being rate limited\.; retry after 0\.8 s; will retry\./,
    },
    {
      name: "429 whose body asks longer than the header",
      reply: { status: 429, body: '{"message": "You are being rate limited.", "retry_after": 3.2, "global": true}', headers: { "retry-after": "3" } },
      retryable: true,
      retryAfter: 4,
      message: /\(global limit\)/,
    },
    { name: "429 with the body only", reply: { status: 429, body: '{"message": "You are being rate limited.", "retry_after": 2.5, "global": false}' }, retryable: true, retryAfter: 3, message: /answered 429/ },
    { name: "429 from Cloudflare (HTML)", reply: { status: 429, body: "<html>Error 1015</html>", headers: { "retry-after": "60" } }, retryable: true, retryAfter: 60, message: /answered 429/ },
    { name: "500", reply: { status: 500, body: '{"message": "500: Internal Server Error", "code": 0}' }, retryable: true, message: /answered 500: 500: Internal Server Error; will retry/ },
  ];
  for (const c of cases) {
    it(`${c.name} is ${c.retryable ? "retryable" : "final"}`, async () => {
      assertFailure(await attempt(c.reply), { ...c, status: c.reply.status }, "s3cretToken", "the token is masked in the message");
    });
  }
});

describe("discord URL form", () => {
  const expand = (url: string) => discordModule.schema.parse({ name: "d", type: "discord", ...discordModule.fromUrl(new URL(url)) });
  const valid: [string, Record<string, unknown>][] = [
    ["discord://1234567890123/AbC-dEf_123", { url: "https://discord.com/api/webhooks/1234567890123/AbC-dEf_123" }],
    ["discord://mailbell@1/tok", { url: "https://discord.com/api/webhooks/1/tok", username: "mailbell" }],
    ["discord://1/tok?username=Bell%20Bot&avatar_url=https%3A%2F%2Fimg.example%2Fb.png", { url: "https://discord.com/api/webhooks/1/tok", username: "Bell Bot", avatar_url: "https://img.example/b.png" }],
  ];
  for (const [url, expected] of valid) {
    it(`reads ${url}`, () => {
      const config = expand(url);
      for (const [k, v] of Object.entries(expected)) assert.equal((config as Record<string, unknown>)[k], v, k);
    });
  }
  const invalid = ["discord://1234567890", "discord://abc/tok", "discord://1/tok/extra", "discord://1/to%20k"];
  for (const url of invalid) {
    it(`refuses ${url}, saying what a valid one looks like`, () => {
      assert.throws(
        () => discordModule.fromUrl(new URL(url)),
        (err: unknown) => err instanceof TargetUrlError && /discord:\/\/\{webhook_id\}\/\{webhook_token\}/.test(err.message),
      );
    });
  }
  it("refuses a username Discord would refuse, at load time", () => {
    const r = discordModule.schema.safeParse({ name: "d", type: "discord", url: "https://discord.com/api/webhooks/1/t", username: "My Discord Bot" });
    assert.ok(!r.success);
    assert.match(r.error.issues[0]!.message, /"discord" or "clyde"/);
  });
});
