/**
 * The contract every target keeps, as one table run over all of them: its one-line URL form gives
 * its config, it prints itself without secrets, mail text stays inert and readable in its payload,
 * its payload keeps within its declared limits, and a service's answer is classified alike:
 * 2xx delivered, 408/429/5xx retried (429 with its Retry-After), other 4xx final, secrets masked.
 * Adding a service = its rows here; what only one service does stays in its own test file.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { startReceiver, type Receiver, type Reply } from "../../test/support/receiver.ts";
import { failureOf, notificationWith, sendResult } from "../../test/support/targets.ts";
import { createTargets, targetModules, targetSchema } from "./index.ts";
import type { TargetDefinition } from "./module.ts";
import { readable, truncate } from "./text.ts";
import type { DigestEntry, Notification, Target, TargetPayload } from "./types.ts";
import type { WebhookBody } from "./webhook.ts";

interface Row {
  name: string;
  type: string;
  /** The one-line form, with a secret in it, and the keys it must expand to. */
  url: string;
  expands: Record<string, unknown>;
  /** The part of `url` that is secret: never printed. */
  urlSecret: string;
  /** describe() of the target made from `url`. */
  describes: string;
  /** The long form, talking to `at` (the receiver) where the service is HTTP. */
  config: (at: Receiver) => Record<string, unknown>;
  /** A secret of `config`: never in describe() or an error message. */
  secret: string;
  /** The answer that means delivered, when it is more than a 200. */
  ok?: Reply;
  /** What a person sees of the control-laden text (text.test.ts's convention). */
  shown: string;
  /** Undoes the service's own escaping, which the readable check is not about. */
  unescape?: (s: string) => string;
  /** Markup the service would act on; no payload string may contain it once mail text is in. */
  live?: RegExp[];
  /** Data for programs: the mail's text goes as it is (JSON-escaped), not made readable or cut. */
  data?: boolean;
  /** How the service answers: over HTTP (the receiver), by a process's exit, or not at all (local). */
  transport: "http" | "process" | "local";
}

// NUL, ESC[2J (clear screen), BEL, RLO…PDF, CR, tab, LF, C1 NEL and CSI, DEL, CRLF, LRI…PDI.
const controls = "a\u0000b\u001b[2Jc\u0007d\u202Ee\u202Cf\rg\th\ni\u0085j\u009bk\u007fl\r\nm\u2066n\u2069o";
// Controls U+FFFD, bidi controls gone, every line break LF, tab kept.
const shown = "a\uFFFDb\uFFFD[2Jc\uFFFDdef\ng\th\ni\uFFFDj\uFFFDk\uFFFDl\nmno";
// eslint-disable-next-line no-control-regex -- looking for control characters is the test
const unreadable = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
// Every service's markup at once: mentions, pings, links, emphasis, HTML.
const markup = "@everyone <@123> <!channel> [x](https://evil.example/) **bold** _it_ <b>x</b> @admin\n- item";

const unbackslash = (s: string) => s.replace(/\\(.)/g, "$1");

const rows: Row[] = [
  {
    name: "slack webhook",
    type: "slack",
    url: "slack://T_000/B_000/XsecretX0123",
    expands: { url: "https://hooks.slack.com/services/T_000/B_000/XsecretX0123" },
    urlSecret: "XsecretX0123",
    describes: "slack https://hooks.slack.com/****",
    config: (at) => ({ url: at.url("/services/T/B/s3cretHook") }),
    secret: "s3cretHook",
    shown,
    live: [/<[!@#]/, /<https?:/],
    transport: "http",
  },
  {
    name: "slack Web API",
    type: "slack",
    url: "slack://xoxb-1_secret_token/#receipts",
    expands: { token: "xoxb-1_secret_token", channel: "#receipts" },
    urlSecret: "secret_token",
    describes: "slack Web API token xoxb**** channel #receipts",
    config: (at) => ({ token: "xoxb-s3cret_bot_token", channel: "#c", apiUrl: at.url("/api") }),
    secret: "s3cret_bot_token",
    ok: { status: 200, headers: { "content-type": "application/json" }, body: '{"ok":true,"ts":"1.2"}' },
    shown,
    live: [/<[!@#]/, /<https?:/],
    transport: "http",
  },
  {
    name: "discord",
    type: "discord",
    url: "discord://mailbell@1234567890/secretWebhookToken",
    expands: { url: "https://discord.com/api/webhooks/1234567890/secretWebhookToken" },
    urlSecret: "secretWebhookToken",
    describes: "discord https://discord.com/**** webhook 1234567890 as mailbell",
    config: (at) => ({ url: at.url("/api/webhooks/1/s3cretToken") }),
    secret: "s3cretToken",
    shown,
    unescape: unbackslash,
    live: [/@(everyone|here)/i, /(^|[^\\])<[@#!:&/t]/, /(^|[^\\])\]\(/, /(^|[^\\])\*\*?[^\\]/],
    transport: "http",
  },
  {
    name: "teams",
    type: "teams",
    url: "workflows://flow.example/w1/secretSig0123",
    expands: { url: "https://flow.example/workflows/w1/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=secretSig0123" },
    urlSecret: "secretSig0123",
    describes: "teams (Workflows) https://flow.example/****",
    config: (at) => ({ url: at.url("/workflows/w/triggers/manual/paths/invoke?sig=S3cretSig") }),
    secret: "S3cretSig",
    shown,
    unescape: unbackslash,
    live: [/\]\(/, /(^|[^\\])[*_]/, /^\s*(-|\d+\.)\s/m],
    transport: "http",
  },
  {
    name: "telegram",
    type: "telegram",
    url: "tgram://123456:AAHsecretToken/-1001234567?thread=3",
    expands: { token: "123456:AAHsecretToken", chatId: "-1001234567" },
    urlSecret: "AAHsecretToken",
    describes: "telegram chat -1001234567 topic 3 via https://api.telegram.org (bot token 1234****)",
    config: (at) => ({ token: "123456:AAHs3cret", chatId: 1, apiUrl: at.url("/tg") }),
    secret: "AAHs3cret",
    shown,
    live: [/<(?!\/?b>)/, /@(?=[A-Za-z0-9_])/],
    transport: "http",
  },
  {
    name: "line",
    type: "line",
    url: `line://secretChannelToken/U${"0".repeat(32)}`,
    expands: { token: "secretChannelToken", to: `U${"0".repeat(32)}` },
    urlSecret: "secretChannelToken",
    describes: `line push to U${"0".repeat(32)} token secr****`,
    config: (at) => ({ token: "s3cretLineToken", to: `U${"0".repeat(32)}`, apiUrl: at.url() }),
    secret: "s3cretLineToken",
    shown,
    transport: "http",
  },
  {
    name: "ntfy",
    type: "ntfy",
    url: "ntfys://secretTopic0123",
    expands: { server: "https://ntfy.sh", topic: "secretTopic0123" },
    urlSecret: "secretTopic0123",
    describes: "ntfy https://ntfy.sh topic secr****",
    config: (at) => ({ topic: "s3cretTopicName", server: at.url() }),
    secret: "s3cretTopicName",
    shown,
    transport: "http",
  },
  {
    name: "ifttt",
    type: "ifttt",
    url: "ifttt://secretKey0123456/receipt",
    expands: { key: "secretKey0123456", event: "receipt" },
    urlSecret: "secretKey0123456",
    describes: "ifttt event receipt key secr****",
    config: (at) => ({ key: "s3cretIftttKey", event: "e", apiUrl: at.url() }),
    secret: "s3cretIftttKey",
    shown,
    transport: "http",
  },
  {
    name: "webhook",
    type: "webhook",
    url: "jsons://hooks.example/mail/secretPath?+X-Token=secretHeader",
    expands: { url: "https://hooks.example/mail/secretPath", headers: { "X-Token": "secretHeader" } },
    urlSecret: "secret",
    describes: "webhook https://hooks.example/**** (+1 header(s), values hidden)",
    config: (at) => ({ url: at.url("/hook/s3cretPath") }),
    secret: "s3cretPath",
    shown,
    data: true,
    transport: "http",
  },
  {
    name: "command",
    type: "command",
    url: "command:///usr/bin/true?arg=--quiet",
    expands: { command: ["/usr/bin/true", "--quiet"] },
    urlSecret: "(none in the URL; env values are)",
    describes: "command /usr/bin/true (+1 arg(s)), timeout 30s",
    config: () => ({ command: ["/bin/sh", "-c", "cat >/dev/null; exit $CODE"], env: { CODE: "0", TOKEN: "s3cretEnvValue" } }),
    secret: "s3cretEnvValue",
    shown,
    data: true,
    transport: "process",
  },
  {
    name: "stdout",
    type: "stdout",
    url: "stdout://?format=json",
    expands: { format: "json" },
    urlSecret: "(none)",
    describes: "stdout (json)",
    config: () => ({}),
    secret: "(none)",
    // A terminal line: every line break a space.
    shown: shown.replace(/\n/g, " "),
    transport: "local",
  },
];

const receiver = await startReceiver();
after(() => receiver.close());

function target(row: Row, extra: Record<string, unknown> = {}): Target {
  const [t] = createTargets([targetSchema.parse({ name: "t", type: row.type, ...row.config(receiver), ...extra })], { stdout: () => {} }).values();
  return t!;
}

function definition(row: Row): TargetDefinition {
  return targetModules.find((m) => m.type === row.type) as unknown as TargetDefinition;
}

/** Every string in a payload: the JSON's strings at any depth, or the body itself. */
function strings(payload: TargetPayload): string[] {
  if (!payload.contentType.startsWith("application/json")) return [payload.body];
  const walk = (value: unknown): string[] => {
    if (typeof value === "string") return [value];
    if (value === null || typeof value !== "object") return [];
    return Object.values(value).flatMap(walk);
  };
  return walk(JSON.parse(payload.body));
}

describe("every service is in the table, and the table in every service", () => {
  it("the rows cover every registered type", () => {
    assert.deepEqual([...new Set(rows.map((r) => r.type))].sort(), targetModules.map((m) => m.type).sort());
  });
});

for (const row of rows) {
  describe(`${row.name}: URL form and printed form`, () => {
    it(`${row.url.replace(row.urlSecret, "…")} expands to its config`, () => {
      const parsed = targetSchema.safeParse({ name: "x", url: row.url });
      assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
      assert.equal(parsed.data.type, row.type);
      const data = parsed.data as Record<string, unknown>;
      for (const [key, value] of Object.entries(row.expands)) assert.deepEqual(data[key], value, key);
    });

    it("prints itself with every secret masked", () => {
      const parsed = targetSchema.parse({ name: "x", url: row.url });
      const [made] = createTargets([parsed]).values();
      assert.equal(made!.describe(), row.describes);
      assert.ok(!made!.describe().includes(row.urlSecret));
      assert.ok(!target(row).describe().includes(row.secret));
      assert.deepEqual(made!.defaultPacing, definition(row).pacing);
    });

    it("declares as secret every key that holds one", () => {
      const holding = Object.entries(row.config(receiver)).filter(([, v]) => JSON.stringify(v).includes(row.secret));
      for (const [key] of holding) assert.ok(definition(row).secrets.includes(key), `${key} holds a secret`);
    });
  });

  describe(`${row.name}: mail text in the payload`, () => {
    const hostile = notificationWith({
      subject: controls,
      from: `Eve ${controls} <eve@evil.example>`,
      fields: { item: { text: controls, raw: controls } },
      render: (escape) => `New: ${escape(controls)}`,
    });
    it(row.data ? "is data: the mail's text as it is" : "is readable: controls visible, bidi overrides gone, the convention's line breaks", () => {
      const texts = strings(target(row).render(hostile()));
      const unescape = row.unescape ?? ((s: string) => s);
      if (row.data) {
        assert.ok(texts.includes(`New: ${controls}`), "the message as it is");
        assert.ok(texts.includes(controls), "the subject as it is");
        return;
      }
      for (const text of texts) assert.doesNotMatch(text, unreadable, `${JSON.stringify(text)} carries a control`);
      assert.ok(
        texts.some((t) => unescape(t).includes(row.shown)),
        `none of the payload's texts shows ${JSON.stringify(row.shown)}: ${JSON.stringify(texts)}`,
      );
    });

    it("renders the same payload from the notification as the outbox stores it (JSON)", () => {
      const n = notificationWith({ total: { amount: "960", currency: "JPY", text: "¥960", period: "2026-11", periodLabel: "November" }, period: "2026-11", link: "https://mail.example/m" })();
      const stored = JSON.parse(JSON.stringify(n)) as Notification;
      const t = target(row);
      assert.deepEqual(t.render(stored), t.render(n));
      assert.equal(t.summarize(stored), t.summarize(n));
    });

    it("a digest line is readable too", () => {
      if (row.data) return;
      assert.doesNotMatch(target(row).summarize(hostile()), unreadable);
    });

    const attack = notificationWith({ subject: markup, from: `${markup} <eve@evil.example>`, fields: { item: { text: markup, raw: markup } }, render: (escape) => `New: ${escape(markup)}` });
    it("is inert: mail text reaches the payload only through the service's escape", () => {
      const texts = strings(target(row).render(attack()));
      const escaped = definition(row).escape(readable(markup));
      assert.ok(
        texts.some((t) => t.includes(escaped)),
        `the message carries the escaped text ${JSON.stringify(escaped)}: ${JSON.stringify(texts)}`,
      );
      for (const live of row.live ?? []) for (const text of texts) assert.doesNotMatch(text, live, `${JSON.stringify(text)} would act as markup`);
    });

    it("a digest line is inert too", () => {
      const line = target(row).summarize(attack());
      for (const live of row.live ?? []) assert.doesNotMatch(line, live, `${JSON.stringify(line)} would act as markup`);
    });
  });

  describe(`${row.name}: limits`, () => {
    const { limits, cut = truncate } = definition(row);
    // Parts counted in bytes bound the whole body; parts in characters (as the service counts them: cut leaves such text alone) each text.
    const bytes = Object.entries(limits).filter(([part]) => part.endsWith("Bytes"));
    const chars = bytes.length > 0 ? [] : Object.entries(limits).filter(([part]) => part !== "summary" && part !== "envValue");
    const withinChars = (text: string) => {
      const max = Math.max(...chars.map(([, n]) => n));
      assert.ok(cut(text, max) === text, `a text of ${text.length} characters is over the largest limit, ${max}`);
    };
    const huge = "x".repeat(60_000);
    const big = notificationWith({ subject: huge, from: `${huge} <a@b.example>`, fields: { item: { text: huge, raw: huge } }, render: (escape) => escape(huge) });

    it(chars.length + bytes.length === 0 ? "has none but the digest line (the whole message goes)" : `keeps every part within ${[...chars, ...bytes].map(([p, n]) => `${p} ${n}`).join(", ")}`, () => {
      const payload = target(row).render(big());
      if (chars.length > 0) strings(payload).forEach(withinChars);
      if (bytes.length > 0) assert.ok(Buffer.byteLength(payload.body) <= Math.max(...bytes.map(([, n]) => n)), "the body is within its byte limit");
      if (chars.length + bytes.length === 0) assert.ok(strings(payload).some((t) => t.includes(huge)), "a service without limits gets the whole text");
    });

    it(Number.isFinite(limits.summary) ? `cuts a digest line to ${limits.summary}` : "lists a mail in a digest whole", () => {
      const line = target(row).summarize(big());
      if (Number.isFinite(limits.summary)) assert.ok(line.length <= limits.summary, `${line.length} characters`);
      else assert.ok(line.includes(huge));
    });

    it("a digest of many long lines stays within the same limits", () => {
      const t = target(row);
      const entries: DigestEntry[] = Array.from({ length: 200 }, (_, i) => ({ rule: "r", subject: `s${i}`, summary: t.summarize(big()), body: t.render(big()).body }));
      const payload = t.renderDigest(entries.slice(0, 50), 200);
      if (chars.length > 0) strings(payload).forEach(withinChars);
      if (bytes.length > 0) assert.ok(Buffer.byteLength(payload.body) <= Math.max(...bytes.map(([, n]) => n)));
    });
  });
}

/** An HTTP answer and what the TargetError must say of it; undefined: delivered. */
const answers: { reply: Reply; retryable?: boolean; retryAfter?: number }[] = [
  { reply: { status: 200, body: "" } },
  { reply: { status: 400, body: "" }, retryable: false },
  { reply: { status: 403, body: "" }, retryable: false },
  { reply: { status: 404, body: "" }, retryable: false },
  { reply: { status: 408, body: "" }, retryable: true },
  { reply: { status: 429, headers: { "retry-after": "7" }, body: "" }, retryable: true, retryAfter: 7 },
  { reply: { status: 500, body: "" }, retryable: true },
  { reply: { status: 503, body: "" }, retryable: true },
];

for (const row of rows.filter((r) => r.transport === "http")) {
  describe(`${row.name}: the service's answer`, () => {
    for (const a of answers) {
      const what = a.retryable === undefined ? "delivered" : a.retryable ? `retried${a.retryAfter ? ` after ${a.retryAfter} s` : ""}` : "final";
      it(`${a.reply.status} is ${what}, and no message shows a secret`, async () => {
        const t = target(row);
        receiver.clear();
        receiver.reply(a.retryable === undefined && row.ok ? row.ok : a.reply);
        const err = await sendResult(t, notificationWith({})());
        assert.equal(receiver.requests.length, 1, "one request reached the service");
        if (a.retryable === undefined) return assert.equal(err, undefined);
        assert.ok(err, "must throw");
        assert.equal(err.status, a.reply.status);
        assert.equal(err.retryable, a.retryable);
        assert.equal(err.retryAfterSeconds, a.retryAfter);
        assert.match(err.message, new RegExp(`answered ${a.reply.status}`));
        assert.ok(!err.message.includes(row.secret), "the secret is masked");
      });
    }

    it("no answer at all (connection refused) is retried", async () => {
      const closed = await startReceiver();
      await closed.close();
      const [t] = createTargets([targetSchema.parse({ name: "t", type: row.type, ...row.config(closed) })]).values();
      const err = await failureOf(t!.send(t!.render(notificationWith({})())));
      assert.equal(err?.retryable, true);
      assert.ok(!err!.message.includes(row.secret));
    });
  });
}

describe("command: the program's exit is its answer", () => {
  const row = rows.find((r) => r.type === "command")!;
  const exits = [
    { code: "0", retryable: undefined },
    { code: "1", retryable: false },
    { code: "75", retryable: true },
  ];
  for (const e of exits) {
    it(`exit ${e.code} is ${e.retryable === undefined ? "delivered" : e.retryable ? "retried (EX_TEMPFAIL)" : "final"}, and no message shows a secret`, async () => {
      const t = target(row, { env: { CODE: e.code, TOKEN: row.secret } });
      const err = await sendResult(t, notificationWith({})());
      assert.equal(err?.retryable, e.retryable);
      if (err) assert.ok(!err.message.includes(row.secret));
    });
  }
});

describe("stdout: writing a line is delivering it", () => {
  it("prints the payload and resolves", async () => {
    const lines: string[] = [];
    const [t] = createTargets([targetSchema.parse({ name: "t", type: "stdout" })], { stdout: (l) => lines.push(l) }).values();
    assert.equal(await sendResult(t!, notificationWith({})()), undefined);
    assert.deepEqual(lines, ["New: Your receipt"]);
  });
});

describe("command: the MAILBELL_* variables follow the convention; stdin is data", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-contract-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const recorder = 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => require("node:fs").writeFileSync(process.env.OUT, JSON.stringify({ env: process.env, stdin: s })));';
  const hostile = notificationWith({ subject: controls, from: `Eve ${controls} <eve@evil.example>`, fields: { item: { text: controls, raw: controls } }, render: (escape) => `New: ${escape(controls)}` });

  it("controls visible in the environment, the mail as it is on stdin", async () => {
    const out = path.join(dir, "out.json");
    const [t] = createTargets([targetSchema.parse({ name: "t", type: "command", command: [process.execPath, "-e", recorder], env: { OUT: out } })]).values();
    await t!.send(t!.render(hostile()));
    const { env, stdin } = JSON.parse(readFileSync(out, "utf8")) as { env: Record<string, string>; stdin: string };
    for (const [k, v] of Object.entries(env).filter(([k]) => k.startsWith("MAILBELL_"))) assert.doesNotMatch(v, unreadable, `${k} carries a control`);
    assert.equal(env.MAILBELL_SUBJECT, shown);
    assert.equal(env.MAILBELL_TEXT, `New: ${shown}`);
    assert.equal(env.MAILBELL_FROM, `Eve ${shown} <eve@evil.example>`);
    assert.equal(env.MAILBELL_FIELD_ITEM_RAW, shown);
    assert.equal((JSON.parse(stdin) as WebhookBody).subject, controls);
  });
});
