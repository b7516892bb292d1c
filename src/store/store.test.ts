import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { MailbellError } from "../errors.ts";
import { openDatabase, schemaVersion } from "./db.ts";
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

describe("totals", () => {
  /** A mail at UID `uid` of a mailbox (default INBOX under UIDVALIDITY 1). */
  const at = (uid: number, messageId?: string, mailbox = "a/INBOX/1") => ({ key: `${mailbox}/${uid}`, mailboxKey: mailbox, messageId });

  it("adds exactly once per mail and rule, per period and currency", () => {
    const { totals } = State.open(":memory:");
    assert.deepEqual(totals.add("play", at(1), "2026-11", jpy(480n)), { total: jpy(480n), added: true });
    assert.deepEqual(totals.add("play", at(2), "2026-11", jpy(480n)), { total: jpy(960n), added: true });
    assert.deepEqual(totals.add("play", at(2), "2026-11", jpy(480n)), { total: jpy(960n), added: false }, "the same mail never counts twice");
    assert.deepEqual(totals.add("other", at(2), "2026-11", jpy(100n)).total, jpy(100n), "another rule counts it on its own");
    assert.deepEqual(totals.add("play", at(3), "2026-12", jpy(480n)).total, jpy(480n), "a new period starts at zero");
    assert.deepEqual(totals.add("play", at(4), "2026-11", { units: 499n, scale: 2, currency: "USD" }).total, { units: 499n, scale: 2, currency: "USD" });
    assert.ok(totals.isCounted("play", at(1)));
    assert.ok(!totals.isCounted("play", at(9)));
  });

  it("by Message-ID, a mail seen again in another mailbox or after renumbering counts once; a reused Message-ID in one mailbox does not hide a mail", () => {
    const { totals } = State.open(":memory:");
    totals.add("play", at(1, "receipt@x"), "2026-11", jpy(480n));
    assert.equal(totals.add("play", at(77, "receipt@x", "a/[Gmail]/All Mail/5"), "2026-11", jpy(480n)).added, false, "Gmail shows it in All Mail too");
    assert.equal(totals.add("play", at(1, "receipt@x", "a/INBOX/2"), "2026-11", jpy(480n)).added, false, "after a UIDVALIDITY change");
    assert.deepEqual(totals.add("play", at(2, "receipt@x"), "2026-11", jpy(300n)), { total: jpy(780n), added: true }, "a sender reusing its Message-ID: another UID in the same mailbox is another mail");
  });

  it("sums decimals exactly, across scales", () => {
    const { totals } = State.open(":memory:");
    for (let i = 0; i < 10; i++) totals.add("r", at(i), "p", { units: 1n, scale: 1, currency: "USD" });
    totals.add("r", at(100), "p", { units: 123456789012345678n, scale: 2, currency: "USD" });
    assert.deepEqual(totals.get("r", "p", "USD"), { units: 123456789012345778n, scale: 2, currency: "USD" });
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
