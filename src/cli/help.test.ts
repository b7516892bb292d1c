import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { runCli } from "../../test/support/cli.ts";
import { commandHelp, commandNames } from "./help.ts";

describe("mailbell help", () => {
  it("has an entry, with usage and an example, for every command main.ts routes", () => {
    const routed = [...readFileSync(new URL("./main.ts", import.meta.url), "utf8").matchAll(/case "([a-z-]+)":/g)].map((m) => m[1]!);
    assert.ok(routed.includes("run") && routed.includes("totals"), `found the routes: ${routed.join(", ")}`);
    for (const name of routed) assert.ok(commandNames.includes(name), `mailbell ${name} has no help entry`);
    for (const c of commandHelp) {
      assert.ok(c.usage[0]!.startsWith(`${c.name} `), `${c.name}: usage starts with the command`);
      assert.ok(c.examples.length > 0 && c.examples.every((e) => e.includes(`mailbell ${c.name}`)), `${c.name}: examples run the command`);
    }
  });

  it("mailbell help lists every command with its summary and exits 0; bare mailbell prints it and exits 2", async () => {
    const help = await runCli(["help"]);
    assert.equal(help.code, 0);
    for (const c of commandHelp) assert.match(help.out, new RegExp(`^  ${c.name} +${c.summary.replace(/[()]/g, "\\$&")}$`, "m"));
    assert.match(help.out, /--log-format FMT +run's log: json\|pretty\|auto/);
    assert.equal((await runCli(["help", "help"])).out, help.out);
    assert.match(help.out, /Exit codes: 0 ok/);
    assert.equal((await runCli(["--help"])).out, help.out);
    const bare = await runCli([]);
    assert.equal(bare.code, 2);
    assert.equal(bare.out, help.out);
  });

  it("mailbell help COMMAND and mailbell COMMAND --help print that command's options and examples, and do not run it", async () => {
    const totals = await runCli(["help", "totals"]);
    assert.equal(totals.code, 0);
    assert.match(totals.out, /^mailbell totals: /);
    assert.match(totals.out, /Usage:\n {2}mailbell totals --config FILE \[--rule NAME\] \[--since DATE\] \[--json\|--csv\]\n {2}mailbell totals rebuild/);
    assert.match(totals.out, /Options:\n {2}--rule NAME +only this rule/);
    assert.match(totals.out, /Examples:\n {2}mailbell totals --config mailbell\.yaml/);
    assert.equal((await runCli(["totals", "--help"])).out, totals.out);
    assert.equal((await runCli(["totals", "rebuild", "-h"])).out, totals.out);
    // --config points nowhere: had run started, it would fail on the missing file.
    const run = await runCli(["run", "--help", "--config", "/nonexistent/mailbell.yaml"]);
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /^mailbell run: watch the mailboxes/);
    assert.match(run.out, /--log-format FMT +json: one JSON object per line; pretty: readable lines/);
  });

  it("refuses a log level or format that does not exist before starting, naming the valid ones", async () => {
    const level = await runCli(["run", "--log-level", "loud", "--config", "/nonexistent/mailbell.yaml"]);
    assert.equal(level.code, 2);
    assert.match(level.err, /--log-level "loud" is not a log level: use one of fatal, error, warn, info, debug, trace/);
    const format = await runCli(["run", "--log-format", "xml", "--config", "/nonexistent/mailbell.yaml"]);
    assert.equal(format.code, 2);
    assert.match(format.err, /--log-format "xml" is not a log format: use json .*, pretty .* or auto/);
  });

  it("an unknown command is a usage error listing the commands there are", async () => {
    for (const args of [["help", "frobnicate"], ["frobnicate", "--help"], ["frobnicate"]]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.err, /unknown command "frobnicate"\. Commands: run, check, test, outbox, unreadable, auth, init, backfill, totals\. Run `mailbell help COMMAND` for one\./);
      assert.equal(r.out, "");
    }
  });
});
