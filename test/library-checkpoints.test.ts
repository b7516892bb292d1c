/**
 * The library's checkpoints against a real Dovecot: a failing store of the caller's reaches the
 * caller the same way from load and from save, commit "manual" without a store is refused, and a
 * checkpoint saved in the caller's own SQLite transaction moves only when that transaction commits.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { MemoryCheckpoints, sqliteCheckpoints, StateError, UsageError, watchMailbox, type Checkpoint, type CheckpointStore, type WatchedMail, type WatchEvent } from "../src/index.ts";
import type { ImapAccount } from "../src/imap/client.ts";
import { imapAccountOf, startDovecot, type Dovecot } from "./support/dovecot.ts";
import { buildMail } from "./support/mail.ts";

let dovecot: Dovecot;

before(async () => {
  dovecot = await startDovecot();
});
after(async () => {
  await dovecot?.dispose();
});

const account = (user: string): ImapAccount => imapAccountOf(dovecot, user);

const mail = (to: string, subject: string): string => buildMail({ from: "a@example.com", to: `${to}@example.com`, subject, text: subject });

/** A caller's store that fails on `failOn`, after `okSaves` saves went through. */
class FlakyStore implements CheckpointStore {
  readonly inner = new MemoryCheckpoints();
  readonly failOn: "load" | "save";
  okSaves: number;
  constructor(failOn: "load" | "save", okSaves = 0) {
    this.failOn = failOn;
    this.okSaves = okSaves;
  }
  load(account: string, mailbox: string): Checkpoint | undefined {
    if (this.failOn === "load") throw new Error("disk on fire");
    return this.inner.load(account, mailbox);
  }
  async save(account: string, mailbox: string, checkpoint: Checkpoint): Promise<void> {
    if (this.failOn === "save" && this.okSaves-- <= 0) throw new Error("disk on fire");
    this.inner.save(account, mailbox, checkpoint);
  }
}

/** Iterates until the iterator ends or throws, appending `send` once the watcher is idle. */
async function runUntilEnd(options: Parameters<typeof watchMailbox>[0], send: string[] = []): Promise<{ mails: WatchedMail[]; error: unknown; events: WatchEvent[] }> {
  const mails: WatchedMail[] = [];
  const events: WatchEvent[] = [];
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 10_000);
  let sent = false;
  let error: unknown;
  try {
    for await (const m of watchMailbox({
      ...options,
      signal: stop.signal,
      reconnect: { baseMs: 20, capMs: 50 },
      onEvent: (e) => {
        events.push(e);
        if (e.type === "idle" && !sent) {
          sent = true;
          void dovecot.appendMany(options.account.user, options.mailbox, send);
        }
      },
    })) {
      mails.push(m);
    }
  } catch (err) {
    error = err;
  } finally {
    clearTimeout(timer);
  }
  assert.ok(!stop.signal.aborted, `the iterator ran until the timeout; events: ${events.map((e) => e.type).join(", ")}`);
  return { mails, error, events };
}

describe("a caller's checkpoint store that fails", () => {
  const isStoreFailure = (err: unknown): boolean => {
    assert.ok(err instanceof StateError, `a StateError, got ${String(err)}`);
    assert.equal(err.code, "STATE");
    assert.equal(err.store, "FlakyStore");
    assert.match(err.message, /checkpoint store \(FlakyStore\) failed/);
    assert.match(err.message, /disk on fire/);
    assert.equal((err.cause as Error).message, "disk on fire");
    return true;
  };

  it("on load ends the iteration with a StateError naming the store and the cause, not a retried IMAP_CONNECT", async () => {
    const { mails, error, events } = await runUntilEnd({ account: account("alice"), mailbox: "INBOX", checkpoints: new FlakyStore("load") });
    assert.equal(mails.length, 0);
    assert.ok(isStoreFailure(error));
    assert.match((error as Error).message, /could not load the checkpoint/);
    assert.equal(events.filter((e) => e.type === "disconnected").length, 0, "never retried as connection trouble");
  });

  it("on save (commit auto, when the next mail is asked for) ends it the same way", async () => {
    // The first save is the first start's (the mailbox's end); the next is the mail's.
    const { mails, error } = await runUntilEnd({ account: account("bob"), mailbox: "INBOX", checkpoints: new FlakyStore("save", 1) }, [mail("bob", "one"), mail("bob", "two")]);
    assert.deepEqual(mails.map((m) => m.mail.subject), ["one"]);
    assert.ok(isStoreFailure(error));
    assert.match((error as Error).message, /could not save the checkpoint/);
  });

  it("on the first start's save ends it the same way", async () => {
    const { error } = await runUntilEnd({ account: account("carol"), mailbox: "INBOX", checkpoints: new FlakyStore("save", 0) });
    assert.ok(isStoreFailure(error));
  });
});

describe('commit: "manual"', () => {
  it("without a checkpoints store is refused at start, naming the option and the fix", async () => {
    const iterator = watchMailbox({ account: account("alice"), mailbox: "INBOX", commit: "manual" });
    await assert.rejects(iterator.next(), (err: unknown) => err instanceof UsageError && err.code === "USAGE" && /commit: "manual"/.test(err.message) && /checkpoints/.test(err.message));
  });
});

describe("the checkpoint in the caller's own SQLite transaction", () => {
  it("moves with the caller's COMMIT, and a ROLLBACK hands the mail over again on the next start", async () => {
    const db = new DatabaseSync(":memory:");
    db.exec("CREATE TABLE orders (uid INTEGER PRIMARY KEY, subject TEXT NOT NULL) STRICT");
    const checkpoints = sqliteCheckpoints(db);
    assert.deepEqual(
      (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name),
      ["mailbell_checkpoints", "orders"],
      "only its own table",
    );
    const insert = db.prepare("INSERT INTO orders (uid, subject) VALUES (?, ?)");
    await dovecot.addUser("dave", "davepw");
    const who = { account: account("dave"), mailbox: "INBOX", checkpoints, commit: "manual" } as const;

    /** One start: takes the first mail in one transaction, commits or rolls back, then breaks. */
    const takeOne = async (end: "COMMIT" | "ROLLBACK"): Promise<string> => {
      for await (const m of watchMailbox({ ...who, signal: AbortSignal.timeout(10_000) })) {
        db.exec("BEGIN");
        insert.run(m.uid, m.mail.subject);
        await checkpoints.save(m.account, m.mailbox, m.checkpoint);
        db.exec(end);
        return m.mail.subject;
      }
      throw new Error("the iterator ended without mail");
    };

    // The first start saves the mailbox's end: mail from then on is handed over.
    const stop = new AbortController();
    for await (const m of watchMailbox({ ...who, signal: stop.signal, onEvent: (e) => e.type === "idle" && stop.abort() })) assert.fail(`no mail expected, got ${m.mail.subject}`);
    await dovecot.appendMany("dave", "INBOX", [mail("dave", "order 1"), mail("dave", "order 2")]);
    assert.equal(await takeOne("ROLLBACK"), "order 1");
    assert.deepEqual(db.prepare("SELECT subject FROM orders WHERE subject LIKE 'order%'").all(), [], "rolled back");
    assert.equal(await takeOne("COMMIT"), "order 1", "rolled back: the same mail again");
    assert.equal(await takeOne("COMMIT"), "order 2", "committed: the next one");
    assert.deepEqual((db.prepare("SELECT subject FROM orders WHERE subject LIKE 'order%'").all() as { subject: string }[]).map((r) => r.subject), ["order 1", "order 2"]);
    db.close();
  });
});
