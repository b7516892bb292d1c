import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { SetAsideMail, SetAsideStore } from "../../imap/unreadable.ts";

/** One row of `mailbell unreadable`. */
export interface SetAsideRow extends SetAsideMail {
  account: string;
  mailbox: string;
  /** Epoch ms it was (last) set aside. */
  setAsideAt: number;
  /** A person asked to read it again; the watcher does so at its next keepalive. */
  retryRequested: boolean;
  /**
   * False when the mailbox was renumbered since (another UIDVALIDITY in its checkpoint): the UID
   * now names other mail or none, so it cannot be read again; kept for the record.
   */
  current: boolean;
}

/** Rows whose UIDVALIDITY is the mailbox's current one: only those can be read again by UID. */
const current = `EXISTS (SELECT 1 FROM checkpoints c WHERE c.account = set_aside.account AND c.mailbox = set_aside.mailbox AND c.uid_validity = set_aside.uid_validity)`;

/** Mail the watcher could not read and set aside, kept until it is read on request or forgotten. */
export class SqliteSetAside implements SetAsideStore {
  readonly #record: StatementSync;
  readonly #retryRequested: StatementSync;
  readonly #resolved: StatementSync;
  readonly #retryTaken: StatementSync;
  readonly #list: StatementSync;
  readonly #requestOne: StatementSync;
  readonly #requestAll: StatementSync;
  readonly #requestLike: StatementSync;

  constructor(db: DatabaseSync) {
    // Set aside again (a retry that failed): attempts add up and the retry request is done.
    this.#record = db.prepare(
      `INSERT INTO set_aside (account, mailbox, uid_validity, uid, reason, attempts, set_aside_at, retry_requested) VALUES (?, ?, ?, ?, ?, ?, ?, 0)
       ON CONFLICT (account, mailbox, uid_validity, uid) DO UPDATE SET
         reason = excluded.reason, attempts = attempts + excluded.attempts, set_aside_at = excluded.set_aside_at, retry_requested = 0`,
    );
    this.#retryRequested = db.prepare("SELECT uid FROM set_aside WHERE account = ? AND mailbox = ? AND uid_validity = ? AND retry_requested = 1 ORDER BY uid");
    this.#retryTaken = db.prepare("UPDATE set_aside SET retry_requested = 0 WHERE account = ? AND mailbox = ? AND uid_validity = ? AND uid = ?");
    this.#resolved = db.prepare("DELETE FROM set_aside WHERE account = ? AND mailbox = ? AND uid_validity = ? AND uid = ?");
    this.#list = db.prepare(
      `SELECT account, mailbox, uid_validity AS uidValidity, uid, reason, attempts, set_aside_at AS setAsideAt, retry_requested AS retryRequested, ${current} AS current
       FROM set_aside ORDER BY account, mailbox, uid_validity, uid`,
    );
    this.#requestOne = db.prepare(`UPDATE set_aside SET retry_requested = 1 WHERE account = ? AND mailbox = ? AND uid = ? AND ${current}`);
    this.#requestAll = db.prepare(`UPDATE set_aside SET retry_requested = 1 WHERE retry_requested = 0 AND ${current}`);
    this.#requestLike = db.prepare(`UPDATE set_aside SET retry_requested = 1 WHERE retry_requested = 0 AND instr(reason, ?) > 0 AND ${current}`);
  }

  record(account: string, mailbox: string, mail: SetAsideMail): void {
    this.#record.run(account, mailbox, mail.uidValidity, mail.uid, mail.reason, mail.attempts, Date.now());
  }

  retryRequested(account: string, mailbox: string, uidValidity: number): readonly number[] {
    return (this.#retryRequested.all(account, mailbox, uidValidity) as { uid: number }[]).map((r) => Number(r.uid));
  }

  retryTaken(account: string, mailbox: string, uidValidity: number, uids: readonly number[]): void {
    for (const uid of uids) this.#retryTaken.run(account, mailbox, uidValidity, uid);
  }

  resolved(account: string, mailbox: string, uidValidity: number, uid: number): void {
    this.#resolved.run(account, mailbox, uidValidity, uid);
  }

  list(): SetAsideRow[] {
    return (this.#list.all() as unknown as (Omit<SetAsideRow, "retryRequested" | "current"> & { retryRequested: number; current: number })[]).map((r) => ({
      account: r.account,
      mailbox: r.mailbox,
      uidValidity: Number(r.uidValidity),
      uid: Number(r.uid),
      reason: r.reason,
      attempts: Number(r.attempts),
      setAsideAt: Number(r.setAsideAt),
      retryRequested: Number(r.retryRequested) === 1,
      current: Number(r.current) === 1,
    }));
  }

  /** Asks the watchers to read again the mail set aside for a reason that contains `text`; returns how many. */
  requestRetryWhereReason(text: string): number {
    return Number(this.#requestLike.run(text).changes);
  }

  /** Asks the watcher to read mail again: one (by account, mailbox and UID) or all, of the current UIDVALIDITY; returns how many rows. */
  requestRetry(which: { account: string; mailbox: string; uid: number } | "all"): number {
    const result = which === "all" ? this.#requestAll.run() : this.#requestOne.run(which.account, which.mailbox, which.uid);
    return Number(result.changes);
  }
}
