import type { DatabaseSync, StatementSync } from "node:sqlite";

/** A target's own key-value store (e.g. "thread for rule X" → Slack ts), kept across restarts. */
export interface TargetStateStore {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

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

/** For `mailbell test` and unit tests: the same interface, in memory. */
export function memoryTargetState(): TargetStateStore {
  const map = new Map<string, string>();
  return { get: (k) => map.get(k), set: (k, v) => void map.set(k, v) };
}
