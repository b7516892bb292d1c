/**
 * Many folders, one watching connection: IMAP NOTIFY (RFC 5465).
 *
 * Where the server offers NOTIFY, one "notifier" connection per account asks to be told of new and
 * expunged mail in all the account's watched folders (`NOTIFY SET (mailboxes A B C (MessageNew
 * MessageExpunge))`); the server then sends `* STATUS "A" (...)` whenever a folder changes, with no
 * folder selected and no IDLE. Each folder's watcher then keeps no connection of its own while
 * quiet: it reads from its checkpoint to the folder's end on a connection opened for the round,
 * stays on it while mail flows (burst.ts), closes it, and waits for the notifier's next wake-up.
 *
 * No mail is stranded: a watcher remembers the folder's wake-up count before each round and waits
 * only while it is unchanged (a wake-up during the round makes it read again), and every (re)connect
 * of the notifier wakes every folder, for mail that came while it was away.
 *
 * imapflow (2.10.2) has no NOTIFY. This uses two of its members its typings mark internal, and
 * only here: `exec()` (send one command, the way its own commands do) and `untaggedHandlers`
 * (where its own EXISTS/EXPUNGE handlers live), to receive the unsolicited STATUS. test/notify.test.ts
 * fails if either changes.
 */
import type { ImapFlow } from "imapflow";
import { decodePath, encodePath } from "imapflow/lib/tools.js";
import type { Logger } from "../log.ts";
import type { ImapError } from "../errors.ts";
import { sleep } from "./backoff.ts";
import { classifyImapError, closeQuietly, createImapClient, endpointOf, type ImapAccount } from "./client.ts";
import { reconnectPlan } from "./reconnect-policy.ts";
import { keepalive } from "./wait.ts";

/** One of the account's reading connections, held by a session (FolderWakeups.slot). */
export interface ReadingSlot {
  release(): void;
  /** The session read mail just now: its mail still flows. */
  mailRead(): void;
  /**
   * Whether the session gives the connection up after its round: another folder waits, no other
   * holder is giving one up for it, and this one held it minHoldMs or read no mail for
   * idleHandOverMs. Once true it stays true (the session must then release it soon).
   */
  handOver(): boolean;
}

/** unknown: the notifier has not yet asked the server; on: it watches; off: one connection per folder. */
export type NotifyMode = "unknown" | "on" | "off";

/**
 * The wake-ups of one account's folders, shared by its notifier (which counts changes) and the
 * folders' watchers (which wait for the count to move).
 */
export class FolderWakeups {
  #mode: NotifyMode = "unknown";
  readonly #counts = new Map<string, number>();
  readonly #waiters = new Set<() => void>();
  /** Bumped when a folder is added or removed: the notifier sets NOTIFY again. */
  #listVersion = 0;
  #freeSlots: number;
  /** Sessions waiting for a reading connection, first come first served (a ticket each). */
  readonly #slotQueue: object[] = [];
  /** Holders that said they hand their slot over, until they release it. */
  #givingUp = 0;
  /** Each folder's count as the notifier last woke them all (changedAll: it had been away). */
  readonly #missedAt = new Map<string, number>();
  /** How many folders may read at once while NOTIFY is on. */
  readonly readingConnections: number;
  /** How long a session holds its reading connection at least before handing it over while its mail flows. */
  readonly minHoldMs: number;
  /** How long without mail before a session hands its connection over sooner than minHoldMs. */
  readonly idleHandOverMs: number;

  /**
   * `readingConnections`: how many folders may read at once while NOTIFY is on (the server's
   * per-account connection limit less the notifier's), so 20 folders fit a server allowing 10.
   * `minHoldMs` (default 1 s): a session that opened a reading connection keeps it that long at
   * least while mail flows, even when other folders wait. Opening one costs TLS, LOGIN and EXAMINE
   * (a few round trips, ~50–300 ms on a real server) and a LOGOUT; held a second, that stays a
   * fraction of the connection's time and logins stay at most about one per slot per second, while
   * a waiting folder waits about a second per folder ahead of it. `idleHandOverMs` (default
   * 200 ms): a session that read no mail that long (its mail stopped; it only polls in case more
   * comes) hands over sooner, so 50 folders with a mail each do not hold a connection a second each.
   */
  constructor(mailboxes: readonly string[], readingConnections = Infinity, { minHoldMs = 1000, idleHandOverMs = 200 }: { minHoldMs?: number; idleHandOverMs?: number } = {}) {
    for (const m of mailboxes) this.#counts.set(m, 0);
    this.readingConnections = this.#freeSlots = Math.max(1, readingConnections);
    this.minHoldMs = minHoldMs;
    this.idleHandOverMs = idleHandOverMs;
  }

  get mailboxes(): readonly string[] {
    return [...this.#counts.keys()];
  }

  get mode(): NotifyMode {
    return this.#mode;
  }

  get listVersion(): number {
    return this.#listVersion;
  }

  /** A folder joins (a reload added it); it reads once the notifier has set NOTIFY again. */
  add(mailbox: string): void {
    if (this.#counts.has(mailbox)) return;
    this.#counts.set(mailbox, 0);
    this.#listVersion++;
    this.#wakeAll();
  }

  remove(mailbox: string): void {
    this.#missedAt.delete(mailbox);
    if (!this.#counts.delete(mailbox)) return;
    this.#listVersion++;
    this.#wakeAll();
  }

  /**
   * Waits for one of the reading connections a session may hold while NOTIFY is not off. Where
   * NOTIFY is off each folder keeps its own connection: no wait then. First come, first served: a
   * session that gives its slot up and asks again queues behind the folders already waiting, so
   * mail flowing into one folder cannot keep the others waiting.
   */
  async slot(signal: AbortSignal): Promise<ReadingSlot> {
    const ticket = {};
    this.#slotQueue.push(ticket);
    try {
      for (;;) {
        if (this.#mode === "off" || signal.aborted) return { release: () => {}, mailRead: () => {}, handOver: () => false };
        if (this.#freeSlots > 0 && this.#slotQueue[0] === ticket) {
          this.#freeSlots--;
          return this.#held(performance.now());
        }
        await this.#nextWake(60_000, signal);
      }
    } finally {
      this.#slotQueue.splice(this.#slotQueue.indexOf(ticket), 1);
      // The next in line may take a slot still free.
      if (this.#slotQueue.length > 0) this.#wakeAll();
    }
  }

  #held(since: number): ReadingSlot {
    let released = false;
    let givingUp = false;
    let lastMailAt = since;
    return {
      mailRead: () => {
        lastMailAt = performance.now();
      },
      release: () => {
        if (released) return;
        released = true;
        if (givingUp) this.#givingUp--;
        this.#freeSlots++;
        this.#wakeAll();
      },
      handOver: () => {
        if (givingUp) return true;
        // Only as many hand over as folders wait (the slot is free only after LOGOUT, and the next
        // in line must not free several), and only after minHoldMs: a slot's holder that logged in
        // reads a while first, or mail flowing into more folders than slots is a login per round.
        // A holder whose mail stopped (idleHandOverMs, a gap longer than a burst's) gives way sooner.
        if (released || this.#mode === "off" || this.#slotQueue.length <= this.#givingUp) return false;
        const now = performance.now();
        if (now - since < this.minHoldMs && now - lastMailAt < this.idleHandOverMs) return false;
        givingUp = true;
        this.#givingUp++;
        return true;
      },
    };
  }

  /** Whether another folder waits for a reading connection (none being given up for it). */
  get slotWanted(): boolean {
    return this.#mode !== "off" && this.#slotQueue.length > this.#givingUp;
  }

  setMode(mode: NotifyMode): void {
    this.#mode = mode;
    this.#wakeAll();
  }

  /** When the notifier's connection last proved alive (logged in with NOTIFY set, or a keepalive answered). */
  #aliveAt: number | undefined;

  /** The notifier's connection proved alive now: its folders are watched, though none of them has a connection. */
  notifierAlive(): void {
    this.#aliveAt = performance.now();
  }

  /** Whether the notifier's connection proved alive within the last `ms`. */
  aliveWithin(ms: number): boolean {
    return this.#aliveAt !== undefined && performance.now() - this.#aliveAt <= ms;
  }

  /** How many wake-ups this folder had: remembered before a round, waited on after it. */
  count(mailbox: string): number {
    return this.#counts.get(mailbox) ?? 0;
  }

  /**
   * The server said this folder changed, under any of `names` (as sent, and as decoded: a plain
   * "R&D" is not modified UTF-7). INBOX is matched in any case, as IMAP does. A name that is not
   * watched is ignored.
   */
  changed(...names: string[]): void {
    const mailbox = names.map((n) => this.#watched(n)).find((m) => m !== undefined);
    if (mailbox === undefined) return;
    this.#counts.set(mailbox, (this.#counts.get(mailbox) ?? 0) + 1);
    this.#wakeAll();
  }

  #watched(name: string): string | undefined {
    if (this.#counts.has(name)) return name;
    if (name.toUpperCase() === "INBOX") return [...this.#counts.keys()].find((m) => m.toUpperCase() === "INBOX");
    return undefined;
  }

  /** Every folder may have changed unseen (the notifier was away): each reads once. */
  changedAll(): void {
    for (const [m, count] of this.#counts) {
      this.#counts.set(m, count + 1);
      this.#missedAt.set(m, count + 1);
    }
    this.#wakeAll();
  }

  /**
   * Whether the notifier (re)connected since the folder's count was `since` (as its last round
   * started): mail may have built up unseen meanwhile (a catch-up, as after a reconnect), not come
   * as the server told of it.
   */
  missedSince(mailbox: string, since: number): boolean {
    return (this.#missedAt.get(mailbox) ?? 0) > since;
  }

  /**
   * Waits until the folder's count is past `since` ("change"), NOTIFY turns out unusable ("off"),
   * `ms` pass ("timeout") or `signal` aborts ("stopped"). While the mode is unknown it waits.
   */
  async wait(mailbox: string, since: number, ms: number, signal: AbortSignal): Promise<"change" | "off" | "timeout" | "stopped"> {
    const deadline = performance.now() + ms;
    for (;;) {
      if (signal.aborted) return "stopped";
      if (this.#mode === "off") return "off";
      if (this.#mode === "on" && this.count(mailbox) > since) return "change";
      const left = deadline - performance.now();
      if (left <= 0) return "timeout";
      await this.#nextWake(left, signal);
    }
  }

  /**
   * Resolves at the next change of any kind, after ms, or when signal aborts. A plain timer and
   * listener, removed on the way out: dozens of folders wait at once and wake at every change.
   */
  #nextWake(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      this.#waiters.add(done);
    });
  }

  /** Resolves when the folder list changes (or signal aborts). */
  async listChanged(version: number, signal: AbortSignal): Promise<void> {
    while (this.#listVersion === version && !signal.aborted) await this.#nextWake(60_000, signal);
  }

  #wakeAll(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}

/** What the notifier needs: the account, how to log in, and the watcher's keepalive and reconnect timing. */
export interface NotifierOptions {
  account: ImapAccount;
  accountName: string;
  wakeups: FolderWakeups;
  log: Logger;
  signal: AbortSignal;
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  reconnectMaxMs: number;
  /** The least wait after a refused login, as the watchers' (reconnect-policy.ts); default 5 minutes. */
  authFailureMs?: number;
}

/** imapflow's internal members this module uses (see the top of the file). */
interface ImapFlowInternals {
  exec(command: string, attributes: unknown[], options?: object): Promise<{ next(): void }>;
  untaggedHandlers: Record<string, ((untagged: { attributes?: { value?: unknown }[] }) => void) | undefined>;
}

/**
 * Runs the account's notifier until `signal` aborts: connects, sets NOTIFY, wakes folders on each
 * STATUS, proves the line alive every keepaliveMs, and reconnects with backoff. Sets the mode "off"
 * (and returns) when the server does not offer NOTIFY or refuses it, so the watchers fall back.
 */
export async function runNotifier(o: NotifierOptions): Promise<void> {
  // The watchers' reconnect policy: a refused login waits authFailureMs, not reconnectMaxMs, so a
  // wrong password is not tried every minute (fail2ban, a locked account).
  const limits = { baseMs: 1000, capMs: o.reconnectMaxMs, authFailureMs: o.authFailureMs ?? 5 * 60_000, healthyAfterMs };
  let attempt = 0;
  let refusedLast = false;
  let openedBefore = false;
  while (!o.signal.aborted) {
    let client: ImapFlow | undefined;
    let failure: ImapError | undefined;
    let connectedAt: number | undefined;
    try {
      const connected = await connectNotifier(o, refusedLast);
      if (!connected) return;
      client = connected.client;
      connectedAt = performance.now();
      o.wakeups.notifierAlive();
      openedBefore = true;
      // A folder added or removed: set NOTIFY again on a new connection (every folder reads once).
      if ((await keepAlive(client, o, connected.version)) === "list changed") {
        attempt = 0;
        refusedLast = false;
        continue;
      }
    } catch (err) {
      if (o.signal.aborted) break;
      failure = classifyImapError(err, o.accountName, "(NOTIFY)", endpointOf(o.account));
    } finally {
      if (client) await closeQuietly(client, failure === undefined && !o.signal.aborted);
    }
    if (o.signal.aborted) break;
    const watchedForMs = connectedAt === undefined ? undefined : performance.now() - connectedAt;
    const plan = reconnectPlan({ failure, refusedLast, canRefreshCredentials: o.account.credentials !== undefined, opened: connectedAt !== undefined, openedBefore, watchedForMs, attempt, random: Math.random() }, limits);
    ({ refused: refusedLast, attempt } = plan);
    o.log[plan.log.level]({ err: plan.log.err, retryInMs: plan.retryInMs }, `NOTIFY connection: ${plan.log.message} (the folders read once it is back)`);
    await sleep(plan.retryInMs, o.signal);
  }
}

/** How long the notifier's connection must last before reconnect delays start again from the shortest. */
const healthyAfterMs = 60_000;

/**
 * Connects and sets NOTIFY; undefined (mode "off") when the server cannot do it. `version`: the
 * folder list NOTIFY was set for, read as the list is sent (folders that joined while logging in are in it).
 */
async function connectNotifier(o: NotifierOptions, refusedLast: boolean): Promise<{ client: ImapFlow; version: number } | undefined> {
  const credentials = o.account.credentials ? await o.account.credentials(refusedLast) : { pass: o.account.pass ?? "" };
  const client = createImapClient(o.account, { logger: o.log, socketTimeoutMs: 2 * o.keepaliveMs + o.keepaliveTimeoutMs }, credentials);
  client.on("error", (err: Error) => o.log.debug({ err: err.message }, "the NOTIFY connection reported an error"));
  try {
    await client.connect();
    if (!client.capabilities.has("NOTIFY")) {
      o.log.info({ mailboxes: o.wakeups.mailboxes.length }, "the server does not offer NOTIFY: each folder is watched on its own connection");
      if (o.wakeups.mailboxes.length > o.wakeups.readingConnections + 1) o.log.warn({ mailboxes: o.wakeups.mailboxes.length, maxConnections: o.wakeups.readingConnections + 1 }, "without NOTIFY this account needs a connection per folder, more than maxConnections allows: the server may refuse some; watch fewer folders or raise maxConnections");
      o.wakeups.setMode("off");
      await closeQuietly(client, true);
      return undefined;
    }
    const internals = client as unknown as ImapFlowInternals;
    internals.untaggedHandlers.STATUS = (untagged) => {
      const name = untagged.attributes?.[0]?.value;
      // Dovecot 2.3 names a folder in UTF-8 (a literal), not in modified UTF-7, in NOTIFY's STATUS.
      if (typeof name === "string") o.wakeups.changed(name, decodePath(client, name));
      else if (Buffer.isBuffer(name)) o.wakeups.changed(name.toString("utf8"));
    };
    const version = o.wakeups.listVersion;
    const names = o.wakeups.mailboxes.map((m) => ({ type: "STRING", value: encodePath(client, m) }));
    const events = [{ type: "ATOM", value: "MessageNew" }, { type: "ATOM", value: "MessageExpunge" }];
    try {
      // personal: Dovecot 2.3 matches `mailboxes` against UTF-8 names, so a folder named in modified
      // UTF-7 (Reçus) would never be reported; the personal namespace covers it, and `mailboxes`
      // those outside it (shared folders). Changes in folders not watched wake nothing.
      const response = await internals.exec("NOTIFY", [{ type: "ATOM", value: "SET" }, [{ type: "ATOM", value: "personal" }, events], [{ type: "ATOM", value: "mailboxes" }, names, events]]);
      response.next();
    } catch (err) {
      // A tagged NO/BAD is the server's refusal; a dropped connection is thrown on (and retried).
      if (!client.usable) throw err;
      o.log.warn({ err: (err as Error).message }, "the server refused NOTIFY: each folder is watched on its own connection");
      o.wakeups.setMode("off");
      await closeQuietly(client, true);
      return undefined;
    }
    o.log.info({ mailboxes: o.wakeups.mailboxes.length }, "watching the account's folders over one connection (NOTIFY)");
    o.wakeups.setMode("on");
    o.wakeups.changedAll();
    return { client, version };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** NOOP every keepaliveMs until the connection closes (throws), the folder list changes, or we stop. */
async function keepAlive(client: ImapFlow, o: NotifierOptions, version: number): Promise<"stopped" | "list changed"> {
  const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
  while (!o.signal.aborted) {
    const stop = new AbortController();
    const stopping = AbortSignal.any([o.signal, stop.signal]);
    const quiet = sleep(o.keepaliveMs, stopping).then(() => "quiet" as const);
    const listChanged = o.wakeups.listChanged(version, stopping).then(() => "list changed" as const);
    const why = await Promise.race([quiet, listChanged, closed.then(() => "closed" as const)]);
    stop.abort();
    if (o.signal.aborted) return "stopped";
    if (why === "list changed") return why;
    if (why === "closed") throw new Error(`account "${o.accountName}": the server closed the NOTIFY connection`);
    await keepalive(client, o.keepaliveTimeoutMs, o.accountName, "(NOTIFY)");
    o.wakeups.notifierAlive();
  }
  return "stopped";
}
