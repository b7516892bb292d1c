import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { rfc822Size } from "../mail/identity.ts";
import { normalizeMail } from "../mail/normalize.ts";
import { seenMail } from "../plan/plan.ts";
import { State } from "../store/sqlite/state.ts";
import { runCli } from "../../test/support/cli.ts";

const receipt = path.resolve(import.meta.dirname, "../../test/fixtures/google-play-ja-iso2022jp.eml");

function setup(): { file: string; statePath: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-test-cli-"));
  const file = path.join(dir, "mailbell.yaml");
  writeFileSync(
    file,
    `state: ./state.db
targets:
  - { name: hook, type: webhook, url: "http://127.0.0.1:9/x" }
rules:
  - name: play
    match: { from: googleplay-noreply@google.com }
    extract: { amount: { regex: "合計:\\\\s*(?<value>[^\\\\r\\\\n]+)", as: money } }
    total: { sum: amount, per: month, timezone: Asia/Tokyo }
    notify: [hook]
    template: "Play: {{amount}}, {{total}} in {{period}}"
`,
  );
  return { file, statePath: path.join(dir, "state.db") };
}

const cli = (args: string[]) => runCli(args);

/** The receipt as the daemon would have seen it at a place in a mailbox: the same identity as the file's. */
async function receiptAt(uid: number) {
  const raw = readFileSync(receipt);
  const mail = await normalizeMail(raw);
  return seenMail({ account: "personal", mailbox: "INBOX", uidValidity: 1, uid, mail, size: rfc822Size(raw), receivedAt: mail.date! });
}

describe("mailbell test with a state file", () => {
  it("shows the plan the daemon would commit: the running total, and what was counted and notified before", async () => {
    const { file, statePath } = setup();
    const args = ["test", "--config", file, receipt];
    assert.match((await cli(args)).out, /total: would add ¥480 to 2026-11 \(November\) → ¥480 \(no state file yet\)/);

    const state = State.open(statePath);
    const other = { ...(await receiptAt(1)), identity: "another mail", place: "personal/INBOX/1/1" };
    state.totals.add("play", other, "2026-11", { units: 3200n, scale: 0, currency: "JPY" });
    state.close();
    const before = await cli(args);
    assert.match(before.out, /total: would add ¥480 to 2026-11 \(November\) → ¥3,680\n/);
    assert.doesNotMatch(before.out, /already/);

    const again = State.open(statePath);
    const seen = await receiptAt(5);
    again.totals.add("play", seen, "2026-11", { units: 480n, scale: 0, currency: "JPY" });
    assert.ok(again.notified.claim("play", "hook", seen).claimed);
    again.close();
    const after = await cli(args);
    assert.equal(after.code, 0);
    assert.match(after.out, /total: already counted \(from personal\/INBOX\/1\/5\); 2026-11 \(November\) stays ¥3,680\n/);
    assert.match(after.out, /→ hook \(webhook\): .*\n {4}already notified \(from personal\/INBOX\/1\/5\); not posted again\n/);

    const json = JSON.parse((await cli([...args, "--json"])).out) as { total: { alreadyCounted?: string; runningTotal: { text: string } }; targets: { alreadyNotified?: string }[] };
    assert.equal(json.total.alreadyCounted, "personal/INBOX/1/5");
    assert.equal(json.total.runningTotal.text, "¥3,680");
    assert.equal(json.targets[0]?.alreadyNotified, "personal/INBOX/1/5");
  });
});
