/** What the README promises, checked: its config block, its sentence, its two commands, the library import. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.ts";

const root = path.resolve(import.meta.dirname, "..");
const readme = readFileSync(path.join(root, "README.md"), "utf8");
const run = promisify(execFile);

describe("README", () => {
  it("opens with the install and run commands, then npm test", () => {
    const first = readme.indexOf("npx mailbell run --config mailbell.yaml");
    assert.ok(first > 0 && first < 600, "the run command comes first");
    assert.ok(readme.indexOf("npm test") > first, "then the test command");
  });

  it("its config, on a real Google Play receipt, produces the message it promises", async () => {
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
    const promised = /becomes the\s+Slack message "([^"]+)"/.exec(readme)![1]!.replace(/\s+/g, " ");
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-readme-"));
    writeFileSync(path.join(dir, "mailbell.yaml"), yaml);
    let out = "";
    const env = { GMAIL_APP_PASSWORD: "x", SLACK_WEBHOOK_URL: "https://hooks.example.test/services/T/B/x" };
    const code = await main(["test", "--config", path.join(dir, "mailbell.yaml"), path.join(root, "test/fixtures/google-play-ja-iso2022jp.eml"), "--json"], {
      out: (t) => void (out += t),
      err: (t) => assert.fail(t),
      env,
    });
    assert.equal(code, 0);
    const report = JSON.parse(out) as { matched: boolean; message: string; targets: { target: string }[] };
    assert.equal(report.matched, true);
    assert.equal(report.message, promised);
    assert.deepEqual(report.targets.map((t) => t.target), ["team", "hook"]);
  });

  it("the installed command runs (bin/mailbell.js, built into dist/)", async () => {
    const { stdout } = await run(process.execPath, [path.join(root, "bin/mailbell.js"), "--version"]);
    const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string };
    assert.equal(stdout.trim(), `mailbell ${pkg.version}`);
  });

  it("on a Node older than 22.19 the command says so instead of crashing", async (t) => {
    // Debian's packaged Node (20 on this project's machines) is the old Node a newcomer may have.
    const old = "/usr/bin/node";
    const version = await run(old, ["--version"]).then((r) => r.stdout.trim(), () => "");
    const major = Number(/^v(\d+)/.exec(version)?.[1] ?? 0);
    if (!major || major >= 22) return t.skip(`no Node older than 22 at ${old} (found ${version || "none"})`);
    const result = await run(old, [path.join(root, "bin/mailbell.js"), "--version"]).then(
      () => assert.fail("expected a non-zero exit"),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /mailbell: needs Node\.js 22\.19 or newer .*this is v20/);
  });

  it('import { watchMailbox } from "mailbell" gives the library', async () => {
    const name = "mailbell"; // resolved by package.json "exports", as a user's import would be
    const lib = (await import(name)) as Record<string, unknown>;
    for (const name of ["watchMailbox", "openCheckpoints", "normalizeMail", "MemoryCheckpoints", "sqliteCheckpoints"]) assert.equal(typeof lib[name], "function", name);
    const checkpoints = (lib.openCheckpoints as (f: string) => { save: (a: string, m: string, c: object) => void; load: (a: string, m: string) => unknown; close(): void })(
      path.join(mkdtempSync(path.join(tmpdir(), "mailbell-lib-")), "cp.db"),
    );
    checkpoints.save("a", "INBOX", { uidValidity: 1, lastUid: 5 });
    assert.deepEqual({ ...(checkpoints.load("a", "INBOX") as object), savedAt: undefined }, { uidValidity: 1, lastUid: 5, savedAt: undefined });
    checkpoints.close();
  });
});
