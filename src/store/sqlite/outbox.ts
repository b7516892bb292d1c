import type { DatabaseSync, StatementSync } from "node:sqlite";
import { outboxId, type NewOutboxRow, type OutboxRow, type OutboxState, type OutboxStore } from "../../outbox/store.ts";
import type { NotificationEntry, RecentNotifications } from "../../daemon/status-view.ts";
import type { Notification } from "../../targets/types.ts";
import { transaction } from "./db.ts";

// The outbox's types live with the outbox (src/outbox/store.ts); these names are kept for importers of this file.
export { outboxId, type NewOutboxRow, type OutboxRow, type OutboxState, type OutboxWriter, type QueuedPayload } from "../../outbox/store.ts";

const columns = `rowid AS seq, id, target, rule, account, mailbox, uid_validity AS uidValidity, uid, message_id AS messageId, subject,
  content_type AS contentType, body, summary, notification, digest_group AS digestGroup, state, attempts, next_attempt_at AS nextAttemptAt,
  last_error AS lastError, created_at AS createdAt, updated_at AS updatedAt`;

/** The outbox kept in SQLite (table outbox). */
export class Outbox implements OutboxStore, RecentNotifications {
  readonly #db: DatabaseSync;
  readonly #insert: StatementSync;
  readonly #ready: StatementSync;
  readonly #readyCount: StatementSync;
  readonly #earliest: StatementSync;
  readonly #group: StatementSync;
  readonly #done: StatementSync;
  readonly #retry: StatementSync;
  readonly #dead: StatementSync;
  readonly #releaseRetries: StatementSync;
  readonly #byId: StatementSync;
  readonly #counts: StatementSync;
  readonly #oldestPending: StatementSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#insert = db.prepare(
      `INSERT OR IGNORE INTO outbox (id, target, rule, account, mailbox, uid_validity, uid, message_id, subject, content_type, body, summary, notification, digest_group, state, attempts, next_attempt_at, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)`,
    );
    // INDEXED BY: walking the queue in rowid order beats sorting every pending row per send (a
    // backlog of thousands made each send cost half a millisecond).
    this.#ready = db.prepare(`SELECT ${columns} FROM outbox INDEXED BY outbox_queue WHERE target = ? AND state = 'pending' AND next_attempt_at <= ? ORDER BY rowid LIMIT ?`);
    this.#readyCount = db.prepare("SELECT count(*) AS n FROM outbox WHERE target = ? AND state = 'pending' AND next_attempt_at <= ?");
    this.#earliest = db.prepare("SELECT min(next_attempt_at) AS at FROM outbox WHERE target = ? AND state = 'pending'");
    this.#group = db.prepare(`SELECT ${columns} FROM outbox WHERE target = ? AND state = 'pending' AND digest_group = ? ORDER BY rowid`);
    this.#done = db.prepare("UPDATE outbox SET state = 'done', attempts = attempts + 1, last_error = NULL, updated_at = ? WHERE id = ? AND state = 'pending'");
    this.#retry = db.prepare("UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ? AND state = 'pending'");
    this.#dead = db.prepare("UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?, updated_at = ? WHERE id = ? AND state = 'pending'");
    // attempts > 0: a row held back by the pipeline (a digest group, notBefore) has never been tried.
    this.#releaseRetries = db.prepare("UPDATE outbox SET next_attempt_at = ? WHERE target = ? AND state = 'pending' AND attempts > 0 AND next_attempt_at > ?");
    this.#byId = db.prepare(`SELECT ${columns} FROM outbox WHERE id = ?`);
    this.#counts = db.prepare("SELECT target, state, count(*) AS n FROM outbox GROUP BY target, state");
    this.#oldestPending = db.prepare("SELECT target, min(created_at) AS at FROM outbox WHERE state = 'pending' GROUP BY target");
  }

  /** Queues rows; a row whose id exists already is left as it is. Returns how many were new. */
  enqueue(rows: readonly NewOutboxRow[], now: number = Date.now()): number {
    let added = 0;
    transaction(this.#db, () => {
      for (const r of rows) {
        const [contentType, body, summary, notification] = "notification" in r ? ["", "", "", JSON.stringify(r.notification)] : [r.contentType, r.body, r.summary, null];
        const res = this.#insert.run(outboxId(r), r.target, r.rule, r.account, r.mailbox, r.uidValidity, r.uid, r.messageId ?? null, r.subject, contentType, body, summary, notification, r.digestGroup ?? null, r.notBefore ?? now, now, now);
        added += Number(res.changes);
      }
    });
    return added;
  }

  /** Pending rows of a target that are due, oldest first. */
  ready(target: string, now: number, limit: number): OutboxRow[] {
    return (this.#ready.all(target, now, limit) as unknown as StoredRow[]).map(normalize);
  }

  readyCount(target: string, now: number): number {
    return Number((this.#readyCount.get(target, now) as { n: number }).n);
  }

  /** When the next pending row of a target becomes due; undefined when none is pending. */
  earliestPending(target: string): number | undefined {
    const at = (this.#earliest.get(target) as { at: number | null }).at;
    return at === null ? undefined : Number(at);
  }

  pendingInGroup(target: string, group: string): OutboxRow[] {
    return (this.#group.all(target, group) as unknown as StoredRow[]).map(normalize);
  }

  /** Makes every pending row of a digest group due now (the group is complete). */
  releaseGroup(group: string, now: number = Date.now()): void {
    this.#db.prepare("UPDATE outbox SET next_attempt_at = ? WHERE digest_group = ? AND state = 'pending' AND next_attempt_at > ?").run(now, group, now);
  }

  markDone(ids: readonly string[], now: number = Date.now()): void {
    // The usual case, once per delivered row: one statement commits atomically on its own, so the
    // BEGIN and COMMIT around it would be two more statements for nothing.
    if (ids.length === 1) {
      this.#done.run(now, ids[0]!);
      return;
    }
    transaction(this.#db, () => {
      for (const id of ids) this.#done.run(now, id);
    });
  }

  markRetry(ids: readonly string[], nextAttemptAt: number, error: string, now: number = Date.now()): void {
    transaction(this.#db, () => {
      for (const id of ids) this.#retry.run(nextAttemptAt, error, now, id);
    });
  }

  markDead(ids: readonly string[], error: string, now: number = Date.now()): void {
    transaction(this.#db, () => {
      for (const id of ids) this.#dead.run(error, now, id);
    });
  }

  /** Makes a target's rows that failed and wait to retry due now. Returns how many. */
  releaseRetries(target: string, now: number): number {
    return Number(this.#releaseRetries.run(now, target, now).changes);
  }

  get(id: string): OutboxRow | undefined {
    const row = this.#byId.get(id) as unknown as StoredRow | undefined;
    return row ? normalize(row) : undefined;
  }

  /** Pending rows whose target is not among `targets` (removed or renamed in the config). */
  orphans(targets: readonly string[]): { target: string; count: number }[] {
    const rows = this.#db.prepare("SELECT target, count(*) AS n FROM outbox WHERE state = 'pending' GROUP BY target").all() as { target: string; n: number }[];
    return rows.filter((r) => !targets.includes(r.target)).map((r) => ({ target: r.target, count: Number(r.n) }));
  }

  /** Moves a target's pending rows to the dead letters, with the reason. */
  killTarget(target: string, reason: string, now: number = Date.now()): number {
    return Number(this.#db.prepare("UPDATE outbox SET state = 'dead', last_error = ?, updated_at = ? WHERE target = ? AND state = 'pending'").run(reason, now, target).changes);
  }

  /** Keeps a digest group waiting (its catch-up is still being read). */
  holdGroup(group: string, until: number): void {
    this.#db.prepare("UPDATE outbox SET next_attempt_at = ? WHERE digest_group = ? AND state = 'pending' AND attempts = 0").run(until, group);
  }

  list(states: readonly OutboxState[], limit = 1000): OutboxRow[] {
    const placeholders = states.map(() => "?").join(", ");
    const rows = this.#db.prepare(`SELECT ${columns} FROM outbox WHERE state IN (${placeholders}) ORDER BY rowid LIMIT ?`).all(...states, limit);
    return (rows as unknown as StoredRow[]).map(normalize);
  }

  /**
   * Puts dead (or failing pending) rows back in the queue, due now. Returns how many. A row put back
   * waits from now (created_at too): otherwise the oldest-waiting gauge would start at the outage
   * it died in, days ago, and page someone while the target is taking posts again.
   */
  requeue(selector: { id: string } | { allDead: true }, now: number = Date.now()): number {
    const res =
      "id" in selector
        ? this.#db.prepare("UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, created_at = ?, updated_at = ? WHERE id = ? AND state != 'done'").run(now, now, now, selector.id)
        : this.#db.prepare("UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, created_at = ?, updated_at = ? WHERE state = 'dead'").run(now, now, now);
    return Number(res.changes);
  }

  /** Row counts by target and state, for metrics and `mailbell outbox`. */
  counts(): { target: string; state: OutboxState; count: number }[] {
    return (this.#counts.all() as { target: string; state: OutboxState; n: number }[]).map((r) => ({ target: r.target, state: r.state, count: Number(r.n) }));
  }

  /** Per target with rows waiting, when the oldest of them was queued (epoch ms). */
  oldestPending(): { target: string; createdAt: number }[] {
    return (this.#oldestPending.all() as { target: string; at: number }[]).map((r) => ({ target: r.target, createdAt: Number(r.at) }));
  }

  /** The most recently queued rows, newest first, without payload or error text (for the status page). */
  recent(limit: number): NotificationEntry[] {
    const rows = this.#db.prepare("SELECT rule, target, subject, state, attempts, created_at AS createdAt, updated_at AS updatedAt FROM outbox ORDER BY rowid DESC LIMIT ?").all(limit);
    return (rows as unknown as NotificationEntry[]).map((r) => ({ ...r, attempts: Number(r.attempts), createdAt: Number(r.createdAt), updatedAt: Number(r.updatedAt) }));
  }

  /** Forgets delivered rows older than the cutoff; pending and dead rows are kept. */
  purgeDone(olderThan: number): number {
    return Number(this.#db.prepare("DELETE FROM outbox WHERE state = 'done' AND updated_at < ?").run(olderThan).changes);
  }
}

/** A row as SQLite hands it over: the notification still JSON. */
type StoredRow = Omit<OutboxRow, "notification"> & { notification: string | null };

function normalize(row: StoredRow): OutboxRow {
  return {
    ...row,
    notification: row.notification === null ? undefined : (JSON.parse(row.notification) as Notification),
    seq: Number(row.seq),
    uidValidity: Number(row.uidValidity),
    uid: Number(row.uid),
    attempts: Number(row.attempts),
    nextAttemptAt: Number(row.nextAttemptAt),
    createdAt: Number(row.createdAt),
    updatedAt: Number(row.updatedAt),
    messageId: row.messageId ?? undefined,
    lastError: row.lastError ?? undefined,
    digestGroup: row.digestGroup ?? undefined,
  };
}
