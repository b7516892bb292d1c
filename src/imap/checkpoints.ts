import { InternalError } from "../errors.ts";

/** Where a mailbox was read up to. UIDs are only comparable under the same UIDVALIDITY. */
export interface Checkpoint {
  uidValidity: number;
  lastUid: number;
  /** When it was saved (ms); lets a renumbered mailbox be read again from about then. */
  savedAt?: number;
}

/**
 * Persists checkpoints for the watcher. The watcher calls `save` only after the mail up to that
 * UID has been handed over, so a crash re-reads mail rather than skipping it.
 */
export interface CheckpointStore {
  load(account: string, mailbox: string): Checkpoint | undefined | Promise<Checkpoint | undefined>;
  save(account: string, mailbox: string, checkpoint: Checkpoint): void | Promise<void>;
}

/** For library users who keep no state: every start begins at the mailbox's end. */
export class MemoryCheckpoints implements CheckpointStore {
  readonly #map = new Map<string, Checkpoint>();
  load(account: string, mailbox: string): Checkpoint | undefined {
    return this.#map.get(`${account}\u0000${mailbox}`);
  }
  save(account: string, mailbox: string, checkpoint: Checkpoint): void {
    assertValidCheckpoint(account, mailbox, checkpoint);
    const key = `${account}\u0000${mailbox}`;
    const seen = this.#map.get(key);
    // Like the SQLite store: never backwards under the same UIDVALIDITY.
    const lastUid = seen && seen.uidValidity === checkpoint.uidValidity ? Math.max(seen.lastUid, checkpoint.lastUid) : checkpoint.lastUid;
    const moved = !seen || seen.uidValidity !== checkpoint.uidValidity || lastUid > seen.lastUid;
    this.#map.set(key, { uidValidity: checkpoint.uidValidity, lastUid, savedAt: moved ? Date.now() : seen.savedAt });
  }
}

/**
 * A checkpoint is two 32-bit UIDs (RFC 3501 §2.3.1.1). Anything else (NaN from a missing UIDNEXT)
 * is a bug upstream: stored, it would lose or repeat mail on the next start, so it is refused loudly.
 */
export function assertValidCheckpoint(account: string, mailbox: string, checkpoint: Checkpoint): void {
  const uint32 = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
  if (uint32(checkpoint.uidValidity) && checkpoint.uidValidity > 0 && uint32(checkpoint.lastUid)) return;
  throw new InternalError(`refused to save checkpoint (UIDVALIDITY ${String(checkpoint.uidValidity)}, last UID ${String(checkpoint.lastUid)}) for account "${account}" mailbox "${mailbox}": both must be whole numbers from 0 to 4294967295`);
}
