import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../../test/support/cli.ts";
import { parseConfig } from "../config/load.ts";
import { runDaemon } from "../daemon/run.ts";
import { silentLogger } from "../log.ts";

function configFile(yaml: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-check-"));
  const file = path.join(dir, "mailbell.yaml");
  writeFileSync(file, `state: ${dir}/state.db\n${yaml}`);
  return file;
}

const rules = `targets:
  - { name: hook, type: webhook, url: "http://127.0.0.1:9/x" }
rules:
  - name: play
    match: { from: Google Play }
    notify: [hook]
`;

describe("mailbell check", () => {
  it("prints config warnings after the file is found valid, and goes on to the checks", async () => {
    // Port 9 (discard) is closed on loopback: the account fails, the warning is printed before.
    const file = configFile(`accounts:\n  - { name: a, host: 127.0.0.1, port: 9, tls: none, user: u, pass: p }\n${rules}`);
    const { code, out } = await runCli(["check", "--config", file]);
    assert.equal(code, 3);
    assert.match(out, /^✓ .*: valid .*\n! warning: .*mailbell\.yaml:8: rules\[0\]\.match\.from: "Google Play" has no @: .*write fromName: "Google Play" for the display name/);
    assert.match(out, /\n✓ state .*state\.db: writable\n/);
    assert.match(out, /✗ account a: 127\.0\.0\.1:9 \(none\): account "a": nothing listens on 127\.0\.0\.1:9 \(connection refused\): check host and port/);
  });

  it("fails a config with no accounts (exit 2, with the fix) instead of passing it, as run refuses it too", async () => {
    const file = configFile(rules);
    const check = await runCli(["check", "--config", file]);
    assert.equal(check.code, 2, check.out + check.err);
    assert.match(check.err, /mailbell: config error: .*mailbell\.yaml: accounts: no accounts: there is nothing to watch\. Add one under accounts: \(name, host, user, pass, mailboxes: \[INBOX\]\)/);
    assert.doesNotMatch(check.out, /All checks passed/);
    // run says it in its log (stderr); its exit code is what a script sees, and what runDaemon throws.
    assert.equal((await runCli(["run", "--config", file, "--log-level", "fatal"])).code, 2);
    await assert.rejects(runDaemon(parseConfig(readFileSync(file, "utf8"), file, {}), { logger: silentLogger, signal: new AbortController().signal }), /accounts: no accounts: there is nothing to watch/);
  });

  it("warns about a .env value cut at an unquoted #, at the .env's own line, without the value", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-check-"));
    const file = path.join(dir, "mailbell.yaml");
    // Port 9 (discard) is closed on loopback: the account fails after the warnings are printed.
    writeFileSync(file, `accounts:\n  - { name: a, host: 127.0.0.1, port: 9, tls: none, user: u, pass: p }\ntargets:\n  - { name: hook, type: webhook, url: "http://127.0.0.1:9/\${HOOK_PATH}" }\n`);
    writeFileSync(path.join(dir, ".env"), "# secrets\nHOOK_PATH=x#secret-part\n", { mode: 0o600 });
    const { code, out } = await runCli(["check", "--config", file]);
    assert.equal(code, 3, "the account cannot be reached");
    assert.ok(out.includes(`! warning: ${path.join(dir, ".env")}:2: HOOK_PATH is not in quotes and holds a #`), out);
    assert.doesNotMatch(out, /secret-part/);
  });
});
