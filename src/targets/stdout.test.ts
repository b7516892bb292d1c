import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { amountField, notificationWith } from "../../test/support/targets.ts";
import { memoryTargetState } from "./state.ts";
import { TargetUrlError } from "./module.ts";
import { stdoutModule } from "./stdout.ts";
import { escapeTerminal } from "./text.ts";
import type { Target } from "./types.ts";
import type { WebhookBody } from "./webhook.ts";

// Retitles the terminal, clears the screen, fakes a second line, reverses text, C1 CSI.
const hostile = "\u001b]0;owned\u0007\u001b[2J\r\n[mailbell] fake line \u202Egnp.exe\u202C \u009b31m <b>&amp;</b>";

const notification = notificationWith({ rule: "r", subject: hostile, fields: { amount: amountField }, render: (escape) => `New mail:\n  ${escape(hostile)}` });

function create(options: Record<string, unknown> = {}): { target: Target; lines: string[] } {
  const lines: string[] = [];
  const target = stdoutModule.create(stdoutModule.schema.parse({ name: "out", type: "stdout", ...options }), { stdout: (line) => lines.push(line), state: memoryTargetState() });
  return { target, lines };
}

// eslint-disable-next-line no-control-regex -- looking for control characters is the test
const controls = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe("escapeTerminal", () => {
  const cases: [string, string][] = [
    ["plain <b>&amp;</b> *x*", "plain <b>&amp;</b> *x*"],
    ["a\r\nb\nc\rd\u2028e", "a b c d e"],
    ["\u001b[31mred\u0007", "\uFFFD[31mred\uFFFD"],
    ["\u009b2J \u202Ex", "\uFFFD2J x"],
    ["tab\tkept", "tab\tkept"],
  ];
  for (const [input, output] of cases) it(`${JSON.stringify(input)} → ${JSON.stringify(output)}`, () => assert.equal(escapeTerminal(input), output));
});

describe("stdout text", () => {
  it("prints the rendered message as one line, controls made visible, markup left alone", async () => {
    const { target, lines } = create();
    const payload = target.render(notification());
    assert.match(payload.contentType, /^text\/plain/);
    await target.send(payload);
    assert.deepEqual(lines, ["New mail: ⏎ \uFFFD]0;owned\uFFFD\uFFFD[2J [mailbell] fake line gnp.exe \uFFFD31m <b>&amp;</b>"]);
    assert.ok(!controls.test(lines[0]!));
    assert.ok(!lines[0]!.includes("\n"));
  });

  it("a digest is one line too", () => {
    const { target } = create();
    const entries = [1, 2].map((i) => ({ rule: "r", subject: "s", summary: target.summarize(notification({ render: (e) => `mail ${i}\n${e("x\ny")}` })), body: "" }));
    assert.equal(target.renderDigest(entries, 4).body, "4 mails: mail 1 ⏎ x y | mail 2 ⏎ x y | …and 2 more");
  });

  it("summarize cuts long text", () => {
    const { target } = create();
    assert.equal(target.summarize(notification({ render: (e) => e("z".repeat(1000)) })).length, 300);
  });
});

describe("stdout json", () => {
  it("prints the webhook JSON on one line, with C1 and bidi controls escaped too", async () => {
    const { target, lines } = create({ format: "json" });
    await target.send(target.render(notification()));
    assert.equal(lines.length, 1);
    assert.ok(!controls.test(lines[0]!), "no raw control characters reach the terminal");
    const body = JSON.parse(lines[0]!) as WebhookBody;
    assert.equal(body.subject, hostile, "JSON carries the text exactly");
    assert.equal(body.text, `New mail:\n  ${hostile}`);
    assert.equal(body.fields.amount?.amount, "480");
  });

  it("a digest is one JSON line listing the items", () => {
    const { target } = create({ format: "json" });
    const entries = [{ rule: "r", subject: "s", summary: "one", body: target.render(notification()).body }, { rule: "r", subject: "t", summary: "two", body: "not json" }];
    const line = target.renderDigest(entries, 3).body;
    const digest = JSON.parse(line) as { digest: { count: number; listed: number; items: { subject: string; text?: string }[] } };
    assert.equal(digest.digest.count, 3);
    assert.equal(digest.digest.items[0]!.subject, hostile);
    assert.deepEqual(digest.digest.items[1], { rule: "r", subject: "t", text: "two" });
    assert.ok(!controls.test(line));
  });
});

describe("stdout config and URL", () => {
  it("writes to process stdout by default", () => {
    const t = stdoutModule.create(stdoutModule.schema.parse({ name: "o", type: "stdout" }), {});
    assert.equal(t.describe(), "stdout (text)");
  });

  it("rejects an unknown format, saying which are valid", () => {
    const r = stdoutModule.schema.safeParse({ name: "o", type: "stdout", format: "yaml" });
    assert.ok(!r.success);
    assert.match(r.error.issues[0]!.message, /use text .* or json/);
  });

  const valid: [string, Record<string, unknown>][] = [
    ["stdout://", {}],
    ["stdout://?format=json", { format: "json" }],
  ];
  for (const [url, expected] of valid) {
    it(`reads ${url}`, () => {
      const options = stdoutModule.fromUrl(new URL(url));
      assert.deepEqual(options, expected);
      assert.ok(stdoutModule.schema.safeParse({ name: "o", type: "stdout", ...options }).success);
    });
  }
  const invalid: [string, RegExp][] = [
    ["stdout://host", /a stdout URL is just stdout:\/\//],
    ["stdout:///path", /takes no host or path/],
    ["stdout://?colour=1", /knows only \?format=text\|json, not "colour"/],
  ];
  for (const [url, message] of invalid) {
    it(`explains what is wrong with ${url}`, () => {
      assert.throws(
        () => stdoutModule.fromUrl(new URL(url)),
        (err: unknown) => err instanceof TargetUrlError && message.test(err.message),
      );
    });
  }
});
