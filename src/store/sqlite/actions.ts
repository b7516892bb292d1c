import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { ActionQueue, DueActions } from "../../imap/actions.ts";
import type { ActionLog, QueuedActions, SeenMail } from "../../plan/store.ts";
import type { MailActions } from "../../rules/types.ts";
import { transaction } from "./db.ts";

/** One row of `mailbell actions`-style listings and of tests. */
export interface ActionRow extends DueActions {
  account: string;
  mailbox: string;
  rules: string[];
  state: "pending" | "done" | "dropped";
  lastError: string | undefined;
  nextAt: number;
}

/** Rules' actions on mail: queued by the pipeline (ActionLog), done by the watcher (ActionQueue). */
export class SqliteActions implements ActionLog, ActionQueue {
  readonly #db: DatabaseSync;
  readonly #byIdentity: StatementSync;
  readonly #byPlace: StatementSync;
  readonly #insert: StatementSync;
  readonly #due: StatementSync;
  readonly #done: StatementSync;
  readonly #failed: StatementSync;
  readonly #dropped: StatementSync;
  readonly #pendingIn: StatementSync;
  readonly #forget: StatementSync;
  readonly #list: StatementSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#byIdentity = db.prepare("SELECT place FROM actions WHERE identity = ?");
    this.#byPlace = db.prepare("SELECT place FROM actions WHERE place = ?");
    this.#insert = db.prepare(
      "INSERT OR IGNORE INTO actions (account, mailbox, uid_validity, uid, place, identity, actions, rules, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.#due = db.prepare(
      "SELECT id, uid_validity AS uidValidity, uid, actions, rules, attempts FROM actions WHERE account = ? AND mailbox = ? AND state = 'pending' AND next_at <= ? ORDER BY id LIMIT ?",
    );
    this.#done = db.prepare("UPDATE actions SET state = 'done', finished_at = ?, last_error = NULL WHERE id = ? AND state = 'pending'");
    this.#failed = db.prepare("UPDATE actions SET attempts = attempts + 1, last_error = ?, next_at = ? WHERE id = ? AND state = 'pending'");
    this.#dropped = db.prepare("UPDATE actions SET state = 'dropped', finished_at = ?, last_error = ? WHERE id = ? AND state = 'pending'");
    this.#forget = db.prepare("DELETE FROM actions WHERE account = ? AND mailbox = ? AND state = 'pending' AND uid_validity != ?");
    this.#pendingIn = db.prepare("SELECT 1 FROM actions WHERE account = ? AND mailbox = ? AND state = 'pending' LIMIT 1");
    this.#list = db.prepare(
      "SELECT id, account, mailbox, uid_validity AS uidValidity, uid, actions, rules, state, attempts, last_error AS lastError, next_at AS nextAt FROM actions ORDER BY id",
    );
  }

  actedAt(mail: SeenMail): string | undefined {
    const row = (this.#byIdentity.get(mail.identity) ?? this.#byPlace.get(mail.place)) as { place: string } | undefined;
    return row?.place;
  }

  record(mail: SeenMail, queued: QueuedActions, now: number = Date.now()): boolean {
    const { account, mailbox, uidValidity, uid, actions, rules } = queued;
    return Number(this.#insert.run(account, mailbox, uidValidity, uid, mail.place, mail.identity, JSON.stringify(actions), JSON.stringify(rules), now, now).changes) > 0;
  }

  due(account: string, mailbox: string, now: number, limit: number): DueActions[] {
    const rows = this.#due.all(account, mailbox, now, limit) as { id: number; uidValidity: number; uid: number; actions: string; rules: string; attempts: number }[];
    return rows.flatMap((r) => {
      const id = Number(r.id);
      let actions: MailActions;
      let rules: string[];
      try {
        actions = parseActions(r.actions);
        rules = JSON.parse(r.rules) as string[];
      } catch (err) {
        // A row nobody can read (edited by hand) must not stop its mailbox's watcher for good.
        this.dropped([id], `the stored actions cannot be read (${(err as Error).message})`, now);
        return [];
      }
      return [{ id, uidValidity: Number(r.uidValidity), uid: Number(r.uid), actions, rules, attempts: Number(r.attempts) }];
    });
  }

  done(ids: readonly number[], now: number): void {
    this.#each(ids, (id) => this.#done.run(now, id));
  }

  failed(ids: readonly number[], reason: string, retryAt: number): void {
    this.#each(ids, (id) => this.#failed.run(reason, retryAt, id));
  }

  dropped(ids: readonly number[], reason: string, now: number): void {
    this.#each(ids, (id) => this.#dropped.run(now, reason, id));
  }

  forgetRenumbered(account: string, mailbox: string, uidValidity: number): number {
    return Number(this.#forget.run(account, mailbox, uidValidity).changes);
  }

  /** Whether actions wait in this mailbox: its watcher then opens it read-write even if no rule acts there any more. */
  pendingIn(account: string, mailbox: string): boolean {
    return this.#pendingIn.get(account, mailbox) !== undefined;
  }

  list(): ActionRow[] {
    return (this.#list.all() as Record<string, unknown>[]).map((r) => ({
      id: Number(r.id),
      account: String(r.account),
      mailbox: String(r.mailbox),
      uidValidity: Number(r.uidValidity),
      uid: Number(r.uid),
      actions: readable(() => parseActions(String(r.actions)), { seen: false, flags: [], labels: [], move: undefined }),
      rules: readable(() => JSON.parse(String(r.rules)) as string[], []),
      state: r.state as ActionRow["state"],
      attempts: Number(r.attempts),
      lastError: r.lastError === null ? undefined : String(r.lastError),
      nextAt: Number(r.nextAt),
    }));
  }

  /** One transaction for a thousand rows, not a thousand commits. */
  #each(ids: readonly number[], run: (id: number) => unknown): void {
    if (ids.length > 0) transaction(this.#db, () => ids.forEach(run));
  }
}

/** Stored as JSON, which leaves out `move` when there is none. */
function parseActions(json: string): MailActions {
  const parsed = JSON.parse(json) as Partial<MailActions> | null;
  if (typeof parsed !== "object" || parsed === null) throw new Error(`not an object: ${json.slice(0, 40)}`);
  const strings = (v: unknown): string[] => (Array.isArray(v) && v.every((x) => typeof x === "string") ? v : []);
  return { seen: parsed.seen === true, flags: strings(parsed.flags), labels: strings(parsed.labels), move: typeof parsed.move === "string" ? parsed.move : undefined };
}

/** For listing: a row that cannot be read shows as empty (due() gives it up with the reason). */
function readable<T>(parse: () => T, otherwise: T): T {
  try {
    return parse();
  } catch {
    return otherwise;
  }
}
