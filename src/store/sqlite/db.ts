import { accessSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { StateError } from "../../errors.ts";

/**
 * Each entry migrates the schema from version i to i+1. Append only: a released migration never
 * changes, so any older database can be brought forward.
 */
const migrations: readonly string[] = [
  `CREATE TABLE checkpoints (
     account      TEXT NOT NULL,
     mailbox      TEXT NOT NULL,
     uid_validity INTEGER NOT NULL,
     last_uid     INTEGER NOT NULL,
     updated_at   TEXT NOT NULL,
     PRIMARY KEY (account, mailbox)
   ) STRICT;
   CREATE TABLE total_entries (
     rule        TEXT NOT NULL,
     message_key TEXT NOT NULL,
     period      TEXT NOT NULL,
     currency    TEXT NOT NULL,
     units       TEXT NOT NULL,
     scale       INTEGER NOT NULL,
     counted_at  TEXT NOT NULL,
     PRIMARY KEY (rule, message_key)
   ) STRICT;
   CREATE TABLE totals (
     rule     TEXT NOT NULL,
     period   TEXT NOT NULL,
     currency TEXT NOT NULL,
     units    TEXT NOT NULL,
     scale    INTEGER NOT NULL,
     entries  INTEGER NOT NULL,
     PRIMARY KEY (rule, period, currency)
   ) STRICT;`,
  // The durable outbox: one row per (mail, rule, target), written in the same transaction as the
  // checkpoint, so a notification exists on disk before the mail is considered read.
  `CREATE TABLE outbox (
     id              TEXT PRIMARY KEY,
     target          TEXT NOT NULL,
     rule            TEXT NOT NULL,
     account         TEXT NOT NULL,
     mailbox         TEXT NOT NULL,
     uid_validity    INTEGER NOT NULL,
     uid             INTEGER NOT NULL,
     message_id      TEXT,
     subject         TEXT NOT NULL,
     content_type    TEXT NOT NULL,
     body            TEXT NOT NULL,
     summary         TEXT NOT NULL,
     digest_group    TEXT,
     state           TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
     attempts        INTEGER NOT NULL DEFAULT 0,
     next_attempt_at INTEGER NOT NULL,
     last_error      TEXT,
     created_at      INTEGER NOT NULL,
     updated_at      INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX outbox_ready ON outbox (target, state, next_attempt_at);
   CREATE INDEX outbox_message ON outbox (message_id, rule, target) WHERE message_id IS NOT NULL;`,
  // Small facts a target keeps between runs, such as the Slack thread a rule posts into.
  `CREATE TABLE target_state (
     target     TEXT NOT NULL,
     key        TEXT NOT NULL,
     value      TEXT NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (target, key)
   ) STRICT;`,
  // A Message-ID alone does not identify a mail (some senders reuse one for every mail); it only
  // says that a mail seen in another mailbox (or before a UIDVALIDITY change) was seen already.
  `ALTER TABLE total_entries ADD COLUMN message_id TEXT;
   ALTER TABLE total_entries ADD COLUMN mailbox_key TEXT;
   CREATE INDEX total_entries_message ON total_entries (rule, message_id) WHERE message_id IS NOT NULL;`,
  // The queue in arrival order (rowid) per target, without sorting the whole backlog on each send.
  `CREATE INDEX outbox_queue ON outbox (target, state);`,
  // A mail's identity (src/mail/identity.ts) tells the same mail back from elsewhere (moved, copied,
  // renumbered) from another mail that reuses its Message-ID. A rule counts an identity once, and
  // posts it once per target: \`notified\` remembers that for good (the outbox forgets delivered
  // rows after keepDays). Rows from before have no identity, only a Message-ID: they are copied
  // from the outbox as they are, and src/store/seen.ts says how they still block a repost.
  `ALTER TABLE total_entries ADD COLUMN identity TEXT;
   CREATE UNIQUE INDEX total_entries_identity ON total_entries (rule, identity) WHERE identity IS NOT NULL;
   CREATE TABLE notified (
     rule        TEXT NOT NULL,
     target      TEXT NOT NULL,
     place       TEXT NOT NULL,
     mailbox_key TEXT NOT NULL,
     identity    TEXT,
     message_id  TEXT,
     created_at  INTEGER NOT NULL,
     PRIMARY KEY (rule, target, place)
   ) STRICT;
   CREATE UNIQUE INDEX notified_identity ON notified (rule, target, identity) WHERE identity IS NOT NULL;
   CREATE INDEX notified_message ON notified (rule, target, message_id) WHERE identity IS NULL AND message_id IS NOT NULL;
   INSERT INTO notified (rule, target, place, mailbox_key, identity, message_id, created_at)
     SELECT rule, target, account || '/' || mailbox || '/' || uid_validity || '/' || uid, account || '/' || mailbox || '/' || uid_validity, NULL, message_id, created_at
     FROM outbox WHERE message_id IS NOT NULL;
   DROP INDEX outbox_message;`,
  // Mail the watcher could not read after a few tries and set aside so the mailbox goes on
  // (src/imap/unreadable.ts); listed and retried with `mailbell unreadable`.
  `CREATE TABLE set_aside (
     account         TEXT NOT NULL,
     mailbox         TEXT NOT NULL,
     uid_validity    INTEGER NOT NULL,
     uid             INTEGER NOT NULL,
     reason          TEXT NOT NULL,
     attempts        INTEGER NOT NULL,
     set_aside_at    INTEGER NOT NULL,
     retry_requested INTEGER NOT NULL DEFAULT 0 CHECK (retry_requested IN (0, 1)),
     PRIMARY KEY (account, mailbox, uid_validity, uid)
   ) STRICT;`,
  // A row holds its notification as data (JSON), rendered by the target when it is sent. Rows
  // queued before keep the payload rendered then (content_type, body, summary) and are sent as it.
  `ALTER TABLE outbox ADD COLUMN notification TEXT;`,
  // Rules' actions on mail (then:), queued with the mail's notifications and done by its watcher
  // (src/imap/actions.ts). Rows stay after they are done: they record that the mail was acted on,
  // so it is acted on once however it comes back (by place and by identity, as notified does).
  `CREATE TABLE actions (
     id           INTEGER PRIMARY KEY,
     account      TEXT NOT NULL,
     mailbox      TEXT NOT NULL,
     uid_validity INTEGER NOT NULL,
     uid          INTEGER NOT NULL,
     place        TEXT NOT NULL UNIQUE,
     identity     TEXT NOT NULL UNIQUE,
     actions      TEXT NOT NULL,
     rules        TEXT NOT NULL,
     state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dropped')),
     attempts     INTEGER NOT NULL DEFAULT 0,
     next_at      INTEGER NOT NULL,
     last_error   TEXT,
     created_at   INTEGER NOT NULL,
     finished_at  INTEGER
   ) STRICT;
   CREATE INDEX actions_due ON actions (account, mailbox, next_at) WHERE state = 'pending';`,
];

export const schemaVersion = migrations.length;

/**
 * Opens (creating if needed) the state database and brings its schema up to date. readOnly opens an
 * existing file without changing it, for commands that only look (`mailbell test`).
 */
export function openDatabase(file: string, options: { readOnly?: boolean } = {}): DatabaseSync {
  if (options.readOnly) return openToRead(file);
  const problem = file === ":memory:" ? undefined : stateWriteProblem(file);
  if (problem) throw notWritable(file, problem);
  let db: DatabaseSync | undefined;
  try {
    if (file !== ":memory:") mkdirSync(path.dirname(file), { recursive: true });
    db = new DatabaseSync(file);
    // WAL + NORMAL survives a killed process (only an OS crash can lose the last commit), and
    // lets `mailbell outbox` read while the daemon writes.
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;");
    // SQLite opens a file it may not write read-only without a word, and fails only at the first
    // write, in the middle of handling a mail: write once now, and undo it.
    const version = Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
    db.exec(`BEGIN IMMEDIATE; PRAGMA user_version = ${version}; ROLLBACK`);
  } catch (err) {
    if (db?.isOpen) db.close();
    if (isReadOnly(err)) throw notWritable(file, stateWriteProblem(file) ?? { problem: (err as Error).message, fix: `sudo chown ${userInfo().username} ${path.dirname(file)} ${file}*` });
    throw new StateError(`cannot open the state database ${file}: ${(err as Error).message}. Check that the folder is writable, or set state: to another path in the config.`, { cause: err });
  }
  migrate(db, file);
  return db;
}

function openToRead(file: string): DatabaseSync {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(file, { readOnly: true });
    db.exec("PRAGMA busy_timeout = 5000");
  } catch (err) {
    throw new StateError(`cannot read the state database ${file}: ${(err as Error).message}.`, { cause: err });
  }
  const version = Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
  if (version !== migrations.length) {
    db.close();
    throw new StateError(`the state database ${file} has schema ${version}, this mailbell ${migrations.length}; run mailbell run once to bring it up to date, or point state: elsewhere.`);
  }
  return db;
}

/** SQLITE_READONLY (8, and its extended codes) or SQLITE_CANTOPEN (14): the file or its folder is not ours to write. */
function isReadOnly(err: unknown): boolean {
  const code = (err as { errcode?: unknown }).errcode;
  return typeof code === "number" && ((code & 0xff) === 8 || (code & 0xff) === 14);
}

/** Why this process cannot write the state, and the command that fixes it. */
export interface StateWriteProblem {
  problem: string;
  fix: string;
}

/**
 * Why this process cannot write the state database at `file` (the file, its -wal, -shm and lock
 * files, or the folder that holds them or would), or undefined when it can. Creates nothing:
 * `mailbell check` asks it too.
 */
export function stateWriteProblem(file: string): StateWriteProblem | undefined {
  const dir = path.dirname(file);
  const user = userInfo().username;
  if (!existsSync(dir)) {
    const parent = nearestExisting(dir);
    if (!statSync(parent).isDirectory()) return { problem: `${parent} is a file, not a folder`, fix: "set state: to another path, inside a folder" };
    return writable(parent) ? undefined : { problem: `the folder ${parent} is not writable by ${whoAmI()}${ownerOf(parent)}, so ${dir} cannot be created`, fix: `sudo install -d -o ${user} ${dir}` };
  }
  if (!statSync(dir).isDirectory()) return { problem: `${dir} is a file, not a folder`, fix: "set state: to another path, inside a folder" };
  const denied = [dir, file, `${file}-wal`, `${file}-shm`, `${file}.lock`].filter((f) => existsSync(f) && !writable(f));
  if (denied.length === 0) return undefined;
  return { problem: `${denied.join(", ")} ${denied.length === 1 ? "is" : "are"} not writable by ${whoAmI()}${ownerOf(denied[0]!)}`, fix: `sudo chown ${user} ${[...(denied.includes(dir) ? [dir] : []), ...(denied.some((f) => f !== dir) ? [`${file}*`] : [])].join(" ")}` };
}

/** The StateError for a state this user cannot write, with the chown that fixes it. */
export function notWritable(file: string, found: StateWriteProblem): StateError {
  const permissions = found.fix.startsWith("sudo ");
  return new StateError(
    `cannot write the state database ${file}: ${found.problem}. ` +
      (permissions ? `Was mailbell run as another user before (root, then a service with User=)? Fix: ${found.fix} — or set state: to a path ${userInfo().username} can write.` : `Fix: ${found.fix}.`),
  );
}

function writable(p: string): boolean {
  try {
    accessSync(p, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function nearestExisting(dir: string): string {
  let at = dir;
  while (!existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}

function whoAmI(): string {
  const me = userInfo();
  return `${me.username} (uid ${me.uid})`;
}

function ownerOf(p: string): string {
  const uid = statSync(p).uid;
  return uid === userInfo().uid ? "" : `; it belongs to uid ${uid}${uid === 0 ? " (root)" : ""}`;
}

function migrate(db: DatabaseSync, file: string): void {
  const current = Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
  if (current > migrations.length) {
    db.close();
    throw new StateError(`the state database ${file} was written by a newer mailbell (schema ${current}, this one knows ${migrations.length}). Upgrade mailbell, or point state: at a new file.`);
  }
  for (let v = current; v < migrations.length; v++) {
    transaction(db, () => {
      db.exec(migrations[v]!);
      db.exec(`PRAGMA user_version = ${v + 1}`);
    });
  }
}

/** Runs fn inside BEGIN IMMEDIATE … COMMIT; nested calls join the outer transaction. */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  if (db.isTransaction) return fn();
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = fn();
    db.exec("COMMIT");
    return result;
  } catch (err) {
    db.exec("ROLLBACK");
    throw err;
  }
}
