/**
 * Worker thread entry: the daemon's Dispatcher, with its own connection to the state file and its
 * own targets made from the config. A thin shell: the sending itself is outbox/dispatcher.ts. See
 * delivery-thread.ts for why it runs here.
 */
import { parentPort, workerData } from "node:worker_threads";
import pino from "pino";
import { MailbellError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { Dispatcher, type DeliveryOutcome, type TargetPause } from "../outbox/dispatcher.ts";
import { createLogger } from "../pino-logger.ts";
import type { OutboxQueue } from "../outbox/store.ts";
import { retryWhileBusy } from "../store/sqlite/busy.ts";
import { State } from "../store/sqlite/state.ts";
import { createTargets, type TargetConfig } from "../targets/index.ts";
import type { TargetStateStore } from "../targets/state.ts";
import type { Target } from "../targets/types.ts";
import type { DeliveryInit, DeliverySettings, FromWorker, SentError, ToWorker } from "./delivery-thread.ts";

const port = parentPort!;
const init = workerData as DeliveryInit;
const send = (message: FromWorker): void => port.postMessage(message);

let state: State;
let dispatcher: Dispatcher;
/** Each target with the config it was made from: a reload makes again only those whose config changed. */
let targets = new Map<string, { config: string; target: Target }>();
/** stdout targets write here, straight to fd 1 like the log to fd 2: the thread's process.stdout goes through the main thread. */
let stdout: ReturnType<typeof pino.destination> | undefined;
const log = init.log.to === "fd" ? createLogger({ level: init.log.level, format: init.log.format, destination: init.log.fd }) : forwardingLogger(new Set(init.log.levels), {});

try {
  state = State.open(init.statePath);
  // This connection waits for the main thread's commits in short steps (busy.ts), not SQLite's.
  state.db.exec("PRAGMA busy_timeout = 0");
  targets = made(init.targets, new Map());
  dispatcher = new Dispatcher({ outbox: waitingOutbox(state.outbox), targets: targetMap(), pacing: init.pacing, retry: init.retry, logger: log, onOutcome: countOutcome });
  send({ type: "ready" });
  port.on("message", (m: ToWorker) => void handle(m));
} catch (err) {
  if (state! !== undefined) state.close();
  send({ type: "failed", error: sent(err) });
}

/** Reconfigures under way, by request id: a stop abandons their sends in flight. */
const abandons = new Map<number, AbortController>();

async function handle(m: ToWorker): Promise<void> {
  if (m.type === "start") return dispatcher.start(new Map(m.pauses));
  if (m.type === "kick") return dispatcher.kick(m.targets);
  if (m.type === "abandon") return abandons.get(m.id)?.abort();
  try {
    const value = await answer(m);
    flushOutcomes();
    send({ type: "reply", id: m.id, value });
  } catch (err) {
    flushOutcomes();
    send({ type: "reply", id: m.id, error: sent(err) });
  }
}

async function answer(m: Extract<ToWorker, { id: number }>): Promise<unknown> {
  switch (m.type) {
    case "drain":
      return dispatcher.drain(m.deadlineMs);
    case "reconfigure":
      return reconfigure(m.id, m.next, new Set(m.replace));
    case "stop":
      try {
        await dispatcher.stop();
      } finally {
        state.close();
        stdout?.flushSync();
      }
      return undefined;
    case "abandon":
      return undefined;
  }
}

async function reconfigure(id: number, next: DeliverySettings, replace: ReadonlySet<string>): Promise<[string, TargetPause][]> {
  const stopping = new AbortController();
  abandons.set(id, stopping);
  try {
    targets = made(next.targets, targets);
    return [...(await dispatcher.reconfigure({ targets: targetMap(), pacing: next.pacing, retry: next.retry }, replace, stopping.signal))];
  } finally {
    abandons.delete(id);
  }
}

/** The targets of `configs`: the ones whose config is unchanged from `before` keep their object (and what it holds). */
function made(configs: readonly TargetConfig[], before: ReadonlyMap<string, { config: string; target: Target }>): Map<string, { config: string; target: Target }> {
  const json = new Map(configs.map((c) => [c.name, JSON.stringify(c)]));
  const remake = configs.filter((c) => before.get(c.name)?.config !== json.get(c.name));
  const fresh = createTargets(remake, { stateFor: (name) => waitingTargetState(state.targetState.for(name)), stdout: (line) => (stdout ??= pino.destination({ fd: 1, sync: true })).write(`${line}\n`) });
  return new Map(configs.map((c) => [c.name, fresh.has(c.name) ? { config: json.get(c.name)!, target: fresh.get(c.name)! } : before.get(c.name)!]));
}

/** The outbox as the Dispatcher uses it, each call tried again while the main thread writes. */
function waitingOutbox(o: OutboxQueue): OutboxQueue {
  return {
    ready: (...a) => retryWhileBusy(() => o.ready(...a)),
    readyCount: (...a) => retryWhileBusy(() => o.readyCount(...a)),
    earliestPending: (...a) => retryWhileBusy(() => o.earliestPending(...a)),
    pendingInGroup: (...a) => retryWhileBusy(() => o.pendingInGroup(...a)),
    markDone: (...a) => retryWhileBusy(() => o.markDone(...a)),
    markRetry: (...a) => retryWhileBusy(() => o.markRetry(...a)),
    markDead: (...a) => retryWhileBusy(() => o.markDead(...a)),
    releaseRetries: (...a) => retryWhileBusy(() => o.releaseRetries(...a)),
    counts: () => retryWhileBusy(() => o.counts()),
  };
}

function waitingTargetState(s: TargetStateStore): TargetStateStore {
  return { get: (key) => retryWhileBusy(() => s.get(key)), set: (key, value) => retryWhileBusy(() => s.set(key, value)) };
}

function targetMap(): Map<string, Target> {
  return new Map([...targets].map(([name, { target }]) => [name, target]));
}

/**
 * Outcomes go to the main thread (metrics) at most every outcomesEveryMs, not per row or per turn:
 * in a catch-up a message per turn (~2,500 for 10,000 rows) cost this thread ~0.1 s of posting
 * them, and a counter 25 ms late changes nothing. A reply to the main thread sends them first.
 */
const outcomes = new Map<string, [string, DeliveryOutcome, number]>();
let outcomesDue: NodeJS.Timeout | undefined;
const outcomesEveryMs = 25;

function countOutcome(target: string, outcome: DeliveryOutcome, rows: number): void {
  const key = `${outcome} ${target}`;
  const seen = outcomes.get(key);
  if (seen) seen[2] += rows;
  else outcomes.set(key, [target, outcome, rows]);
  outcomesDue ??= setTimeout(flushOutcomes, outcomesEveryMs);
}

function flushOutcomes(): void {
  if (outcomesDue) clearTimeout(outcomesDue);
  outcomesDue = undefined;
  if (outcomes.size === 0) return;
  send({ type: "outcomes", counts: [...outcomes.values()] });
  outcomes.clear();
}

/** A Logger whose lines the main thread writes with its own logger (a test's, a library user's). */
function forwardingLogger(levels: ReadonlySet<string>, bindings: Record<string, unknown>): Logger {
  const at =
    (level: Extract<FromWorker, { type: "log" }>["level"]) =>
    (obj: object, msg?: string): void => {
      if (!levels.has(level)) return;
      try {
        send({ type: "log", level, bindings, obj, msg });
      } catch {
        // Something in it cannot be copied to another thread (a function): its JSON can.
        send({ type: "log", level, bindings, obj: JSON.parse(JSON.stringify(obj)) as object, msg });
      }
    };
  return {
    error: at("error"),
    warn: at("warn"),
    info: at("info"),
    debug: at("debug"),
    trace: at("trace"),
    child: (more) => forwardingLogger(levels, { ...bindings, ...more }),
    isLevelEnabled: (level) => levels.has(level),
  };
}

function sent(err: unknown): SentError {
  const error = err instanceof Error ? err : new Error(String(err));
  return { ...(error instanceof MailbellError ? { code: error.code } : {}), message: error.message, ...(error.stack ? { stack: error.stack } : {}) };
}
