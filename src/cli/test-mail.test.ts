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

const playRule = `  - name: play
    match: { from: googleplay-noreply@google.com }
    extract: { amount: { regex: "合計:\\\\s*(?<value>[^\\\\r\\\\n]+)", as: money } }
    total: { sum: amount, per: month, timezone: Asia/Tokyo }
    notify: [hook]
    template: "Play: {{amount}}, {{total}} in {{period}}"
`;

function setup(rules: string = playRule): { file: string; statePath: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-test-cli-"));
  const file = path.join(dir, "mailbell.yaml");
  writeFileSync(
    file,
    `state: ./state.db
targets:
  - { name: hook, type: webhook, url: "http://127.0.0.1:9/x" }
rules:
${rules}`,
  );
  return { file, statePath: path.join(dir, "state.db") };
}

/** play notifies and acts; google only acts, and its move loses to play's, which comes first. */
const actingRules = `${playRule}    then: { seen: true, flag: $Notified, move: Receipts/2026 }
  - name: google
    match: { from: "@google.com" }
    then: { move: Google }
`;

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

describe("mailbell test with rules that act on the mail", () => {
  it("shows what then: would do, once for the mail, after the rules, and what was left out", async () => {
    const { file } = setup(actingRules);
    const { code, out } = await cli(["test", "--config", file, receipt]);
    assert.equal(code, 0);
    assert.match(out, /rule play: matched\n(?: {2}.*\n)+rule google: matched\n(?: {2}.*\n)*then: /);
    assert.match(
      out,
      /\nthen: would mark read, flag \$Notified, move to Receipts\/2026 \(rules: play, google; mailbell test changes nothing\)\n {2}rule google: not moved to Google: rule play moves it to Receipts\/2026 first\n$/,
    );
  });

  it("gives the actions in --json a line of their own after the rule lines", async () => {
    const { file } = setup(actingRules);
    const lines = (await cli(["test", "--config", file, "--json", receipt])).out.trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((l) => l.rule ?? "then"),
      ["play", "google", "then"],
    );
    assert.deepEqual(lines[2], {
      then: {
        kind: "act",
        actions: { seen: true, flags: ["$Notified"], labels: [], move: "Receipts/2026" },
        rules: ["play", "google"],
        notes: ["rule google: not moved to Google: rule play moves it to Receipts/2026 first"],
      },
    });
    assert.deepEqual((lines[1] as { targets: unknown[] }).targets, [], "google notifies nobody");
  });

  it("shows a rule with only then: (no notify), and nothing to do when it moves the mail where it is", async () => {
    const { file } = setup(`  - name: label
    match: { from: "@google.com" }
    then: { flag: "\\\\Flagged", move: INBOX }
`);
    const text = await cli(["test", "--config", file, receipt]);
    assert.match(text.out, /rule label: matched\n {2}notifies nobody; it only acts on the mail \(then:, below\)\n/);
    assert.doesNotMatch(text.out, /→|message:/);
    assert.match(text.out, /\nthen: would flag \\Flagged \(rules: label; mailbell test changes nothing\)\n {2}rule label: not moved to INBOX: the mail is already there\n$/);
    const moved = await cli(["test", "--config", file, "--mailbox", "Archive", receipt]);
    assert.match(moved.out, /\nthen: would flag \\Flagged, move to INBOX \(rules: label; mailbell test changes nothing\)\n$/);

    const onlyMove = setup(`  - name: back
    match: { from: "@google.com" }
    then: { move: INBOX }
`);
    assert.match((await cli(["test", "--config", onlyMove.file, receipt])).out, /\nthen: nothing \(rule back: not moved to INBOX: the mail is already there\)\n$/);
    const json = (await cli(["test", "--config", onlyMove.file, "--json", receipt])).out.trimEnd().split("\n");
    assert.deepEqual(JSON.parse(json.at(-1)!), {
      then: { kind: "nothing", actions: { seen: false, flags: [], labels: [], move: null }, rules: ["back"], notes: ["rule back: not moved to INBOX: the mail is already there"] },
    });
  });

  it("says when the same mail was acted on before, from the state file", async () => {
    const { file, statePath } = setup(actingRules);
    const args = ["test", "--config", file, receipt];
    const state = State.open(statePath);
    const seen = await receiptAt(7);
    const actions = { seen: true, flags: ["$Notified"], labels: [], move: "Receipts/2026" };
    assert.ok(state.actions.record(seen, { account: "personal", mailbox: "INBOX", uidValidity: 1, uid: 7, actions, rules: ["play", "google"] }));
    state.close();
    const again = await cli(args);
    assert.match(again.out, /\nthen: already acted on \(from personal\/INBOX\/1\/7\); not done again: mark read, flag \$Notified, move to Receipts\/2026 \(rules: play, google\)\n/);
    const json = JSON.parse((await cli([...args, "--json"])).out.trimEnd().split("\n").at(-1)!) as { then: { kind: string; alreadyActed: string } };
    assert.deepEqual([json.then.kind, json.then.alreadyActed], ["acted", "personal/INBOX/1/7"]);
  });
});

describe("mailbell test: a plain part that says less than its HTML alternative", () => {
  const shortPlain = path.resolve(import.meta.dirname, "../../test/fixtures/receipt-short-plain.eml");
  const fullPlain = path.resolve(import.meta.dirname, "../../test/fixtures/receipt-full-plain.eml");
  const shopRule = (extra = "") => `  - name: shop
    match: { from: receipts@shop.example, body: "/Total/" }
    extract:
      amount: { regex: "Total:?\\\\s*(?<value>\\\\$[\\\\d.]+)", as: money${extra} }
    total: { sum: amount, per: month }
    notify: [hook]
    template: "Shop: {{amount}}, {{total}} in {{period}}"
`;
  const amountOf = async (rules: string, file: string): Promise<unknown> => {
    const { file: config } = setup(rules);
    const lines = (await cli(["test", "--json", "--config", config, file])).out.trim().split("\n").map((l) => JSON.parse(l) as { matched: boolean; fields?: Record<string, { text: string } | null>; missing?: unknown[] });
    const [rule] = lines;
    return rule?.matched ? (rule.fields?.["amount"]?.text ?? rule.missing) : "no match";
  };

  it("in: body (the default) finds the amount in the HTML when the plain part lacks it, as the daemon does", async () => {
    assert.equal(await amountOf(shopRule(), shortPlain), "$12.34");
    const { file } = setup(shopRule());
    assert.match((await cli(["test", "--config", file, shortPlain])).out, /total: would add \$12\.34 to 2026-11/);
  });

  it("in: body keeps to the plain part when it has the amount", async () => {
    assert.equal(await amountOf(shopRule(), fullPlain), "$99.00");
  });

  it("in: html reads the HTML part's text", async () => {
    assert.equal(await amountOf(shopRule(", in: html"), shortPlain), "$12.34");
    assert.equal(await amountOf(shopRule(", in: html"), fullPlain), "$99.00");
  });
});

describe("mailbell test: from matches the address, never the display name (issue 15)", () => {
  /** The receipt, with its From line replaced: what anyone can send. */
  function withFrom(from: string): string {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-spoof-"));
    const eml = path.join(dir, "spoof.eml");
    writeFileSync(eml, readFileSync(receipt, "latin1").replace(/^From: .*$/m, `From: ${from}`), "latin1");
    return eml;
  }
  const spoofs: [name: string, from: string][] = [
    ["the address as display name of another address", `"googleplay-noreply@google.com" <attacker@evil.example>`],
    ["the address as an unquoted display name", `googleplay-noreply@google.com <attacker@evil.example>`],
    ["the address with a domain appended", "Google Play <googleplay-noreply@google.com.evil.example>"],
  ];
  for (const [name, from] of spoofs) {
    it(`${name}: "matched": false`, async () => {
      const { file } = setup();
      const { code, out } = await cli(["test", "--config", file, "--json", withFrom(from)]);
      assert.equal(code, 0);
      assert.deepEqual(JSON.parse(out), { rule: "play", matched: false });
    });
  }

  it("the real sender still matches", async () => {
    const { file } = setup();
    assert.equal((JSON.parse((await cli(["test", "--config", file, "--json", receipt])).out) as { matched: boolean }).matched, true);
  });

  it("a from: without @ is warned about on stderr, with the fix, and matches nothing; fromName: matches the name", async () => {
    const { file } = setup(`  - name: byname
    match: { from: Google Play }
    notify: [hook]
  - name: fromname
    match: { fromName: Google Play }
    notify: [hook]
`);
    const { code, out, err } = await cli(["test", "--config", file, "--json", receipt]);
    assert.equal(code, 0);
    assert.match(err, /^warning: .*mailbell\.yaml:6: rules\[0\]\.match\.from: "Google Play" has no @: it matches whole addresses now, so this rule matches nothing; write fromName: "Google Play" for the display name/m);
    assert.deepEqual(
      out.trimEnd().split("\n").map((line) => (JSON.parse(line) as { rule: string; matched: boolean }).matched),
      [false, true],
    );
  });
});

describe("mailbell test: attachments, from the .eml's structure", () => {
  const apple = path.resolve(import.meta.dirname, "../../test/fixtures/apple-receipt-en-multipart.eml");
  const rules = `  - name: with-pdf
    match: { attachment: "/\\\\.pdf$/i" }
    notify: [hook]
    template: "{{subject}} ({{attachments}})"
  - name: with-zip
    match: { attachment: application/zip }
    notify: [hook]
`;

  it("matches on the file name, lists it in {{attachments}} and in the webhook payload", async () => {
    const { file } = setup(rules);
    const lines = (await cli(["test", "--config", file, "--json", apple])).out.trimEnd().split("\n").map((line) => JSON.parse(line) as { rule: string; matched: boolean; message?: string; targets?: { payload: { attachments: unknown } }[] });
    assert.deepEqual(lines.map((l) => [l.rule, l.matched]), [["with-pdf", true], ["with-zip", false]]);
    assert.equal(lines[0]!.message, "Your receipt from Apple. (Receipt_MQ4X7Y2Z9.pdf)");
    const [listed] = lines[0]!.targets![0]!.payload.attachments as { filename: string; contentType: string; size: number }[];
    assert.deepEqual([listed?.filename, listed?.contentType], ["Receipt_MQ4X7Y2Z9.pdf", "application/pdf"]);
    assert.ok((listed?.size ?? 0) > 0);
  });

  it("the text report lists each attachment's name, type and size", async () => {
    const { file } = setup(rules);
    const { out } = await cli(["test", "--config", file, apple]);
    assert.match(out, /^.*apple-receipt-en-multipart\.eml: from no_reply@email\.apple\.com, .*\n {2}attachment: Receipt_MQ4X7Y2Z9\.pdf \(application\/pdf, \d+ bytes\)\nrule with-pdf: matched\n/);
  });

  it("a mail without attachments does not match", async () => {
    const { file } = setup(rules);
    const lines = (await cli(["test", "--config", file, "--json", receipt])).out.trimEnd().split("\n").map((line) => JSON.parse(line) as { matched: boolean });
    assert.deepEqual(lines.map((l) => l.matched), [false, false]);
  });
});
