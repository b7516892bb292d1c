/**
 * mailbell as a library: the same watcher the daemon uses, without rules or targets.
 *
 *   for await (const m of watchMailbox({ account, mailbox: "INBOX", checkpoints: openCheckpoints("./state.db") })) {
 *     console.log(m.mail.subject);
 *   }
 */
export { watchMailbox, type WatchOptions, type WatchedMail, type WatchEvent } from "./imap/watcher.ts";
export type { ImapAccount } from "./imap/client.ts";
export { normalizeMail } from "./mail/normalize.ts";
export type { NormalizedMail, MailAddress } from "./mail/types.ts";
export { MemoryCheckpoints, type Checkpoint, type CheckpointStore } from "./imap/checkpoints.ts";
export type { ActionQueue, DueActions, MailActions, ActionKind } from "./imap/actions.ts";
export { SqliteCheckpoints, sqliteCheckpoints } from "./store/sqlite/checkpoints.ts";
export { MailbellError, ImapError, StateError, UsageError, ConfigError, TargetError } from "./errors.ts";
export type { Logger } from "./log.ts";
import { SqliteCheckpoints } from "./store/sqlite/checkpoints.ts";
import { openDatabase } from "./store/sqlite/db.ts";

/**
 * Checkpoints kept in a SQLite file, so mail that arrives while your program is down is not missed.
 * The file is the daemon's state database (its other tables come along): give it a file of its
 * own. To keep the checkpoint in your own database and transaction, use sqliteCheckpoints(db).
 * Call close() when you are done with it.
 */
export function openCheckpoints(file: string): SqliteCheckpoints & { close(): void } {
  const db = openDatabase(file);
  return Object.assign(new SqliteCheckpoints(db), { close: () => db.close() });
}
