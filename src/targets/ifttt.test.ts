import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { startReceiver, type Reply } from "../../test/support/receiver.ts";
import { amountField, assertFailure, gmailLink, notificationWith, sendResult, type NotificationOverrides } from "../../test/support/targets.ts";
import type { TargetError } from "../errors.ts";
import { memoryTargetState } from "./state.ts";
import { iftttModule } from "./ifttt.ts";
import { TargetUrlError } from "./module.ts";
import type { DigestEntry, Notification, Target } from "./types.ts";

const hostile = "@everyone <@123> [x](https://evil) <!channel> **bold**";
const key = "dGH789FGRD78FfH7JOkkbc";

const notification = notificationWith({
  from: "Google Play <googleplay-noreply@google.com>",
  subject: hostile,
  fields: { item: null, amount: amountField },
  link: gmailLink,
  render: (escape) => `Google Play: ${escape(hostile)}`,
});

const total = { amount: "960", currency: "JPY", text: "¥960", period: "2026-11", periodLabel: "November" };

function create(extra: Record<string, unknown> = {}): Target {
  return iftttModule.create(iftttModule.schema.parse({ name: "phone", type: "ifttt", key, event: "receipt", ...extra }), { state: memoryTargetState() });
}

interface Body {
  value1: string;
  value2: string;
  value3: string;
}
const values = (t: Target, n: Notification) => JSON.parse(t.render(n).body) as Body;

describe("ifttt payload", () => {
  const cases: { name: string; config?: Record<string, unknown>; n?: NotificationOverrides; expected: Body }[] = [
    { name: "defaults: message, subject, first extracted field", expected: { value1: `Google Play: ${hostile}`, value2: hostile, value3: "¥480" } },
    { name: "defaults: the running total when the rule keeps one", n: { total }, expected: { value1: `Google Play: ${hostile}`, value2: hostile, value3: "¥960" } },
    { name: "defaults with no fields and no total", n: { fields: {} }, expected: { value1: `Google Play: ${hostile}`, value2: hostile, value3: "" } },
    {
      name: "chosen sources",
      config: { value1: "from", value2: "link", value3: "total" },
      n: { total },
      expected: { value1: "Google Play <googleplay-noreply@google.com>", value2: "https://mail.google.com/mail/u/0/#search/rfc822msgid%3Am%40x", value3: "¥960" },
    },
    { name: "fields by name; a missing one reads as the template writes it", config: { value1: "amount", value2: "item", value3: "nosuchfield" }, expected: { value1: "¥480", value2: "[item missing]", value3: "" } },
    { name: "total and link when there are none", config: { value1: "total", value2: "link", value3: "subject" }, n: { link: undefined }, expected: { value1: "", value2: "", value3: hostile } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(values(create(c.config), notification(c.n)), c.expected));

  it("sends mail text unescaped: IFTTT values are plain text", () => {
    assert.equal(values(create(), notification()).value2, hostile);
  });

  it("cuts each value at 5,000 characters without splitting a surrogate pair", () => {
    const v = values(create(), notification({ render: (e) => e("😀".repeat(4000)), subject: "s".repeat(9000), fields: { a: { text: "t".repeat(6000), raw: "" } } }));
    for (const value of [v.value1, v.value2, v.value3]) assert.ok(value.length <= 5000 && value.endsWith("…"));
    assert.doesNotMatch(v.value1, /[\ud800-\udbff]…$/);
  });

  it("a digest: value1 lists the mails within 5,000, value2 says how many, value3 is the count", () => {
    const t = create();
    const entries: DigestEntry[] = Array.from({ length: 20 }, (_, i) => ({ rule: "r", subject: "s", summary: t.summarize(notification({ render: (e) => e(`${i} ${"z".repeat(400)}\nmore`) })), body: "{}" }));
    const v = JSON.parse(t.renderDigest(entries, 33).body) as Body;
    assert.ok(v.value1.length <= 5000);
    assert.match(v.value1, /^• 0 z+…\n• 1 /, "one line per mail, each summary cut at 300");
    assert.match(v.value1, /\n…and \d+ more$/);
    assert.equal(v.value2, "33 mails");
    assert.equal(v.value3, "33");
  });
});

const receiver = await startReceiver({ headers: { "content-type": "application/json; charset=utf-8" } });
receiver.setDefault({ status: 200, body: "Congratulations! You've fired the receipt event", headers: { "content-type": "text/html; charset=utf-8" } });
after(() => receiver.close());

describe("ifttt sending", () => {
  async function attempt(reply?: Reply): Promise<TargetError | undefined> {
    if (reply) receiver.reply(reply);
    return sendResult(create({ apiUrl: `http://127.0.0.1:${receiver.port}` }), notification(), { idempotencyKey: "row-1" });
  }

  it("posts value1–3 as JSON to /trigger/{event}/with/key/{key}", async () => {
    assert.equal(await attempt(), undefined);
    const req = receiver.requests.at(-1)!;
    assert.equal(req.path, `/trigger/receipt/with/key/${key}`);
    assert.match(String(req.headers["content-type"]), /^application\/json/);
    assert.deepEqual(Object.keys(req.json as Body), ["value1", "value2", "value3"]);
  });

  const cases: { name: string; reply: Reply; retryable: boolean; retryAfter?: number; message: RegExp }[] = [
    { name: "401 bad key", reply: { status: 401, body: '{"errors":[{"message":"You sent an invalid key."}]}' }, retryable: false, message: /answered 401: You sent an invalid key\.; the Webhooks key is wrong .*update key/ },
    { name: "400", reply: { status: 400, body: '{"errors":[{"message":"Bad request"}]}' }, retryable: false, message: /answered 400: Bad request/ },
    { name: "404 (HTML)", reply: { status: 404, body: "<html>Not found</html>", headers: { "content-type": "text/html" } }, retryable: false, message: /answered 404: .*check the event name/ },
    { name: "429", reply: { status: 429, body: '{"errors":[{"message":"Too many requests"}]}', headers: { "retry-after": "12" } }, retryable: true, retryAfter: 12, message: /answered 429: Too many requests; will retry/ },
  ];
  for (const c of cases) {
    it(`${c.name} is ${c.retryable ? "retryable" : "final"}`, async () => {
      const err = await attempt(c.reply);
      assertFailure(err, { ...c, status: c.reply.status }, key, "the key is masked");
      assert.match(err.message, /\/trigger\/receipt\/with\/key\/\*\*\*\*/);
    });
  }
});

describe("ifttt URL form", () => {
  const expand = (url: string) => iftttModule.schema.parse({ name: "i", type: "ifttt", ...iftttModule.fromUrl(new URL(url)) }) as Record<string, unknown>;
  const valid: [string, Record<string, unknown>][] = [
    [`ifttt://${key}/receipt`, { key, event: "receipt", value1: "message", value2: "subject", value3: undefined, apiUrl: "https://maker.ifttt.com" }],
    [`ifttt://${key}@receipt`, { key, event: "receipt" }],
    [`ifttt://${key}/receipt?value1=from&value3=amount`, { event: "receipt", value1: "from", value2: "subject", value3: "amount" }],
  ];
  for (const [url, expected] of valid) {
    it(`reads ${url}`, () => {
      const config = expand(url);
      for (const [k, v] of Object.entries(expected)) assert.equal(config[k], v, k);
    });
  }
  const invalid: [string, RegExp][] = [
    [`ifttt://${key}`, /ifttt:\/\/\{key\}\/\{event\}/],
    [`ifttt://${key}/one/two`, /one target per event/],
  ];
  for (const [url, message] of invalid) {
    it(`refuses ${url}, saying what a valid one looks like`, () => {
      assert.throws(
        () => iftttModule.fromUrl(new URL(url)),
        (err: unknown) => err instanceof TargetUrlError && message.test(err.message),
      );
    });
  }
  it("refuses an event name that would change the request path, at load time", () => {
    for (const event of ["..", ".", "a/b", "my event"]) assert.ok(!iftttModule.schema.safeParse({ name: "i", type: "ifttt", key, event }).success, event);
  });
    it("refuses a value source that cannot be a field name, at load time", () => {
    const r = iftttModule.schema.safeParse({ name: "i", type: "ifttt", key, event: "e", value1: "the message" });
    assert.ok(!r.success);
    assert.match(r.error.issues[0]!.message, /message, subject, from, total, link/);
  });
});
