/** The shipped examples: the config, run with `mailbell test` on the hand-written receipt fixtures; the systemd unit, against the README. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.ts";
import type { CliIO } from "../src/cli/io.ts";
import { configSchema } from "../src/config/schema.ts";

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

/**
 * examples/mailbell.service against the README's "Running as a service": the same clone, user,
 * config, state and secrets paths, a command line mailbell accepts, and a unit systemd accepts.
 */
describe("examples/mailbell.service", () => {
  const unitText = readFileSync(path.join(root, "examples/mailbell.service"), "utf8");
  const readme = readFileSync(path.join(root, "README.md"), "utf8");
  const section = /^## Running as a service\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? "";
  const unit = new Map(
    unitText
      .split("\n")
      .filter((line) => /^[A-Za-z]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)] as const),
  );
  const fromReadme = (pattern: RegExp, what: string): string => {
    const m = pattern.exec(section);
    assert.ok(m, `the README's "Running as a service" says ${what} (${pattern})`);
    return m[1]!;
  };
  const cloneDir = fromReadme(/git clone \S+ (\/\S+)/, "where the clone goes");
  const execStart = unit.get("ExecStart")!.split(" ");

  it("starts the clone's command the README installs, directly (no npx), with a command line mailbell accepts", async () => {
    assert.ok(!unit.get("ExecStart")!.includes("npx"));
    assert.equal(execStart[0], `${cloneDir}/bin/mailbell.js`);
    assert.match(section, new RegExp(`cd ${cloneDir} && npm (install|ci)`), "the README installs the clone's dependencies and dist/");
    const command = path.join(root, execStart[0]!.slice(cloneDir.length + 1));
    assert.ok((statSync(command).mode & 0o111) !== 0, `${command} is executable`);
    assert.match(readFileSync(command, "utf8"), /^#!\/usr\/bin\/env node\n/);
    assert.equal(execStart[execStart.indexOf("--config") + 1], fromReadme(/cp mailbell\.yaml (\S+)/, "where the config goes"));
    // The unit's arguments, asking for help: a command or option mailbell does not know fails here.
    const help = await runCli([...execStart.slice(1), "--help"]);
    assert.equal(help.code, 0, help.err);
    assert.match(help.out, new RegExp(`^mailbell ${execStart[1]}: `));
  });

  it("runs as the user the README creates, with the state folder, config and secrets where the README puts them", () => {
    const user = fromReadme(/useradd .* (\S+)\n/, "which user to create");
    assert.equal(unit.get("User"), user);
    const stateDir = `/var/lib/${unit.get("StateDirectory")}`;
    assert.equal(unit.get("WorkingDirectory"), stateDir);
    assert.equal(fromReadme(/useradd .*--home-dir (\S+)/, "the user's home"), stateDir);
    assert.equal(path.posix.dirname(fromReadme(/state: (\S+)/, "the state file's path")), stateDir);
    assert.equal(unit.get("EnvironmentFile"), fromReadme(/install -m 0600 \/dev\/null (\S+)/, "where the secrets go"));
    assert.match(section, /cp examples\/mailbell\.service \/etc\/systemd\/system\//);
  });

  it("reloads with SIGHUP and waits out the outbox drain when stopping", () => {
    assert.equal(unit.get("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert.ok(Number(unit.get("TimeoutStopSec")) > configSchema.parse({}).outbox.drainSeconds);
    assert.equal(unit.get("Restart"), "always");
  });

  it("does not restart after an exit that a restart meets again (2 config, 3 a refused first login, 4 state): a wrong password would be retried every few seconds", () => {
    assert.deepEqual(unit.get("RestartPreventExitStatus")?.split(" "), ["2", "3", "4"]);
    assert.match(section, /RestartPreventExitStatus=2 3 4/, "the README says why the unit does not restart then");
  });

  it("is a unit systemd accepts (systemd-analyze verify, with the clone here)", () => {
    const analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].find((p) => existsSync(p));
    assert.ok(analyze, "systemd-analyze is not installed: `npm test`'s preflight installs it (apt-get install systemd)");
    const copy = path.join(stamped, "mailbell.service");
    writeFileSync(copy, unitText.replaceAll(`${cloneDir}/`, `${root}/`));
    const result = spawnSync(analyze, ["verify", copy], { encoding: "utf8" });
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
  });
});
