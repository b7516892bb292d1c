/**
 * Our own steps inside a watcher (the state database, the caller's callbacks) fail differently
 * from the connection: their failure must never pass for connection trouble, which is retried.
 */
import { InternalError, MailbellError, StateError } from "../errors.ts";
import type { CheckpointStore } from "./checkpoints.ts";

/**
 * Runs one of our own steps (the checkpoint store) so that its failure can never pass for
 * connection trouble: a database error becomes a StateError, which the watcher does not retry.
 */
export async function ours<T>(doing: string, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof MailbellError) throw err;
    throw new StateError(`could not ${doing} in the state database: ${(err as Error).message}. Check that the disk is not full and the file is writable; mailbell tries again in a moment.`, { cause: err });
  }
}

/**
 * Runs a step of the checkpoint store, which may be the caller's own: its failure becomes a
 * StateError naming the store and carrying its error as `cause`, the same from load as from save,
 * and the watcher ends with it (never retried as connection trouble): the caller decides.
 */
export async function checkpointStep<T>(store: CheckpointStore, doing: string, where: { account: string; mailbox: string }, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof MailbellError) throw err;
    const name = storeName(store);
    throw new StateError(
      `could not ${doing} for account "${where.account}" mailbox "${where.mailbox}": the checkpoint store (${name}) failed: ${(err as Error).message}. The watcher has stopped; fix the store (for SQLite: a full disk, a read-only or locked file) and iterate again.`,
      { cause: err, store: name },
    );
  }
}

/** A store's class name: "SqliteCheckpoints", "MyStore", or "Object" for a plain object. */
function storeName(store: CheckpointStore): string {
  return (store as object).constructor?.name || "Object";
}

/** Our own callbacks must not fail; when one does, it is a bug to report, not a dropped connection. */
export function bugIfThrows<A extends unknown[], R>(doing: string, fn: (...args: A) => R): (...args: A) => R {
  return (...args) => {
    const fail = (err: unknown): never => {
      if (err instanceof MailbellError) throw err;
      throw new InternalError(`${doing} failed: ${(err as Error).message}`, { cause: err });
    };
    try {
      const result = fn(...args);
      return (result instanceof Promise ? result.catch(fail) : result) as R;
    } catch (err) {
      return fail(err);
    }
  };
}
