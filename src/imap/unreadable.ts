/**
 * Mail that cannot be read: counted per UID, and after a bounded number of failed reads set aside,
 * so one broken message (a 2 GB literal, an endless line, a corrupt index) cannot hold up every
 * mail after it forever.
 */

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
