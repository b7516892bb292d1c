import type { DatabaseSync } from "node:sqlite";
import { SqliteCheckpoints, type Checkpoint, type CheckpointStore } from "./checkpoints.ts";
import { openDatabase, transaction } from "./db.ts";
import { SqliteNotified, type NotificationLog } from "./notified.ts";
import { Outbox, type OutboxWriter } from "./outbox.ts";
import { SqliteSetAside } from "./set-aside.ts";
import { TargetState } from "./target-state.ts";
import { Totals, type TotalsStore } from "./totals.ts";

/**
 * What the pipeline needs of the state, whatever keeps it: a round's totals, notifications and
 * checkpoint are written together or not at all. SQLite here (State); another database can be
 * put behind the same interface.
 */
export interface MailStore {
  transaction<T>(fn: () => T): T;
  /** Also the watcher's; saved within the round's transaction, so at once. */
  readonly checkpoints: CheckpointStore & { save(account: string, mailbox: string, checkpoint: Checkpoint): void };
  readonly totals: TotalsStore;
  readonly notified: NotificationLog;
  readonly outbox: OutboxWriter;
}

/** Everything mailbell keeps between runs, in one SQLite file. */
export class State implements MailStore {
  readonly db: DatabaseSync;
  readonly checkpoints: SqliteCheckpoints;
  readonly totals: Totals;
  readonly notified: SqliteNotified;
  readonly outbox: Outbox;
  readonly targetState: TargetState;
  readonly setAside: SqliteSetAside;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.checkpoints = new SqliteCheckpoints(db);
    this.totals = new Totals(db);
    this.notified = new SqliteNotified(db);
    this.outbox = new Outbox(db);
    this.targetState = new TargetState(db);
    this.setAside = new SqliteSetAside(db);
  }

  static open(file: string, options: { readOnly?: boolean } = {}): State {
    return new State(openDatabase(file, options));
  }

  transaction<T>(fn: () => T): T {
    return transaction(this.db, fn);
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}
