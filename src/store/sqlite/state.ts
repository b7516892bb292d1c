import type { DatabaseSync } from "node:sqlite";
import type { MailStore } from "../../daemon/pipeline.ts";
import { SqliteActions } from "./actions.ts";
import { SqliteCheckpoints } from "./checkpoints.ts";
import { openDatabase, transaction } from "./db.ts";
import { SqliteNotified } from "./notified.ts";
import { Outbox } from "./outbox.ts";
import { SqliteSetAside } from "./set-aside.ts";
import { TargetState } from "./target-state.ts";
import { Totals } from "./totals.ts";

/** Everything mailbell keeps between runs, in one SQLite file. */
export class State implements MailStore {
  readonly db: DatabaseSync;
  readonly checkpoints: SqliteCheckpoints;
  readonly totals: Totals;
  readonly notified: SqliteNotified;
  readonly outbox: Outbox;
  readonly targetState: TargetState;
  readonly setAside: SqliteSetAside;
  readonly actions: SqliteActions;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.checkpoints = new SqliteCheckpoints(db);
    this.totals = new Totals(db);
    this.notified = new SqliteNotified(db);
    this.outbox = new Outbox(db);
    this.targetState = new TargetState(db);
    this.setAside = new SqliteSetAside(db);
    this.actions = new SqliteActions(db);
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
