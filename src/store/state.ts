import type { DatabaseSync } from "node:sqlite";
import { SqliteCheckpoints } from "./checkpoints.ts";
import { openDatabase, transaction } from "./db.ts";
import { Outbox } from "./outbox.ts";
import { TargetState } from "./target-state.ts";
import { Totals } from "./totals.ts";

/** Everything mailbell keeps between runs, in one SQLite file. */
export class State {
  readonly db: DatabaseSync;
  readonly checkpoints: SqliteCheckpoints;
  readonly totals: Totals;
  readonly outbox: Outbox;
  readonly targetState: TargetState;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.checkpoints = new SqliteCheckpoints(db);
    this.totals = new Totals(db);
    this.outbox = new Outbox(db);
    this.targetState = new TargetState(db);
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
