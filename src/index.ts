/**
 * mailbell as a library: the same watcher the daemon uses, without rules or targets.
 *
 *   for await (const m of watchMailbox({ account, mailbox: "INBOX", checkpoints: openCheckpoints("./state.db") })) {
 *     console.log(m.mail.subject);
 *   }
 */
// Every type a public signature names is exported here (test/library-types.test.ts checks it).
export { watchMailbox, type WatchOptions, type WatchedMail, type WatchEvent } from "./imap/watcher.ts";
export type { ImapAccount, Credentials } from "./imap/client.ts";
export { ConnectGate, type ConnectGateOptions } from "./imap/connect-gate.ts";
// Many folders over one connection where the server offers IMAP NOTIFY: share one FolderWakeups between runNotifier() and the folders' watchers (WatchOptions.wakeups).
export { FolderWakeups, runNotifier, type NotifierOptions, type NotifyMode, type ReadingSlot } from "./imap/notify.ts";
export type { FailFast } from "./imap/reconnect-policy.ts";
export { ReadAgainLater, type DecodeParts, type WholeReading } from "./imap/fetch.ts";
export type { SetAsideStore, SetAsideMail } from "./imap/unreadable.ts";
export { normalizeMail, type NormalizeOptions } from "./mail/normalize.ts";
export type { NormalizedMail, MailAddress, MailAttachment } from "./mail/types.ts";
export type { FetchedParts, TextPartPlan, PlannedTextPart } from "./mail/parts.ts";
export type { DkimSignature } from "./rules/types.ts";
export { MemoryCheckpoints, type Checkpoint, type CheckpointStore } from "./imap/checkpoints.ts";
export type { ActionQueue, DueActions, MailActions, ActionKind } from "./imap/actions.ts";
export { SqliteCheckpoints, sqliteCheckpoints, type CheckpointTable } from "./store/sqlite/checkpoints.ts";
// ConfigError and TargetError are the daemon's (its config file, its targets); a watcher never throws them.
export { MailbellError, ImapError, TlsError, StateError, UsageError, type ErrorCode } from "./errors.ts";
export type { Logger, LogSink } from "./log.ts";
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
