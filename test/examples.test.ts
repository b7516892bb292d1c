/** The shipped example config, run with `mailbell test` on the hand-written receipt fixtures. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.ts";
import type { CliIO } from "../src/cli/io.ts";

const root = path.resolve(import.meta.dirname, "..");
const example = path.join(root, "examples/purchase-receipts.yaml");
const fixture = (name: string): string => path.join(root, "test/fixtures", name);
const stamped = mkdtempSync(path.join(tmpdir(), "mailbell-examples-"));

/**
 * The fixture as Gmail delivers it: with the Authentication-Results header mx.google.com puts on
 * top, saying the sender's domain passed DMARC (the example's rules verify that).
 */
function asGmailDelivers(name: string, verdict = "pass"): string {
  const raw = readFileSync(fixture(name));
  const domain = /apple/.test(name) ? "email.apple.com" : "google.com";
  const header = `Authentication-Results: mx.google.com;\r\n       dkim=${verdict} header.i=@${domain} header.s=sel;\r\n       dmarc=${verdict} (p=REJECT sp=REJECT dis=NONE) header.from=${domain}\r\n`;
  const file = path.join(stamped, `${verdict}-${name}`);
  writeFileSync(file, Buffer.concat([Buffer.from(header), raw]));
  return file;
}
const env = { GMAIL_USER: "taro@example.com", GMAIL_APP_PASSWORD: "app-password", SLACK_WEBHOOK_URL: "https://hooks.example.test/services/T0/B0/x" };

async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: CliIO = { out: (t) => void (out += `${t}\n`), err: (t) => void (err += `${t}\n`), env };
  const code = await main(args, io);
  return { code, out, err };
}

interface RuleReport {
  rule: string;
  matched: boolean;
  fields?: Record<string, { text: string; amount?: string; currency?: string } | null>;
  total?: { add: string; currency: string; period: string; periodLabel: string };
  message?: string;
  targets?: { target: string; payload: { text: string; username: string; icon_emoji: string } }[];
}

async function testJson(file: string): Promise<RuleReport[]> {
  const { code, out, err } = await runCli(["test", "--config", example, file, "--json"]);
  assert.equal(code, 0, err);
  return out.trim().split("\n").map((line) => JSON.parse(line) as RuleReport);
}

describe("examples/purchase-receipts.yaml", () => {
  const cases = [
    { file: "google-play-ja-iso2022jp.eml", rule: "google-play", amount: "480", currency: "JPY", message: "Google Play: ¥480 (マンスリーパス) — ¥480 so far in November" },
    { file: "google-play-en-utf8.eml", rule: "google-play", amount: "4.99", currency: "USD", message: "Google Play: $4.99 (Monthly pass – Dragon Tactics) — $4.99 so far in November" },
    { file: "apple-receipt-ja-utf8.eml", rule: "apple", amount: "1300", currency: "JPY", message: "Apple: ¥1,300 — ¥1,300 so far in November" },
    { file: "apple-receipt-en-multipart.eml", rule: "apple", amount: "15.14", currency: "USD", message: "Apple: $15.14 — $15.14 so far in November" },
  ];
  for (const c of cases) {
    it(`reads ${c.file}: ${c.currency} ${c.amount}`, async () => {
      const reports = await testJson(asGmailDelivers(c.file));
      const matched = reports.filter((r) => r.matched);
      assert.deepEqual(matched.map((r) => r.rule), [c.rule], "exactly one rule matches");
      const r = matched[0]!;
      assert.equal(r.fields!.amount!.amount, c.amount);
      assert.equal(r.fields!.amount!.currency, c.currency);
      assert.equal(r.total!.add, c.amount);
      assert.equal(r.total!.period, "2026-11");
      assert.equal(r.message, c.message);
      assert.equal(r.targets![0]!.target, "team");
      assert.equal(r.targets![0]!.payload.text, c.message);
      assert.equal(r.targets![0]!.payload.icon_emoji, ":bell:");
    });
  }

  it("ignores mail that is not a receipt", async () => {
    for (const file of ["shift-jis-notice.eml", "euc-jp-notice.eml", "latin1-qp.eml", "hostile-slack.eml"]) {
      const reports = await testJson(asGmailDelivers(file));
      assert.deepEqual(reports.filter((r) => r.matched), [], file);
    }
  });

  it("does not count a receipt whose sender Gmail did not verify, or one Gmail did not stamp, and says why", async () => {
    for (const [file, reason] of [
      [asGmailDelivers("google-play-en-utf8.eml", "fail"), "auth_results_fail"],
      [fixture("apple-receipt-ja-utf8.eml"), "no_auth_results"],
    ] as const) {
      const reports = await testJson(file);
      assert.deepEqual(reports.filter((r) => r.matched), [], file);
      assert.equal(reports.find((r) => (r as { unverified?: string }).unverified)?.["unverified" as keyof RuleReport], reason);
    }
  });

  it("prints a readable report without --json", async () => {
    const { code, out } = await runCli(["test", "--config", example, asGmailDelivers("google-play-ja-iso2022jp.eml")]);
    assert.equal(code, 0);
    assert.match(out, /rule google-play: matched, sender verified \(DMARC pass by mx\.google\.com\)/);
    assert.match(out, /amount: ¥480 {2}\(captured "￥480（税込）"\)/);
    assert.match(out, /total: would add ¥480 to 2026-11 \(November\) → ¥480 \(no state file yet\)/);
    assert.match(out, /rule apple: no match/);
  });

  it("reports a missing message file clearly", async () => {
    const missing = await runCli(["test", "--config", example, fixture("nope.eml")]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /cannot read .*nope\.eml \(ENOENT\)/);
  });

  it("needs no password or webhook URL to try a rule, and says it used placeholders", async () => {
    let out = "";
    let err = "";
    const code = await main(["test", "--config", example, asGmailDelivers("google-play-en-utf8.eml")], { out: (t) => void (out += t), err: (t) => void (err += t), env: {} });
    assert.equal(code, 0, err);
    assert.match(out, /Google Play: \$4\.99/);
    assert.match(err, /GMAIL_USER, GMAIL_APP_PASSWORD, SLACK_WEBHOOK_URL not set; using placeholders/);
  });

  it("still refuses to run without them", async () => {
    let err = "";
    const code = await main(["check", "--config", example], { out: () => {}, err: (t) => void (err += t), env: {} });
    assert.equal(code, 2);
    assert.match(err, /purchase-receipts\.yaml:10: accounts\[0\]\.user: environment variable GMAIL_USER is not set/);
  });
});
