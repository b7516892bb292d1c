import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { SeenMail } from "../plan/store.ts";
import type { Money } from "../rules/types.ts";
import { State } from "../store/sqlite/state.ts";
import { runCli } from "../../test/support/cli.ts";
import { checkSince, totalsCsv } from "./totals.ts";

function mail(uid: number): SeenMail {
  return { place: `a/INBOX/1/${uid}`, mailboxKey: "a/INBOX/1", identity: `mail ${uid}`, messageId: undefined, receivedAt: new Date() };
}
const jpy = (units: bigint): Money => ({ units, scale: 0, currency: "JPY" });
const usd = (units: bigint): Money => ({ units, scale: 2, currency: "USD" });

/**
 * A config with the rules play (counting) and notes (no total:), and a state file where play,
 * a rule since renamed ("old-name"), and one whose name tries to drive the terminal have counted.
 */
function setup(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-totals-cli-"));
  const file = path.join(dir, "mailbell.yaml");
  writeFileSync(
    file,
    `state: ./state.db
targets:
  - { name: hook, type: webhook, url: "http://127.0.0.1:9/x" }
rules:
  - { name: play, notify: [hook], extract: { amount: { regex: "(\\\\d+)", as: money } }, total: { sum: amount, per: month } }
  - { name: notes, notify: [hook] }
`,
  );
  const state = State.open(path.join(dir, "state.db"));
  state.totals.add("play", mail(1), "2026-10", jpy(3200n));
  state.totals.add("play", mail(2), "2026-11", jpy(480n));
  state.totals.add("play", mail(3), "2026-11", jpy(1300n));
  state.totals.add("play", mail(4), "2026-11", usd(1514n));
  state.totals.add("play", mail(5), "2026-11", usd(499n));
  state.totals.add("old-name", mail(6), "2026-09", jpy(100n));
  state.totals.add("evil\u001b[2J,\"x\"", mail(7), "2026-11", jpy(1n));
  state.close();
  return file;
}

describe("mailbell totals", () => {
  const file = setup();

  it("prints a table: one row per rule, period and currency, exact amounts right-aligned, renamed rules kept", async () => {
    const r = await runCli(["totals", "--config", file]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split("\n");
    assert.match(lines[0]!, /^RULE +PERIOD +CURRENCY +AMOUNT +MAILS$/);
    const play = lines.filter((l) => l.startsWith("play "));
    assert.equal(play.length, 3);
    assert.match(r.out, /play +2026-11 +USD +20\.13 +2\n/, "15.14 + 4.99, exact");
    assert.match(r.out, /play +2026-11 +JPY +1780 +2\n/);
    const amountEnds = play.map((l) => /^(.*\S) +\d+$/.exec(l)![1]!.length);
    assert.equal(new Set(amountEnds).size, 1, `amounts end in one column:\n${play.join("\n")}`);
    assert.match(r.out, /old-name +2026-09 +JPY +100 +1/);
    assert.match(r.out, /rule "old-name" is not in the config \(renamed or removed\); its totals are kept/);
    assert.ok(!r.out.includes("\u001b"), "a name from the state file cannot drive the terminal");
    assert.match(r.out, /evil\uFFFD\[2J/);
  });

  it("--json is one JSON array of rows with amounts as strings; --rule and --since filter", async () => {
    const r = await runCli(["totals", "--config", file, "--json", "--rule", "play", "--since", "2026-11-01"]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), [
      { rule: "play", period: "2026-11", currency: "JPY", amount: "1780", mails: 2 },
      { rule: "play", period: "2026-11", currency: "USD", amount: "20.13", mails: 2 },
    ]);
  });

  it("--csv is RFC 4180: header, CRLF, quotes doubled inside a quoted field", async () => {
    const r = await runCli(["totals", "--config", file, "--csv", "--since", "2026-11"]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.replace(/\n$/, "").split("\r\n");
    assert.equal(lines[0], "rule,period,currency,amount,mails");
    assert.ok(lines.includes('"evil\u001b[2J,""x""",2026-11,JPY,1,1'), r.out);
    assert.ok(lines.includes("play,2026-11,USD,20.13,2"));
    assert.equal(lines.at(-1), "", "every record ends with CRLF");
    assert.equal(totalsCsv([]), "rule,period,currency,amount,mails\r\n");
  });

  it("says when a rule has nothing, why when it counts nothing, and refuses a name it has never heard of", async () => {
    const none = await runCli(["totals", "--config", file, "--rule", "play", "--since", "2027"]);
    assert.equal(none.code, 0);
    assert.equal(none.out.trim(), 'no totals for rule "play" since 2027.');
    const notes = await runCli(["totals", "--config", file, "--rule", "notes", "--json"]);
    assert.equal(notes.code, 0);
    assert.equal(notes.out.trim(), "[]", "stdout stays a JSON document");
    assert.match(notes.err, /no totals for rule "notes"\. The rule has no total: in the config/);
    const typo = await runCli(["totals", "--config", file, "--rule", "plya"]);
    assert.equal(typo.code, 2);
    assert.match(typo.err, /no rule "plya" in .*mailbell\.yaml or in the state file\. Rules: play, notes, evil/);
  });

  it("refuses a --since that is not a year, month or day, naming the forms", async () => {
    for (const bad of ["2026-13", "2026-02-30", "26-11", "2026/11", "last month"]) {
      assert.throws(() => checkSince(bad), /is not a date: give a year \(--since 2026\), a month \(--since 2026-11\) or a day \(--since 2026-11-01\)/, bad);
    }
    for (const good of ["2026", "2026-11", "2024-02-29"]) assert.equal(checkSince(good), good);
    const r = await runCli(["totals", "--config", file, "--since", "2026-13"]);
    assert.equal(r.code, 2);
    assert.equal((await runCli(["totals", "--config", file, "--json", "--csv"])).code, 2);
  });
});
