import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { startReceiver, type Reply } from "../../test/support/receiver.ts";
import { amountField, assertFailure, notificationWith, sendResult, type NotificationOverrides } from "../../test/support/targets.ts";
import type { TargetError } from "../errors.ts";
import { memoryTargetState } from "./state.ts";
import { lineModule, lineRetryKey } from "./line.ts";
import { TargetUrlError } from "./module.ts";
import type { DigestEntry, Target } from "./types.ts";

const hostile = "@everyone <@123> [x](https://evil) <!channel> **bold**";
const to = "U0123456789abcdef0123456789abcdef";
const token = "S3cretChannelToken+abc/def=";
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const notification = notificationWith({ subject: hostile, fields: { amount: amountField }, render: (escape) => `New: ${escape(hostile)} {name} $` });

function create(extra: Record<string, unknown> = {}): Target {
  return lineModule.create(lineModule.schema.parse({ name: "ln", type: "line", token, to, ...extra }), { state: memoryTargetState() });
}

interface Body {
  to: string;
  messages: { type: string; text: string }[];
  notificationDisabled?: boolean;
}
const parse = (body: string) => JSON.parse(body) as Body;

describe("line payload", () => {
  const t = create();

  it("is one plain text message to the configured ID, mail text unchanged", () => {
    const body = parse(t.render(notification()).body);
    assert.deepEqual(body, { to, messages: [{ type: "text", text: `New: ${hostile} {name} $` }] });
  });

  it("silent: true asks LINE to deliver without a notification", () => {
    assert.equal(parse(create({ silent: true }).render(notification()).body).notificationDisabled, true);
  });

  const limits: { name: string; n: NotificationOverrides; check: (text: string) => void }[] = [
    { name: "cuts text at 5,000", n: { render: (e) => e("x".repeat(9000)) }, check: (s) => assert.equal(s.length, 5000) },
    { name: "never splits a surrogate pair", n: { render: (e) => e("😀".repeat(3000)) }, check: (s) => assert.ok(s.length <= 5000 && !/[\ud800-\udbff]…$/.test(s)) },
    { name: "never sends empty text (LINE refuses it)", n: { render: () => " \n " }, check: (s) => assert.equal(s, "(empty message)") },
    { name: "keeps text at exactly 5,000 whole", n: { render: (e) => e("y".repeat(5000)) }, check: (s) => assert.equal(s, "y".repeat(5000)) },
  ];
  for (const c of limits) it(c.name, () => c.check(parse(t.render(notification(c.n)).body).messages[0]!.text));

  it("a digest is one valid text message within 5,000, naming what was left out", () => {
    const entries: DigestEntry[] = Array.from({ length: 20 }, (_, i) => ({ rule: "r", subject: "s", summary: t.summarize(notification({ render: (e) => e(`${i} ${"z".repeat(400)}\nline`) })), body: "{}" }));
    const body = parse(t.renderDigest(entries, 40).body);
    assert.equal(body.to, to);
    assert.equal(body.messages.length, 1);
    const text = body.messages[0]!.text;
    assert.ok(text.length <= 5000, `${text.length}`);
    assert.match(text, /^40 mails .*:\n• 0 z+/);
    assert.match(text, /\n…and \d+ more$/);
    assert.ok(!text.includes("z\nline"), "summaries are one line each");
  });
});

describe("lineRetryKey", () => {
  it("is a UUID, the same for the same row and different for another", () => {
    const a = lineRetryKey(`${to}\nrow-1`);
    assert.match(a, uuid);
    assert.equal(lineRetryKey(`${to}\nrow-1`), a);
    assert.notEqual(lineRetryKey(`${to}\nrow-2`), a);
  });
});

const receiver = await startReceiver({ headers: { "content-type": "application/json", "x-line-request-id": "req-1" } });
receiver.setDefault({ status: 200, body: JSON.stringify({ sentMessages: [{ id: "461230966842064897", quoteToken: "IStG5h1Tz7b" }] }) });
after(() => receiver.close());

describe("line sending", () => {
  async function attempt(reply?: Reply, idempotencyKey: string | null = "row-1"): Promise<TargetError | undefined> {
    if (reply) receiver.reply(reply);
    return sendResult(create({ apiUrl: receiver.url() }), notification(), idempotencyKey === null ? {} : { idempotencyKey });
  }
  const retryKey = () => receiver.requests.at(-1)!.headers["x-line-retry-key"];

  it("pushes with the Bearer token and a retry key derived from the row", async () => {
    assert.equal(await attempt(), undefined);
    const req = receiver.requests.at(-1)!;
    assert.equal(req.method, "POST");
    assert.equal(req.path, "/v2/bot/message/push");
    assert.equal(req.headers.authorization, `Bearer ${token}`);
    assert.match(String(req.headers["content-type"]), /^application\/json/);
    assert.match(String(req.headers["x-line-retry-key"]), uuid);
    assert.equal(parse(req.text).to, to);
  });

  it("retries of the same row carry the same retry key; another row gets another", async () => {
    await attempt({ status: 500, body: '{"message":"An error occurred in the backend"}' });
    const first = retryKey();
    await attempt();
    assert.equal(retryKey(), first);
    await attempt(undefined, "row-2");
    assert.notEqual(retryKey(), first);
    await attempt(undefined, null);
    assert.equal(retryKey(), undefined, "no key, no header");
  });

  it("409 for an already accepted retry key is success: the earlier attempt was delivered", async () => {
    const reply = { status: 409, body: '{"message":"The retry key is already accepted"}', headers: { "x-line-accepted-request-id": "req-0" } };
    assert.equal(await attempt(reply), undefined);
    const err = await attempt(reply, null);
    assert.equal(err?.status, 409, "without a retry key a 409 is not ours to explain away");
  });

  const cases: { name: string; reply: Reply; retryable: boolean; retryAfter?: number; message: RegExp }[] = [
    {
      name: "400 validation",
      reply: { status: 400, body: JSON.stringify({ message: "The request body has 1 error(s)", details: [{ message: "Length must be between 0 and 5000", property: "messages[0].text" }] }) },
      retryable: false,
      message: /answered 400: The request body has 1 error\(s\) \(messages\[0\]\.text: Length must be between 0 and 5000\)/,
    },
    { name: "400 failed to send", reply: { status: 400, body: '{"message":"Failed to send messages"}' }, retryable: false, message: /Failed to send messages; check that `to`/ },
    {
      name: "401 bad token",
      reply: { status: 401, body: '{"message":"Authentication failed due to the following reason: invalid token. Confirm that the access token in the authorization header is valid."}' },
      retryable: false,
      message: /Authentication failed.*issue one under Messaging API → Channel access token and update token/,
    },
    { name: "403 not allowed", reply: { status: 403, body: '{"message":"Access to this API is not available for your account"}' }, retryable: false, message: /not available for your account/ },
    { name: "429 rate limit", reply: { status: 429, body: '{"message":"The API rate limit has been exceeded. Try again later."}' }, retryable: true, message: /answered 429: The API rate limit has been exceeded\. Try again later\.; will retry\./ },
    { name: "429 monthly quota", reply: { status: 429, body: '{"message":"You have reached your monthly limit."}' }, retryable: false, message: /monthly message quota is used up; it refills at the start of next month/ },
    { name: "500", reply: { status: 500, body: '{"message":"An error occurred in the backend"}' }, retryable: true, message: /answered 500: An error occurred in the backend; will retry/ },
  ];
  for (const c of cases) {
    it(`${c.name} is ${c.retryable ? "retryable" : "final"}`, async () => {
      assertFailure(await attempt(c.reply), { ...c, status: c.reply.status }, token, "the token never appears");
    });
  }
});

describe("line URL form", () => {
  const expand = (url: string) => lineModule.schema.parse({ name: "l", type: "line", ...lineModule.fromUrl(new URL(url)) });
  const valid: [string, Record<string, unknown>][] = [
    [`line://S3cretToken/${to}`, { token: "S3cretToken", to, silent: false, apiUrl: "https://api.line.me" }],
    [`line://abc%2Fdef%2B%3D/${to}`, { token: "abc/def+=", to }],
    [`line://${to}?token=abc/def%2B=`, { token: "abc/def+=", to }],
    [`line://tok/${to}?silent=yes`, { token: "tok", to, silent: true }],
    ["line://tok/Cfedcba9876543210fedcba9876543210", { to: "Cfedcba9876543210fedcba9876543210" }],
  ];
  for (const [url, expected] of valid) {
    it(`reads ${url}`, () => {
      const config = expand(url) as Record<string, unknown>;
      for (const [k, v] of Object.entries(expected)) assert.equal(config[k], v, k);
    });
  }
  const invalid: [string, RegExp][] = [
    ["line://onlytoken", /line:\/\/\{channel_access_token\}\/\{to\}/],
    [`line://abc/def/${to}`, /one ID \(add a target per recipient\).*must be written %2F/],
  ];
  for (const [url, message] of invalid) {
    it(`refuses ${url}, saying what a valid one looks like`, () => {
      assert.throws(
        () => lineModule.fromUrl(new URL(url)),
        (err: unknown) => err instanceof TargetUrlError && message.test(err.message),
      );
    });
  }
  it("refuses a `to` that is not a user, group or room ID, at load time", () => {
    const r = lineModule.schema.safeParse({ name: "l", type: "line", ...lineModule.fromUrl(new URL("line://tok/my-line-id")) });
    assert.ok(!r.success);
    assert.match(r.error.issues[0]!.message, /U, C or R and 32 hex digits/);
  });
});
