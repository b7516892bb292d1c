/** What every part of one mailbox's watcher shares, settled once from its options. */
import { UsageError } from "../errors.ts";
import { asLogger, silentLogger, type Logger } from "../log.ts";
import type { NormalizedMail } from "../mail/types.ts";
import { MemoryCheckpoints, type Checkpoint, type CheckpointStore } from "./checkpoints.ts";
import { ActionBreaks } from "./actions.ts";
import { accountName, replyLimits, type ReplyLimits } from "./client.ts";
import { defaultMaxHeaderBytes, type FetchedMessage, type FetchOptions } from "./fetch.ts";
import { bugIfThrows } from "./ours.ts";
import type { WatchEvent, WatchedMail, WatchOptions } from "./types.ts";
import { MemorySetAside, ReadFailures, type SetAsideStore } from "./unreadable.ts";

export const defaultKeepaliveMs = 120_000;
export const defaultKeepaliveTimeoutMs = 15_000;

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
}

export function watchContext(options: WatchOptions): Watch {
  refuseManualWithoutStore(options);
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
  };
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
