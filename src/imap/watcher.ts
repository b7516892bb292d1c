import type { ImapFlow } from "imapflow";
import { ImapError, InternalError, MailbellError, StateError } from "../errors.ts";
import { silentLogger, type Logger } from "../log.ts";
import type { NormalizedMail } from "../mail/types.ts";
import { MemoryCheckpoints, type Checkpoint, type CheckpointStore } from "../store/checkpoints.ts";
import { Backoff, sleep } from "./backoff.ts";
import { accountName, classifyImapError, createImapClient, replyLimits, type ImapAccount, type ReplyLimits } from "./client.ts";
import { defaultMaxHeaderBytes, fetchBatches, listNewUids, listUidsSince, type DecodeParts, type FetchedMessage, type FetchOptions, type ReadRound, type UnreadMail } from "./fetch.ts";
import { lastUidOf, uidValidityOf } from "./mailbox-end.ts";
import { MemorySetAside, ReadFailures, type SetAsideStore } from "./unreadable.ts";

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
  /** Stop watching: the iterator ends after the message in hand. */
  signal?: AbortSignal;
  logger?: Logger;
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
   * Without it this watcher connects at once.
   */
  connectGate?: { run<T>(connect: () => Promise<T>, signal?: AbortSignal): Promise<T> };
}

export type WatchEvent =
  | { type: "connecting" }
  | { type: "connected"; uidValidity: number; lastUid: number }
  | { type: "idle" }
  /** The server answered a keepalive NOOP: the connection is alive. */
  | { type: "alive" }
  /** The server has no IDLE; we look for new mail every intervalMs instead. */
  | { type: "polling"; intervalMs: number }
  | { type: "uidvalidity-changed"; previous: number; current: number }
  /** A mail could not be read after maxReadAttempts tries and was set aside; the mailbox goes on. */
  | { type: "set-aside"; uidValidity: number; uid: number; reason: string; attempts: number }
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
  /** The checkpoint that acknowledges this message; save it for commit: "manual". */
  checkpoint: Checkpoint;
  /**
   * Set for mail found right after (re)connecting, which waited while nobody watched: `index` of
   * `count` in this catch-up (`id` tells catch-ups apart), so a long backlog can be summarised.
   */
  catchUp?: { id: string; index: number; count: number };
}

/** How long a connection must last before reconnect delays start again from the shortest. */
const healthyAfterMs = 60_000;
const defaultKeepaliveMs = 120_000;
const defaultKeepaliveTimeoutMs = 15_000;

/**
 * Watches one mailbox with IDLE and yields every new message exactly in UID order, reconnecting
 * with backoff and catching up from the checkpoint after any interruption. It never throws for
 * connection trouble (that is reported through onEvent and the logger and retried); it ends when
 * `signal` aborts or the consumer stops iterating.
 */
export async function* watchMailbox(options: WatchOptions): AsyncGenerator<WatchedMail, void, undefined> {
  const checkpoints = options.checkpoints ?? new MemoryCheckpoints();
  const commitAuto = (options.commit ?? "auto") === "auto";
  for await (const batch of watchMailboxBatches({ ...options, checkpoints })) {
    for (const watched of batch) {
      yield watched;
      if (commitAuto) await checkpoints.save(watched.account, watched.mailbox, watched.checkpoint);
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
  const account = accountName(options.account);
  const mailbox = options.mailbox;
  const log = (options.logger ?? silentLogger).child({ account, mailbox });
  const checkpoints = options.checkpoints ?? new MemoryCheckpoints();
  const commitAuto = (options.commit ?? "auto") === "auto";
  const signal = options.signal ?? new AbortController().signal;
  // An observer's failure (announcing set-aside mail, a metric) must never pass for connection trouble.
  const emit = (event: WatchEvent): void => {
    try {
      options.onEvent?.(event);
    } catch (err) {
      log.error({ err: (err as Error).message, event: event.type }, "an onEvent observer failed; the watcher goes on");
    }
  };
  const backoff = new Backoff({ baseMs: options.reconnect?.baseMs ?? 1000, capMs: options.reconnect?.capMs ?? 60_000 });
  const failures = new ReadFailures(options.maxReadAttempts ?? 3);
  const setAside = options.setAside ?? new MemorySetAside();
  const authFailureMs = options.reconnect?.authFailureMs ?? 5 * 60_000;
  const keepaliveMs = options.keepaliveMs ?? defaultKeepaliveMs;
  const keepaliveTimeoutMs = options.keepaliveTimeoutMs ?? defaultKeepaliveTimeoutMs;
  const pollMs = options.pollMs ?? 60_000;

  let refusedLast = false;
  while (!signal.aborted) {
    emit({ type: "connecting" });
    let client: ImapFlow | undefined;
    let session: Session | undefined;
    let reader: ReaderConnection | undefined;
    // A second connection that cannot be opened or fails is given up until the next reconnect.
    const readerFailed = (err: unknown, doing: "open" | "read"): ImapFlow => {
      if (err instanceof MailbellError && !(err instanceof ImapError)) throw err;
      log.warn({ err: (err as Error).message }, `could not ${doing} on the second connection; reading on the watching connection instead`);
      reader?.close();
      reader = undefined;
      return client!;
    };
    let failure: ImapError | undefined;
    // Where this session got to, and what it was reading: a connection that breaks while reading blames that mail.
    let lastUid = 0;
    let reading: Reading | undefined;
    // When this session started really watching (in IDLE or polling): only that earns a fresh backoff.
    let watchingSince: number | undefined;
    try {
      const credentials = options.account.credentials ? await options.account.credentials(refusedLast) : { pass: options.account.pass ?? "" };
      // A connection that goes silent during a FETCH is given up after socketTimeout; while idle,
      // the keepalive NOOP notices sooner.
      client = createImapClient(options.account, { logger: log, idleRestartMs: options.idleRestartMs, socketTimeoutMs: 2 * keepaliveMs + keepaliveTimeoutMs, limits: limitsOf(options) }, credentials);
      session = new Session(client, signal);
      const fresh = client;
      const open = async () => {
        await fresh.connect();
        return fresh.mailboxOpen(mailbox, { readOnly: true });
      };
      const opened = await (options.connectGate ? options.connectGate.run(open, signal) : open());
      const uidValidity = uidValidityOf(opened, { account, mailbox });
      let checkpoint = await ours("load the checkpoint", () => checkpoints.load(account, mailbox));
      // After a renumbering: the old checkpoint, and the arrival date from which to read again.
      let recovery: { previous: Checkpoint; since: Date } | undefined;
      if (checkpoint && checkpoint.uidValidity !== uidValidity) {
        // The server renumbered the mailbox: old UIDs mean nothing now. Re-announcing everything
        // would flood the channel; mail that may have arrived while we were away (since a day
        // before the last checkpoint) is read again, and the consumer drops what it already had by
        // its identity (the daemon: src/mail/identity.ts). The new checkpoint is saved only after
        // that, so a crash repeats the recovery.
        const since = checkpoint.savedAt !== undefined ? new Date(checkpoint.savedAt - 86_400_000) : undefined;
        log.warn(
          { previous: checkpoint.uidValidity, current: uidValidity, since: since?.toISOString() },
          since ? "UIDVALIDITY changed: the server renumbered this mailbox; reading again what arrived since the last checkpoint, then going on from its end" : "UIDVALIDITY changed: the server renumbered this mailbox; starting from its current end",
        );
        emit({ type: "uidvalidity-changed", previous: checkpoint.uidValidity, current: uidValidity });
        if (since) recovery = { previous: checkpoint, since };
        checkpoint = undefined;
      }
      if (!checkpoint) {
        checkpoint = { uidValidity, lastUid: await lastUidOf(client, opened, { account, mailbox }) };
        if (!recovery) {
          await ours("save the checkpoint", () => checkpoints.save(account, mailbox, checkpoint!));
          log.info({ uidValidity, lastUid: checkpoint.lastUid }, "first start on this mailbox: announcing mail from now on");
        }
      }
      log.info({ uidValidity, lastUid: checkpoint.lastUid }, "watching");
      emit({ type: "connected", uidValidity, lastUid: checkpoint.lastUid });

      const polling = !client.capabilities.has("IDLE");
      if (polling) log.warn({ pollMs }, "the server does not support IDLE; looking for new mail every pollMs instead of being told at once");
      lastUid = checkpoint.lastUid;
      failures.under(uidValidity);
      let firstRound = true;
      // Mail a person asked to read again (`mailbell unreadable retry`): looked for now and at each keepalive.
      let retryDue = true;
      // True while the watching connection has sent nothing since IDLE: mail it announces can be read on the reader.
      let watchingIdles = false;
      reader = options.readerConnection && !polling ? new ReaderConnection(() => openReader(options, uidValidity, log), keepaliveMs) : undefined;
      const fetchOptions = {
        maxTextBytes: options.maxTextBytes ?? 256 * 1024,
        maxHeaderBytes: options.maxHeaderBytes ?? defaultMaxHeaderBytes,
        decode: options.decode ? bugIfThrows("decoding mail", options.decode) : undefined,
        onGone: (uids: number[]) => log.warn({ uids }, "mail expunged or moved before it could be read (the server no longer lists it); left out"),
        ...(options.needsBody ? { needsBody: bugIfThrows("asking the rules whether to read the body", (mail: NormalizedMail, m: { internalDate: Date }) => options.needsBody!(mail, { account, mailbox, receivedAt: m.internalDate })) } : {}),
      };
      const toWatched = (fetched: FetchedMessage, ack: Checkpoint, catchUp: { id: string; count: number; index: number } | undefined): WatchedMail => {
        const { uid, internalDate, size, mail, bodyRead } = fetched;
        if (mail.warnings.length > 0) log.warn({ uid, warnings: mail.warnings }, "message read with warnings");
        return { account, mailbox, uidValidity, uid, receivedAt: internalDate, size, mail, bodyRead, checkpoint: ack, ...(catchUp ? { catchUp } : {}) };
      };
      /** Records a mail that used up its attempts, moves the checkpoint past it and says so loudly. */
      const setAsideMail = async (uid: number, why: { attempts: number; reason: string }): Promise<void> => {
        log.error(
          { uid, uidValidity, attempts: why.attempts, reason: why.reason },
          `mail UID ${uid} could not be read after ${why.attempts} attempts; set aside so the mail after it is not held up. \`mailbell unreadable\` lists it and can try it again`,
        );
        await ours("record mail set aside", () => setAside.record(account, mailbox, { uidValidity, uid, reason: why.reason, attempts: why.attempts }));
        failures.markSetAside(uid);
        // Mail set aside during a renumbering recovery lies below the new end: nothing to move.
        if (uid > lastUid) {
          lastUid = uid;
          await ours("save the checkpoint", () => checkpoints.save(account, mailbox, { uidValidity, lastUid }));
        }
        emit({ type: "set-aside", uidValidity, uid, reason: why.reason, attempts: why.attempts });
      };
      while (!signal.aborted && session.open) {
        session.dirty = false;
        const recovering = recovery;
        recovery = undefined;
        if (retryDue && !recovering) {
          retryDue = false;
          // A UID above the checkpoint was recorded but not passed (a crash in between): the normal round reads it.
          const asked = (await ours("list mail set aside", () => setAside.retryRequested(account, mailbox, uidValidity))).filter((uid) => uid <= lastUid);
          if (asked.length > 0) {
            yield* retrySetAside(client, [...asked], { fetchOptions, setAside, log, toWatched, ack: { uidValidity, lastUid }, where: { account, mailbox, uidValidity } });
            session.dirty = true;
            continue;
          }
        }
        // Mail announced while idling is read on the second connection, so this one never leaves
        // IDLE and the server's next push is not held back by our DONE and IDLE again.
        const onReader = reader !== undefined && watchingIdles && !recovering;
        const from: ImapFlow = onReader ? await reader!.get().catch((err: unknown) => readerFailed(err, "open")) : client;
        // Any command on the watching connection ends its IDLE.
        if (from === client) watchingIdles = false;
        let uids: number[];
        // How many messages the reader knew of when it started reading: see after the round.
        let readerKnew = 0;
        // The first mail this round could not read, if any: the round stops before it.
        let stoppedAt: UnreadMail | undefined;
        try {
          // The server adds new mail to a session's view at commands like NOOP, not at a SEARCH
          // (RFC 3501 §7.4.1): without it the reader would not see what the watching one was told of.
          if (from !== client) {
            await from.noop();
            // Seldom, the reader's view is still behind what the watching connection was told
            // (the server had not synced it yet): then this round reads on the watching one, or the
            // mail would wait for the next push.
            if ((from.mailbox ? from.mailbox.exists : 0) < (client.mailbox ? client.mailbox.exists : 0)) {
              log.debug({ reader: from.mailbox ? from.mailbox.exists : 0, watching: client.mailbox ? client.mailbox.exists : 0 }, "the reader connection is behind; reading on the watching connection");
              watchingIdles = false;
              session.dirty = true;
              continue;
            }
            readerKnew = from.mailbox ? from.mailbox.exists : 0;
          }
          // UID SEARCH first, also for the few mails IDLE just announced: only UIDs the server
          // listed are ever asked for, and a FETCH reply for any other UID is not taken as read.
          uids = recovering ? await listUidsSince(from, recovering.since, lastUid) : await listNewUids(from, lastUid);
          // Mail that used up its attempts: at the head of new mail, or anywhere in a recovery (which
          // moves no checkpoint, so it may leave out mail in the middle).
          if (recovering) {
            for (const uid of uids.filter((u) => failures.exhausted(u))) await setAsideMail(uid, failures.exhausted(uid)!);
            uids = uids.filter((u) => !failures.wasSetAside(u));
          } else while (uids.length > 0 && failures.exhausted(uids[0]!)) await setAsideMail(uids[0]!, failures.exhausted(uids.shift()!)!);
          const catchUp = firstRound && uids.length > 0 ? { id: `${uidValidity}.${lastUid}`, count: uids.length } : undefined;
          firstRound = false;
          let index = 0;
          // After a FETCH broke the connection, one mail per FETCH finds the mail that breaks it.
          const narrowing = failures.narrowing;
          // Everything up to `after` was handed over: only mail above it can be to blame.
          reading = { uids, narrowing, after: recovering ? 0 : lastUid };
          for await (const fetched of readInOrder(from, uids, fetchOptions, narrowing)) {
            if (fetched.stray.length > 0) log.warn({ answered: fetched.stray.slice(0, 20), asked: describeUids(uids) }, "the server answered FETCH for UIDs that were not asked for (a server bug); ignored");
            stoppedAt = fetched.unread[0];
            const ready = stoppedAt ? fetched.mails.filter((m) => m.uid < stoppedAt!.uid) : fetched.mails;
            if (ready.length > 0) {
              // A mail read again after a renumbering acknowledges nothing new: the old checkpoint stands.
              yield ready.map((m) => toWatched(m, recovering ? recovering.previous : { uidValidity, lastUid: m.uid }, catchUp ? { ...catchUp, index: index++ } : undefined));
              for (const m of ready) failures.forget(m.uid);
              reading.after = ready.at(-1)!.uid;
              if (!recovering) lastUid = ready.at(-1)!.uid;
              // A long catch-up talks to the server all the time; say so, or health would call it stale.
              emit({ type: "alive" });
              if (signal.aborted) return;
            }
            if (stoppedAt) break;
          }
          reading = undefined;
          failures.narrowing = false;
          // Mail that arrived while the reader read is announced to it when its FETCH ends; the
          // watching connection hears of it only at its next push, up to 500 ms later (Dovecot):
          // read it now.
          if (from !== client && (from.mailbox ? from.mailbox.exists : 0) > readerKnew) session.dirty = true;
        } catch (err) {
          if (from === client) throw err;
          reading = undefined;
          // The second connection failed: read again on this one, from where we got to.
          readerFailed(err, "read");
          session.dirty = true;
          continue;
        } finally {
          if (from !== client) reader?.release();
        }
        if (recovering && !stoppedAt) {
          await ours("save the checkpoint", () => checkpoints.save(account, mailbox, { uidValidity, lastUid }));
          session.dirty = true; // and now what arrived since SELECT
          continue;
        }
        if (stoppedAt) {
          // A recovery that stopped at a mail it could not read is done again from its start (what
          // it handed over already is not posted twice), without the mail once set aside.
          if (recovering) recovery = recovering;
          // The server has the mail but did not hand it over (or answered NO): try again a few
          // times, a little later each time, then set it aside and go on.
          const used = failures.failed(stoppedAt.uid, stoppedAt.reason);
          if (used) await setAsideMail(stoppedAt.uid, failures.exhausted(stoppedAt.uid)!);
          else {
            const attempts = failures.attempts(stoppedAt.uid);
            log.warn({ uid: stoppedAt.uid, attempts, of: failures.maxAttempts, reason: stoppedAt.reason }, "mail could not be read; trying again");
            await session.pause(Math.min(1000 * 2 ** (attempts - 1), 30_000), { ignoreMail: true });
          }
          session.dirty = true;
          continue;
        }
        // UIDs that vanished between SEARCH and FETCH (expunged, moved; confirmed by UID SEARCH) are passed over for good.
        const highest = uids.at(-1);
        if (highest !== undefined && highest > lastUid) {
          lastUid = highest;
          if (commitAuto) await ours("save the checkpoint", () => checkpoints.save(account, mailbox, { uidValidity, lastUid }));
        }
        if (session.dirty) continue;
        if (polling) {
          if (watchingSince === undefined) {
            watchingSince = Date.now();
            emit({ type: "polling", intervalMs: pollMs });
          }
          // Without IDLE nothing tells us about new mail; the next round's UID SEARCH looks.
          await session.pause(pollMs);
          session.dirty = true;
          retryDue = true;
          emit({ type: "alive" });
          continue;
        }
        watchingSince ??= Date.now();
        emit({ type: "idle" });
        let woken = await session.idleUntilChange(keepaliveMs);
        while (woken === "keepalive") {
          await keepalive(client, keepaliveTimeoutMs, account, mailbox);
          emit({ type: "alive" });
          retryDue = true;
          if (await retryWaiting(setAside, account, mailbox, uidValidity)) session.dirty = true;
          // The NOOP's reply says EXISTS if mail came; otherwise there is nothing to look for, and
          // a UID SEARCH would add a fourth command to every keepalive of every idle mailbox.
          if (session.dirty || !session.open || signal.aborted) break;
          woken = await session.idleUntilChange(keepaliveMs);
        }
        watchingIdles = woken === "change";
      }
      failure = session.closeError ? classifyImapError(session.closeError, account, mailbox) : undefined;
    } catch (err) {
      // Our own failures (the state database, a bug) are not connection trouble: retrying them as a
      // dropped connection would hide them behind "reconnecting" forever. The caller reports them.
      if (err instanceof MailbellError && !(err instanceof ImapError)) throw err;
      // A command cut off by a connection failure rejects with NoConnection; the failure itself
      // (a literal over our limit, an endless line) came as the client's error event.
      const cause = (err as { code?: string }).code === "NoConnection" && session?.closeError ? session.closeError : err;
      failure = classifyImapError(cause, account, mailbox);
      if (reading) blameRead(failures, reading, failure, client?.byeReason, log);
    } finally {
      reader?.close();
      session?.dispose();
      // LOGOUT only on a healthy connection: on a dead one it would just wait for its timeout.
      if (client) await closeQuietly(client, failure === undefined);
    }
    if (signal.aborted) return;
    // A session that watched a while earns a fresh start; one dropped right after SELECT or at IDLE
    // does not, or a server that kicks us at once would see reconnects every second forever.
    if (watchingSince !== undefined && Date.now() - watchingSince >= healthyAfterMs) backoff.reset();
    const authFailed = failure?.code === "IMAP_AUTH";
    // A credential that can change (an OAuth2 token revoked early, a rotated password file) gets
    // one prompt retry with a fresh value before the long wait.
    const promptRetry = authFailed && options.account.credentials !== undefined && !refusedLast;
    refusedLast = authFailed;
    const retryInMs = authFailed && !promptRetry ? Math.max(authFailureMs, backoff.next()) : backoff.next();
    if (promptRetry) log.warn({ err: failure?.message, retryInMs }, "login refused; trying once more with fresh credentials");
    else if (authFailed) log.error({ err: failure?.message, retryInMs }, "login refused; waiting before trying again so the server does not lock the account");
    else if (failure?.code === "IMAP_MAILBOX") log.error({ err: failure.message, retryInMs }, "cannot open the mailbox; will try again");
    else if (failure?.code === "IMAP_SERVER") log.error({ err: failure.message, retryInMs }, "the server's answer cannot be used; will try again on a new connection");
    else log.warn({ err: failure?.message ?? "connection closed", retryInMs }, "disconnected; reconnecting");
    emit({ type: "disconnected", error: failure, retryInMs });
    await sleep(retryInMs, signal);
  }
}

/** The second connection of readerConnection: opened on demand, closed when unused for a while. */
class ReaderConnection {
  readonly #open: () => Promise<ImapFlow>;
  readonly #idleCloseMs: number;
  #client: ImapFlow | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(open: () => Promise<ImapFlow>, idleCloseMs: number) {
    this.#open = open;
    this.#idleCloseMs = idleCloseMs;
  }

  async get(): Promise<ImapFlow> {
    clearTimeout(this.#timer);
    if (this.#client?.usable) return this.#client;
    this.#drop();
    this.#client = await this.#open();
    return this.#client;
  }

  /** Done reading for now: close it unless it is needed again soon (a quiet connection may be cut by the server or a NAT). */
  release(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#drop(), this.#idleCloseMs);
    this.#timer.unref();
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#drop();
  }

  #drop(): void {
    const client = this.#client;
    this.#client = undefined;
    if (client) void closeQuietly(client, true);
  }
}

/** What one reply may make a watcher's connection hold: no more than it asks for, and a margin. */
function limitsOf(options: WatchOptions): ReplyLimits {
  return replyLimits(options.maxHeaderBytes ?? defaultMaxHeaderBytes, options.maxTextBytes ?? 256 * 1024);
}

/** Opens the reader connection on the mailbox; it must see the same UIDVALIDITY as the watching one. */
async function openReader(options: WatchOptions, uidValidity: number, log: Logger): Promise<ImapFlow> {
  const credentials = options.account.credentials ? await options.account.credentials(false) : { pass: options.account.pass ?? "" };
  const keepaliveMs = options.keepaliveMs ?? defaultKeepaliveMs;
  const client = createImapClient(options.account, { logger: log, socketTimeoutMs: keepaliveMs + (options.keepaliveTimeoutMs ?? defaultKeepaliveTimeoutMs), limits: limitsOf(options) }, credentials);
  // A reader that drops between uses is simply opened again; its errors must not crash the process.
  client.on("error", () => {});
  try {
    await client.connect();
    const opened = await client.mailboxOpen(options.mailbox, { readOnly: true });
    if (Number(opened.uidValidity) !== uidValidity) throw new Error(`UIDVALIDITY ${opened.uidValidity} on the second connection, ${uidValidity} on the first`);
    return client;
  } catch (err) {
    client.close();
    throw err;
  }
}

/** The event plumbing of one connection: wakes the loop on new mail, close or abort. */
class Session {
  open = true;
  /** Set when the server announced new mail since the last fetch started. */
  dirty = true;
  closeError: unknown;
  readonly #client: ImapFlow;
  readonly #signal: AbortSignal;
  #wake: (() => void) | undefined;
  readonly #onExists = () => {
    this.dirty = true;
    this.#wake?.();
  };
  readonly #onClose = () => {
    this.open = false;
    this.#wake?.();
  };
  readonly #onError = (err: unknown) => {
    this.closeError ??= err;
  };
  // Stopping must not wait for a greeting or a FETCH that may never come: close the socket. The
  // mail already handed out is not affected, and unread mail stays above the checkpoint.
  readonly #onAbort = () => {
    this.#wake?.();
    this.#client.close();
  };

  constructor(client: ImapFlow, signal: AbortSignal) {
    this.#client = client;
    this.#signal = signal;
    client.on("exists", this.#onExists);
    client.on("close", this.#onClose);
    client.on("error", this.#onError);
    signal.addEventListener("abort", this.#onAbort);
  }

  /**
   * Enters IDLE and returns when there is new mail ("change"), the connection closed or we are
   * stopping ("closed"), or keepaliveMs passed quietly ("keepalive": time to prove the line alive).
   */
  async idleUntilChange(keepaliveMs: number): Promise<"change" | "closed" | "keepalive"> {
    if (this.dirty) return "change";
    if (!this.open || this.#signal.aborted) return "closed";
    const woken = new Promise<void>((resolve) => (this.#wake = resolve));
    // idle() resolves only when IDLE ends; the next command (FETCH or NOOP) ends it with DONE.
    const idling = this.#client.idle().catch((err: unknown) => {
      this.closeError ??= err;
      this.open = false;
      this.#wake?.();
    });
    let timer: NodeJS.Timeout | undefined;
    const quiet = new Promise<"keepalive">((resolve) => (timer = setTimeout(() => resolve("keepalive"), keepaliveMs)));
    const result = await Promise.race([woken.then(() => (this.dirty ? "change" : "closed") as "change" | "closed"), quiet]);
    clearTimeout(timer);
    this.#wake = undefined;
    if (!this.open || this.#signal.aborted) {
      await Promise.race([idling, sleep(100)]);
      return "closed";
    }
    return result;
  }

  /**
   * Waits ms, or less when mail is announced (unless ignoreMail: a wait before reading a mail again
   * must not be cut short by mail after it), the connection closes or we stop.
   */
  async pause(ms: number, options: { ignoreMail?: boolean } = {}): Promise<void> {
    if ((this.dirty && !options.ignoreMail) || !this.open || this.#signal.aborted) return;
    if (options.ignoreMail) {
      const stop = new AbortController();
      const closed = new Promise<void>((resolve) => (this.#wake = () => (!this.open ? resolve() : undefined)));
      await Promise.race([closed, sleep(ms, AbortSignal.any([this.#signal, stop.signal]))]);
      stop.abort();
      this.#wake = undefined;
      return;
    }
    const woken = new Promise<void>((resolve) => (this.#wake = resolve));
    const stop = new AbortController();
    await Promise.race([woken, sleep(ms, AbortSignal.any([this.#signal, stop.signal]))]);
    stop.abort(); // clears the timer, so a stopped process is not kept alive for the rest of it
    this.#wake = undefined;
  }

  dispose(): void {
    this.#client.off("exists", this.#onExists);
    this.#client.off("close", this.#onClose);
    this.#signal.removeEventListener("abort", this.#onAbort);
    // Keep an error listener: a late socket error on a client we dropped must not crash the process.
    this.#client.off("error", this.#onError);
    this.#client.on("error", () => {});
  }
}

/**
 * A NOOP must come back within timeoutMs. A peer that vanished without FIN/RST is found by the
 * kernel's TCP keepalive (imapflow: probes after 5 s of quiet, libuv: 10 of them 1 s apart); a
 * server that hangs, or a proxy that keeps the TCP side up for a server that went away, still
 * acknowledges every packet, and only a request that goes unanswered reveals it.
 */
async function keepalive(client: ImapFlow, timeoutMs: number, account: string, mailbox: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
  const answered = client.noop().then(() => "answered" as const);
  try {
    if ((await Promise.race([answered, timedOut])) === "timeout") {
      answered.catch(() => {});
      throw new ImapError("IMAP_CONNECT", account, mailbox, `account "${account}": the server did not answer a NOOP within ${timeoutMs} ms; treating the connection as dead`);
    }
  } finally {
    clearTimeout(timer);
  }
}

async function closeQuietly(client: ImapFlow, graceful: boolean): Promise<void> {
  try {
    if (graceful && client.usable) {
      const done = new AbortController();
      await Promise.race([client.logout(), sleep(2000, done.signal)]);
      done.abort();
    }
  } catch {
    // already gone
  }
  try {
    client.close();
  } catch {
    // already closed
  }
}

/**
 * Runs one of our own steps (the checkpoint store) so that its failure can never pass for
 * connection trouble: a database error becomes a StateError, which the watcher does not retry.
 */
async function ours<T>(doing: string, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof MailbellError) throw err;
    throw new StateError(`could not ${doing} in the state database: ${(err as Error).message}. Check that the disk is not full and the file is writable; mailbell tries again in a moment.`, { cause: err });
  }
}

/** Our own callbacks must not fail; when one does, it is a bug to report, not a dropped connection. */
function bugIfThrows<A extends unknown[], R>(doing: string, fn: (...args: A) => R): (...args: A) => R {
  return (...args) => {
    const fail = (err: unknown): never => {
      if (err instanceof MailbellError) throw err;
      throw new InternalError(`${doing} failed: ${(err as Error).message}`, { cause: err });
    };
    try {
      const result = fn(...args);
      return (result instanceof Promise ? result.catch(fail) : result) as R;
    } catch (err) {
      return fail(err);
    }
  };
}

/** Response codes with which a server refuses for reasons of its own, not the mail's (RFC 5530). */
const serverWide = /\[(UNAVAILABLE|LIMIT|INUSE|THROTTLED)\]/i;

/** Mail that was in flight when a FETCH broke the connection: the batch asked for and those read ahead. */
const narrowingWindow = 300;

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

/** What a round is reading: its UIDs in order, whether one per FETCH, and up to where it handed mail over. */
interface Reading {
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
function blameRead(failures: ReadFailures, reading: Reading, failure: ImapError, bye: string | undefined, log: Logger): void {
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

/** Whether a person asked to read set-aside mail again; checked at each keepalive. */
async function retryWaiting(setAside: SetAsideStore, account: string, mailbox: string, uidValidity: number): Promise<boolean> {
  return (await ours("list mail set aside", () => setAside.retryRequested(account, mailbox, uidValidity))).length > 0;
}

/**
 * Reads set-aside mail again because a person asked to (`mailbell unreadable retry`). Mail read is
 * handed over with the current checkpoint (nothing new is acknowledged) and its record resolved;
 * mail that fails again is recorded again with one more attempt, and mail that is gone is resolved.
 */
async function* retrySetAside(
  client: ImapFlow,
  asked: number[],
  o: {
    fetchOptions: FetchOptions;
    setAside: SetAsideStore;
    log: Logger;
    toWatched: (fetched: FetchedMessage, ack: Checkpoint, catchUp: undefined) => WatchedMail;
    ack: Checkpoint;
    where: { account: string; mailbox: string; uidValidity: number };
  },
): AsyncGenerator<WatchedMail[], void, undefined> {
  const { account, mailbox, uidValidity } = o.where;
  // Taken before reading: a mail whose read breaks the connection must not be retried by every new session.
  await ours("take the retry requests", () => o.setAside.retryTaken(account, mailbox, uidValidity, asked));
  const gone: number[] = [];
  const options = { ...o.fetchOptions, batchSize: 1, readAhead: 0, onGone: (uids: number[]) => gone.push(...uids) };
  for await (const round of fetchBatches(client, asked.sort((a, b) => a - b), options)) {
    if (round.mails.length > 0) yield round.mails.map((m) => o.toWatched(m, o.ack, undefined));
    for (const m of round.mails) {
      o.log.info({ uid: m.uid }, "mail set aside earlier was read on request");
      await ours("resolve mail set aside", () => o.setAside.resolved(account, mailbox, uidValidity, m.uid));
    }
    for (const u of round.unread) {
      o.log.error({ uid: u.uid, reason: u.reason }, "mail set aside could still not be read; it stays set aside");
      await ours("record mail set aside", () => o.setAside.record(account, mailbox, { uidValidity, uid: u.uid, reason: u.reason, attempts: 1 }));
    }
  }
  for (const uid of gone) await ours("resolve mail set aside", () => o.setAside.resolved(account, mailbox, uidValidity, uid));
}

/** A short description of a UID list for a log line. */
function describeUids(uids: readonly number[]): string {
  if (uids.length === 0) return "none";
  return uids.length === 1 ? String(uids[0]) : `${uids.length} UIDs from ${uids[0]} to ${uids.at(-1)}`;
}
