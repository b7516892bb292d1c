import type { DatabaseSync, StatementSync } from "node:sqlite";

/** Where a mailbox was read up to. UIDs are only comparable under the same UIDVALIDITY. */
export interface Checkpoint {
  uidValidity: number;
  lastUid: number;
}

/**
 * Persists checkpoints for the watcher. The watcher calls `save` only after the mail up to that
 * UID has been handed over, so a crash re-reads mail rather than skipping it.
 */
export interface CheckpointStore {
  load(account: string, mailbox: string): Checkpoint | undefined | Promise<Checkpoint | undefined>;
  save(account: string, mailbox: string, checkpoint: Checkpoint): void | Promise<void>;
}

export class SqliteCheckpoints implements CheckpointStore {
  readonly #get: StatementSync;
  readonly #put: StatementSync;

  constructor(db: DatabaseSync) {
    this.#get = db.prepare("SELECT uid_validity AS uidValidity, last_uid AS lastUid FROM checkpoints WHERE account = ? AND mailbox = ?");
    // Never move a checkpoint backwards under the same UIDVALIDITY: a late duplicate save must not
    // make mail be read twice.
    this.#put = db.prepare(
      `INSERT INTO checkpoints (account, mailbox, uid_validity, last_uid, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (account, mailbox) DO UPDATE SET
         last_uid = CASE WHEN uid_validity = excluded.uid_validity THEN max(last_uid, excluded.last_uid) ELSE excluded.last_uid END,
         uid_validity = excluded.uid_validity,
         updated_at = excluded.updated_at`,
    );
  }

  load(account: string, mailbox: string): Checkpoint | undefined {
    const row = this.#get.get(account, mailbox) as { uidValidity: number; lastUid: number } | undefined;
    return row ? { uidValidity: Number(row.uidValidity), lastUid: Number(row.lastUid) } : undefined;
  }

  save(account: string, mailbox: string, checkpoint: Checkpoint): void {
    this.#put.run(account, mailbox, checkpoint.uidValidity, checkpoint.lastUid, new Date().toISOString());
  }
}

/** For library users who keep no state: every start begins at the mailbox's end. */
export class MemoryCheckpoints implements CheckpointStore {
  readonly #map = new Map<string, Checkpoint>();
  load(account: string, mailbox: string): Checkpoint | undefined {
    return this.#map.get(`${account}\u0000${mailbox}`);
  }
  save(account: string, mailbox: string, checkpoint: Checkpoint): void {
    this.#map.set(`${account}\u0000${mailbox}`, { ...checkpoint });
  }
}
