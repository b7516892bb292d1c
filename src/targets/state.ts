/**
 * A target's own key-value store (e.g. "thread for rule X" → Slack ts), kept across restarts.
 * Owned here, by the targets that use it; store/ implements it for the state database.
 */
export interface TargetStateStore {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

/** For `mailbell test` and unit tests: the same interface, in memory. */
export function memoryTargetState(): TargetStateStore {
  const map = new Map<string, string>();
  return { get: (k) => map.get(k), set: (k, v) => void map.set(k, v) };
}
