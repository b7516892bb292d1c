/**
 * The daemon's sender on its own thread. In a catch-up the main thread reads mail, applies the
 * rules and commits each round's outbox rows; sending (HTTP, the "done" commits, the "delivered"
 * log lines) took a third of it and trailed the queueing by seconds. Here the Dispatcher runs in a
 * worker (delivery-worker.ts) with its own connection to the state file (WAL: one writer at a time,
 * readers never wait; store/sqlite/busy.ts waits out the short overlaps of two writers), so it uses the second
 * core. This is the main thread's handle on it, with the Dispatcher's methods. It costs ~28 MB
 * all the time (a second V8 heap with node:http, zod and pino: bench/thread-memory.ts), so it is
 * used only with outbox.thread: own (sender.ts).
 */
import { Worker } from "node:worker_threads";
import { InternalError, MailbellError, StateError, type ErrorCode } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { DeliveryOutcome, RetryPolicy, TargetPacing, TargetPause } from "../outbox/dispatcher.ts";
import type { TargetConfig } from "../targets/index.ts";

/** The worker's entry beside this file: .ts when run from source, .js from dist/. */
const workerFile = new URL(import.meta.url.endsWith(".ts") ? "./delivery-worker.ts" : "./delivery-worker.js", import.meta.url);

/** What the Dispatcher sends with: the config's targets (data, so they can cross to the thread). */
export interface DeliverySettings {
  targets: readonly TargetConfig[];
  pacing: ReadonlyMap<string, TargetPacing>;
  retry: RetryPolicy;
}

/**
 * How the thread logs. `fd`: it makes its own pino on that file descriptor, as the CLI's logger is
 * made (pino-logger.ts), so its lines cost the main thread nothing. `forward`: each line is handed
 * to the caller's logger (a test's, a library user's), on the main thread.
 */
export type DeliveryLog = { to: "fd"; fd: number; level: string; format: "json" | "pretty" } | { to: "forward"; levels: string[] };

export interface DeliveryThreadOptions extends DeliverySettings {
  statePath: string;
  logger: Logger;
  /** Default: forward to `logger`. */
  log?: Extract<DeliveryLog, { to: "fd" }>;
  /** Row outcomes, for metrics; they come in batches, at most one message per 25 ms, and before every reply. */
  onOutcome?: (target: string, outcome: DeliveryOutcome, rows: number) => void;
  /** The thread failed after it had started (a bug, out of memory): called once, with the error the run should end with. */
  onFailure?: (error: MailbellError) => void;
  workerFile?: URL;
}

/** What the daemon does with its sender; the Dispatcher's methods, across the thread. */
export interface DeliveryThread {
  /** `pauses`: where the sender before this one left off (outbox.thread auto; Dispatcher.start). */
  start(pauses?: ReadonlyMap<string, TargetPause>): void;
  kick(targets?: Iterable<string>): void;
  drain(deadlineMs: number): Promise<{ left: number }>;
  /** Resolves with the pauses of the targets whose sending ended (Dispatcher.reconfigure). */
  reconfigure(next: DeliverySettings, replace: ReadonlySet<string>, stopping?: AbortSignal): Promise<Map<string, TargetPause>>;
  /** Stops sending (an in-flight request is abandoned, its row stays pending), closes the thread's database and ends the thread. */
  stop(): Promise<void>;
}

/** An error as it crosses the thread: its code (a MailbellError's) keeps the CLI's exit code. */
export interface SentError {
  code?: ErrorCode;
  message: string;
  stack?: string;
}

export type ToWorker =
  | { type: "start"; pauses: [string, TargetPause][] }
  | { type: "kick"; targets: string[] | undefined }
  | { type: "drain"; id: number; deadlineMs: number }
  | { type: "reconfigure"; id: number; next: DeliverySettings; replace: string[] }
  | { type: "abandon"; id: number }
  | { type: "stop"; id: number };

export type FromWorker =
  | { type: "ready" }
  | { type: "failed"; error: SentError }
  | { type: "reply"; id: number; value?: unknown; error?: SentError }
  | { type: "outcomes"; counts: [string, DeliveryOutcome, number][] }
  | { type: "log"; level: "error" | "warn" | "info" | "debug" | "trace"; bindings: Record<string, unknown>; obj: object; msg: string | undefined };

export interface DeliveryInit extends DeliverySettings {
  statePath: string;
  log: DeliveryLog;
}

const logLevels = ["trace", "debug", "info", "warn", "error"] as const;

/**
 * Starts the thread and resolves once it has opened the state file and made its targets; a state
 * it cannot open rejects with the same StateError the main thread's open would have.
 */
export async function startDeliveryThread(options: DeliveryThreadOptions): Promise<DeliveryThread> {
  const log = options.logger;
  const init: DeliveryInit = {
    statePath: options.statePath,
    targets: options.targets,
    pacing: options.pacing,
    retry: options.retry,
    log: options.log ?? { to: "forward", levels: logLevels.filter((l) => log.isLevelEnabled?.(l) ?? true) },
  };
  // No resourceLimits: the heap settings the launcher gives `mailbell run` (bin/mailbell.js) hold
  // for every thread, and capping the young generation lower (8 or 4 MB) changed neither the
  // catch-up's peak RSS nor its time. What the thread costs is mostly fixed: ~30 MB for a second
  // V8 heap with node:http, zod (the targets' modules) and pino loaded again.
  const worker = new Worker(options.workerFile ?? workerFile, { workerData: init });
  let nextId = 0;
  const waiting = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  /** Set once the thread is gone: stopped by us, or dead. */
  let gone: MailbellError | "stopped" | undefined;
  let stopping: Promise<void> | undefined;
  const children = new Map<string, Logger>();
  const loggerFor = (bindings: Record<string, unknown>): Logger => {
    const key = JSON.stringify(bindings);
    let child = children.get(key);
    if (!child) children.set(key, (child = Object.keys(bindings).length === 0 ? log : log.child(bindings)));
    return child;
  };
  let started!: { resolve: () => void; reject: (err: Error) => void };
  const ready = new Promise<void>((resolve, reject) => (started = { resolve, reject }));
  let isReady = false;

  const fail = (error: MailbellError): void => {
    if (gone) return;
    gone = error;
    // Before it was ready (a module that would not load, say), only the start fails: its caller
    // decides (the run does not start; outbox.thread auto goes on sending from the main thread).
    if (!isReady) {
      started.reject(error);
      void worker.terminate();
      return;
    }
    for (const w of waiting.values()) w.reject(error);
    waiting.clear();
    started.reject(error);
    log.error({ err: error.message, code: error.code }, "the delivery thread failed; nothing queued is lost (it is sent at the next start); mailbell stops");
    options.onFailure?.(error);
  };

  worker.on("message", (m: FromWorker) => {
    switch (m.type) {
      case "log":
        loggerFor(m.bindings)[m.level](m.obj, m.msg);
        return;
      case "outcomes":
        for (const [target, outcome, rows] of m.counts) options.onOutcome?.(target, outcome, rows);
        return;
      case "reply": {
        const w = waiting.get(m.id);
        waiting.delete(m.id);
        if (m.error) w?.reject(receivedError(m.error));
        else w?.resolve(m.value);
        return;
      }
      case "ready":
        isReady = true;
        started.resolve();
        return;
      case "failed":
        // Before it started: the caller's start fails with the error, as an open on this thread would.
        gone = receivedError(m.error);
        started.reject(gone);
        void worker.terminate();
        return;
    }
  });
  worker.on("error", (err) => fail(err instanceof MailbellError ? err : new InternalError(`the delivery thread failed: ${err.message}`, { cause: err })));
  worker.on("exit", (code) => fail(new InternalError(`the delivery thread ended unexpectedly (exit code ${code})`)));
  worker.on("messageerror", (err) => fail(new InternalError(`a message from the delivery thread could not be read: ${err.message}`)));

  const post = (message: ToWorker): void => {
    if (!gone) worker.postMessage(message);
  };
  const request = <T>(make: (id: number) => ToWorker): Promise<T> => {
    if (gone) return Promise.reject(gone === "stopped" ? new InternalError("the delivery thread was asked for something after it stopped") : gone);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      worker.postMessage(make(id));
    });
  };

  await ready;

  // Kicks from one turn of the main thread (a round queued for several targets) go as one message.
  let kicked: Set<string> | "all" | undefined;
  const flushKicks = (): void => {
    const targets = kicked;
    kicked = undefined;
    post({ type: "kick", targets: targets === "all" || targets === undefined ? undefined : [...targets] });
  };

  return {
    start: (pauses) => post({ type: "start", pauses: [...(pauses ?? [])] }),
    kick(targets) {
      if (kicked === undefined) setImmediate(flushKicks);
      if (targets === undefined || kicked === "all") {
        kicked = "all";
        return;
      }
      const names: Set<string> = kicked ?? new Set();
      for (const name of targets) names.add(name);
      kicked = names;
    },
    drain: (deadlineMs) => request<{ left: number }>((id) => ({ type: "drain", id, deadlineMs })),
    async reconfigure(next, replace, stopping) {
      let id = -1;
      const abandon = (): void => post({ type: "abandon", id });
      const done = request<[string, TargetPause][]>((n) => {
        id = n;
        return { type: "reconfigure", id: n, next, replace: [...replace] };
      });
      if (stopping?.aborted) abandon();
      stopping?.addEventListener("abort", abandon, { once: true });
      try {
        return new Map(await done);
      } finally {
        stopping?.removeEventListener("abort", abandon);
      }
    },
    stop() {
      // The thread has closed its database when it answers; it has ended when this resolves (the
      // caller may release the state lock then), even when the stop itself failed.
      stopping ??= (async () => {
        try {
          if (!gone) await request<void>((id) => ({ type: "stop", id }));
        } finally {
          gone ??= "stopped";
          await worker.terminate();
        }
      })();
      return stopping;
    },
  };
}

/** The error the thread sent, as the type the CLI maps to its exit code. */
function receivedError(sent: SentError): MailbellError {
  const error = sent.code === "STATE" ? new StateError(sent.message) : sent.code ? new MailbellError(sent.code, sent.message) : new InternalError(`in the delivery thread: ${sent.message}`);
  if (sent.stack) error.stack = sent.stack;
  return error;
}
