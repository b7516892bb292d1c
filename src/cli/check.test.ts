import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../../test/support/cli.ts";

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
    for (const command of ["check", "run"]) {
      const { code, out, err } = await runCli([command, "--config", file, "--log-level", "fatal"]);
      assert.equal(code, 2, `${command}: ${out}${err}`);
      assert.match(err, /mailbell: config error: .*mailbell\.yaml: accounts: no accounts: there is nothing to watch\. Add one under accounts: \(name, host, user, pass, mailboxes: \[INBOX\]\)/);
      assert.doesNotMatch(out, /All checks passed/);
    }
  });
});
