import type { DatabaseSync, StatementSync } from "node:sqlite";
import { assertValidCheckpoint, type Checkpoint, type CheckpointStore } from "../../imap/checkpoints.ts";

/**
 * Checkpoints in a table of a SQLite database: the daemon's `checkpoints` (created by its
 * migrations, src/store/sqlite/db.ts), or the one sqliteCheckpoints() creates in a caller's file.
 * Each save is one statement in whatever transaction the connection has open.
 */
export class SqliteCheckpoints implements CheckpointStore {
  readonly #get: StatementSync;
  readonly #put: StatementSync;

  constructor(db: DatabaseSync, table: CheckpointTable = "checkpoints") {
    this.#get = db.prepare(`SELECT uid_validity AS uidValidity, last_uid AS lastUid, updated_at AS savedAt FROM ${table} WHERE account = ? AND mailbox = ?`);
    // Never move a checkpoint backwards under the same UIDVALIDITY: a late duplicate save must not
    // make mail be read twice.
    this.#put = db.prepare(
      `INSERT INTO ${table} (account, mailbox, uid_validity, last_uid, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (account, mailbox) DO UPDATE SET
         last_uid = CASE WHEN uid_validity = excluded.uid_validity THEN max(last_uid, excluded.last_uid) ELSE excluded.last_uid END,
         -- the time of the last real move, which a renumbering recovery reads back from
         updated_at = CASE WHEN uid_validity = excluded.uid_validity AND last_uid >= excluded.last_uid THEN updated_at ELSE excluded.updated_at END,
         uid_validity = excluded.uid_validity`,
    );
  }

  load(account: string, mailbox: string): Checkpoint | undefined {
    const row = this.#get.get(account, mailbox) as { uidValidity: number; lastUid: number; savedAt: string } | undefined;
    return row ? { uidValidity: Number(row.uidValidity), lastUid: Number(row.lastUid), savedAt: Date.parse(row.savedAt) } : undefined;
  }

  save(account: string, mailbox: string, checkpoint: Checkpoint): void {
    assertValidCheckpoint(account, mailbox, checkpoint);
    this.#put.run(account, mailbox, checkpoint.uidValidity, checkpoint.lastUid, new Date().toISOString());
  }
}

/** The tables a SqliteCheckpoints may use (the daemon's, or the one sqliteCheckpoints() creates): never a name from outside the code. */
export type CheckpointTable = "checkpoints" | "mailbell_checkpoints";

/** Prefixed, so it cannot meet a table of the caller's; the columns are the daemon's. */
const callerTable: CheckpointTable = "mailbell_checkpoints";

/**
 * Checkpoints in a SQLite database the caller opened (node:sqlite), in one table of their own,
 * `mailbell_checkpoints`, created if missing; nothing else is created or changed. save() runs on
 * the caller's connection, so it joins the caller's open transaction: COMMIT moves the checkpoint
 * with the caller's own writes, ROLLBACK leaves it where it was (and the mail comes again).
 */
export function sqliteCheckpoints(db: DatabaseSync): SqliteCheckpoints {
  db.exec(`CREATE TABLE IF NOT EXISTS ${callerTable} (
     account      TEXT NOT NULL,
     mailbox      TEXT NOT NULL,
     uid_validity INTEGER NOT NULL,
     last_uid     INTEGER NOT NULL,
     updated_at   TEXT NOT NULL,
     PRIMARY KEY (account, mailbox)
   ) STRICT`);
  return new SqliteCheckpoints(db, callerTable);
}
