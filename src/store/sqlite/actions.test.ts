/**
 * The queue of rules' actions (SqliteActions) on a real state file: what the pipeline records in
 * its commit, what the watcher finds due and records back, and what stays to say a mail was acted on.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { QueuedActions, SeenMail } from "../../plan/store.ts";
import type { MailActions } from "../../rules/types.ts";
import { State } from "./state.ts";

/** A new state file in a folder of its own. */
function freshFile(): string {
  return path.join(mkdtempSync(path.join(tmpdir(), "mailbell-actions-")), "state.db");
}

/** Opens a state file for one test and closes it after, whatever happened. */
function withState(run: (state: State) => void, file = freshFile()): void {
  const state = State.open(file);
  try {
    run(state);
  } finally {
    state.close();
  }
}

const seenOnly: MailActions = { seen: true, flags: [], labels: [], move: undefined };
const fileAway: MailActions = { seen: false, flags: ["\\Flagged", "$Receipt"], labels: ["Receipts/2026"], move: "Archive/Receipts" };

/** A mail at UID `uid` of account a's `mailbox` under UIDVALIDITY 1, named `identity` (default: one of its own). */
function mailAt(uid: number, o: { mailbox?: string; identity?: string } = {}): { seen: SeenMail; queued: (actions?: MailActions) => QueuedActions } {
  const mailbox = o.mailbox ?? "INBOX";
  const mailboxKey = `a/${mailbox}/1`;
  const place = `${mailboxKey}/${uid}`;
  return {
    seen: { place, mailboxKey, identity: o.identity ?? `mail ${place}`, messageId: undefined, receivedAt: new Date("2026-11-20T01:00:00Z") },
    queued: (actions = seenOnly) => ({ account: "a", mailbox, uidValidity: 1, uid, actions, rules: ["receipts"] }),
  };
}

/** Records a mail's actions at `now` and says whether it was recorded. */
function queue(state: State, m: ReturnType<typeof mailAt>, now: number, actions?: MailActions): boolean {
  return state.actions.record(m.seen, m.queued(actions), now);
}

/**
 * Actions as read back, every field named: the JSON they are stored as has no `move` when there is
 * none, which reads as undefined all the same (nothing asks whether the key is there).
 */
const asRead = ({ seen, flags, labels, move }: MailActions): MailActions => ({ seen, flags, labels, move });

const uidsDue = (state: State, now: number, limit = 100, mailbox = "INBOX") => state.actions.due("a", mailbox, now, limit).map((d) => d.uid);

describe("SqliteActions", () => {
  it("record then actedAt: known by its identity wherever it shows up, and by its place; recorded once", () => {
    withState((state) => {
      const { actions } = state;
      const first = mailAt(7, { identity: "<play-1@google.com> 1f2e" });
      assert.equal(actions.actedAt(first.seen), undefined, "nothing recorded yet");
      assert.equal(queue(state, first, 1000), true);
      assert.equal(actions.actedAt(first.seen), "a/INBOX/1/7");
      const movedBack = mailAt(20, { identity: "<play-1@google.com> 1f2e" });
      const inArchive = mailAt(3, { mailbox: "Archive", identity: "<play-1@google.com> 1f2e" });
      assert.equal(actions.actedAt(movedBack.seen), "a/INBOX/1/7", "same identity at another UID: the first place");
      assert.equal(actions.actedAt(inArchive.seen), "a/INBOX/1/7", "same identity in another mailbox: the first place");
      assert.equal(actions.actedAt(mailAt(7, { identity: "read again under another identity" }).seen), "a/INBOX/1/7", "by its place");
      assert.equal(actions.actedAt(mailAt(8).seen), undefined, "another mail");

      assert.equal(queue(state, movedBack, 2000, fileAway), false, "same identity again");
      assert.equal(queue(state, mailAt(7, { identity: "another identity" }), 2000, fileAway), false, "same place again");
      assert.equal(queue(state, first, 2000), false, "the very same mail again");
      assert.deepEqual(
        actions.list().map((r) => [r.uid, r.mailbox, asRead(r.actions), r.nextAt]),
        [[7, "INBOX", seenOnly, 1000]],
        "nothing added, the first row unchanged",
      );
      assert.equal(queue(state, mailAt(8), 2000), true, "another mail is recorded");
    });
  });

  it("due: pending rows of that account and mailbox whose time has come, oldest first, at most limit; actions round-trip", () => {
    withState((state) => {
      const { actions } = state;
      queue(state, mailAt(5), 1000, fileAway);
      queue(state, mailAt(3), 1000);
      queue(state, mailAt(9), 3000, fileAway);
      queue(state, mailAt(4, { mailbox: "Archive" }), 1000);
      actions.record(mailAt(1).seen, { ...mailAt(1).queued(), account: "b" }, 1000);

      assert.deepEqual(uidsDue(state, 999), [], "nothing before it was queued");
      assert.deepEqual(uidsDue(state, 2000), [5, 3], "in the order queued, not by UID; 9 not yet");
      assert.deepEqual(uidsDue(state, 3000), [5, 3, 9], "next_at <= now");
      assert.deepEqual(uidsDue(state, 3000, 2), [5, 3], "at most limit");
      assert.deepEqual(uidsDue(state, 3000, 100, "Archive"), [4]);
      assert.deepEqual(actions.due("b", "INBOX", 3000, 100).map((d) => d.uid), [1]);
      assert.deepEqual(actions.due("c", "INBOX", 3000, 100), []);

      const [first] = actions.due("a", "INBOX", 2000, 1);
      assert.deepEqual({ ...first, id: undefined, actions: asRead(first!.actions) }, { id: undefined, uidValidity: 1, uid: 5, actions: fileAway, rules: ["receipts"], attempts: 0 });
      assert.equal(typeof first!.id, "number");
      const [, second] = actions.due("a", "INBOX", 2000, 100);
      assert.deepEqual(asRead(second!.actions), seenOnly);
      assert.equal(second!.actions.move, undefined, "no move comes back as none");
    });
  });

  it("failed: attempts go up, the reason is kept, the row waits for retryAt", () => {
    withState((state) => {
      const { actions } = state;
      queue(state, mailAt(5), 1000, fileAway);
      queue(state, mailAt(6), 1000);
      const [five, six] = actions.due("a", "INBOX", 1000, 100).map((d) => d.id);
      actions.failed([five!], "NO [TRYCREATE] Mailbox doesn't exist: Archive/Receipts", 61_000);
      assert.deepEqual(uidsDue(state, 60_999), [6], "not due before retryAt");
      assert.deepEqual(actions.due("a", "INBOX", 61_000, 100).map((d) => [d.uid, d.attempts]), [[5, 1], [6, 0]], "due again from retryAt, oldest first still");
      actions.failed([five!], "NO [NOPERM] read-only", 181_000);
      const row = actions.list().find((r) => r.id === five)!;
      assert.deepEqual([row.state, row.attempts, row.lastError, row.nextAt], ["pending", 2, "NO [NOPERM] read-only", 181_000]);
      assert.equal(actions.list().find((r) => r.id === six)!.lastError, undefined);
      actions.failed([], "nothing", 0);
      assert.equal(state.db.isTransaction, false, "nothing left open");
    });
  });

  it("done and dropped take rows out of due, and keep them as the record that the mail was acted on", () => {
    withState((state) => {
      const { actions } = state;
      const [five, six, seven] = [mailAt(5, { identity: "five" }), mailAt(6, { identity: "six" }), mailAt(7)];
      for (const m of [five, six, seven]) queue(state, m, 1000);
      const [idFive, idSix] = actions.due("a", "INBOX", 1000, 100).map((d) => d.id);
      actions.failed([idSix!], "NO [NOPERM]", 2000);
      actions.done([idFive!], 3000);
      actions.dropped([idSix!], "the mail is no longer in the mailbox (moved or deleted by someone else)", 3000);
      assert.deepEqual(uidsDue(state, 1_000_000), [7]);
      assert.equal(actions.pendingIn("a", "INBOX"), true);

      assert.equal(actions.actedAt(mailAt(30, { mailbox: "Archive", identity: "five" }).seen), "a/INBOX/1/5", "done: moved away and back, still acted on");
      assert.equal(actions.actedAt(mailAt(31, { identity: "six" }).seen), "a/INBOX/1/6", "dropped: still acted on");
      assert.equal(queue(state, mailAt(32, { identity: "six" }), 4000), false, "not queued again");

      actions.done([idSix!], 5000);
      actions.failed([idFive!], "late", 9000);
      assert.deepEqual(
        actions.list().map((r) => [r.uid, r.state, r.attempts, r.lastError, r.nextAt]),
        [
          [5, "done", 0, undefined, 1000],
          [6, "dropped", 1, "the mail is no longer in the mailbox (moved or deleted by someone else)", 2000],
          [7, "pending", 0, undefined, 1000],
        ],
        "done on a dropped row, and failed on a done one, change nothing",
      );
    });
  });

  it("done after a failure forgets the error", () => {
    withState((state) => {
      const { actions } = state;
      queue(state, mailAt(5), 1000);
      const [id] = actions.due("a", "INBOX", 1000, 1).map((d) => d.id);
      actions.failed([id!], "NO [NOPERM]", 2000);
      actions.done([id!], 2500);
      assert.deepEqual(actions.list().map((r) => [r.state, r.attempts, r.lastError]), [["done", 1, undefined]]);
    });
  });

  it("pendingIn: only while a row of that account and mailbox waits", () => {
    withState((state) => {
      const { actions } = state;
      assert.equal(actions.pendingIn("a", "INBOX"), false);
      queue(state, mailAt(5), 1000);
      queue(state, mailAt(6, { mailbox: "Archive" }), 1000);
      assert.equal(actions.pendingIn("a", "INBOX"), true);
      assert.equal(actions.pendingIn("b", "INBOX"), false, "another account");
      assert.equal(actions.pendingIn("a", "Spam"), false, "another mailbox");
      const [id] = actions.due("a", "INBOX", 1000, 1).map((d) => d.id);
      actions.failed([id!], "NO", 99_000);
      assert.equal(actions.pendingIn("a", "INBOX"), true, "waiting for a retry is still pending");
      actions.done([id!], 2000);
      assert.equal(actions.pendingIn("a", "INBOX"), false);
      const [archived] = actions.due("a", "Archive", 1000, 1).map((d) => d.id);
      actions.dropped([archived!], "renumbered", 2000);
      assert.equal(actions.pendingIn("a", "Archive"), false);
    });
  });

  it("list shows every row with its rules, state, attempts and last error", () => {
    withState((state) => {
      const { actions } = state;
      actions.record(mailAt(5).seen, { ...mailAt(5).queued(fileAway), rules: ["receipts", "shop"] }, 1000);
      queue(state, mailAt(6), 1000);
      const [, id] = actions.due("a", "INBOX", 1000, 100).map((d) => d.id);
      actions.failed([id!], "NO [TRYCREATE]", 70_000);
      assert.deepEqual(
        actions.list().map(({ id: _id, ...rest }) => ({ ...rest, actions: asRead(rest.actions) })),
        [
          { account: "a", mailbox: "INBOX", uidValidity: 1, uid: 5, actions: fileAway, rules: ["receipts", "shop"], state: "pending", attempts: 0, lastError: undefined, nextAt: 1000 },
          { account: "a", mailbox: "INBOX", uidValidity: 1, uid: 6, actions: seenOnly, rules: ["receipts"], state: "pending", attempts: 1, lastError: "NO [TRYCREATE]", nextAt: 70_000 },
        ],
      );
    });
  });

  it("record inside a transaction that throws leaves nothing, and the mail is free again", () => {
    withState((state) => {
      const m = mailAt(5, { identity: "rolled back" });
      assert.throws(
        () =>
          state.transaction(() => {
            assert.equal(queue(state, m, 1000), true);
            assert.equal(state.actions.actedAt(m.seen), "a/INBOX/1/5", "seen inside the transaction");
            throw new Error("posting the notifications failed");
          }),
        /posting the notifications failed/,
      );
      assert.equal(state.db.isTransaction, false);
      assert.equal(state.actions.actedAt(m.seen), undefined);
      assert.deepEqual(state.actions.list(), []);
      assert.equal(state.actions.pendingIn("a", "INBOX"), false);
      assert.equal(queue(state, m, 2000), true, "recorded by the next commit");
    });
  });

  it("rows survive closing and reopening the file", () => {
    const file = freshFile();
    withState((state) => {
      queue(state, mailAt(5, { identity: "kept" }), 1000, fileAway);
    }, file);
    withState((state) => {
      assert.deepEqual(state.actions.due("a", "INBOX", 1000, 10).map((d) => [d.uid, d.actions]), [[5, fileAway]]);
      assert.equal(state.actions.actedAt(mailAt(9, { identity: "kept" }).seen), "a/INBOX/1/5");
    }, file);
  });

  it("a state file of schema 5 (test/fixtures/state-v5.sqlite) gets the actions table when upgraded, and it works", () => {
    const file = freshFile();
    copyFileSync(path.resolve(import.meta.dirname, "../../../test/fixtures/state-v5.sqlite"), file);
    withState((state) => {
      assert.deepEqual(state.actions.list(), [], "empty: nothing was acted on before rules had actions");
      assert.equal(state.actions.pendingIn("alice", "INBOX"), false);
      const receipt: SeenMail = { place: "alice/INBOX/1700000000/13", mailboxKey: "alice/INBOX/1700000000", identity: "<play-3@google.com> 9a", messageId: "play-3@google.com", receivedAt: new Date() };
      assert.equal(state.actions.actedAt(receipt), undefined);
      assert.equal(state.actions.record(receipt, { account: "alice", mailbox: "INBOX", uidValidity: 1700000000, uid: 13, actions: fileAway, rules: ["google-play"] }, 1000), true);
      assert.deepEqual(state.actions.due("alice", "INBOX", 1000, 10).map((d) => [d.uidValidity, d.uid, d.actions, d.attempts]), [[1700000000, 13, fileAway, 0]]);
    }, file);
  });

  it("forgetRenumbered: pending rows of another UIDVALIDITY are deleted, due or waiting for a retry, so the mail is acted on when read again under its new UID", () => {
    withState((state) => {
      queue(state, mailAt(5), 1000);
      queue(state, mailAt(6), 1000);
      const [, six] = state.actions.due("a", "INBOX", 1000, 10);
      state.actions.failed([six!.id], "TRYCREATE", 999_999);
      assert.equal(state.actions.forgetRenumbered("a", "INBOX", 1), 0, "the current UIDVALIDITY is kept");
      assert.equal(state.actions.forgetRenumbered("a", "Archive", 2), 0, "another mailbox is not touched");
      assert.equal(state.actions.forgetRenumbered("a", "INBOX", 2), 2);
      assert.deepEqual(state.actions.due("a", "INBOX", 2_000_000, 10), []);
      assert.equal(state.actions.actedAt(mailAt(5).seen), undefined);
      assert.equal(state.actions.actedAt(mailAt(6).seen), undefined);
    });
  });

  it("a row whose stored actions cannot be read is given up with the reason, not thrown at the watcher", () => {
    withState((state) => {
      queue(state, mailAt(5), 1000);
      queue(state, mailAt(6), 1000);
      state.db.prepare("UPDATE actions SET actions = '{oops' WHERE uid = 5").run();
      assert.deepEqual(state.actions.due("a", "INBOX", 1000, 10).map((d) => d.uid), [6]);
      const broken = state.actions.list().find((r) => r.uid === 5)!;
      assert.equal(broken.state, "dropped");
      assert.match(broken.lastError ?? "", /the stored actions cannot be read/);
    });
  });
});
