/**
 * The daemon's sender, where `outbox.thread` puts it: `main`, the Dispatcher on the thread that reads
 * mail (no extra memory); `own`, the Dispatcher on a worker thread (delivery-thread.ts: faster
 * catch-ups on a second core, for a second JavaScript heap); `auto` (the default), on the main thread
 * until a big catch-up comes, on its own thread while it lasts. The daemon uses each the same way.
 */
import { Dispatcher, type DispatcherOptions, type TargetPause } from "../outbox/dispatcher.ts";
import type { State } from "../store/sqlite/state.ts";
import type { Target } from "../targets/types.ts";
import { startDeliveryThread, type DeliverySettings, type DeliveryThread, type DeliveryThreadOptions } from "./delivery-thread.ts";

/** What the sender sends with: the targets as config (for the thread) and as the main thread made them (for `main`). */
export interface SenderSettings extends DeliverySettings {
  made: Map<string, Target>;
}

export interface Sender extends Omit<DeliveryThread, "reconfigure"> {
  reconfigure(next: SenderSettings, replace: ReadonlySet<string>, stopping?: AbortSignal): Promise<void>;
  /** A catch-up of this many mails begins (WatchEvent catching-up): `auto` moves sending to its own thread from `threadFrom`. */
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
  const dispatcher = new Dispatcher({ outbox: o.state.outbox, ...onMainThread(o.settings), logger: o.logger, ...(o.onOutcome ? { onOutcome: o.onOutcome } : {}) });
  return o.thread === "main" ? onMain(dispatcher) : new AutoSender(o, dispatcher);
}

function configOf(settings: SenderSettings): DeliverySettings {
  const { made: _, ...config } = settings;
  return config;
}

function onMainThread(settings: SenderSettings): Pick<DispatcherOptions, "targets" | "pacing" | "retry"> {
  return { targets: settings.made, pacing: settings.pacing, retry: settings.retry };
}

function onThread(thread: DeliveryThread): Sender {
  return {
    ...thread,
    reconfigure: async (next, replace, stopping) => {
      await thread.reconfigure(configOf(next), replace, stopping);
    },
    expect: () => {},
  };
}

function onMain(dispatcher: Dispatcher): Sender {
  return {
    start: () => dispatcher.start(),
    kick: (targets) => dispatcher.kick(targets),
    drain: (deadlineMs) => dispatcher.drain(deadlineMs),
    reconfigure: async (next, replace, stopping) => {
      await dispatcher.reconfigure(onMainThread(next), replace, stopping);
    },
    stop: () => dispatcher.stop(),
    expect: () => {},
  };
}

/** No targets: a sender reconfigured to this finishes what it has in flight, commits it, and sends nothing more. */
function emptied(settings: SenderSettings): SenderSettings {
  return { ...settings, targets: [], made: new Map() };
}

/** Whether `promise` settled by `deadline` (epoch ms). */
async function settledBy(promise: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()))));
  try {
    return await Promise.race([promise.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
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
 * starts and reads the table, taking up the pauses the old one was in (a Retry-After goes on being
 * followed, and the queue keeps its order). No row is with both, so a move posts nothing twice.
 * Moves, reloads and the stop run one after the other. A thread that cannot start leaves sending
 * on the main thread for the rest of the run; one that fails after it started ends the run, as
 * with `own`.
 */
class AutoSender implements Sender {
  readonly #o: SenderOptions;
  readonly #main: Dispatcher;
  #settings: SenderSettings;
  #thread: DeliveryThread | undefined;
  /** The next move or reload waits for this one. */
  #queue: Promise<void> = Promise.resolve();
  /** A move is queued or under way. */
  #moving = false;
  #started = false;
  /** drain() or stop() was called: no more moves. */
  #stopping = false;
  /** A thread that could not start is not tried again in this run. */
  #threadBroken = false;
  /** stop(), or a drain past its deadline: a move's wait for sends in flight abandons them, as a stop does. */
  readonly #abandon = new AbortController();
  #lastBusy = Date.now();
  #idleTimer: NodeJS.Timeout | undefined;
  readonly #threadFrom: number;
  readonly #idleMs: number;

  constructor(o: SenderOptions, main: Dispatcher) {
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
    this.#moving = true;
    this.#serially(() => this.#toThread()).catch((err: unknown) => this.#o.logger.error({ err: (err as Error).message }, "moving the sender to its own thread failed; it sends from the main thread"));
  }

  reconfigure(next: SenderSettings, replace: ReadonlySet<string>, stopping?: AbortSignal): Promise<void> {
    return this.#serially(async () => {
      this.#settings = next;
      if (this.#thread) await this.#thread.reconfigure(configOf(next), replace, stopping);
      else await this.#main.reconfigure(onMainThread(next), replace, stopping);
    });
  }

  async drain(deadlineMs: number): Promise<{ left: number }> {
    const deadline = Date.now() + deadlineMs;
    this.#stopping = true;
    this.#stopWatchingIdle();
    // A move waiting on a slow send past the deadline abandons it, as Dispatcher.drain does.
    if (!(await settledBy(this.#queue, deadline))) {
      this.#abandon.abort();
      await this.#queue;
    }
    return (this.#thread ?? this.#main).drain(Math.max(0, deadline - Date.now()));
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#stopWatchingIdle();
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
    try {
      if (this.#thread || this.#threadBroken || this.#stopping) return;
      const started = Date.now();
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
      this.#o.logger.debug({}, "the delivery thread is up; the main thread finishes its sends in flight first");
      const pauses = await this.#main.reconfigure(onMainThread(emptied(this.#settings)), new Set(), this.#abandon.signal);
      if (this.#stopping) {
        // A drain or stop came while the main thread's sends settled: the thread never sends.
        await thread.stop().finally(() => this.#restoreMain(pauses));
        return;
      }
      this.#thread = thread;
      thread.start(pauses);
      this.#lastBusy = Date.now();
      this.#idleTimer = setInterval(() => this.#checkIdle(), Math.max(10, this.#idleMs / 4));
      this.#idleTimer.unref();
      this.#o.logger.info({ tookMs: Date.now() - started }, "a big catch-up: sending notifications from a thread of their own while it lasts");
    } finally {
      this.#moving = false;
    }
  }

  /** The main thread's loops again, in the pauses the sender before left; not after stop(), whose loops would only be abandoned. */
  async #restoreMain(pauses: ReadonlyMap<string, TargetPause>): Promise<void> {
    if (this.#abandon.signal.aborted) return;
    await this.#main.reconfigure(onMainThread(this.#settings), new Set(), undefined, pauses);
  }

  #outcome(...outcome: Parameters<NonNullable<SenderOptions["onOutcome"]>>): void {
    this.#lastBusy = Date.now();
    this.#o.onOutcome?.(...outcome);
  }

  #stopWatchingIdle(): void {
    clearInterval(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #checkIdle(): void {
    if (!this.#thread || this.#moving || this.#stopping || Date.now() - this.#lastBusy < this.#idleMs) return;
    this.#moving = true;
    this.#serially(() => this.#toMain()).catch((err: unknown) => this.#o.logger.error({ err: (err as Error).message }, "moving the sender back to the main thread failed"));
  }

  /** The main thread takes over again: the thread's sends in flight settle, the thread ends, the main thread's loops start. */
  async #toMain(): Promise<void> {
    const thread = this.#thread;
    try {
      if (!thread || this.#stopping || Date.now() - this.#lastBusy < this.#idleMs) return;
      this.#stopWatchingIdle();
      let pauses = new Map<string, TargetPause>();
      try {
        pauses = await thread.reconfigure(configOf(emptied(this.#settings)), new Set(), this.#abandon.signal);
        await thread.stop();
      } catch (err) {
        // stop() ends the thread even when its answer is an error: the main thread sends from here.
        this.#o.logger.error({ err: (err as Error).message }, "the delivery thread did not stop cleanly; notifications are sent from the main thread");
        await thread.stop().catch(() => {});
      } finally {
        this.#thread = undefined;
      }
      // Also when a drain came meanwhile: it sends from here.
      await this.#restoreMain(pauses);
      if (!this.#abandon.signal.aborted) this.#o.logger.info({}, "nothing to send for a while: notifications are sent from the main thread again; the delivery thread stopped");
    } finally {
      this.#moving = false;
    }
  }
}
