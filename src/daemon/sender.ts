/**
 * The daemon's sender, where `outbox.thread` puts it: `main`, the Dispatcher on the thread that reads
 * mail (no extra memory); `own`, the Dispatcher on a worker thread (delivery-thread.ts: faster
 * catch-ups on a second core, for a second JavaScript heap); `auto` (the default), on the main thread
 * until a big catch-up comes, on its own thread while it lasts. The daemon uses each the same way.
 */
import { Dispatcher } from "../outbox/dispatcher.ts";
import type { State } from "../store/sqlite/state.ts";
import type { Target } from "../targets/types.ts";
import { startDeliveryThread, type DeliverySettings, type DeliveryThread, type DeliveryThreadOptions } from "./delivery-thread.ts";

/** What the sender sends with: the targets as config (for the thread) and as the main thread made them (for `main`). */
export interface SenderSettings extends DeliverySettings {
  made: Map<string, Target>;
}

export interface Sender extends Omit<DeliveryThread, "reconfigure"> {
  reconfigure(next: SenderSettings, replace: ReadonlySet<string>, stopping?: AbortSignal): Promise<void>;
  /**
   * How many mails a catch-up going on still has to read (the most of any mailbox's). `auto` moves
   * sending to its own thread when that is at least `threadFrom`.
   */
  expect(mailsAhead: number): void;
}

export type SenderThread = "main" | "own" | "auto";

export interface SenderOptions extends Omit<DeliveryThreadOptions, keyof DeliverySettings> {
  thread: SenderThread;
  settings: SenderSettings;
  /** The main thread's state; the thread opens its own connection to `statePath`. */
  state: State;
  /** auto: mails a catch-up must still have to read for the thread to start (default 1,000). */
  threadFrom?: number;
  /** auto: the thread stops after this long with nothing queued and nothing sent (default 30 s). */
  threadIdleMs?: number;
}

/**
 * Below this, a catch-up is over before the thread would pay for itself: it takes ~0.3 s to start
 * and ~28 MB while it runs, and the main thread sends ~2,500 posts a second when it reads no mail.
 */
const defaultThreadFrom = 1000;
const defaultThreadIdleMs = 30_000;

/** Starts the sender; with `own`, resolves once the thread has opened the state file and made its targets. */
export async function startSender(o: SenderOptions): Promise<Sender> {
  if (o.thread === "own") return onThread(await startDeliveryThread({ ...o, ...configOf(o.settings) }));
  const main = onMain(o);
  return o.thread === "main" ? main : new AutoSender(o, main);
}

function configOf(settings: SenderSettings): DeliverySettings {
  const { made: _, ...config } = settings;
  return config;
}

function onThread(thread: DeliveryThread): Sender {
  return { ...thread, reconfigure: (next, replace, stopping) => thread.reconfigure(configOf(next), replace, stopping), expect: () => {} };
}

function onMain(o: SenderOptions): Sender {
  const { pacing, retry, made } = o.settings;
  const dispatcher = new Dispatcher({ outbox: o.state.outbox, targets: made, pacing, retry, logger: o.logger, ...(o.onOutcome ? { onOutcome: o.onOutcome } : {}) });
  return {
    start: () => dispatcher.start(),
    kick: (targets) => dispatcher.kick(targets),
    drain: (deadlineMs) => dispatcher.drain(deadlineMs),
    reconfigure: (next, replace, stopping) => dispatcher.reconfigure({ targets: next.made, pacing: next.pacing, retry: next.retry }, replace, stopping),
    stop: () => dispatcher.stop(),
    expect: () => {},
  };
}

/** No targets: a sender reconfigured to this finishes what it has in flight, commits it, and sends nothing more. */
function emptied(settings: SenderSettings): SenderSettings {
  return { ...settings, targets: [], made: new Map() };
}

/**
 * `auto`: sends on the main thread, and moves to a thread of its own while a big catch-up is read,
 * so reading and sending each get a core. In a 10,000-mail catch-up on the main thread, sending
 * waited behind the reading and the last post came ~3.5 s after the last mail was queued
 * (BENCHMARKS.md). The thread stops again once nothing has been queued or sent for a while, so
 * a mailbox that gets a few mails a day pays nothing for it.
 *
 * One sender at a time: a move starts the thread first (it opens the state file and makes its
 * targets), then the old sender finishes its sends in flight and commits them, then the new one
 * starts and reads the table. No row is with both, so a move posts nothing twice. Moves, reloads
 * and the stop run one after the other.
 */
class AutoSender implements Sender {
  readonly #o: SenderOptions;
  readonly #main: Sender;
  #settings: SenderSettings;
  #thread: DeliveryThread | undefined;
  /** The next move or reload waits for this one. */
  #queue: Promise<void> = Promise.resolve();
  #moving = false;
  #started = false;
  #stopping = false;
  /** A thread that could not start is not tried again in this run. */
  #threadBroken = false;
  readonly #abandon = new AbortController();
  #lastBusy = Date.now();
  #idleTimer: NodeJS.Timeout | undefined;
  readonly #threadFrom: number;
  readonly #idleMs: number;

  constructor(o: SenderOptions, main: Sender) {
    this.#o = o;
    this.#main = main;
    this.#settings = o.settings;
    this.#threadFrom = o.threadFrom ?? defaultThreadFrom;
    this.#idleMs = o.threadIdleMs ?? defaultThreadIdleMs;
  }

  start(): void {
    this.#started = true;
    this.#main.start();
  }

  kick(targets?: Iterable<string>): void {
    this.#lastBusy = Date.now();
    (this.#thread ?? this.#main).kick(targets);
  }

  expect(mailsAhead: number): void {
    this.#lastBusy = Date.now();
    if (mailsAhead < this.#threadFrom || this.#thread || this.#moving || this.#threadBroken || !this.#started || this.#stopping) return;
    this.#serially(() => this.#toThread());
  }

  reconfigure(next: SenderSettings, replace: ReadonlySet<string>, stopping?: AbortSignal): Promise<void> {
    return this.#serially(async () => {
      this.#settings = next;
      await (this.#thread ? this.#thread.reconfigure(configOf(next), replace, stopping) : this.#main.reconfigure(next, replace, stopping));
    });
  }

  async drain(deadlineMs: number): Promise<{ left: number }> {
    const deadline = Date.now() + deadlineMs;
    this.#stopping = true;
    clearInterval(this.#idleTimer);
    await this.#queue;
    return (this.#thread ?? this.#main).drain(Math.max(0, deadline - Date.now()));
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#idleTimer);
    // A move waiting on a send in flight abandons it, as a stop does (its row stays pending).
    this.#abandon.abort();
    await this.#queue;
    await this.#main.stop();
    await this.#thread?.stop();
  }

  #serially(step: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(step);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** The thread takes over: it starts (the main thread sends on meanwhile), then the main thread's sends in flight settle. */
  async #toThread(): Promise<void> {
    if (this.#thread || this.#stopping) return;
    this.#moving = true;
    const started = Date.now();
    try {
      let thread: DeliveryThread;
      try {
        thread = await startDeliveryThread({ ...this.#o, ...configOf(this.#settings), onOutcome: (...outcome) => this.#outcome(...outcome) });
      } catch (err) {
        this.#threadBroken = true;
        this.#o.logger.warn({ err: (err as Error).message }, "the delivery thread could not start; notifications are sent from the main thread, as with outbox.thread: main");
        return;
      }
      if (this.#stopping) {
        await thread.stop();
        return;
      }
      await this.#main.reconfigure(emptied(this.#settings), new Set(), this.#abandon.signal);
      this.#thread = thread;
      thread.start();
      this.#lastBusy = Date.now();
      this.#idleTimer = setInterval(() => this.#checkIdle(), Math.max(10, this.#idleMs / 4));
      this.#idleTimer.unref();
      this.#o.logger.info({ tookMs: Date.now() - started }, "a big catch-up: sending notifications from a thread of their own while it lasts");
    } finally {
      this.#moving = false;
    }
  }

  #outcome(...outcome: Parameters<NonNullable<SenderOptions["onOutcome"]>>): void {
    this.#lastBusy = Date.now();
    this.#o.onOutcome?.(...outcome);
  }

  #checkIdle(): void {
    if (!this.#thread || this.#moving || this.#stopping || Date.now() - this.#lastBusy < this.#idleMs) return;
    this.#serially(() => this.#toMain()).catch((err: unknown) => this.#o.logger.error({ err: (err as Error).message }, "moving the sender back to the main thread failed"));
  }

  /** The main thread takes over again: the thread's sends in flight settle, the thread ends, the main thread's loops start. */
  async #toMain(): Promise<void> {
    const thread = this.#thread;
    if (!thread || this.#stopping || Date.now() - this.#lastBusy < this.#idleMs) return;
    this.#moving = true;
    try {
      clearInterval(this.#idleTimer);
      this.#idleTimer = undefined;
      await thread.reconfigure(configOf(emptied(this.#settings)), new Set(), this.#abandon.signal);
      await thread.stop();
      this.#thread = undefined;
      // Also when a stop came meanwhile: its drain sends from here.
      await this.#main.reconfigure(this.#settings, new Set());
      this.#o.logger.info({}, "nothing to send for a while: notifications are sent from the main thread again; the delivery thread stopped");
    } finally {
      this.#moving = false;
    }
  }
}
