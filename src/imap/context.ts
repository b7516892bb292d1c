/** What every part of one mailbox's watcher shares, settled once from its options. */
import { UsageError } from "../errors.ts";
import { asLogger, silentLogger, type Logger } from "../log.ts";
import type { NormalizedMail } from "../mail/types.ts";
import { MemoryCheckpoints, type Checkpoint, type CheckpointStore } from "./checkpoints.ts";
import { ActionBreaks } from "./actions.ts";
import { accountName, replyLimits, type ReplyLimits } from "./client.ts";
import { defaultMaxHeaderBytes, type FetchedMessage, type FetchOptions } from "./fetch.ts";
import { bugIfThrows } from "./ours.ts";
import { failFastModes } from "./reconnect-policy.ts";
import type { WatchEvent, WatchedMail, WatchOptions } from "./types.ts";
import { MemorySetAside, ReadFailures, type SetAsideStore } from "./unreadable.ts";

export const defaultKeepaliveMs = 120_000;
export const defaultKeepaliveTimeoutMs = 15_000;
/**
 * After a session read mail, it keeps its connection this long before handing over to a lean one
 * (quiet.ts): a mailbox where mail comes every few seconds would otherwise log in twice per mail
 * (Gmail counts logins).
 */
export const defaultQuietAfterMailMs = 60_000;

export interface Watch {
  options: WatchOptions;
  account: string;
  mailbox: string;
  log: Logger;
  /** Reports an event to onEvent; an observer that throws is logged, never taken for connection trouble. */
  emit(event: WatchEvent): void;
  signal: AbortSignal;
  checkpoints: CheckpointStore;
  commitAuto: boolean;
  setAside: SetAsideStore;
  /** Failed reads per UID; lives across sessions, so a mail that breaks every connection is found. */
  failures: ReadFailures;
  /** Actions whose command broke the connection; lives across sessions, so one cannot break every session. */
  actionBreaks: ActionBreaks;
  fetchOptions: FetchOptions;
  limits: ReplyLimits;
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  pollMs: number;
  /** What a quiet mailbox waits on (quiet.ts); set to "imapflow" for good when the server cannot do without. */
  quiet: "lean" | "imapflow";
  /** After reading mail, how long a session keeps its connection before handing over to a lean one. */
  quietAfterMailMs: number;
}

export function watchContext(options: WatchOptions): Watch {
  refuseBadOptions(options);
  const account = accountName(options.account);
  const mailbox = options.mailbox;
  const log = asLogger(options.logger ?? silentLogger).child({ account, mailbox });
  const maxTextBytes = options.maxTextBytes ?? 256 * 1024;
  const maxHeaderBytes = options.maxHeaderBytes ?? defaultMaxHeaderBytes;
  const needsBody = options.needsBody;
  const needsHtml = options.needsHtml;
  const whole = options.whole;
  return {
    options,
    account,
    mailbox,
    log,
    emit: (event) => {
      try {
        options.onEvent?.(event);
      } catch (err) {
        log.error({ err: (err as Error).message, event: event.type }, "an onEvent observer failed; the watcher goes on");
      }
    },
    signal: options.signal ?? new AbortController().signal,
    checkpoints: options.checkpoints ?? new MemoryCheckpoints(),
    commitAuto: (options.commit ?? "auto") === "auto",
    setAside: options.setAside ?? new MemorySetAside(),
    failures: new ReadFailures(options.maxReadAttempts ?? 3),
    actionBreaks: new ActionBreaks(),
    fetchOptions: {
      maxTextBytes,
      maxHeaderBytes,
      decode: options.decode ? bugIfThrows("decoding mail", options.decode) : undefined,
      ...(whole ? { whole: { wanted: bugIfThrows("asking the rules whether to read the whole mail", (mail: NormalizedMail, m: { internalDate: Date; bodyRead: boolean }) => whole.wanted(mail, { account, mailbox, receivedAt: m.internalDate, bodyRead: m.bodyRead })), read: whole.read } } : {}),
      onGone: (uids: number[]) => log.warn({ uids }, "mail expunged or moved before it could be read (the server no longer lists it); left out"),
      ...(needsBody ? { needsBody: bugIfThrows("asking the rules whether to read the body", (mail: NormalizedMail, m: { internalDate: Date }) => needsBody(mail, { account, mailbox, receivedAt: m.internalDate })) } : {}),
      ...(needsHtml ? { needsHtml: bugIfThrows("asking the rules whether to read the HTML", (mail: NormalizedMail, m: { internalDate: Date }) => needsHtml(mail, { account, mailbox, receivedAt: m.internalDate })) } : {}),
    },
    // What one reply may make a watcher's connection hold: no more than it asks for, and a margin.
    limits: replyLimits(maxHeaderBytes, maxTextBytes),
    keepaliveMs: options.keepaliveMs ?? defaultKeepaliveMs,
    keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? defaultKeepaliveTimeoutMs,
    pollMs: options.pollMs ?? 60_000,
    quiet: options.quietConnection ?? "lean",
    quietAfterMailMs: options.quietAfterMailMs ?? defaultQuietAfterMailMs,
  };
}

/** Options that cannot work, refused at the start rather than retried as if the server failed. */
export function refuseBadOptions(options: WatchOptions): void {
  const problem = badOption(options);
  if (problem) throw new UsageError(`watchMailbox: ${problem}`);
  refuseManualWithoutStore(options);
}

/** What is wrong with the options (the option, what is valid, the fix), or undefined. */
export function badOption(options: WatchOptions): string | undefined {
  const { host, port, user, tls } = options.account;
  if (typeof host !== "string" || host.trim() === "" || /\s/.test(host)) return `account.host ${JSON.stringify(host)} is not a server name (an empty host would connect to this machine). Pass the IMAP server's name or address, e.g. host: "imap.example.com".`;
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) return `account.port ${JSON.stringify(port)} is not a TCP port (1 to 65535). Leave it out for the default (993 with tls "implicit", 143 otherwise).`;
  if (tls !== undefined && !["implicit", "starttls", "none"].includes(tls)) return `account.tls ${JSON.stringify(tls)} is not one of "implicit", "starttls", "none".`;
  if (typeof user !== "string" || user.trim() === "") return `account.user ${JSON.stringify(user)} is empty. Pass the login name (often the whole address, e.g. "me@example.com").`;
  if (typeof options.mailbox !== "string" || options.mailbox === "") return `mailbox ${JSON.stringify(options.mailbox)} is empty. Pass the mailbox to watch, e.g. mailbox: "INBOX".`;
  if (options.failFast !== undefined && !failFastModes.includes(options.failFast)) return `failFast ${JSON.stringify(options.failFast)} is not one of ${failFastModes.map((m) => `"${m}"`).join(", ")}.`;
  return undefined;
}

/**
 * commit "manual" means the caller saves the checkpoint; without a store of its own there is none
 * to save to, and the in-memory default would hand mail over again after every reconnect.
 */
export function refuseManualWithoutStore(options: WatchOptions): void {
  if (options.commit === "manual" && options.checkpoints === undefined) {
    throw new UsageError('watchMailbox: commit: "manual" needs a checkpoints store to save m.checkpoint to (without one, mail is handed over again after every reconnect). Pass checkpoints (openCheckpoints(file), sqliteCheckpoints(db) or your own CheckpointStore), or leave commit at "auto".');
  }
}

/** A fetched mail as handed over, acknowledged by `ack`. */
export function toWatched(w: Watch, uidValidity: number, fetched: FetchedMessage, ack: Checkpoint, catchUp: WatchedMail["catchUp"]): WatchedMail {
  const { uid, internalDate, size, mail, bodyRead, dkim } = fetched;
  if (mail.warnings.length > 0) w.log.warn({ uid, warnings: mail.warnings }, "message read with warnings");
  return { account: w.account, mailbox: w.mailbox, uidValidity, uid, receivedAt: internalDate, size, mail, bodyRead, ...(dkim ? { dkim } : {}), checkpoint: ack, ...(catchUp ? { catchUp } : {}) };
}
