import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { startReceiver, type Reply } from "../../test/support/receiver.ts";
import { notificationWith, sendResult } from "../../test/support/targets.ts";
import type { TargetError } from "../errors.ts";
import { memoryTargetState } from "./state.ts";
import { TargetUrlError } from "./module.ts";
import { ntfyModule, truncateUtf8, type NtfyMessage } from "./ntfy.ts";
import type { DigestEntry, Target } from "./types.ts";

const hostileText = "<b>x</b> [click](https://evil.example) \u001b[31mred\u0007 \u202Egnp.exe\u202C *bold* @all";

const notification = notificationWith({
  rule: "r",
  subject: "Invoice\n\u001b]0;pwned\u0007 ready",
  link: "https://mail.example/#search/m",
  render: (escape) => `New: ${escape(hostileText)}\nsecond line`,
});

function create(options: Record<string, unknown> = {}): Target {
  return ntfyModule.create(ntfyModule.schema.parse({ name: "phone", type: "ntfy", topic: "mailbell_alerts", ...options }), { state: memoryTargetState() });
}

const parse = (body: string) => JSON.parse(body) as NtfyMessage;

describe("ntfy payload", () => {
  it("is the JSON publish body: topic, subject as title, message, options, markdown off", () => {
    const t = create({ priority: "high", tags: ["envelope", "moneybag"] });
    const payload = t.render(notification());
    assert.match(payload.contentType, /^application\/json/);
    assert.deepEqual(parse(payload.body), {
      topic: "mailbell_alerts",
      title: "Invoice \uFFFD]0;pwned\uFFFD ready",
      message: "New: <b>x</b> [click](https://evil.example) \uFFFD[31mred\uFFFD gnp.exe *bold* @all\nsecond line",
      priority: 4,
      tags: ["envelope", "moneybag"],
      click: "https://mail.example/#search/m",
      markdown: false,
    });
  });

  const priorities: [unknown, number | undefined][] = [
    [undefined, undefined],
    [1, 1],
    [5, 5],
    ["min", 1],
    ["low", 2],
    ["default", 3],
    ["max", 5],
    ["urgent", 5],
  ];
  for (const [given, sent] of priorities) {
    it(`priority ${String(given)} is sent as ${String(sent)}`, () => {
      assert.equal(parse(create(given === undefined ? {} : { priority: given }).render(notification()).body).priority, sent);
    });
  }

  it("takes out only controls and bidi overrides; nothing is markup with markdown off", () => {
    const message = (text: string) => parse(create().render(notification({ render: (e) => e(text) })).body).message;
    assert.equal(message("a\u0000b\u001bc\u007fd\u009be\u202Ef\u2066g\th\ni"), "a\uFFFDb\uFFFDc\uFFFDd\uFFFDefg\th\ni");
    assert.equal(message("*x* <b> & [l](u)"), "*x* <b> & [l](u)");
  });

  it("uses the link as click only when it is http(s), and gives an empty subject a title", () => {
    const t = create();
    assert.equal(parse(t.render(notification({ link: "javascript:alert(1)" })).body).click, undefined);
    assert.equal(parse(t.render(notification({ link: undefined })).body).click, undefined);
    assert.equal(parse(t.render(notification({ subject: "" })).body).title, "(no subject)");
  });

  it("cuts a long message to 4,096 bytes of UTF-8 without splitting a character", () => {
    const body = create().render(notification({ render: (e) => e("あ".repeat(5000)) })).body;
    const message = parse(body).message;
    assert.ok(Buffer.byteLength(message) <= 4096, `${Buffer.byteLength(message)} bytes`);
    assert.ok(Buffer.byteLength(message) > 4090);
    assert.ok(message.endsWith("…"));
    assert.ok(!message.includes("\uFFFD"));
  });

  it("keeps the whole JSON body under ntfy's 8,192-byte JSON limit even when escaping doubles it", () => {
    const body = create().render(notification({ subject: '"'.repeat(1000), render: (e) => e('\\"'.repeat(3000)) })).body;
    assert.ok(Buffer.byteLength(body) <= 8192, `${Buffer.byteLength(body)} bytes`);
    const parsed = parse(body);
    assert.ok(parsed.title.length <= 250);
    assert.ok(Buffer.byteLength(parsed.message) <= 4096);
  });

  it("truncateUtf8 counts bytes and respects character boundaries", () => {
    assert.equal(truncateUtf8("abc", 3), "abc");
    assert.equal(truncateUtf8("abcdef", 5), "ab…");
    assert.equal(truncateUtf8("é😀x", 6), "é…");
    assert.equal(truncateUtf8("abcdef", 2), "");
  });

  it("a digest is one valid message within the limits, saying how many more", () => {
    const t = create({ tags: ["mailbox"] });
    const entries: DigestEntry[] = Array.from({ length: 20 }, (_, i) => ({ rule: "r", subject: `s${i}`, summary: t.summarize(notification({ render: (e) => e(`mail ${i} ${"ü".repeat(400)}`) })), body: "" }));
    const parsed = parse(t.renderDigest(entries, 25).body);
    assert.equal(parsed.title, "25 mails");
    assert.deepEqual(parsed.tags, ["mailbox"]);
    assert.equal(parsed.click, undefined);
    assert.ok(Buffer.byteLength(parsed.message) <= 4096);
    assert.ok(parsed.message.startsWith("• mail 0"));
    const small = parse(t.renderDigest(entries.slice(0, 2), 5).body).message;
    assert.match(small, /…and 3 more$/);
  });

  it("summarize is one escaped line", () => {
    assert.equal(create().summarize(notification({ render: (e) => `a\n  ${e("b\u001b")}\nc` })), "a b\uFFFD c");
  });
});

const receiver = await startReceiver({ headers: { "content-type": "application/json" } });
// ntfy answers a publish with the stored message as JSON.
receiver.setDefault({ status: 200, body: JSON.stringify({ id: "hwQ2YpKdmg", time: 1763856000, event: "message", topic: "mailbell_alerts" }) });
after(() => receiver.close());

describe("ntfy sending", () => {
  async function sendOnce(options: Record<string, unknown>, reply?: Reply): Promise<TargetError | undefined> {
    if (reply) receiver.reply(reply);
    return sendResult(create({ server: receiver.url(), ...options }), notification());
  }

  it("POSTs the JSON to the server root, with a bearer token", async () => {
    assert.equal(await sendOnce({ token: "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2" }), undefined);
    const req = receiver.requests.at(-1)!;
    assert.equal(req.method, "POST");
    assert.equal(req.path, "/");
    assert.equal(req.headers.authorization, "Bearer tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2");
    assert.match(String(req.headers["content-type"]), /^application\/json/);
    assert.equal(parse(req.text).topic, "mailbell_alerts");
  });

  it("sends user and password as basic auth, and nothing without credentials", async () => {
    await sendOnce({ user: "phil", password: "mypass" });
    assert.equal(receiver.requests.at(-1)!.headers.authorization, `Basic ${Buffer.from("phil:mypass").toString("base64")}`);
    await sendOnce({});
    assert.equal(receiver.requests.at(-1)!.headers.authorization, undefined);
  });

  const ntfyError = (code: number, error: string) => JSON.stringify({ code, http: Math.floor(code / 100), error, link: "https://ntfy.sh/docs/publish/" });
  const cases = [
    { status: 400, body: ntfyError(40009, "invalid request: topic invalid"), retryable: false, says: /invalid request: topic invalid \(ntfy code 40009\)/ },
    { status: 401, body: ntfyError(40101, "unauthorized"), retryable: false, says: /unauthorized \(ntfy code 40101\); check token/ },
    { status: 403, body: ntfyError(40301, "forbidden"), retryable: false, says: /forbidden .*may write to this topic/ },
    { status: 404, body: ntfyError(40401, "page not found"), retryable: false, says: /page not found \(ntfy code 40401\); check server: it is the ntfy base URL/ },
    { status: 413, body: ntfyError(41301, "request entity too large"), retryable: false, says: /too large/ },
    { status: 429, body: ntfyError(42901, "limit reached: too many requests"), retryable: true, says: /too many requests.*will retry/ },
    { status: 500, body: ntfyError(50001, "internal server error"), retryable: true, says: /internal server error/ },
    { status: 507, body: ntfyError(50701, "insufficient storage: cannot publish to UnifiedPush topic without previously active subscriber"), retryable: true, says: /insufficient storage/ },
  ];
  for (const c of cases) {
    it(`${c.status} is ${c.retryable ? "retryable" : "final"}, with ntfy's reason and no secret`, async () => {
      const err = await sendOnce({ token: "tk_secretsecretsecret" }, { status: c.status, body: c.body });
      assert.ok(err);
      assert.equal(err.status, c.status);
      assert.equal(err.retryable, c.retryable);
      assert.match(err.message, c.says);
      assert.ok(!err.message.includes("tk_secret"));
    });
  }


});

describe("ntfy config", () => {
  const invalid: [string, Record<string, unknown>, RegExp][] = [
    ["a topic with a slash", { topic: "a/b" }, /topic: .*1–64 letters/],
    ["a topic over 64 characters", { topic: "x".repeat(65) }, /topic: /],
    ["token and user", { token: "tk_x", user: "u", password: "p" }, /token: give either token or user and password/],
    ["user without password", { user: "u" }, /password: user needs a password/],
    ["password without user", { password: "p" }, /user: password needs a user/],
    ["priority 6", { priority: 6 }, /priority: use 1–5 or min, low, default, high, max/],
    ["priority 'loud'", { priority: "loud" }, /priority: use 1–5/],
    ["a tag with a comma", { tags: ["a,b"] }, /tags\.0: one tag per entry/],
    ["a server that is not http", { server: "ftp://x" }, /server: must be the ntfy server/],
  ];
  for (const [what, options, message] of invalid) {
    it(`rejects ${what}`, () => {
      const r = ntfyModule.schema.safeParse({ name: "n", type: "ntfy", topic: "t", ...options });
      assert.ok(!r.success);
      const text = r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n");
      assert.match(text, message);
    });
  }

  it("describes itself with token, password and topic masked", () => {
    assert.equal(create({ token: "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2" }).describe(), "ntfy https://ntfy.sh topic mail**** (token tk_A****)");
    assert.equal(create({ user: "phil", password: "mypass", topic: "short" }).describe(), "ntfy https://ntfy.sh topic **** (user phil, password ****)");
  });
});

describe("ntfy URL form", () => {
  const valid: [string, Record<string, unknown>][] = [
    ["ntfy://mailbell_alerts", { server: "https://ntfy.sh", topic: "mailbell_alerts" }],
    ["ntfys://mailbell_alerts", { server: "https://ntfy.sh", topic: "mailbell_alerts" }],
    ["ntfy://ntfy.local/alerts", { server: "http://ntfy.local", topic: "alerts" }],
    ["ntfys://ntfy.example.com:8443/alerts", { server: "https://ntfy.example.com:8443", topic: "alerts" }],
    ["ntfy://ntfy.sh/alerts", { server: "https://ntfy.sh", topic: "alerts" }],
    ["ntfy://phil:my%20pass@127.0.0.1:2586/alerts", { server: "http://127.0.0.1:2586", topic: "alerts", user: "phil", password: "my pass" }],
    ["ntfys://tk_AgQdq7mVBoFD37@ntfy.example.com/alerts", { server: "https://ntfy.example.com", topic: "alerts", token: "tk_AgQdq7mVBoFD37" }],
    ["ntfys://:tk_abc@ntfy.example.com/alerts", { server: "https://ntfy.example.com", topic: "alerts", token: "tk_abc" }],
    ["ntfys://ntfy.example.com/alerts?token=tk_q", { server: "https://ntfy.example.com", topic: "alerts", token: "tk_q" }],
    ["ntfy://alerts?priority=high&tags=a,%20b", { server: "https://ntfy.sh", topic: "alerts", priority: "high", tags: ["a", "b"] }],
    ["ntfy://alerts?priority=5&xtags=warning", { server: "https://ntfy.sh", topic: "alerts", priority: 5, tags: ["warning"] }],
  ];
  for (const [url, expected] of valid) {
    it(`reads ${url}`, () => {
      const options = ntfyModule.fromUrl(new URL(url));
      assert.deepEqual(options, expected);
      const r = ntfyModule.schema.safeParse({ name: "n", type: "ntfy", ...options });
      assert.ok(r.success, JSON.stringify(r.error?.issues));
    });
  }

  const invalid: [string, RegExp][] = [
    ["ntfy://", /no topic in the URL: an ntfy URL is ntfy:\/\/topic/],
    ["ntfy://ntfy.example.com", /"ntfy\.example\.com" is not a topic .*write the topic after the host/],
    ["ntfy://host/a/b", /one topic per target, got 2/],
    ["ntfy:///alerts", /no server in the URL/],
    ["ntfy://alerts?priority=loud", /priority "loud": use 1–5/],
  ];
  for (const [url, message] of invalid) {
    it(`explains what is wrong with ${url}`, () => {
      assert.throws(
        () => ntfyModule.fromUrl(new URL(url)),
        (err: unknown) => err instanceof TargetUrlError && message.test(err.message),
      );
    });
  }
});
