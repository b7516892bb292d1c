import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { TargetStateStore } from "../../targets/state.ts";

/** Targets' key-value stores (TargetStateStore, owned by targets/) in the state database. */
export class TargetState {
  readonly #get: StatementSync;
  readonly #set: StatementSync;

  constructor(db: DatabaseSync) {
    this.#get = db.prepare("SELECT value FROM target_state WHERE target = ? AND key = ?");
    this.#set = db.prepare(
      "INSERT INTO target_state (target, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (target, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    );
  }

  /** The store of one target; keys of different targets never meet. */
  for(target: string): TargetStateStore {
    return {
      get: (key) => (this.#get.get(target, key) as { value: string } | undefined)?.value,
      set: (key, value) => void this.#set.run(target, key, value, Date.now()),
    };
  }
}
