/**
 * One round of reading new mail: on which connection (the watching one, or the reader connection
 * while the watching one idles), the UID SEARCH, mail that used up its attempts set aside, the
 * rest read in UID order up to the first mail that cannot be read, and what to do after.
 */
import type { ImapFlow } from "imapflow";
import { ImapError, MailbellError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { toWatched, type Watch } from "./context.ts";
import { fetchBatches, listNewUids, listUidsSince, type FetchOptions, type FetchedMessage, type ReadRound, type UnreadMail } from "./fetch.ts";
import { checkpointStep, ours } from "./ours.ts";
import type { ReaderConnection } from "./reader.ts";
import type { Resync } from "./resync.ts";
import type { WatchedMail } from "./types.ts";
import { narrowingWindow, type ReadFailures, type Reading } from "./unreadable.ts";

/** Where a session stands; only its rounds change it. */
export interface Position {
  readonly uidValidity: number;
  /** Mail up to here was handed over, passed over or set aside. */
  lastUid: number;
  /** A resync still to do (again, when one stopped at mail it could not read). */
  resync: Resync | undefined;
  /** The session's first round reads what waited while nobody watched: a catch-up. */
  firstRound: boolean;
  /** What the round in hand is reading: a connection that breaks while reading blames that mail. */
  reading: Reading | undefined;
  /**
   * A retry pause the session waits after closing its connection: with NOTIFY the account's
   * reading connections are shared, and a pause of up to 2 minutes must not hold one.
   */
  pauseWithoutSlotMs?: number;
}

/** settled: wait for mail; again: look again at once; stopped: we are stopping. */
export type RoundEnd = "settled" | "again" | "stopped";

/** What a round needs of the watching connection's events. */
export interface Pausing {
  pause(ms: number, options: { ignoreMail: true }): Promise<void>;
}

/** Reads the mail above the position, yielding it a FETCH round at a time. */
export async function* readRound(w: Watch, source: MailSource, pos: Position, events: Pausing): AsyncGenerator<WatchedMail[], RoundEnd, undefined> {
  const resync = pos.resync;
  pos.resync = undefined;
  const read = yield* readFrom(w, source, pos, resync);
  if (typeof read === "string") return read;
  return settle(w, pos, events, resync, read);
}

interface Read {
  uids: number[];
  /** The first mail this round could not read, if any: the round stopped before it. */
  stoppedAt: UnreadMail | undefined;
  /** The reader connection heard of mail while reading, which the watching one may not have yet. */
  moreOnReader: boolean;
}

async function* readFrom(w: Watch, source: MailSource, pos: Position, resync: Resync | undefined): AsyncGenerator<WatchedMail[], Read | RoundEnd, undefined> {
  const from = await source.pick(resync !== undefined);
  try {
    let readerKnew = 0;
    if (from !== source.watching) {
      const knew = await source.readerView(from);
      if (knew === undefined) return "again";
      readerKnew = knew;
    }
    // UID SEARCH first, also for the few mails IDLE just announced: only UIDs the server
    // listed are ever asked for, and a FETCH reply for any other UID is not taken as read.
    const listed = resync ? await listUidsSince(from, resync.since, pos.lastUid) : await listNewUids(from, pos.lastUid);
    const { setAside, read: uids } = exhaustedFirst(listed, w.failures, resync !== undefined);
    for (const s of setAside) await setAsideMail(w, pos, s.uid, s);
    const catchUp = pos.firstRound && uids.length > 0 ? { id: `${pos.uidValidity}.${pos.lastUid}`, count: uids.length } : undefined;
    pos.firstRound = false;
    if (catchUp) {
      w.log.info({ catchUp: catchUp.count }, `catching up ${catchUp.count} mail${catchUp.count === 1 ? "" : "s"} in ${w.mailbox}`);
      w.emit({ type: "catching-up", count: catchUp.count });
    }
    let index = 0;
    let stoppedAt: UnreadMail | undefined;
    // After a FETCH broke the connection, one mail per FETCH finds the mail that breaks it.
    const narrowing = w.failures.narrowing;
    // Everything up to `after` was handed over: only mail above it can be to blame.
    const reading: Reading = (pos.reading = { uids, narrowing, after: resync ? 0 : pos.lastUid });
    for await (const fetched of readInOrder(from, uids, w.fetchOptions, narrowing)) {
      if (fetched.stray.length > 0) w.log.warn({ answered: fetched.stray.slice(0, 20), asked: describeUids(uids) }, "the server answered FETCH for UIDs that were not asked for (a server bug); ignored");
      stoppedAt = fetched.unread[0];
      const ready = readyBefore(fetched.mails, stoppedAt);
      if (ready.length > 0) {
        // A mail read again after a renumbering acknowledges nothing new: the old checkpoint stands.
        yield ready.map((m) => toWatched(w, pos.uidValidity, m, resync ? resync.ack : { uidValidity: pos.uidValidity, lastUid: m.uid }, catchUp ? { ...catchUp, index: index++ } : undefined));
        for (const m of ready) w.failures.forget(m.uid);
        reading.after = ready.at(-1)!.uid;
        if (!resync) pos.lastUid = ready.at(-1)!.uid;
        // A long catch-up talks to the server all the time; say so, or health would call it stale.
        w.emit({ type: "alive" });
        if (w.signal.aborted) return "stopped";
      }
      if (stoppedAt) break;
    }
    pos.reading = undefined;
    w.failures.narrowing = false;
    return { uids, stoppedAt, moreOnReader: source.readerHeardMore(from, readerKnew) };
  } catch (err) {
    if (from === source.watching) throw err;
    pos.reading = undefined;
    // The second connection failed: read again on the watching one, from where we got to.
    source.readerFailed(err, "read");
    return "again";
  } finally {
    source.release(from);
  }
}

/** After the round's reading: a resync done, a mail to try again or set aside, or mail passed over. */
async function settle(w: Watch, pos: Position, events: Pausing, resync: Resync | undefined, read: Read): Promise<RoundEnd> {
  const { uids, stoppedAt } = read;
  const { account, mailbox } = w;
  const uidValidity = pos.uidValidity;
  if (resync && !stoppedAt) {
    await checkpointStep(w.checkpoints, "save the checkpoint", w, () => w.checkpoints.save(account, mailbox, { uidValidity, lastUid: pos.lastUid }));
    return "again"; // and now what arrived since SELECT
  }
  if (stoppedAt) {
    // A resync that stopped at a mail it could not read is done again from its start (what
    // it handed over already is not posted twice), without the mail once set aside.
    if (resync) pos.resync = resync;
    // The server has the mail but did not hand it over (or answered NO): try again a few
    // times, a little later each time, then set it aside and go on.
    const used = w.failures.failed(stoppedAt.uid, stoppedAt.reason);
    if (used) await setAsideMail(w, pos, stoppedAt.uid, w.failures.exhausted(stoppedAt.uid)!);
    else {
      const attempts = w.failures.attempts(stoppedAt.uid);
      w.log.warn({ uid: stoppedAt.uid, attempts, of: w.failures.maxAttempts, reason: stoppedAt.reason }, "mail could not be read; trying again");
      const pauseMs = retryDelayMs(attempts, stoppedAt.checkLater);
      // Not only when a folder waits now: one whose mail comes during the pause would wait for it.
      if (w.options.wakeups && w.options.wakeups.mode !== "off") pos.pauseWithoutSlotMs = pauseMs;
      else await events.pause(pauseMs, { ignoreMail: true });
    }
    return "again";
  }
  // UIDs that vanished between SEARCH and FETCH (expunged, moved; confirmed by UID SEARCH) are passed over for good.
  const highest = uids.at(-1);
  if (highest !== undefined && highest > pos.lastUid) {
    pos.lastUid = highest;
    if (w.commitAuto) await checkpointStep(w.checkpoints, "save the checkpoint", w, () => w.checkpoints.save(account, mailbox, { uidValidity, lastUid: pos.lastUid }));
  }
  return read.moreOnReader ? "again" : "settled";
}

/**
 * The wait before reading a mail that failed `attempts` times again: 1 s, doubling, at most 30 s;
 * for a check that could not be made (a DKIM key's DNS lookup failed), 15 s, doubling, at most 2 min.
 */
export function retryDelayMs(attempts: number, checkLater = false): number {
  if (checkLater) return Math.min(15_000 * 2 ** (attempts - 1), 120_000);
  return Math.min(1000 * 2 ** (attempts - 1), 30_000);
}

/**
 * Mail that used up its attempts is set aside before reading: at the head of new mail only (the
 * checkpoint cannot move past mail still to read), or anywhere in a resync (which moves no
 * checkpoint, so it may leave out mail in the middle; mail set aside earlier is left out too).
 */
export function exhaustedFirst(uids: readonly number[], failures: Pick<ReadFailures, "exhausted" | "wasSetAside">, resync: boolean): { setAside: { uid: number; attempts: number; reason: string }[]; read: number[] } {
  const setAside: { uid: number; attempts: number; reason: string }[] = [];
  const at = (uid: number) => {
    const used = failures.exhausted(uid);
    if (used) setAside.push({ uid, ...used });
    return used !== undefined;
  };
  if (resync) return { read: uids.filter((uid) => !at(uid) && !failures.wasSetAside(uid)), setAside };
  let head = 0;
  while (head < uids.length && at(uids[head]!)) head++;
  return { setAside, read: uids.slice(head) };
}

/** The mail of a FETCH round that can be handed over: all of it, or that before the first unread mail. */
export function readyBefore(mails: FetchedMessage[], stoppedAt: UnreadMail | undefined): FetchedMessage[] {
  return stoppedAt ? mails.filter((m) => m.uid < stoppedAt.uid) : mails;
}

/** Records a mail that used up its attempts, moves the checkpoint past it and says so loudly. */
async function setAsideMail(w: Watch, pos: Position, uid: number, why: { attempts: number; reason: string }): Promise<void> {
  const { account, mailbox } = w;
  const uidValidity = pos.uidValidity;
  w.log.error(
    { uid, uidValidity, attempts: why.attempts, reason: why.reason },
    `mail UID ${uid} could not be read after ${why.attempts} attempts; set aside so the mail after it is not held up. \`mailbell unreadable\` lists it and can try it again`,
  );
  await ours("record mail set aside", () => w.setAside.record(account, mailbox, { uidValidity, uid, reason: why.reason, attempts: why.attempts }));
  w.failures.markSetAside(uid);
  // Mail set aside during a resync lies below the new end: nothing to move.
  if (uid > pos.lastUid) {
    pos.lastUid = uid;
    await checkpointStep(w.checkpoints, "save the checkpoint", w, () => w.checkpoints.save(account, mailbox, { uidValidity, lastUid: uid }));
  }
  w.emit({ type: "set-aside", uidValidity, uid, reason: why.reason, attempts: why.attempts });
}

/**
 * The round's mail in UID order, in batches; when narrowing, the mail that may have broken the
 * connection last time (the first narrowingWindow UIDs) one per FETCH, the rest in batches again.
 */
async function* readInOrder(client: ImapFlow, uids: readonly number[], options: FetchOptions, narrowing: boolean): AsyncGenerator<ReadRound> {
  if (!narrowing) {
    yield* fetchBatches(client, uids, options);
    return;
  }
  yield* fetchBatches(client, uids.slice(0, narrowingWindow), { ...options, batchSize: 1, readAhead: 0 });
  yield* fetchBatches(client, uids.slice(narrowingWindow), options);
}

/** A short description of a UID list for a log line. */
export function describeUids(uids: readonly number[]): string {
  if (uids.length === 0) return "none";
  return uids.length === 1 ? String(uids[0]) : `${uids.length} UIDs from ${uids[0]} to ${uids.at(-1)}`;
}

/** Messages a connection's view of the mailbox holds. */
function exists(client: Pick<ImapFlow, "mailbox">): number {
  return client.mailbox ? client.mailbox.exists : 0;
}

/**
 * Which connection a round reads on. Mail announced while idling is read on the reader connection
 * (when there is one), so the watching one never leaves IDLE and the server's next push is not
 * held back by our DONE and IDLE again. A reader that cannot be opened or fails is given up until
 * the next session.
 */
export class MailSource {
  readonly watching: ImapFlow;
  /** True while the watching connection has sent nothing since IDLE announced mail: that mail can be read on the reader. */
  watchingIdles = false;
  #reader: ReaderConnection | undefined;
  readonly #log: Logger;

  constructor(watching: ImapFlow, reader: ReaderConnection | undefined, log: Logger) {
    this.watching = watching;
    this.#reader = reader;
    this.#log = log;
  }

  /** The connection this round reads on; a resync always reads on the watching one. */
  async pick(resync: boolean): Promise<ImapFlow> {
    const onReader = this.#reader !== undefined && this.watchingIdles && !resync;
    const from = onReader ? await this.#reader!.get().catch((err: unknown) => this.readerFailed(err, "open")) : this.watching;
    // Any command on the watching connection ends its IDLE.
    if (from === this.watching) this.watchingIdles = false;
    return from;
  }

  /**
   * How many messages the reader knows of, after a NOOP; undefined when it is behind the watching
   * connection. The server adds new mail to a session's view at commands like NOOP, not at a SEARCH
   * (RFC 3501 §7.4.1): without it the reader would not see what the watching one was told of.
   */
  async readerView(reader: ImapFlow): Promise<number | undefined> {
    await reader.noop();
    // Seldom, the reader's view is still behind what the watching connection was told (the server
    // had not synced it yet): then the next round reads on the watching one, or the mail would
    // wait for the next push.
    if (exists(reader) < exists(this.watching)) {
      this.#log.debug({ reader: exists(reader), watching: exists(this.watching) }, "the reader connection is behind; reading on the watching connection");
      this.watchingIdles = false;
      return undefined;
    }
    return exists(reader);
  }

  /**
   * Mail that arrived while the reader read is announced to it when its FETCH ends; the watching
   * connection hears of it only at its next push, up to 500 ms later (Dovecot): read it now.
   */
  readerHeardMore(from: ImapFlow, knew: number): boolean {
    return from !== this.watching && exists(from) > knew;
  }

  readerFailed(err: unknown, doing: "open" | "read"): ImapFlow {
    if (err instanceof MailbellError && !(err instanceof ImapError)) throw err;
    this.#log.warn({ err: (err as Error).message }, `could not ${doing} on the second connection; reading on the watching connection instead`);
    this.#reader?.close();
    this.#reader = undefined;
    return this.watching;
  }

  /** Done reading on `from` for now. */
  release(from: ImapFlow): void {
    if (from !== this.watching) this.#reader?.release();
  }

  close(): void {
    this.#reader?.close();
  }
}
