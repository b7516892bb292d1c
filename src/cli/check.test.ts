import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../../test/support/cli.ts";

describe("mailbell check", () => {
  it("prints config warnings after the file is found valid, and still passes", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-check-"));
    const file = path.join(dir, "mailbell.yaml");
    writeFileSync(
      file,
      `targets:
  - { name: hook, type: webhook, url: "http://127.0.0.1:9/x" }
rules:
  - name: play
    match: { from: Google Play }
    notify: [hook]
`,
    );
    const { code, out } = await runCli(["check", "--config", file]);
    assert.equal(code, 0);
    assert.match(out, /^✓ .*: valid .*\n! warning: .*mailbell\.yaml:5: rules\[0\]\.match\.from: "Google Play" has no @: .*write fromName: "Google Play" for the display name/);
    assert.match(out, /All checks passed\.\n$/);
  });

  it("warns about a .env value cut at an unquoted #, at the .env's own line, without the value", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-check-"));
    const file = path.join(dir, "mailbell.yaml");
    writeFileSync(file, `targets:\n  - { name: hook, type: webhook, url: "http://127.0.0.1:9/\${HOOK_PATH}" }\n`);
    writeFileSync(path.join(dir, ".env"), "# secrets\nHOOK_PATH=x#secret-part\n", { mode: 0o600 });
    const { code, out } = await runCli(["check", "--config", file]);
    assert.equal(code, 0);
    assert.ok(out.includes(`! warning: ${path.join(dir, ".env")}:2: HOOK_PATH is not in quotes and holds a #`), out);
    assert.doesNotMatch(out, /secret-part/);
  });
});
