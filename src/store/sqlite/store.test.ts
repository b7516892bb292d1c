import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { MailbellError } from "../../errors.ts";
import { openDatabase, schemaVersion } from "./db.ts";
import type { SeenMail } from "../../plan/store.ts";
import { State } from "./state.ts";

const jpy = (units: bigint) => ({ units, scale: 0, currency: "JPY" });

describe("checkpoints", () => {
  it("round-trips and never moves backwards under the same UIDVALIDITY", () => {
    const state = State.open(":memory:");
    assert.equal(state.checkpoints.load("a", "INBOX"), undefined);
    const load = (mailbox = "INBOX") => {
      const { savedAt: _savedAt, ...rest } = state.checkpoints.load("a", mailbox)!;
      return rest;
    };
    state.checkpoints.save("a", "INBOX", { uidValidity: 5, lastUid: 10 });
    const movedAt = state.checkpoints.load("a", "INBOX")!.savedAt;
    state.checkpoints.save("a", "INBOX", { uidValidity: 5, lastUid: 8 });
    assert.deepEqual(load(), { uidValidity: 5, lastUid: 10 });
    assert.equal(state.checkpoints.load("a", "INBOX")!.savedAt, movedAt, "saving without moving keeps the time of the last move");
    state.checkpoints.save("a", "INBOX", { uidValidity: 6, lastUid: 2 });
    assert.deepEqual(load(), { uidValidity: 6, lastUid: 2 }, "a new UIDVALIDITY replaces the old checkpoint");
    assert.equal(state.checkpoints.load("a", "Other"), undefined);
  });

  it("survives reopening the file", () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "mailbell-store-")), "state.db");
    const first = State.open(file);
    first.checkpoints.save("a", "INBOX", { uidValidity: 1, lastUid: 99 });
    first.close();
    const second = State.open(file);
    assert.deepEqual({ ...second.checkpoints.load("a", "INBOX"), savedAt: undefined }, { uidValidity: 1, lastUid: 99, savedAt: undefined });
    second.close();
  });
});

/**
 * A mail at UID `uid` of a mailbox (default INBOX under UIDVALIDITY 1), named `identity` (default:
 * one of its own), that arrived at `receivedAt`.
 */
function at(uid: number, o: { identity?: string; messageId?: string; mailbox?: string; receivedAt?: Date } = {}): SeenMail {
  const mailboxKey = o.mailbox ?? "a/INBOX/1";
  return { place: `${mailboxKey}/${uid}`, mailboxKey, identity: o.identity ?? `mail ${mailboxKey}/${uid}`, messageId: o.messageId, receivedAt: o.receivedAt ?? new Date() };
}

describe("totals", () => {
  it("adds exactly once per mail and rule, per period and currency", () => {
    const { totals } = State.open(":memory:");
    assert.deepEqual(totals.add("play", at(1), "2026-11", jpy(480n)), { total: jpy(480n), added: true });
    assert.deepEqual(totals.add("play", at(2), "2026-11", jpy(480n)), { total: jpy(960n), added: true });
    assert.deepEqual(totals.add("play", at(2), "2026-11", jpy(480n)), { total: jpy(960n), added: false, earlier: "a/INBOX/1/2" }, "the same mail never counts twice");
    assert.deepEqual(totals.add("other", at(2), "2026-11", jpy(100n)).total, jpy(100n), "another rule counts it on its own");
    assert.deepEqual(totals.add("play", at(3), "2026-12", jpy(480n)).total, jpy(480n), "a new period starts at zero");
    assert.deepEqual(totals.add("play", at(4), "2026-11", { units: 499n, scale: 2, currency: "USD" }).total, { units: 499n, scale: 2, currency: "USD" });
    assert.ok(totals.isCounted("play", at(1)));
    assert.ok(!totals.isCounted("play", at(9)));
  });

  it("by identity, the same mail back at any place counts once; another mail with the same Message-ID counts", () => {
    const { totals } = State.open(":memory:");
    const receipt = { identity: "<receipt@x> 0123", messageId: "receipt@x" };
    totals.add("play", at(1, receipt), "2026-11", jpy(480n));
    const again: Array<[string, SeenMail]> = [
      ["moved out and back: another UID in the same mailbox", at(7, receipt)],
      ["in another mailbox (Gmail's All Mail)", at(77, { ...receipt, mailbox: "a/[Gmail]/All Mail/5" })],
      ["after a UIDVALIDITY change", at(1, { ...receipt, mailbox: "a/INBOX/2" })],
      ["in another account", at(3, { ...receipt, mailbox: "b/INBOX/9" })],
    ];
    for (const [name, mail] of again) assert.deepEqual(totals.add("play", mail, "2026-11", jpy(480n)), { total: jpy(480n), added: false, earlier: "a/INBOX/1/1" }, name);
    const reused = { identity: "<receipt@x> 4567", messageId: "receipt@x" };
    assert.deepEqual(totals.add("play", at(2, reused), "2026-11", jpy(300n)), { total: jpy(780n), added: true }, "a sender reusing its Message-ID: another mail");
    assert.deepEqual(totals.add("play", at(5, { ...reused, mailbox: "a/Archive/3" }), "2026-11", jpy(300n)).added, false, "and that one, moved, counts once too");
    assert.equal(totals.add("play", at(2, { identity: "read differently" }), "2026-11", jpy(300n)).added, false, "the same place read again counts once, whatever it is called");
  });

  it("sums decimals exactly, across scales", () => {
    const { totals } = State.open(":memory:");
    for (let i = 0; i < 10; i++) totals.add("r", at(i), "p", { units: 1n, scale: 1, currency: "USD" });
    totals.add("r", at(100), "p", { units: 123456789012345678n, scale: 2, currency: "USD" });
    assert.deepEqual(totals.get("r", "p", "USD"), { units: 123456789012345778n, scale: 2, currency: "USD" });
  });
});

describe("totals report", () => {
  it("lists rule, period, currency, exact amount and mail count, filtered by rule and since", () => {
    const { totals } = State.open(":memory:");
    totals.add("play", at(1), "2026-10", jpy(480n));
    totals.add("play", at(2), "2026-11", jpy(480n));
    totals.add("play", at(3), "2026-11", jpy(120n));
    totals.add("play", at(4), "2026-11", { units: 1514n, scale: 2, currency: "USD" });
    totals.add("weekly", at(5), "2026-W44", jpy(1n));
    totals.add("weekly", at(6), "2026-W45", jpy(2n));
    assert.deepEqual(totals.report({ rule: "play" }), [
      { rule: "play", period: "2026-10", currency: "JPY", amount: "480", mails: 1 },
      { rule: "play", period: "2026-11", currency: "JPY", amount: "600", mails: 2 },
      { rule: "play", period: "2026-11", currency: "USD", amount: "15.14", mails: 1 },
    ]);
    const since = (day: string) => totals.report({ since: day }).map((r) => `${r.rule} ${r.period} ${r.currency}`);
    assert.deepEqual(since("2026-11-01"), ["play 2026-11 JPY", "play 2026-11 USD", "weekly 2026-W44 JPY", "weekly 2026-W45 JPY"], "ISO week 44 of 2026 ends on Sunday 2026-11-01");
    assert.deepEqual(since("2026-11-02"), ["play 2026-11 JPY", "play 2026-11 USD", "weekly 2026-W45 JPY"]);
    assert.deepEqual(since("2026-11"), since("2026-11-01"), "a month as since means its first day");
    assert.equal(totals.report().length, 5);
    assert.deepEqual(totals.report({ rule: "none" }), []);
  });
});

describe("reading before writing, as a plan is committed", () => {
  it("countedAt and notifiedAt say where a mail was counted or queued from; record writes once and refuses a repeat", () => {
    const { totals, notified } = State.open(":memory:");
    const receipt = { identity: "<receipt@x> 0123", messageId: "receipt@x" };
    assert.equal(totals.countedAt("play", at(1, receipt)), undefined);
    assert.equal(notified.notifiedAt("play", "team", at(1, receipt)), undefined);
    assert.deepEqual(totals.record("play", at(1, receipt), "2026-11", jpy(480n)), jpy(480n));
    assert.deepEqual(totals.record("play", at(2), "2026-11", jpy(20n)), jpy(500n), "the period's total moves on");
    assert.equal(totals.record("play", at(3, receipt), "2026-11", jpy(480n)), undefined, "the same identity again adds nothing");
    assert.equal(totals.record("play", at(1, { identity: "read differently" }), "2026-11", jpy(480n)), undefined, "nor the same place");
    assert.deepEqual(totals.get("play", "2026-11", "JPY"), jpy(500n));
    assert.equal(totals.countedAt("play", at(9, { ...receipt, mailbox: "a/Archive/4" })), "a/INBOX/1/1");
    assert.equal(notified.record("play", "team", at(1, receipt)), true);
    assert.equal(notified.record("play", "team", at(1, receipt)), false, "a target named twice is queued once");
    assert.equal(notified.record("play", "team", at(4, receipt)), false);
    assert.equal(notified.notifiedAt("play", "team", at(4, receipt)), "a/INBOX/1/1");
    assert.equal(notified.notifiedAt("play", "hook", at(4, receipt)), undefined, "another target");
  });
});

describe("notified", () => {
  it("lets a mail be queued once per rule and target, wherever it comes back from", () => {
    const { notified } = State.open(":memory:");
    const receipt = { identity: "<receipt@x> 0123", messageId: "receipt@x" };
    assert.deepEqual(notified.claim("play", "team", at(1, receipt)), { claimed: true });
    assert.deepEqual(notified.claim("play", "hook", at(1, receipt)), { claimed: true }, "another target");
    assert.deepEqual(notified.claim("other", "team", at(1, receipt)), { claimed: true }, "another rule");
    for (const mail of [at(1, receipt), at(7, receipt), at(2, { ...receipt, mailbox: "a/Archive/4" }), at(1, { ...receipt, mailbox: "a/INBOX/2" })]) {
      assert.deepEqual(notified.claim("play", "team", mail), { claimed: false, earlier: "a/INBOX/1/1" }, mail.place);
    }
    assert.deepEqual(notified.claim("play", "team", at(8, { identity: "<receipt@x> 4567", messageId: "receipt@x" })), { claimed: true }, "another mail with the same Message-ID");
    assert.deepEqual(notified.claim("play", "team", at(1, { identity: "read differently" })), { claimed: false, earlier: "a/INBOX/1/1" }, "the same place read again");
  });
});

describe("database", () => {
  it("creates the schema and records its version", () => {
    const db = openDatabase(":memory:");
    assert.equal((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version, schemaVersion);
  });

  it("refuses a database from a newer mailbell with a clear error", () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "mailbell-store-")), "state.db");
    const db = new DatabaseSync(file);
    db.exec(`PRAGMA user_version = ${schemaVersion + 1}`);
    db.close();
    assert.throws(() => openDatabase(file), (err: unknown) => err instanceof MailbellError && err.code === "STATE" && /newer mailbell/.test(err.message));
  });

  it("names the path when it cannot open the file", () => {
    const notAFolder = path.join(mkdtempSync(path.join(tmpdir(), "mailbell-store-")), "file");
    writeFileSync(notAFolder, "");
    const file = path.join(notAFolder, "state.db");
    assert.throws(() => openDatabase(file), (err: unknown) => err instanceof MailbellError && err.code === "STATE" && err.message.includes(file) && /set state: to another path/.test(err.message));
  });
});
