/**
 * Mail that cannot be read: counted per UID, and after a bounded number of failed reads set aside,
 * so one broken message (a 2 GB literal, an endless line, a corrupt index) cannot hold up every
 * mail after it forever.
 */
import type { Logger } from "../log.ts";

/** A mail set aside: recorded so it can be listed and tried again (`mailbell unreadable`). */
export interface SetAsideMail {
  uidValidity: number;
  uid: number;
  /** The last failure's message. */
  reason: string;
  /** Failed reads before it was set aside. */
  attempts: number;
}

/**
 * Where set-aside mail is recorded, owned by the watcher; store/ implements it. `retryRequested`
 * lists mail a person asked to read again (`mailbell unreadable retry`); the watcher reads it and
 * calls `resolved` when that worked, or `record` again when it did not.
 */
export interface SetAsideStore {
  record(account: string, mailbox: string, mail: SetAsideMail): void | Promise<void>;
  retryRequested(account: string, mailbox: string, uidValidity: number): readonly number[] | Promise<readonly number[]>;
  /** The watcher is reading these again now: their requests are done, whatever comes of it. */
  retryTaken(account: string, mailbox: string, uidValidity: number, uids: readonly number[]): void | Promise<void>;
  resolved(account: string, mailbox: string, uidValidity: number, uid: number): void | Promise<void>;
}

/** For library users who keep no state: set-aside mail is only logged and reported. */
export class MemorySetAside implements SetAsideStore {
  readonly mails = new Map<string, SetAsideMail>();
  record(account: string, mailbox: string, mail: SetAsideMail): void {
    this.mails.set(JSON.stringify([account, mailbox, mail.uidValidity, mail.uid]), mail);
  }
  retryRequested(): readonly number[] {
    return [];
  }
  retryTaken(): void {}
  resolved(account: string, mailbox: string, uidValidity: number, uid: number): void {
    this.mails.delete(JSON.stringify([account, mailbox, uidValidity, uid]));
  }
}

/**
 * Failed reads per UID, for one mailbox under one UIDVALIDITY. A read fails when the server breaks
 * the connection on it, answers NO, or leaves the mail out though it says the mail is there. A
 * connection lost while idle, or on a FETCH of many mails, blames no single mail: the next round
 * then reads one mail per FETCH (`narrowing`) to find the one that breaks, and only that one is counted.
 */
export class ReadFailures {
  readonly maxAttempts: number;
  readonly #attempts = new Map<number, { count: number; reason: string }>();
  /** Set aside under this UIDVALIDITY: a recovery read again from its start leaves them out. */
  readonly #setAside = new Set<number>();
  #uidValidity: number | undefined;
  /** A FETCH of several mails broke the connection: read one at a time until a round completes. */
  narrowing = false;

  constructor(maxAttempts: number) {
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new RangeError(`maxReadAttempts must be a whole number of at least 1, got ${maxAttempts}`);
    this.maxAttempts = maxAttempts;
  }

  /** Counts are per UIDVALIDITY: after a renumbering the UIDs name other mail. */
  under(uidValidity: number): void {
    if (this.#uidValidity !== uidValidity) {
      this.#attempts.clear();
      this.#setAside.clear();
    }
    this.#uidValidity = uidValidity;
  }

  /** One more failed read of `uid`; true once it has failed maxAttempts times. */
  failed(uid: number, reason: string): boolean {
    const count = (this.#attempts.get(uid)?.count ?? 0) + 1;
    this.#attempts.set(uid, { count, reason });
    return count >= this.maxAttempts;
  }

  /** The mail was read after all (or set aside): its count starts again. */
  forget(uid: number): void {
    this.#attempts.delete(uid);
  }

  /** The mail was set aside: its count is done with, and it is not read again unless asked for. */
  markSetAside(uid: number): void {
    this.#attempts.delete(uid);
    this.#setAside.add(uid);
  }

  wasSetAside(uid: number): boolean {
    return this.#setAside.has(uid);
  }

  /** When `uid` has used up its attempts: how many and the last reason. */
  exhausted(uid: number): { attempts: number; reason: string } | undefined {
    const seen = this.#attempts.get(uid);
    return seen && seen.count >= this.maxAttempts ? { attempts: seen.count, reason: seen.reason } : undefined;
  }

  attempts(uid: number): number {
    return this.#attempts.get(uid)?.count ?? 0;
  }
}

/** Response codes with which a server refuses for reasons of its own, not the mail's (RFC 5530). */
const serverWide = /\[(UNAVAILABLE|LIMIT|INUSE|THROTTLED)\]/i;

/** Mail that was in flight when a FETCH broke the connection: the batch asked for and those read ahead. */
export const narrowingWindow = 300;

/** What a round is reading: its UIDs in order, whether one per FETCH, and up to where it handed mail over. */
export interface Reading {
  uids: readonly number[];
  narrowing: boolean;
  after: number;
}

/**
 * The connection broke while reading. Reading one mail per FETCH (narrowing), the mail in flight
 * is to blame and its failed read counted; reading several at once, none is yet: the next session
 * reads one at a time to find it. Mail already handed over is never blamed, nor is any mail when
 * the server said why it ended the session for all of it (BYE, or a NO for being busy or over a limit).
 */
export function blameRead(failures: ReadFailures, reading: Reading, failure: { message: string }, bye: string | undefined, log: Pick<Logger, "warn">): void {
  const at = reading.uids.findIndex((uid) => uid > reading.after);
  if (at < 0) return;
  const inFlight = reading.uids[at]!;
  if (bye !== undefined || serverWide.test(failure.message)) {
    failures.narrowing ||= reading.narrowing;
    log.warn({ err: bye ?? failure.message, uid: inFlight }, "the server ended the session for all mail (BYE, busy or over a limit); no mail is blamed");
    return;
  }
  // Past the window read one at a time, several mails were in flight again.
  if (!reading.narrowing || at >= narrowingWindow) {
    failures.narrowing = true;
    log.warn({ err: failure.message, from: inFlight }, "the connection broke while reading mail; reading one mail at a time after reconnecting, to find any mail that breaks it");
    return;
  }
  failures.failed(inFlight, failure.message);
  log.warn({ uid: inFlight, attempts: failures.attempts(inFlight), of: failures.maxAttempts, err: failure.message }, "the connection broke while reading this mail");
}
