/**
 * A state file written by the release before mail identities (schema 5; test/fixtures/state-v5.md
 * says what is in it) is upgraded in place: what it counted and queued is kept, and still keeps a
 * mail that comes back from being counted or posted again.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { schemaVersion } from "./db.ts";
import type { SeenMail } from "../../plan/store.ts";
import { State } from "./state.ts";

const fixture = path.resolve(import.meta.dirname, "../../../test/fixtures/state-v5.sqlite");
const inbox = "alice/INBOX/1700000000";
const jpy = (units: bigint) => ({ units, scale: 0, currency: "JPY" });

/** A copy of the fixture, opened (and so upgraded) by this mailbell. */
function upgraded(): { state: State; file: string } {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "mailbell-upgrade-")), "state.db");
  copyFileSync(fixture, file);
  return { state: State.open(file), file };
}

/** A mail as this release sees it: with an identity, which rows of schema 5 do not have. */
function mail(place: string, messageId: string | undefined, receivedAt: string, identity = `<${messageId}> ${place}`): SeenMail {
  return { place, mailboxKey: place.slice(0, place.lastIndexOf("/")), identity, messageId, receivedAt: new Date(receivedAt) };
}

// play-1@google.com was counted and posted at 2026-11-20T01:00:05Z as INBOX UID 7, having arrived just before.
const arrived = "2026-11-20T01:00:00Z";

describe("upgrading a state file of schema 5", () => {
  it("keeps the checkpoints, totals, outbox and target state", () => {
    const { state } = upgraded();
    try {
      assert.equal((state.db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version, schemaVersion);
      assert.deepEqual({ ...state.checkpoints.load("alice", "INBOX"), savedAt: undefined }, { uidValidity: 1700000000, lastUid: 12, savedAt: undefined });
      assert.deepEqual(state.totals.get("google-play", "2026-11", "JPY"), jpy(580n));
      assert.deepEqual(state.totals.get("shop", "2026-11", "JPY"), jpy(800n));
      assert.deepEqual(
        state.outbox.counts().sort((a, b) => `${a.target}${a.state}`.localeCompare(`${b.target}${b.state}`)),
        [
          { target: "hook", state: "done", count: 1 },
          { target: "team", state: "dead", count: 1 },
          { target: "team", state: "done", count: 3 },
          { target: "team", state: "pending", count: 1 },
        ],
      );
      const pending = state.outbox.ready("team", Date.parse("2026-12-01T00:00:00Z"), 10);
      assert.deepEqual(pending.map((r) => [r.id, r.messageId, r.subject]), [[`${inbox}/11/shop/team`, "reused@shop.example", "order 2"]], "the pending one is still sent");
      assert.equal(state.outbox.get(`${inbox}/12/shop/team`)?.lastError, 'target "team" answered 404: no_service');
      assert.equal(state.targetState.for("team").get("thread:google-play:2026-11"), "1763600405.000100");
    } finally {
      state.close();
    }
  });

  it("a receipt counted before the upgrade is not counted again when it comes back", () => {
    const { state } = upgraded();
    try {
      const { totals } = state;
      const back: Array<[string, SeenMail]> = [
        ["read again at its place", mail(`${inbox}/7`, "play-1@google.com", arrived)],
        ["in another mailbox (as before the upgrade)", mail("alice/Archive/1700000001/4", "play-1@google.com", arrived)],
        ["moved out and back: another UID in INBOX, arrived before it was counted", mail(`${inbox}/13`, "play-1@google.com", arrived)],
        ["after a UIDVALIDITY change", mail("alice/INBOX/1800000000/2", "play-1@google.com", arrived)],
        ["a mail without a Message-ID, read again at its place", mail(`${inbox}/8`, undefined, "2026-11-20T02:00:00Z", "no id")],
      ];
      for (const [name, m] of back) assert.equal(totals.add("google-play", m, "2026-11", jpy(480n)).added, false, name);
      assert.deepEqual(totals.get("google-play", "2026-11", "JPY"), jpy(580n));
      // Schema 5 kept nothing else of a mail without a Message-ID than its place.
      assert.equal(totals.add("google-play", mail("alice/Archive/1700000001/6", undefined, "2026-11-20T02:00:00Z", "no id"), "2026-11", jpy(100n)).added, true, "known by its place only");
    } finally {
      state.close();
    }
  });

  it("a sender reusing its Message-ID: its next mail counts and posts, the old ones do not come back", () => {
    const { state } = upgraded();
    try {
      const next = mail(`${inbox}/14`, "reused@shop.example", "2026-12-01T09:00:00Z");
      assert.deepEqual(state.totals.add("shop", next, "2026-12", jpy(700n)), { total: jpy(700n), added: true });
      assert.deepEqual(state.notified.claim("shop", "team", next), { claimed: true });
      const old = mail(`${inbox}/15`, "reused@shop.example", "2026-11-21T03:00:00Z");
      assert.equal(state.totals.add("shop", old, "2026-11", jpy(300n)).added, false);
      assert.deepEqual(state.notified.claim("shop", "team", old), { claimed: false, earlier: `${inbox}/10` });
    } finally {
      state.close();
    }
  });

  it("a mail posted before the upgrade is not posted again when it comes back", () => {
    const { state } = upgraded();
    try {
      const { notified } = state;
      const archived = mail("alice/Archive/1700000001/4", "play-1@google.com", arrived);
      assert.deepEqual(notified.claim("google-play", "team", archived), { claimed: false, earlier: `${inbox}/7` });
      assert.deepEqual(notified.claim("google-play", "hook", mail(`${inbox}/13`, "play-1@google.com", arrived)), { claimed: false, earlier: `${inbox}/7` });
      assert.deepEqual(notified.claim("shop", "team", mail("alice/Archive/1700000001/5", "dead@shop.example", arrived)), { claimed: false, earlier: `${inbox}/12` }, "a dead letter is retried with mailbell outbox retry, not posted anew");
      assert.deepEqual(notified.claim("google-play", "new-target", archived), { claimed: true }, "a target it was never posted to");
    } finally {
      state.close();
    }
  });

  it("what is counted after the upgrade counts once however it comes back, and the file opens again as it is", () => {
    const { state, file } = upgraded();
    const receipt = (place: string) => mail(place, "play-2@google.com", "2026-11-25T00:00:00Z", "<play-2@google.com> 77");
    assert.equal(state.totals.add("google-play", receipt(`${inbox}/16`), "2026-11", jpy(480n)).added, true);
    state.close();
    const again = State.open(file);
    try {
      assert.equal((again.db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version, schemaVersion);
      assert.equal(again.totals.add("google-play", receipt(`${inbox}/17`), "2026-11", jpy(480n)).added, false);
      assert.deepEqual(again.totals.get("google-play", "2026-11", "JPY"), jpy(1060n));
    } finally {
      again.close();
    }
  });
});
