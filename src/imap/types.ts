/** The watcher's public shapes: what it is given, what it reports and what it hands over. */
import type { ImapError } from "../errors.ts";
import type { LogSink } from "../log.ts";
import type { NormalizedMail } from "../mail/types.ts";
import type { ActionKind, ActionQueue } from "./actions.ts";
import type { Checkpoint, CheckpointStore } from "./checkpoints.ts";
import type { ImapAccount } from "./client.ts";
import type { DecodeParts, WholeReading } from "./fetch.ts";
import type { DkimSignature } from "../rules/types.ts";
import type { FailFast } from "./reconnect-policy.ts";
import type { SetAsideStore } from "./unreadable.ts";

import type { FolderWakeups } from "./notify.ts";

export interface WatchOptions {
  account: ImapAccount;
  mailbox: string;
  /**
   * Where the (UIDVALIDITY, last UID) checkpoint is kept. Without one, every start begins at the
   * mailbox's current end and mail that arrives while nothing runs is never seen.
   */
  checkpoints?: CheckpointStore;
  /**
   * auto (default): the checkpoint moves past a message when you ask for the next one, so a crash
   * while handling a message hands it to you again on the next start.
   * manual: you save the checkpoint yourself (in the same transaction as your own writes).
   */
  commit?: "auto" | "manual";
  /** Largest text part read per message (bytes); default 256 KiB. Attachments are never read. */
  maxTextBytes?: number;
  /** Decodes fetched mail; by default on this thread (the daemon passes a worker thread's). */
  decode?: DecodeParts;
  /**
   * Read a message's text only when this says yes for the mail decoded from its header alone (text
   * "", no html); default: always. The daemon asks its rules: most mail then costs its header only.
   */
  needsBody?: (headerOnly: NormalizedMail, where: { account: string; mailbox: string; receivedAt: Date }) => boolean;
  /**
   * For mail whose text was read and whose multipart/alternative also has HTML: read that HTML too
   * when this says yes for the mail decoded with its plain text (one more FETCH for that mail only).
   * Default: never. The daemon asks its rules (a body rule the plain part does not satisfy).
   */
  needsHtml?: (withoutHtml: NormalizedMail, where: { account: string; mailbox: string; receivedAt: Date }) => boolean;
  /**
   * Mail to read whole as well, streamed to `whole.read` (the daemon verifies DKIM signatures, whose
   * body hash covers attachments too): only mail `whole.wanted` says yes to. Its result rides along
   * as WatchedMail.dkim. When read() throws ReadAgainLater the mail is read again later, like mail
   * the server did not hand over, and set aside after maxReadAttempts.
   */
  whole?: {
    /** `bodyRead`: the mail's text was read (its body conditions can be judged too). */
    wanted(mail: NormalizedMail, where: { account: string; mailbox: string; receivedAt: Date; bodyRead: boolean }): boolean;
    read: WholeReading["read"];
  };
  /** The header is read up to this many bytes (default 256 KiB); a longer one is cut, with a warning on the mail. */
  maxHeaderBytes?: number;
  /**
   * A mail that cannot be read (the server breaks the connection on it, answers NO, or leaves it
   * out) is tried this many times (default 3), then set aside: recorded in `setAside`, reported as a
   * "set-aside" event and logged at error, and the checkpoint moves past it, so the mail after it
   * is not held up. This happens in both commit modes.
   */
  maxReadAttempts?: number;
  /** Where set-aside mail is recorded and retries are asked for; by default only in memory. */
  setAside?: SetAsideStore;
  /**
   * Actions on mail (mark read, flag, label, move) that the consumer queued there for mail it
   * handed over: done on the watching connection at the start of each session and after each round,
   * so only after the consumer committed what the mail led to. With a queue the mailbox is opened
   * read-write (SELECT); without one, read-only (EXAMINE). With commit "auto" and
   * watchMailboxBatches(), a round's actions may run before its checkpoint is saved (the next round
   * saves it): after a crash then, that mail is handed over again, as commit "auto" allows.
   */
  actions?: ActionQueue;
  /** Retries of refused actions: exponential with jitter from baseMs up to capMs (default 1 min … 1 h). */
  actionRetry?: { baseMs: number; capMs: number };
  /** Stop watching: the iterator ends after the message in hand. */
  signal?: AbortSignal;
  /**
   * Where the watcher logs: pino (or any logger with child and trace) as it is; console, or any
   * object with error/warn/info/debug, gets account and mailbox in each line's object and no trace
   * (IMAP protocol) lines. Default: nothing is logged.
   */
  logger?: LogSink;
  /**
   * Stop retrying and throw the ImapError when retrying cannot fix the failure: a refused login
   * (IMAP_AUTH), a mailbox that cannot be opened (IMAP_MAILBOX), a certificate that fails the check
   * or a missing STARTTLS (IMAP_CONNECT, a TlsError). "never" (default): retry everything, as the
   * daemon does once an account has been watched, reporting through logger and onEvent.
   * "first-login": throw a refused login until the mailbox has been opened once, retry the rest
   * (the daemon on an account never watched with its state file). "first-connect": throw these
   * until the mailbox has been opened once, retry them after. "always": throw them whenever they
   * happen.
   * A lost or unreachable connection (IMAP_CONNECT otherwise) and an unusable answer (IMAP_SERVER)
   * are retried in every mode. With credentials(), a refused login is first tried once more with
   * fresh ones.
   */
  failFast?: FailFast;
  /** Reconnect delays: exponential with jitter from baseMs up to capMs (default 1 s … 60 s). */
  reconnect?: { baseMs?: number; capMs?: number; authFailureMs?: number };
  /** Restart IDLE at least this often (default 10 min). */
  idleRestartMs?: number;
  /** While idle, check the connection with a NOOP this often (default 120 s)… */
  keepaliveMs?: number;
  /** …and treat it as dead when the NOOP gets no answer within this long (default 15 s). */
  keepaliveTimeoutMs?: number;
  /** For servers without IDLE: how often to look for new mail (default 60 s). */
  pollMs?: number;
  /** Called on connection state changes, for health reporting. */
  onEvent?: (event: WatchEvent) => void;
  /**
   * Read mail announced during IDLE on a second connection, opened when needed and closed after
   * keepaliveMs unused, so the watching connection stays in IDLE. Quicker notifications for a busy
   * mailbox, at the price of a second connection while mail flows (count it against the server's
   * per-account limit). Default false.
   */
  readerConnection?: boolean;
  /**
   * Shared by the watchers of one process (a ConnectGate) so that only a few connections are set
   * up at once: a thousand simultaneous handshakes leave memory behind that is never given back.
   * Without it this watcher connects at once. `new ConnectGate({ concurrency: 4 })` is one.
   */
  connectGate?: { run<T>(connect: () => Promise<T>, signal?: AbortSignal): Promise<T> };
  /**
   * The account's NOTIFY wake-ups (imap/notify.ts), shared with a notifier run by runNotifier():
   * while NOTIFY is on, this watcher keeps no connection while quiet; it opens one to read when
   * woken. Without it (or when the server has no NOTIFY) the watcher IDLEs on its own connection.
   */
  wakeups?: FolderWakeups;
  /**
   * What a quiet mailbox waits on. lean (default): once a session has read to the end and is
   * quiet, its imapflow connection is closed and a minimal IDLE-only connection of mailbell's own
   * waits instead (~30 kB less per mailbox, BENCHMARKS.md); when it sees the mailbox change, a session opens to read.
   * imapflow: the session's connection stays in IDLE. Servers without IDLE, and NOTIFY, are not affected.
   */
  quietConnection?: "lean" | "imapflow";
  /**
   * After a session read mail, it keeps its connection this long without mail before handing over
   * to the lean one (default 60 s), so that mail coming every few seconds costs no login each.
   */
  quietAfterMailMs?: number;
}

export type WatchEvent =
  | { type: "connecting" }
  | { type: "connected"; uidValidity: number; lastUid: number }
  | { type: "idle" }
  /** The server answered a keepalive NOOP: the connection is alive. */
  | { type: "alive" }
  /** A catch-up of `count` mails begins (mail that came while the session was down). */
  | { type: "catching-up"; count: number }
  /** The server has no IDLE; we look for new mail every intervalMs instead. */
  | { type: "polling"; intervalMs: number }
  | { type: "uidvalidity-changed"; previous: number; current: number }
  /** A mail could not be read after maxReadAttempts tries and was set aside; the mailbox goes on. */
  | { type: "set-aside"; uidValidity: number; uid: number; reason: string; attempts: number }
  /** Actions on `count` mails were done. */
  | { type: "actions-done"; count: number }
  /** The server refused an action on `count` mails; tried again after retryInMs. */
  | { type: "action-failed"; action: ActionKind; count: number; reason: string; retryInMs: number }
  /** Actions on `count` mails were given up: the mail is gone, or renumbered. */
  | { type: "actions-dropped"; count: number; reason: string }
  | { type: "disconnected"; error: ImapError | undefined; retryInMs: number };

/** A message that arrived after the checkpoint. */
export interface WatchedMail {
  account: string;
  mailbox: string;
  uidValidity: number;
  uid: number;
  /** When the server received it (INTERNALDATE). */
  receivedAt: Date;
  /** Size of the whole message on the server, attachments included. */
  size: number;
  mail: NormalizedMail;
  /** False when needsBody said no: `mail.text` and `mail.html` are empty because they were not read. */
  bodyRead: boolean;
  /** Its DKIM signatures verified over the whole message, when `whole` wanted it read whole. */
  dkim?: readonly DkimSignature[];
  /** The checkpoint that acknowledges this message; save it for commit: "manual". */
  checkpoint: Checkpoint;
  /**
   * Set for mail found right after (re)connecting, which waited while nobody watched: `index` of
   * `count` in this catch-up (`id` tells catch-ups apart), so a long backlog can be summarised.
   */
  catchUp?: { id: string; index: number; count: number };
}
