/**
 * The watcher of one mailbox: this loop, and parts with one job each.
 * - session.ts: opens the connection, EXAMINE, and says where to start (resync.ts plans it: a first
 *   start, going on after the checkpoint, or reading again after a renumbering);
 * - mail-source.ts: one round of reading (on which connection, UID SEARCH, mail that used up its
 *   attempts set aside, the rest in UID order up to the first that cannot be read);
 * - reader.ts: the second connection that reads mail IDLE announced (readerConnection);
 * - retry.ts: set-aside mail a person asked to read again;
 * - wait.ts: IDLE with a keepalive, or a poll, until there is mail to look for;
 * - burst.ts: while mail is flowing, NOOP for news instead of waiting for the server's IDLE push;
 * - notify.ts: with NOTIFY, no connection of its own while quiet: a session per wake-up, read to the end;
 * - quiet.ts, lean-idle.ts: without NOTIFY, a quiet mailbox waits on a lean IDLE-only connection of
 *   our own, and a session opens to read when it sees a change;
 * - reconnect-policy.ts: how long to wait after a session ended, and what to say (pure);
 * - unreadable.ts: failed reads counted per UID, and which mail a broken connection blames;
 * - actions.ts: the rules' actions on mail (mark read, flag, label, move), after it is committed.
 */
import type { ImapFlow } from "imapflow";
import { ImapError, MailbellError } from "../errors.ts";
import { actionsWaiting, runDueActions } from "./actions.ts";
import { MemoryCheckpoints } from "./checkpoints.ts";
import { sleep } from "./backoff.ts";
import { BurstPolicy, pollWhileFlowing } from "./burst.ts";
import { classifyImapError, closeQuietly, endpointOf } from "./client.ts";
import { refuseBadOptions, watchContext, type Watch } from "./context.ts";
import { MailSource, readRound, type Position } from "./mail-source.ts";
import type { LeanBaseline } from "./lean-idle.ts";
import type { ReadingSlot } from "./notify.ts";
import { checkpointStep } from "./ours.ts";
import { handOverIn, startQuietly, startsQuietly, waitQuietly, type QuietEnd } from "./quiet.ts";
import { openReader, ReaderConnection } from "./reader.ts";
import { givesUp, reconnectPlan } from "./reconnect-policy.ts";
import { retriesAsked, retrySetAside, retryWaiting } from "./retry.ts";
import { createWatchingClient, openMailbox, reconcile } from "./session.ts";
import type { WatchedMail, WatchOptions } from "./types.ts";
import { blameRead } from "./unreadable.ts";
import { ConnectionEvents, waitForMail } from "./wait.ts";

export type { WatchedMail, WatchEvent, WatchOptions } from "./types.ts";

/** How long a connection must last before reconnect delays start again from the shortest. */
const healthyAfterMs = 60_000;

/**
 * Watches one mailbox with IDLE and yields every new message exactly in UID order, reconnecting
 * with backoff and catching up from the checkpoint after any interruption. It never throws for
 * connection trouble (that is reported through onEvent and the logger and retried) unless
 * failFast asks it to throw the ImapError retrying cannot fix; it ends when `signal` aborts or the
 * consumer stops iterating. It throws a StateError (with `store` and
 * `cause`) when the checkpoint store fails, on load or on save alike, and a UsageError at the
 * start for options that cannot work (an empty host, user or mailbox, a port out of range, commit
 * "manual" without a checkpoints store).
 */
export async function* watchMailbox(options: WatchOptions): AsyncGenerator<WatchedMail, void, undefined> {
  refuseBadOptions(options);
  const checkpoints = options.checkpoints ?? new MemoryCheckpoints();
  const commitAuto = (options.commit ?? "auto") === "auto";
  for await (const batch of watchMailboxBatches({ ...options, checkpoints })) {
    for (const watched of batch) {
      yield watched;
      if (commitAuto) await checkpointStep(checkpoints, "save the checkpoint", watched, () => checkpoints.save(watched.account, watched.mailbox, watched.checkpoint));
      if (options.signal?.aborted) return;
    }
  }
}

/**
 * watchMailbox() a FETCH round at a time: each array holds the mail read by one round (one mail
 * when IDLE announces one, up to a hundred during a catch-up), so a consumer can store a whole
 * round in one transaction. With commit "auto" the checkpoint moves past a round when the next is
 * asked for.
 */
export async function* watchMailboxBatches(options: WatchOptions): AsyncGenerator<WatchedMail[], void, undefined> {
  const w = watchContext(options);
  const st: LoopState = { refusedLast: false, attempt: 0, openedBefore: false, woken: false, renumberedAtOnce: 0, catchUp: true };
  while (!w.signal.aborted) {
    // A session opened for a wake-up is a round of reading, not a reconnect: said at debug only.
    if (!st.woken) w.emit({ type: "connecting" });
    const ended = (await quietStart(w, st)) ?? (yield* sessionStep(w, st));
    if (ended === "stop") return;
    if (ended === "next") continue;
    await afterFailure(w, st, ended);
  }
}

/** What the watch loop carries from one connection to the next. */
interface LoopState {
  /** The last login was refused: the next asks the credentials afresh. */
  refusedLast: boolean;
  /** The backoff's attempt count for the next connection's end (reconnect-policy.ts). */
  attempt: number;
  /** This mailbox was opened once (failFast: "first-login" gives up only before). */
  openedBefore: boolean;
  /** The next session reads after a wake-up (NOTIFY, a lean connection's change, a given slot). */
  woken: boolean;
  /** UIDNEXT as the lean connection saw it before it woke a session. */
  wakeUidNext?: number;
  /** What the last session that handed over had seen and read: a lean start after a reconnect compares with it. */
  lastBaseline?: { baseline: LeanBaseline; lastUid: number };
  /** Lean connections in a row that found the mailbox renumbered at once (a server that renumbers per connection). */
  renumberedAtOnce: number;
  /** The next session's first round reads mail that built up unwatched. */
  catchUp: boolean;
}

/** How a connection ended that the reconnect plan looks at. */
interface ConnectionEnd {
  failure: ImapError | undefined;
  opened: boolean;
  watchedForMs: number | undefined;
}

/** The loop goes on ("next"), returns ("stop"), or plans a reconnect after a connection ended. */
type StepEnd = "stop" | "next" | ConnectionEnd;

/** A start on a lean connection; undefined when a session is to open instead. */
async function quietStart(w: Watch, st: LoopState): Promise<StepEnd | undefined> {
  // Nothing to read since the checkpoint: no imapflow session at all (half the memory, one login).
  if (st.woken || !startsQuietly(w)) return undefined;
  const quiet = await startQuietly(w, st.refusedLast, st.lastBaseline);
  return quiet.why === "session" ? undefined : quietStep(w, st, quiet);
}

/** What follows a lean connection's end: a session to read, a new start, or the reconnect plan. */
function quietStep(w: Watch, st: LoopState, quiet: QuietEnd): StepEnd {
  if (quiet.why === "stopped") return "stop";
  // A lean connection that fails goes through the same plan as a session; the next start catches up.
  if (quiet.why === "failed") return { failure: quiet.failure, opened: quiet.opened, watchedForMs: quiet.watchedForMs };
  st.refusedLast = false;
  st.attempt = 0;
  st.openedBefore = true;
  st.woken = quiet.why === "read";
  // Mail the lean connection was told of as it came is no catch-up; mail found as a (re)start's lean connection opened is.
  st.catchUp = quiet.why !== "read" || quiet.atStart === true;
  if (quiet.why === "unsupported") w.quiet = "imapflow";
  else if (quiet.why === "read") st.wakeUidNext = quiet.uidNext;
  st.renumberedAtOnce = quiet.why === "read" && quiet.renumbered ? st.renumberedAtOnce + 1 : 0;
  if (st.renumberedAtOnce >= 2) {
    // Each connection sees another UIDVALIDITY: every handover would wake a session at once, forever.
    w.log.warn({}, "the server gives each connection another UIDVALIDITY: this mailbox keeps its reading connection open while quiet (as watch.quietConnection: imapflow)");
    w.quiet = "imapflow";
  }
  return "next";
}

/** A session on an imapflow connection, and what follows it: a wake-up to wait for, a lean connection, or the reconnect plan. */
async function* sessionStep(w: Watch, st: LoopState): AsyncGenerator<WatchedMail[], StepEnd, undefined> {
  const s: SessionParts = { woken: st.woken, catchUp: st.catchUp, wakeUidNext: st.wakeUidNext };
  st.woken = false;
  st.catchUp = true;
  st.wakeUidNext = undefined;
  const ended = yield* runSession(w, s, st.refusedLast);
  if (w.signal.aborted) return "stop";
  if (ended === "give-slot") {
    // Another folder waited for this reading connection: queue behind it, then read on
    // (after the retry pause the round asked for, without the connection).
    st.refusedLast = false;
    st.attempt = 0;
    st.woken = true;
    st.catchUp = false;
    if (s.position?.pauseWithoutSlotMs !== undefined) await sleep(s.position.pauseWithoutSlotMs, w.signal);
    return "next";
  }
  if (ended === "wait-for-wakeup" && s.position) {
    // Read to the end and quiet: no connection until the notifier says the folder changed.
    st.refusedLast = false;
    st.attempt = 0;
    st.catchUp = await waitForWakeup(w, s.position.uidValidity, s.wakeCount ?? 0);
    st.woken = true;
    return "next";
  }
  const failure = typeof ended === "string" ? undefined : ended;
  const watchedForMs = s.watchingSince === undefined ? undefined : Date.now() - s.watchingSince;
  const opened = s.opened === true;
  if (s.handover && failure === undefined) {
    // Read to the end and quiet: a lean connection waits until there is something to read. The
    // closed session's parts must not stay reachable meanwhile (its client is ~20 kB of heap).
    st.lastBaseline = { baseline: s.handover, lastUid: s.position?.lastUid ?? 0 };
    // A lean connection failing next must not hide that this mailbox was opened (failFast: "first-login").
    st.openedBefore ||= opened;
    s.client = s.events = s.source = undefined;
    return quietStep(w, st, await waitQuietly(w, s.handover));
  }
  return { failure, opened, watchedForMs };
}

/** watchSession with its cleanup: the parts closed and the reading slot given back, however it ended. */
async function* runSession(w: Watch, s: SessionParts, refusedLast: boolean): AsyncGenerator<WatchedMail[], SessionEnd, undefined> {
  let failure: ImapError | undefined;
  // While NOTIFY may be on, sessions share the account's reading connections (notify.ts).
  s.slot = w.options.wakeups ? await w.options.wakeups.slot(w.signal) : undefined;
  try {
    const ended = yield* watchSession(w, s, refusedLast);
    if (typeof ended === "string") return ended;
    failure = ended;
  } catch (err) {
    failure = sessionFailure(w, s, err);
  } finally {
    s.source?.close();
    s.events?.dispose();
    // LOGOUT only on a healthy connection: on a dead one it would just wait for its timeout.
    if (s.client) await closeQuietly(s.client, failure === undefined);
    s.slot?.release();
  }
  return failure;
}

/** After a connection ended: give up (failFast), or say why and wait as the reconnect plan says. */
async function afterFailure(w: Watch, st: LoopState, ended: ConnectionEnd): Promise<void> {
  const { baseMs = 1000, capMs = 60_000, authFailureMs = 5 * 60_000 } = w.options.reconnect ?? {};
  const failFast = w.options.failFast ?? "never";
  const { failure, opened, watchedForMs } = ended;
  const canRefreshCredentials = w.options.account.credentials !== undefined;
  st.openedBefore ||= opened;
  const plan = reconnectPlan({ failure, refusedLast: st.refusedLast, canRefreshCredentials, opened, openedBefore: st.openedBefore, watchedForMs, attempt: st.attempt, random: Math.random() }, { baseMs, capMs, authFailureMs, healthyAfterMs });
  if (givesUp(failure, failFast, { openedBefore: st.openedBefore, promptRetry: plan.promptRetry })) {
    w.log.error({ err: failure?.message, failFast }, failFast === "first-login" ? "giving up: the login was refused and this mailbox was never opened (failFast first-login); fix the credentials and start again" : "giving up: retrying cannot fix this (failFast)");
    throw failure;
  }
  ({ refused: st.refusedLast, attempt: st.attempt } = plan);
  if (!w.options.logger && !w.options.onEvent) warnRetriesUnseen();
  w.log[plan.log.level]({ err: plan.log.err, retryInMs: plan.retryInMs }, plan.log.message);
  w.emit({ type: "disconnected", error: failure, retryInMs: plan.retryInMs });
  await sleep(plan.retryInMs, w.signal);
}

let retriesUnseenWarned = false;

/**
 * Said once per process: without a logger or onEvent, failures are retried without a trace (a
 * wrong password waits five minutes between tries), and a caller would see only that no mail comes.
 */
function warnRetriesUnseen(): void {
  if (retriesUnseenWarned) return;
  retriesUnseenWarned = true;
  process.emitWarning("mailbell: a watcher's connection failed and is retried in silence, as neither logger nor onEvent was passed to watchMailbox. Pass logger (console will do) or onEvent to see why; failFast throws the failures retrying cannot fix.", { code: "MAILBELL_SILENT_RETRIES" });
}

/** What a session set up, for the cleanup and the failure's blame after it ends. */
interface SessionParts {
  client?: ImapFlow;
  events?: ConnectionEvents;
  source?: MailSource;
  position?: Position;
  /** The mailbox was opened (login and SELECT or EXAMINE succeeded). */
  opened?: boolean;
  /** When the session started really watching (in IDLE or polling): only that earns a fresh backoff. */
  watchingSince?: number;
  /** This session reads after a NOTIFY wake-up (its start is logged at debug). */
  woken?: boolean;
  /** Its first round reads mail that built up unwatched (not after a NOTIFY STATUS or a hand-over). */
  catchUp: boolean;
  /** The folder's NOTIFY wake-up count as the last round started (notify.ts). */
  wakeCount?: number;
  /** UIDNEXT as the lean connection saw it before this session was woken: mail below it existed then. */
  wakeUidNext?: number;
  /** The session read to the end and is quiet: what the lean connection compares against. */
  handover?: LeanBaseline;
  /** The account's reading connection this session holds while NOTIFY may be on (notify.ts). */
  slot?: ReadingSlot;
}

/** How a session ended: its connection's error (undefined when it closed cleanly or we stop), or what comes next. */
type SessionEnd = ImapError | undefined | "wait-for-wakeup" | "give-slot" | "hand-over";

/** One connection's life: open, read, wait, read… until it closes (its error returned) or we stop. */
async function* watchSession(w: Watch, s: SessionParts, refusedLast: boolean): AsyncGenerator<WatchedMail[], SessionEnd, undefined> {
  const live = await openSession(w, s, refusedLast);
  while (!w.signal.aborted && live.events.open) {
    const next = yield* sessionRound(w, s, live);
    if (next === "again") continue;
    if (next !== "wait") return next.end;
    const waited = await waitForMore(w, s, live);
    if (waited !== "again") return waited;
  }
  return live.events.closeError ? classifyImapError(live.events.closeError, w.account, w.mailbox, endpointOf(w.options.account)) : undefined;
}

/** A session's connection, mailbox and reading state, from its opening to its end. */
interface LiveSession {
  client: ImapFlow;
  events: ConnectionEvents;
  source: MailSource;
  pos: Position;
  /** The mailbox's path as opened (the lean connection's hand-over names it). */
  path: string;
  /** Every mail below this UID existed when this session looked first, so its rounds saw it. */
  seenUidNext: number;
  /** No IDLE: the server is polled. */
  polling: boolean;
  /** Mail a person asked to read again (`mailbell unreadable retry`): looked for now and at each keepalive. */
  retryDue: boolean;
  burst: BurstPolicy;
  lastMailAt: number | undefined;
}

/** Logs in, opens the mailbox, settles where to read from (the checkpoint against the server's state). */
async function openSession(w: Watch, s: SessionParts, refusedLast: boolean): Promise<LiveSession> {
  const client = (s.client = await createWatchingClient(w, refusedLast));
  const events = (s.events = new ConnectionEvents(client, w.signal));
  const opened = await openMailbox(w, client);
  s.opened = true;
  const seenUidNext = Math.max(Number(opened.uidNext) || 0, s.wakeUidNext ?? 0);
  const start = await reconcile(client, opened, w, s.woken === true);
  const polling = !client.capabilities.has("IDLE");
  // With NOTIFY the notifier tells of new mail: no IDLE needed.
  if (polling && (w.options.wakeups?.mode ?? "off") === "off") w.log.warn({ pollMs: w.pollMs }, "the server does not support IDLE; looking for new mail every pollMs instead of being told at once");
  const pos: Position = (s.position = { ...start, firstRound: s.catchUp, reading: undefined });
  w.failures.under(pos.uidValidity);
  const reader = w.options.readerConnection && !polling ? new ReaderConnection(() => openReader(w, pos.uidValidity), w.keepaliveMs) : undefined;
  const source = (s.source = new MailSource(client, reader, w.log));
  return { client, events, source, pos, path: opened.path, seenUidNext, polling, retryDue: true, burst: new BurstPolicy(), lastMailAt: undefined };
}

/**
 * One round: due actions, mail asked to be read again, then new mail; and while mail is flowing,
 * a NOOP's reply instead of IDLE. "wait": nothing more for now; "again": read again at once.
 */
async function* sessionRound(w: Watch, s: SessionParts, live: LiveSession): AsyncGenerator<WatchedMail[], "again" | "wait" | { end: SessionEnd }, undefined> {
  const { client, events, source, pos } = live;
  // What a crash left undone (at the start), and what came due meanwhile.
  if (await runDueActions(w, client, pos.uidValidity)) source.watchingIdles = false;
  events.roundStarts();
  if (live.retryDue && !pos.resync) {
    live.retryDue = false;
    const asked = await retriesAsked(w, pos.uidValidity, pos.lastUid);
    if (asked.length > 0) {
      yield* retrySetAside(w, client, asked, pos);
      return "again";
    }
  }
  const readUpTo = pos.lastUid;
  s.wakeCount = w.options.wakeups?.count(w.mailbox);
  const end = yield* readRound(w, source, pos, events);
  if (pos.lastUid > readUpTo) {
    live.burst.mailRead((live.lastMailAt = performance.now()));
    s.slot?.mailRead();
  }
  if (end === "stopped") return { end: undefined };
  // With NOTIFY, another folder waiting for a reading connection gets this one after the round.
  const giveSlot = s.slot?.handOver() === true;
  if (end === "again" || events.news) return giveSlot || pos.pauseWithoutSlotMs !== undefined ? { end: "give-slot" } : "again";
  // The round's mail is committed now (the consumer asked for more): its actions, before waiting.
  if (await runDueActions(w, client, pos.uidValidity)) source.watchingIdles = false;
  if (events.news) return giveSlot ? { end: "give-slot" } : "again";
  if (!live.polling && !giveSlot && live.burst.flowing(performance.now())) {
    // Mail is flowing: a NOOP's reply tells of the next mail at once, IDLE only at the server's push.
    source.watchingIdles = false;
    s.watchingSince ??= Date.now();
    if ((await pollWhileFlowing(client, events, live.burst, { ...w, where: w, giveWay: () => s.slot?.handOver() === true })) !== "quiet") return "again";
  }
  return "wait";
}

/**
 * The mailbox is read to the end: wait for more on this connection (IDLE, or polling), stay a
 * little after recent mail, or end the session and let the lean connection or NOTIFY watch.
 */
async function waitForMore(w: Watch, s: SessionParts, live: LiveSession): Promise<"again" | "wait-for-wakeup" | "hand-over"> {
  const { client, events, source, pos, polling } = live;
  const first = s.watchingSince === undefined;
  s.watchingSince ??= Date.now();
  // With NOTIFY the account's notifier watches this folder: close this connection (read to the end).
  if (w.options.wakeups && w.options.wakeups.mode !== "off") return "wait-for-wakeup";
  if (!polling && w.quiet === "lean") {
    const waitMs = handOverIn(live.lastMailAt, performance.now(), w.quietAfterMailMs);
    if (waitMs <= 0) {
      s.handover = { path: live.path, uidValidity: pos.uidValidity, uidNext: Math.max(live.seenUidNext, pos.lastUid + 1) };
      return "hand-over";
    }
    // Mail came a while ago: stay a little, in case more follows.
    if (first) w.emit({ type: "idle" });
    const idled = await events.idleUntilChange(Math.min(waitMs, w.keepaliveMs));
    source.watchingIdles = idled === "change";
    // As at a keepalive: the next round looks for set-aside mail a person asked to read again.
    if (idled === "keepalive") live.retryDue = true;
    return "again";
  }
  const woken = await waitForMail(client, events, { ...w, polling, first, retryWaiting: async () => (await retryWaiting(w, pos.uidValidity)) || (await actionsWaiting(w)), where: w });
  live.retryDue ||= woken.retryDue;
  source.watchingIdles = woken.why === "mail";
  return "again";
}

/** Why a session failed; our own failures (the state database, a bug) are thrown on, not retried. */
function sessionFailure(w: Watch, s: SessionParts, err: unknown): ImapError {
  // Retrying them as a dropped connection would hide them behind "reconnecting" forever. The caller reports them.
  if (err instanceof MailbellError && !(err instanceof ImapError)) throw err;
  // A command cut off by a connection failure rejects with NoConnection; the failure itself
  // (a literal over our limit, an endless line) came as the client's error event.
  const cause = (err as { code?: string }).code === "NoConnection" && s.events?.closeError ? s.events.closeError : err;
  const failure = classifyImapError(cause, w.account, w.mailbox, endpointOf(w.options.account));
  if (s.position?.reading) blameRead(w.failures, s.position.reading, failure, s.client?.byeReason, w.log);
  w.actionBreaks.broke();
  return failure;
}

/**
 * Waits for the notifier's word that the folder changed since the last round started (or that
 * NOTIFY is off, then the next session IDLEs as usual). Every keepaliveMs it looks whether a person
 * asked to read set-aside mail again or actions came due, as the keepalive of an IDLE would.
 * True when the next session's first round is a catch-up.
 */
async function waitForWakeup(w: Watch, uidValidity: number, since: number): Promise<boolean> {
  const wakeups = w.options.wakeups!;
  w.emit({ type: "idle" });
  for (;;) {
    const why = await wakeups.wait(w.mailbox, since, w.keepaliveMs, w.signal);
    if (why !== "timeout") break;
    // The folder has no connection of its own: it is watched while the notifier's line is (health
    // would call it stale after two quiet keepalive periods otherwise).
    if (wakeups.aliveWithin(w.keepaliveMs + w.keepaliveTimeoutMs)) w.emit({ type: "alive" });
    if ((await retryWaiting(w, uidValidity)) || (await actionsWaiting(w))) break;
  }
  // Mail that came while the notifier was away built up unseen: a catch-up, as after a reconnect.
  return wakeups.missedSince(w.mailbox, since) || wakeups.mode === "off";
}
