/**
 * Waiting for mail on the watching connection: IDLE with a keepalive NOOP, or a poll where the
 * server has no IDLE. Returns why it woke.
 */
import type { ImapFlow } from "imapflow";
import { ImapError } from "../errors.ts";
import { sleep } from "./backoff.ts";
import type { WatchEvent } from "./types.ts";

/** What ConnectionEvents uses of the client. */
export type EventSource = Pick<ImapFlow, "on" | "off" | "idle" | "close">;

/** The event plumbing of one connection: wakes a wait on new mail, close or abort. */
export class ConnectionEvents {
  open = true;
  closeError: unknown;
  /** Set when the server announces new mail; cleared as a round starts. */
  #news = true;
  readonly #client: EventSource;
  readonly #signal: AbortSignal;
  #wake: (() => void) | undefined;
  readonly #onExists = () => {
    this.#news = true;
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

  constructor(client: EventSource, signal: AbortSignal) {
    this.#client = client;
    this.#signal = signal;
    client.on("exists", this.#onExists);
    client.on("close", this.#onClose);
    client.on("error", this.#onError);
    signal.addEventListener("abort", this.#onAbort);
  }

  /** The server announced mail since the round in hand started. */
  get news(): boolean {
    return this.#news;
  }

  /** A round starts looking for mail: what was announced so far, it will find. */
  roundStarts(): void {
    this.#news = false;
  }

  /**
   * Enters IDLE and returns when there is new mail ("change"), the connection closed or we are
   * stopping ("closed"), or keepaliveMs passed quietly ("keepalive": time to prove the line alive).
   */
  async idleUntilChange(keepaliveMs: number): Promise<"change" | "closed" | "keepalive"> {
    if (this.#news) return "change";
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
    const result = await Promise.race([woken.then(() => (this.#news ? "change" : "closed") as "change" | "closed"), quiet]);
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
    if ((this.#news && !options.ignoreMail) || !this.open || this.#signal.aborted) return;
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
export async function keepalive(client: Pick<ImapFlow, "noop">, timeoutMs: number, account: string, mailbox: string): Promise<void> {
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

export interface Waiting {
  /** The server has no IDLE: look every pollMs. */
  polling: boolean;
  pollMs: number;
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  /** The first wait of this session: a polling one says so once. */
  first: boolean;
  /** Whether a person asked to read set-aside mail again; asked at each keepalive. */
  retryWaiting(): Promise<boolean>;
  emit(event: WatchEvent): void;
  where: { account: string; mailbox: string };
  signal: AbortSignal;
}

export interface Woken {
  /**
   * mail: IDLE announced mail (which the reader connection may read, the watching one still idle);
   * look: look for mail now (a poll is due, a keepalive's reply announced mail or a retry is asked for);
   * closed: the connection closed or we are stopping.
   */
  why: "mail" | "look" | "closed";
  /** A keepalive or poll passed: set-aside mail a person asked to read again is looked for. */
  retryDue: boolean;
}

/** Waits on the watching connection until there is something to read, it closes, or we stop. */
export async function waitForMail(client: Pick<ImapFlow, "noop">, events: ConnectionEvents, o: Waiting): Promise<Woken> {
  if (o.polling) {
    if (o.first) o.emit({ type: "polling", intervalMs: o.pollMs });
    // Without IDLE nothing tells us about new mail; the next round's UID SEARCH looks.
    await events.pause(o.pollMs);
    o.emit({ type: "alive" });
    return { why: "look", retryDue: true };
  }
  o.emit({ type: "idle" });
  let woken = await events.idleUntilChange(o.keepaliveMs);
  let retryDue = false;
  while (woken === "keepalive") {
    await keepalive(client, o.keepaliveTimeoutMs, o.where.account, o.where.mailbox);
    o.emit({ type: "alive" });
    retryDue = true;
    // The NOOP's reply says EXISTS if mail came; otherwise there is nothing to look for, and
    // a UID SEARCH would add a fourth command to every keepalive of every idle mailbox.
    if ((await o.retryWaiting()) || events.news) return { why: "look", retryDue };
    if (!events.open || o.signal.aborted) return { why: "closed", retryDue };
    woken = await events.idleUntilChange(o.keepaliveMs);
  }
  return { why: woken === "change" ? "mail" : "closed", retryDue };
}
