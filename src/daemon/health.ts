import type { MailbellError } from "../errors.ts";
import type { WatchEvent } from "../imap/watcher.ts";

/**
 * Watching: "idle" (in IDLE), "polling" (a server without IDLE), or "reading" (a session past its
 * checkpoint that is reading mail, a long catch-up). "failed": mailbell's own error (state database, bug).
 */
export type MailboxState = "connecting" | "connected" | "reading" | "idle" | "polling" | "disconnected" | "failed";

/**
 * Events Health understands: the watcher's, and "failed", which the daemon reports when handling
 * a mailbox failed for a reason of its own (the state database, a bug) rather than the server's.
 * Any other type the watcher gains later is ignored until Health is taught what it means.
 */
export type HealthEvent = WatchEvent | { type: "failed"; error: MailbellError; retryInMs: number };

export interface MailboxHealth {
  account: string;
  mailbox: string;
  state: MailboxState;
  /** True while really watching: the checkpoint settled and the connection in IDLE (or polling). */
  connected: boolean;
  /** Epoch ms of the last event of any kind; null before the first. */
  lastEventAt: number | null;
  /** Epoch ms the server last answered us (connected, idle, alive, polling); null before the first. */
  lastRoundTripAt: number | null;
  /** Sessions that ended in failure (lost, refused, or our own error); each is followed by another try. */
  reconnects: number;
  /** Message of the error behind the most recent failure; kept after recovery for diagnosis. */
  lastError: string | null;
  healthy: boolean;
  /** Why the mailbox is unhealthy; absent when healthy. */
  reason?: string;
}

export interface HealthSnapshot {
  /** True when every registered mailbox is healthy (and so when none are registered). */
  healthy: boolean;
  mailboxes: MailboxHealth[];
}

export interface HealthOptions {
  /** A watching mailbox whose server has not answered for this long is unhealthy. */
  staleAfterMs: number;
  /**
   * How long a mailbox may be in trouble (not watching, or watching on sessions that keep failing)
   * before it counts as unhealthy.
   */
  reconnectBudgetMs: number;
  /**
   * How long a session must stay up, once a mailbox has had trouble, before the trouble counts as
   * over; default 60 s (as the watcher's own backoff reset), and never more than the budget.
   */
  settleMs?: number;
}

interface Entry {
  account: string;
  mailbox: string;
  state: MailboxState;
  lastEventAt: number | null;
  lastRoundTripAt: number | null;
  reconnects: number;
  lastError: string | null;
  /**
   * Since when the mailbox has been in trouble: not yet watching since registration, or since the
   * last failure without a session that lasted settleMs. Undefined while all is well, and until a
   * time is first seen when registered without one.
   */
  troubleSince: number | undefined;
  /** Failures since troubleSince; with none, the first watch ends the trouble at once. */
  failuresInTrouble: number;
  /** When the current watching streak began. */
  upSince: number | undefined;
  /** Our own failure (state database, bug): unhealthy at once, until a session settles. */
  ownFailure: string | undefined;
}

/** How long a session must last before a mailbox with trouble behind it counts as well again. */
export const defaultSettleMs = 60_000;

/**
 * Tracks the health of every watched mailbox from the watcher's events. It holds no timers and
 * reads no clock: callers pass `now`, so tests can walk through hours in microseconds.
 *
 * A mailbox is up only once it is really watching (the checkpoint settled, in IDLE or polling);
 * "connected" alone proves nothing, as a server may drop every session right after it. After a
 * failure, the trouble lasts until a session has stayed up settleMs, so a mailbox whose sessions
 * keep failing uses up its budget instead of looking well between two failures.
 */
export class Health {
  #staleAfterMs = 0;
  #reconnectBudgetMs = 0;
  #settleMs = 0;
  readonly #entries = new Map<string, Entry>();

  constructor(options: HealthOptions) {
    this.setLimits(options);
  }

  /** New limits (a config reload); what each mailbox went through so far is kept. */
  setLimits(options: HealthOptions): void {
    this.#staleAfterMs = positiveMs("staleAfterMs", options.staleAfterMs);
    this.#reconnectBudgetMs = positiveMs("reconnectBudgetMs", options.reconnectBudgetMs);
    // A budget shorter than a minute must still let a healthy reconnect end the trouble in time.
    this.#settleMs = Math.min(positiveMs("settleMs", options.settleMs ?? defaultSettleMs), this.#reconnectBudgetMs);
  }

  /**
   * Declares a mailbox that must be watched; it counts as unhealthy if it is not watching within the
   * reconnect budget. Without `now`, the budget starts at the first event or snapshot that follows.
   * Registering again is a no-op.
   */
  register(account: string, mailbox: string, now?: number): void {
    this.#entry(account, mailbox, now);
  }

  /** The mailbox is no longer watched (a config reload removed it): it no longer counts. */
  forget(account: string, mailbox: string): void {
    this.#entries.delete(JSON.stringify([account, mailbox]));
  }

  onEvent(account: string, mailbox: string, event: HealthEvent, now: number): void {
    // Unknown types must not even refresh lastEventAt: an event we cannot interpret proves nothing.
    const type = (event as { type: string }).type;
    if (!knownTypes.has(type)) return;
    const entry = this.#entry(account, mailbox, now);
    // The state so far lasted until now: a session that was up long enough has settled first.
    this.#settle(entry, now);
    if (!isWatching(entry.state)) entry.troubleSince ??= now;
    entry.lastEventAt = now;
    switch (type) {
      case "idle":
      case "polling":
        this.#up(entry, type, now);
        break;
      case "connected":
        // A session is not up until its checkpoint is settled and it reads or waits for mail.
        entry.lastRoundTripAt = now;
        this.#leave(entry, "connected", now);
        break;
      case "alive":
        // A round trip, but not a state change (a late keepalive answer must not undo a
        // disconnect); except that a settled session reading mail (a long catch-up) is up.
        if (entry.state === "connected") this.#up(entry, "reading", now);
        entry.lastRoundTripAt = now;
        this.#settle(entry, now);
        break;
      case "connecting":
        this.#leave(entry, "connecting", now);
        break;
      case "disconnected":
      case "failed": {
        this.#leave(entry, type, now);
        entry.reconnects++;
        entry.failuresInTrouble++;
        // Mirrors the watcher's log line: no error means the server closed the connection.
        const error = (event as { error?: Error }).error;
        entry.lastError = error?.message ?? "connection closed";
        if (type === "failed") entry.ownFailure = entry.lastError;
        break;
      }
      // uidvalidity-changed: the mailbox was renumbered; that says nothing about the connection.
    }
  }

  snapshot(now: number): HealthSnapshot {
    for (const entry of this.#entries.values()) {
      // Starts the budget of mailboxes registered without a time (see register).
      if (!isWatching(entry.state)) entry.troubleSince ??= now;
      this.#settle(entry, now);
    }
    const mailboxes = [...this.#entries.values()].map((entry) => this.#judge(entry, now));
    return { healthy: mailboxes.every((m) => m.healthy), mailboxes };
  }

  #entry(account: string, mailbox: string, now: number | undefined): Entry {
    // JSON keeps ("a:b", "c") and ("a", "b:c") apart, which joining with a separator would not.
    const key = JSON.stringify([account, mailbox]);
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { account, mailbox, state: "connecting", lastEventAt: null, lastRoundTripAt: null, reconnects: 0, lastError: null, troubleSince: now, failuresInTrouble: 0, upSince: undefined, ownFailure: undefined };
      this.#entries.set(key, entry);
    }
    return entry;
  }

  /** The mailbox is watching: in IDLE, polling, or reading mail past a settled checkpoint. */
  #up(entry: Entry, state: "idle" | "polling" | "reading", now: number): void {
    entry.lastRoundTripAt = now;
    if (!isWatching(entry.state)) entry.upSince = now;
    entry.state = state;
    // A first start that simply connects has had no trouble to get over.
    if (entry.failuresInTrouble === 0 && entry.ownFailure === undefined) entry.troubleSince = undefined;
    this.#settle(entry, now);
  }

  /** The mailbox stops watching: its trouble starts now, or when its server went quiet. */
  #leave(entry: Entry, state: MailboxState, now: number): void {
    if (isWatching(entry.state)) entry.troubleSince ??= this.#lastHealthyAt(entry, now);
    entry.troubleSince ??= now;
    entry.upSince = undefined;
    entry.state = state;
  }

  /** A session that has stayed up settleMs ends the trouble before it. */
  #settle(entry: Entry, now: number): void {
    if (!isWatching(entry.state) || entry.upSince === undefined || now - entry.upSince < this.#settleMs) return;
    entry.troubleSince = undefined;
    entry.failuresInTrouble = 0;
    entry.ownFailure = undefined;
  }

  /**
   * A connection whose server already went quiet stopped being healthy when it went stale, not when
   * the socket finally failed; counting the budget from the failure would let a dead link that took
   * minutes to time out look healthy again for a whole budget.
   */
  #lastHealthyAt(entry: Entry, now: number): number {
    return entry.lastRoundTripAt === null ? now : Math.min(now, entry.lastRoundTripAt + this.#staleAfterMs);
  }

  #judge(entry: Entry, now: number): MailboxHealth {
    const base = {
      account: entry.account,
      mailbox: entry.mailbox,
      state: entry.state,
      connected: isWatching(entry.state),
      lastEventAt: entry.lastEventAt,
      lastRoundTripAt: entry.lastRoundTripAt,
      reconnects: entry.reconnects,
      lastError: entry.lastError,
    };
    const reason = this.#problem(entry, now);
    return reason === undefined ? { ...base, healthy: true } : { ...base, healthy: false, reason };
  }

  #problem(entry: Entry, now: number): string | undefined {
    if (entry.ownFailure !== undefined) {
      return `mailbell's own error, not the server's (it tries again; fix the cause): ${entry.ownFailure}`;
    }
    if (isWatching(entry.state)) {
      const quietMs = now - (entry.lastRoundTripAt ?? now);
      if (quietMs >= this.#staleAfterMs) {
        return `watching, but the server has not answered for ${seconds(quietMs)} s (limit ${seconds(this.#staleAfterMs)} s); the connection may be dead without having closed`;
      }
    }
    const troubleMs = now - (entry.troubleSince ?? now);
    if (entry.troubleSince === undefined || troubleMs < this.#reconnectBudgetMs) return undefined;
    const error = entry.lastError === null ? "" : `; last error: ${entry.lastError}`;
    if (isWatching(entry.state)) {
      return `sessions keep failing: ${entry.failuresInTrouble} failed in the last ${seconds(troubleMs)} s (reconnect budget ${seconds(this.#reconnectBudgetMs)} s), and the current one has been up ${seconds(now - (entry.upSince ?? now))} s of the ${seconds(this.#settleMs)} s that count as stable${error}`;
    }
    const what = entry.lastRoundTripAt === null ? "has not connected" : "has not been watching";
    return `${what} for ${seconds(troubleMs)} s (reconnect budget ${seconds(this.#reconnectBudgetMs)} s), now ${entry.state}${error}`;
  }
}

const knownTypes = new Set(["connecting", "connected", "idle", "disconnected", "failed", "uidvalidity-changed", "alive", "polling"]);

function isWatching(state: MailboxState): boolean {
  return state === "idle" || state === "polling" || state === "reading";
}

function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

function positiveMs(name: string, value: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Health: ${name} must be a positive number of milliseconds, got ${String(value)}; pass e.g. ${name}: 300000 for five minutes`);
  }
  return value;
}
