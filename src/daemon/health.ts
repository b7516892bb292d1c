import type { WatchEvent } from "../imap/watcher.ts";

export type MailboxState = "connecting" | "connected" | "idle" | "disconnected";

/**
 * Events Health understands. "alive" (a keepalive NOOP was answered) and "polling" (the server has
 * no IDLE, so the watcher polls) are listed ahead of the watcher emitting them; any other type the
 * watcher gains later is ignored until Health is taught what it means.
 */
export type HealthEvent = WatchEvent | { type: "alive" } | { type: "polling"; intervalMs: number };

export interface MailboxHealth {
  account: string;
  mailbox: string;
  state: MailboxState;
  connected: boolean;
  /** Epoch ms of the last event of any kind; null before the first. */
  lastEventAt: number | null;
  /** Epoch ms the server last answered us (connected, idle, alive, polling); null before the first. */
  lastRoundTripAt: number | null;
  /** Times the connection was lost or could not be opened; each is followed by a reconnect attempt. */
  reconnects: number;
  /** Message of the error behind the most recent disconnect; kept after recovery for diagnosis. */
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
  /** A connected mailbox whose server has not answered for this long is unhealthy. */
  staleAfterMs: number;
  /** How long a mailbox may be without a working connection before it counts as unhealthy. */
  reconnectBudgetMs: number;
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
   * When the mailbox was last known healthy before its current lack of a connection; undefined while
   * connected, and until a time is first seen when registered without one.
   */
  downSince: number | undefined;
}

/**
 * Tracks the connection health of every watched mailbox from the watcher's events. It holds no
 * timers and reads no clock: callers pass `now`, so tests can walk through hours in microseconds.
 */
export class Health {
  readonly #staleAfterMs: number;
  readonly #reconnectBudgetMs: number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: HealthOptions) {
    this.#staleAfterMs = positiveMs("staleAfterMs", options.staleAfterMs);
    this.#reconnectBudgetMs = positiveMs("reconnectBudgetMs", options.reconnectBudgetMs);
  }

  /**
   * Declares a mailbox that must be watched; it counts as unhealthy if it never connects within the
   * reconnect budget. Without `now`, the budget starts at the first event or snapshot that follows.
   * Registering again is a no-op.
   */
  register(account: string, mailbox: string, now?: number): void {
    this.#entry(account, mailbox, now);
  }

  onEvent(account: string, mailbox: string, event: HealthEvent, now: number): void {
    // Unknown types must not even refresh lastEventAt: an event we cannot interpret proves nothing.
    const type = (event as { type: string }).type;
    if (!knownTypes.has(type)) return;
    const entry = this.#entry(account, mailbox, now);
    if (!isConnected(entry.state)) entry.downSince ??= now;
    entry.lastEventAt = now;
    switch (type) {
      case "connected":
      case "idle":
        entry.state = type;
        entry.lastRoundTripAt = now;
        entry.downSince = undefined;
        break;
      case "alive":
      case "polling":
        // A round trip, but not a state change: a late keepalive answer must not undo a disconnect.
        entry.lastRoundTripAt = now;
        break;
      case "connecting":
      case "disconnected":
        if (isConnected(entry.state)) entry.downSince = this.#lastHealthyAt(entry, now);
        entry.state = type;
        if (type === "disconnected") {
          entry.reconnects++;
          // Mirrors the watcher's log line: no error means the server closed the connection.
          entry.lastError = (event as Extract<WatchEvent, { type: "disconnected" }>).error?.message ?? "connection closed";
        }
        break;
      // uidvalidity-changed: the mailbox was renumbered; that says nothing about the connection.
    }
  }

  snapshot(now: number): HealthSnapshot {
    // Starts the budget of mailboxes registered without a time (see register).
    for (const entry of this.#entries.values()) if (!isConnected(entry.state)) entry.downSince ??= now;
    const mailboxes = [...this.#entries.values()].map((entry) => this.#judge(entry, now));
    return { healthy: mailboxes.every((m) => m.healthy), mailboxes };
  }

  #entry(account: string, mailbox: string, now: number | undefined): Entry {
    // JSON keeps ("a:b", "c") and ("a", "b:c") apart, which joining with a separator would not.
    const key = JSON.stringify([account, mailbox]);
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { account, mailbox, state: "connecting", lastEventAt: null, lastRoundTripAt: null, reconnects: 0, lastError: null, downSince: now };
      this.#entries.set(key, entry);
    }
    return entry;
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
      connected: isConnected(entry.state),
      lastEventAt: entry.lastEventAt,
      lastRoundTripAt: entry.lastRoundTripAt,
      reconnects: entry.reconnects,
      lastError: entry.lastError,
    };
    const reason = this.#problem(entry, now);
    return reason === undefined ? { ...base, healthy: true } : { ...base, healthy: false, reason };
  }

  #problem(entry: Entry, now: number): string | undefined {
    if (isConnected(entry.state)) {
      const quietMs = now - (entry.lastRoundTripAt ?? now);
      if (quietMs < this.#staleAfterMs) return undefined;
      return `connected, but the server has not answered for ${seconds(quietMs)} s (limit ${seconds(this.#staleAfterMs)} s); the connection may be dead without having closed`;
    }
    const downMs = now - (entry.downSince ?? now);
    if (downMs < this.#reconnectBudgetMs) return undefined;
    const what = entry.lastRoundTripAt === null ? "has not connected" : "has had no working connection";
    const error = entry.lastError === null ? "" : `; last error: ${entry.lastError}`;
    return `${what} for ${seconds(downMs)} s (reconnect budget ${seconds(this.#reconnectBudgetMs)} s), now ${entry.state}${error}`;
  }
}

const knownTypes = new Set(["connecting", "connected", "idle", "disconnected", "uidvalidity-changed", "alive", "polling"]);

function isConnected(state: MailboxState): boolean {
  return state === "connected" || state === "idle";
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
