import type { DatabaseSync, StatementSync } from "node:sqlite";
import { assertValidCheckpoint, type Checkpoint, type CheckpointStore } from "../../imap/checkpoints.ts";

export class SqliteCheckpoints implements CheckpointStore {
  readonly #get: StatementSync;
  readonly #put: StatementSync;

  constructor(db: DatabaseSync) {
    this.#get = db.prepare("SELECT uid_validity AS uidValidity, last_uid AS lastUid, updated_at AS savedAt FROM checkpoints WHERE account = ? AND mailbox = ?");
    // Never move a checkpoint backwards under the same UIDVALIDITY: a late duplicate save must not
    // make mail be read twice.
    this.#put = db.prepare(
      `INSERT INTO checkpoints (account, mailbox, uid_validity, last_uid, updated_at) VALUES (?, ?, ?, ?, ?)
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
