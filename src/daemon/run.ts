import { readFile } from "node:fs/promises";
import path from "node:path";
import { loadConfig, type LoadedConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { credentialsFor } from "../auth/credentials.ts";
import type { RefreshTokenStore } from "../auth/oauth2.ts";
import { compileConfigRules, refuseNothingToWatch } from "../config/validate.ts";
import { readerConnectionsFor, type AccountConfig } from "../imap/config.ts";
import { ConfigError, ImapError, InternalError, MailbellError } from "../errors.ts";
import { Backoff, sleep } from "../imap/backoff.ts";
import { ConnectGate } from "../imap/connect-gate.ts";
import type { ImapAccount } from "../imap/client.ts";
import type { DecodeParts } from "../imap/fetch.ts";
import type { SetAsideStore } from "../imap/unreadable.ts";
import type { ActionQueue } from "../imap/actions.ts";
import type { FailFast } from "../imap/reconnect-policy.ts";
import { watchMailboxBatches, type WatchOptions } from "../imap/watcher.ts";
import type { Logger } from "../log.ts";
import { actsIn, bodyNeedIn, needsBody, needsHtml, needsWhole, verifiesDkimIn, type CompiledRule } from "../rules/rules.ts";
import { cachedResolver } from "../verify/dns.ts";
import { dkimVerifier, keyLookupFailed, type DkimVerifier } from "../verify/dkim.ts";
import type { DeliveryOutcome, RetryPolicy, TargetPacing } from "../outbox/dispatcher.ts";
import { lockState } from "../store/sqlite/lock.ts";
import { State } from "../store/sqlite/state.ts";
import { createTargets } from "../targets/index.ts";
import type { Target } from "../targets/types.ts";
import { announceSetAside } from "./announce.ts";
import { Notifiers } from "./notifiers.ts";
import { CatchUpTally } from "./catch-up-log.ts";
import { Health, type HealthEvent, type HealthOptions } from "./health.ts";
import { createMailbellMetrics, Metrics } from "./metrics.ts";
import { startDecoder, type Decoder } from "./decoder.ts";
import type { DeliveryThreadOptions } from "./delivery-thread.ts";
import { handleMails, type PipelineDeps } from "./pipeline.ts";
import { configChanges, describeChanges, placeKey, type ConfigChanges, type Place } from "./reload.ts";
import { startSender, type Sender } from "./sender.ts";
import { startStatusServer, type StatusServer } from "./status-server.ts";
import { collectStatus, type StatusSources } from "./status-view.ts";

export interface RunOptions {
  logger: Logger;
  /** Aborting it stops watching, drains the outbox (up to outbox.drainSeconds) and returns. */
  signal: AbortSignal;
  /** Observers, for the status server and tests. */
  onWatchEvent?: (account: string, mailbox: string, event: HealthEvent) => void;
  onDelivery?: (target: string, outcome: DeliveryOutcome, rows: number) => void;
  onProcessed?: PipelineDeps["onProcessed"];
  /** Called once everything is started; `statusUrl` is set when status.listen is configured. */
  onStarted?: (parts: { state: State; statusUrl: string | undefined }) => void;
  /** How reload() reads the config again; by default the same file, with process.env. */
  reloadConfig?: () => Promise<LoadedConfig>;
  /**
   * Where `logger` writes, when it is a pino on a file descriptor (`mailbell run`'s): the delivery
   * thread (outbox.thread: own, or auto during a big catch-up) then writes its lines there itself. Without it, they go through `logger`.
   */
  deliveryLog?: DeliveryThreadOptions["log"];
  /** Tests: another entry for the delivery thread (one that fails). */
  deliveryWorkerFile?: URL;
  /** Tests: outbox.thread auto's catch-up size that starts the thread, and how long it idles before it stops (sender.ts). */
  deliveryThreadFrom?: number;
  deliveryThreadIdleMs?: number;
}

/** A started daemon: `done` settles once it has stopped. */
export interface RunningDaemon {
  done: Promise<void>;
  /**
   * Reads the config again and applies what changed (SIGHUP in `mailbell run`). A config that is
   * invalid, or that changes a setting only a restart can (state, status.listen, log), is refused
   * and logged at error, and the running one stays. Reloads run one after the other; one asked
   * for during the start waits for it.
   */
  reload(): Promise<ReloadOutcome>;
}

export type ReloadOutcome = { applied: true; loaded: LoadedConfig; changes: ConfigChanges } | { applied: false; reason: string };

/**
 * Watches every configured (account, mailbox) until `signal` aborts, then lets the outbox drain.
 * Each mailbox runs on its own; one that cannot connect is retried without holding up the others.
 */
export function runDaemon(loaded: LoadedConfig, options: RunOptions): Promise<void> {
  return startDaemon(loaded, options).done;
}

/** runDaemon(), with a handle to reload the config while it runs. */
export function startDaemon(loaded: LoadedConfig, options: RunOptions): RunningDaemon {
  let reload: (() => Promise<ReloadOutcome>) | undefined;
  let ready!: () => void;
  const started = new Promise<void>((resolve) => (ready = resolve));
  const done = runUntilStopped(loaded, options, (fn) => {
    reload = fn;
    ready();
  });
  done.then(ready, ready);
  return {
    done,
    async reload() {
      await started;
      return reload ? reload() : { applied: false, reason: "mailbell stopped before it had started" };
    },
  };
}

/**
 * What one version of the config makes. A reload builds the next one; a watcher keeps the one it
 * was started with until it is restarted, so a round is read and judged under the same rules.
 */
interface Generation {
  loaded: LoadedConfig;
  rules: CompiledRule[];
  targets: Map<string, Target>;
  accounts: Map<string, ImapAccount>;
  dkim: DkimVerifier | undefined;
  deps: PipelineDeps;
}

/** The pipeline's parts that stay whatever the config says. */
type LastingDeps = Omit<PipelineDeps, "rules" | "targets" | "accounts" | "backlogLimit">;

function generationOf(loaded: LoadedConfig, parts: Pick<Generation, "rules" | "targets" | "accounts">, lasting: LastingDeps): Generation {
  const { config } = loaded;
  const trusted = parts.rules.flatMap((r) => r.verify?.dkim ?? []);
  const dkim = trusted.length > 0 ? dkimVerifier(cachedResolver({ servers: config.dns.servers, cacheMs: config.dns.cacheSeconds * 1000, timeoutMs: config.dns.timeoutSeconds * 1000 }).resolve, trusted) : undefined;
  const deps: PipelineDeps = { ...lasting, rules: parts.rules, targets: parts.targets, accounts: new Map(config.accounts.map((a) => [a.name, a])), backlogLimit: config.watch.backlogLimit };
  return { loaded, ...parts, dkim, deps };
}

async function runUntilStopped(loaded: LoadedConfig, options: RunOptions, onReloadable: (reload: () => Promise<ReloadOutcome>) => void): Promise<void> {
  const { config } = loaded;
  const log = options.logger;
  refuseNothingToWatch(loaded.file, config);
  const rules = compileConfigRules(loaded);
  logConfigWarnings(loaded, log);
  const lock = lockState(loaded.statePath);
  let state: State;
  let accounts: Map<string, ImapAccount>;
  try {
    state = State.open(loaded.statePath);
    accounts = await resolveAccounts(loaded, log, state.targetState.for("oauth2"));
  } catch (err) {
    lock.release();
    throw err;
  }
  const targets = createTargets(config.targets, { stateFor: (name) => state.targetState.for(name) });
  const mailboxes = placesOf(config);
  const health = new Health(healthLimits(config));
  for (const m of mailboxes) health.register(m.account, m.mailbox);
  const registry = new Metrics();
  // Read again at each scrape; a reload puts the new names in.
  const known = { mailboxes, rules: rules.map((r) => r.name), targets: [...targets.keys()] };
  const metrics = createMailbellMetrics(registry, {
    health: () => health.snapshot(Date.now()),
    outboxRows: () => state.outbox.counts(),
    outboxOldestPending: () => state.outbox.oldestPending(),
    known,
  });
  // The first watcher that gives up (a first start that cannot log in) stops the others.
  const givenUp = new AbortController();
  // A delivery thread that dies (a bug) stops the run too, and is what it ends with.
  let deliveryFailed: MailbellError | undefined;
  // Started below, after everything that can still refuse the config; only called once mail is queued.
  let dispatcher!: Sender;
  const lasting: LastingDeps = {
    state,
    logger: log,
    catchUps: new CatchUpTally(),
    onQueued: (names) => dispatcher.kick(names),
    onUnverified: (rule, code) => metrics.mailUnverified(rule, code),
    onProcessed: (watched, matched) => {
      metrics.mailProcessed(watched.account, watched.mailbox);
      for (const rule of matched) metrics.ruleMatched(rule);
      options.onProcessed?.(watched, matched);
    },
  };
  let current: Generation;
  try {
    current = generationOf(loaded, { rules, targets, accounts }, lasting);
    dispatcher = await startSender({
      thread: config.outbox.thread,
      state,
      statePath: loaded.statePath,
      settings: { targets: config.targets, made: targets, pacing: pacingOf(config, targets), retry: retryOf(config) },
      logger: log,
      ...(options.deliveryLog ? { log: options.deliveryLog } : {}),
      ...(options.deliveryWorkerFile ? { workerFile: options.deliveryWorkerFile } : {}),
      ...(options.deliveryThreadFrom !== undefined ? { threadFrom: options.deliveryThreadFrom } : {}),
      ...(options.deliveryThreadIdleMs !== undefined ? { threadIdleMs: options.deliveryThreadIdleMs } : {}),
      onOutcome: (target, outcome, rows) => {
        metrics.delivery(target, outcome, rows);
        options.onDelivery?.(target, outcome, rows);
      },
      onFailure: (error) => {
        deliveryFailed ??= error;
        givenUp.abort();
      },
    });
  } catch (err) {
    state.close();
    lock.release();
    throw err;
  }
  // Accounts one of whose mailboxes opened in this run: their credentials work (see superviseMailbox).
  const loggedIn = new Set<string>();
  const runOptions: RunOptions = {
    ...options,
    signal: AbortSignal.any([options.signal, givenUp.signal]),
    onWatchEvent: (account, mailbox, event) => {
      health.onEvent(account, mailbox, event, Date.now());
      if (event.type === "connected") loggedIn.add(account);
      // A big catch-up may move sending to its own thread (outbox.thread auto) before its first round is read.
      if (event.type === "catching-up") dispatcher.expect(event.count);
      if (event.type === "disconnected" || event.type === "failed") metrics.sessionFailed(account, mailbox, event.error);
      if (event.type === "actions-done") metrics.mailActions(account, mailbox, "done", event.count);
      if (event.type === "action-failed") metrics.mailActions(account, mailbox, "refused", event.count, event.action);
      if (event.type === "actions-dropped") metrics.mailActions(account, mailbox, "given_up", event.count);
      if (event.type === "set-aside") {
        metrics.mailSetAside(account, mailbox);
        const names = current.loaded.config.watch.announceUnreadable;
        if (names.length > 0) dispatcher.kick(announceSetAside({ account, mailbox, ...event }, { names, targets: current.targets, outbox: state.outbox, logger: log }));
      }
      options.onWatchEvent?.(account, mailbox, event);
    },
  };
  let status: StatusServer | undefined;
  let decoder: Decoder | undefined;
  let recheck: NodeJS.Timeout | undefined;
  try {
    if (config.status) {
      const sources: StatusSources = {
        health: () => health.snapshot(Date.now()),
        checkpoints: state.checkpoints,
        outbox: state.outbox,
        totals: state.totals,
        // Read at each look: a reload (SIGHUP) may have changed them.
        targets: () => [...current.targets.keys()],
        totalRules: () => current.rules.flatMap((r) => (r.total ? [{ name: r.name, per: r.total.per }] : [])),
      };
      status = await startStatusServer({ listen: config.status.listen, token: config.status.token, health: sources.health, metrics: () => registry.render(), status: () => collectStatus(sources, Date.now()), logger: log });
    }
    deadLetterOrphans(state, targets, log);
    const purged = state.outbox.purgeDone(Date.now() - config.outbox.keepDays * 86_400_000);
    if (purged > 0) log.debug({ purged }, "forgot old delivered notifications");
    dispatcher.start();
    decoder = startDecoder(log);
    // Every watcher starts at once; setting up only a few connections at a time keeps RSS per
    // mailbox down at hundreds of mailboxes (see ConnectGate) and starts them about as fast.
    const shared = { connectGate: new ConnectGate({ concurrency: connectConcurrency }), notifiers: new Notifiers(log, runOptions.signal), decode: decoder.decode, setAside: state.setAside, actions: state.actions, loggedIn: (name: string) => loggedIn.has(name) };
    const watchers = new Watchers((gen, place, signal, firstStart) => {
      const account = gen.loaded.config.accounts.find((a) => a.name === place.account)!;
      // A reload never ends the run: an account it adds with a wrong password is retried and logged at error.
      const failFast = firstStart ? firstStartFailFast(state, account) : "never";
      const imap = gen.accounts.get(place.account)!;
      // Where the account wants NOTIFY (watch.notify on, or auto with more folders than maxConnections),
      // its notifier wakes this folder while NOTIFY is on; the notifier outlives this watcher (notifiers.ts).
      const notified = shared.notifiers.join(imap, account, place.mailbox, gen.loaded.config.watch);
      return superviseMailbox(imap, account, place.mailbox, gen.loaded.config, gen.deps, { ...runOptions, signal }, { ...shared, dkim: gen.dkim, failFast, wakeups: notified.wakeups }).finally(notified.leave);
    }, runOptions.signal, () => givenUp.abort());
    watchers.start(current, mailboxes, { firstStart: true });
    // Mail set aside because a DKIM key could not be looked up is read again every 10 minutes, so it
    // is counted once DNS works again without anyone asking (`mailbell unreadable retry` asks at once).
    recheck = setInterval(() => {
      if (current.dkim) retryKeyLookups(state, log);
    }, recheckMs);
    recheck.unref();
    // On the run's signal: after a watcher gave up too, no recheck may touch the closed database.
    signalStops(runOptions.signal, () => clearInterval(recheck));
    const pending = state.outbox.counts().filter((c) => c.state !== "done");
    log.info({ mailboxes: mailboxes.length, rules: rules.length, targets: targets.size, state: loaded.statePath, outbox: pending }, "mailbell started");
    if (mailboxes.length === 0) log.warn({}, "no accounts configured: nothing to watch. Add one under accounts:.");
    const reloads = new Reloads();
    const reloading: Reloading = { stopping: runOptions.signal, state, log, dispatcher, health, known, watchers, lasting, current: () => current, swap: (next) => (current = next) };
    const read = options.reloadConfig ?? (() => loadConfig(loaded.file));
    onReloadable(() =>
      reloads.next(async () => {
        // The run's signal: once a watcher gave up, mailbell is stopping as much as after SIGTERM.
        if (runOptions.signal.aborted || watchers.closed) {
          log.warn({}, "config reload not done: mailbell is stopping");
          return stopping;
        }
        return reloadConfig(reloading, read).catch((err: unknown): ReloadOutcome => {
          log.error({ err: (err as Error).message, stack: (err as Error).stack }, "config reload failed half way (a bug); some changes may not have taken effect: restart mailbell");
          return { applied: false, reason: (err as Error).message };
        });
      }),
    );
    options.onStarted?.({ state, statusUrl: status?.url });
    await watchers.untilAllStopped(() => reloads.idle());
    if (deliveryFailed) throw deliveryFailed;
    const drainSeconds = current.loaded.config.outbox.drainSeconds;
    log.info({ drainSeconds }, "stopped watching; sending what is queued");
    const { left } = await dispatcher.drain(drainSeconds * 1000);
    if (left > 0) log.warn({ left }, "notifications still queued; they are kept and sent on the next start");
  } finally {
    clearInterval(recheck);
    try {
      // The thread's connection is closed and the thread ended before the lock goes.
      await dispatcher.stop();
    } finally {
      await decoder?.close();
      await status?.close();
      state.close();
      lock.release();
      log.info({}, "mailbell stopped");
    }
  }
}

const stopping: ReloadOutcome = { applied: false, reason: "mailbell is stopping" };

function logConfigWarnings(loaded: LoadedConfig, log: Logger): void {
  for (const warning of loaded.warnings) log.warn({ config: warning.file ?? loaded.file, path: warning.path, line: warning.line }, `config: ${warning.path ? `${warning.path}: ` : ""}${warning.message}`);
}

function placesOf(config: Config): Place[] {
  return config.accounts.flatMap((a) => [...new Set(a.mailboxes)].map((mailbox) => ({ account: a.name, mailbox })));
}

function healthLimits(config: Config): HealthOptions {
  return { staleAfterMs: staleAfterMs(config), reconnectBudgetMs: (config.status?.reconnectBudgetSeconds ?? 300) * 1000 };
}

function retryOf(config: Config): RetryPolicy {
  return { baseMs: config.outbox.retryBaseSeconds * 1000, capMs: config.outbox.retryMaxSeconds * 1000, maxAttempts: config.outbox.maxAttempts };
}

/** Rows queued for a target no longer in the config wait in the dead letters, where `outbox retry` finds them. */
function deadLetterOrphans(state: State, targets: ReadonlyMap<string, Target>, log: Logger): void {
  for (const orphan of state.outbox.orphans([...targets.keys()])) {
    const reason = `target "${orphan.target}" is no longer in the config; add it back (or rename it back) and run mailbell outbox retry --all to send these`;
    state.outbox.killTarget(orphan.target, reason);
    log.warn({ target: orphan.target, rows: orphan.count }, "notifications queued for a target that is no longer configured were moved to the dead letters");
  }
}

/** Runs reloads one after the other. */
class Reloads {
  #tail: Promise<unknown> = Promise.resolve();

  next<T>(reload: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(reload);
    this.#tail = run.catch(() => {});
    return run;
  }

  /** Resolves once no reload runs, and whether one started meanwhile. */
  async idle(): Promise<void> {
    let tail;
    do {
      tail = this.#tail;
      await tail;
    } while (tail !== this.#tail);
  }
}

/** Runs one mailbox's watcher until `signal` aborts; `firstStart` as in Watchers.start. */
type Supervise = (gen: Generation, place: Place, signal: AbortSignal, firstStart: boolean) => Promise<void>;

/**
 * The running watchers, one per (account, mailbox), each with its own stop: a reload stops and
 * starts some while the others go on. Stopping waits until the watcher has returned: the round it
 * was reading is either committed or left unread (its checkpoint unmoved), so the next watcher of
 * that mailbox reads on from the checkpoint without a gap or a repeat.
 */
class Watchers {
  readonly #running = new Map<string, { done: Promise<void>; stop: AbortController }>();
  readonly #supervise: Supervise;
  readonly #signal: AbortSignal;
  readonly #onFailure: () => void;
  /** Why watchers gave up (failFast): the first one ends the daemon once all have stopped. */
  readonly #failures: unknown[] = [];
  /** Set once every watcher has ended; no reload starts any after that. */
  closed = false;

  constructor(supervise: Supervise, signal: AbortSignal, onFailure: () => void) {
    this.#supervise = supervise;
    this.#signal = signal;
    this.#onFailure = onFailure;
    // One listener stops them all: an AbortSignal.any per watcher kept ~1 kB of signals, weak
    // references and finalizer cells per mailbox (heap snapshot at 1,000 mailboxes).
    signalStops(signal, () => {
      for (const watcher of this.#running.values()) watcher.stop.abort(signal.reason);
    });
  }

  /** `firstStart`: the run's first watchers, which may give up (failFast); a reload's never do. */
  start(gen: Generation, places: readonly Place[], how: { firstStart: boolean }): void {
    for (const place of places) {
      const stop = new AbortController();
      if (this.#signal.aborted) stop.abort(this.#signal.reason);
      const signal = stop.signal;
      // On the next tick: one that throws at once (the state database) fails like one that fails later, and the others still start.
      const done = Promise.resolve()
        .then(() => this.#supervise(gen, place, signal, how.firstStart))
        .catch((err: unknown) => {
          this.#failures.push(err);
          this.#onFailure();
        });
      this.#running.set(placeKey(place), { done, stop });
    }
  }

  async stop(places: readonly Place[]): Promise<void> {
    const stopping = places.flatMap((place) => {
      const watcher = this.#running.get(placeKey(place));
      this.#running.delete(placeKey(place));
      watcher?.stop.abort();
      return watcher ? [watcher.done] : [];
    });
    await Promise.all(stopping);
  }

  /**
   * Resolves once the run stops (its signal aborts, or a watcher gave up) and every watcher has
   * ended, the ones reloads started included. None left running is no reason to stop.
   */
  async untilAllStopped(reloadsIdle: () => Promise<void>): Promise<void> {
    for (;;) {
      const watching = [...this.#running.values()];
      await Promise.all(watching.map((w) => w.done));
      await reloadsIdle();
      if (![...this.#running.values()].every((w) => watching.includes(w))) continue;
      if (this.#signal.aborted) break;
      await new Promise<void>((resolve) => signalStops(this.#signal, resolve));
    }
    this.closed = true;
    if (this.#failures.length > 0) throw this.#failures[0];
  }
}

/** What a reload works on: the daemon's lasting parts and its current generation. */
interface Reloading {
  /** The run's signal: a stop cuts short what a reload waits for. */
  stopping: AbortSignal;
  state: State;
  log: Logger;
  dispatcher: Sender;
  health: Health;
  known: { mailboxes: Place[]; rules: string[]; targets: string[] };
  watchers: Watchers;
  lasting: LastingDeps;
  current(): Generation;
  swap(next: Generation): void;
}

/**
 * Reads the config again and applies it; see RunningDaemon.reload. Everything that can fail (the
 * file, its validation, a CA file) is done before anything is touched, so a refused reload leaves
 * the running config whole. Then, in this order: the watchers that stop or restart finish their
 * round; the new ones start from their checkpoints; the senders of removed and changed targets
 * finish the post in flight and the new ones start; rows left for a removed target move to the
 * dead letters (as at a start).
 */
async function reloadConfig(r: Reloading, read: () => Promise<LoadedConfig>): Promise<ReloadOutcome> {
  const before = r.current();
  let next: LoadedConfig;
  let rules: CompiledRule[];
  let accounts: Map<string, ImapAccount>;
  let changes: ConfigChanges;
  let targets: Map<string, Target>;
  let gen: Generation;
  try {
    next = await read();
    refuseNothingToWatch(next.file, next.config);
    rules = compileConfigRules(next);
    changes = configChanges({ ...before.loaded, rules: before.rules }, { ...next, rules });
    if (changes.needRestart.length > 0) throw new ConfigError(next.file, changes.needRestart);
    accounts = await reuseAccounts(before, next, r);
    targets = reuseTargets(before, next.config, changes, r.state);
    gen = generationOf(next, { rules, targets, accounts }, r.lasting);
  } catch (err) {
    const error = err instanceof MailbellError ? err : new InternalError(`reading the config again failed: ${(err as Error).message}`, { cause: err });
    r.log.error({ config: before.loaded.file, code: error.code, err: error.message, stack: error === err ? undefined : (err as Error).stack }, `config reload refused; still running the config loaded before. ${error.message}`);
    return { applied: false, reason: error.message };
  }
  // Stopped while the file was read (SIGTERM, or a watcher gave up): nothing is touched.
  if (r.stopping.aborted) {
    r.log.warn({}, "config reload not done: mailbell is stopping");
    return stopping;
  }
  logConfigWarnings(next, r.log);
  const { config } = next;
  const { started, stopped, restarted } = changes.mailboxes;
  await r.watchers.stop([...stopped, ...restarted]);
  for (const place of stopped) r.health.forget(place.account, place.mailbox);
  for (const place of started) r.health.register(place.account, place.mailbox);
  r.health.setLimits(healthLimits(config));
  Object.assign(r.known, { mailboxes: placesOf(config), rules: rules.map((rule) => rule.name), targets: [...targets.keys()] });
  r.swap(gen);
  // Mail is read again at once; what it queues for a replaced target waits for the new sender.
  r.watchers.start(gen, [...restarted, ...started], { firstStart: false });
  await r.dispatcher.reconfigure({ targets: config.targets, made: targets, pacing: pacingOf(config, targets), retry: retryOf(config) }, new Set(changes.restartSenders), r.stopping);
  try {
    // No watcher left can queue for a removed target: each one whose rules named it was restarted.
    deadLetterOrphans(r.state, targets, r.log);
  } catch (err) {
    // Left pending, they are moved at the next start; the reload goes on.
    r.log.error({ err: (err as Error).message }, "could not move the notifications of removed targets to the dead letters (state database?); the next start does it");
  }
  r.log.info({ config: next.file, rules: changes.rules, targets: changes.targets, mailboxes: changes.mailboxes, settings: changes.settings }, `config reloaded: ${describeChanges(changes)}`);
  return { applied: true, loaded: next, changes };
}

/** The accounts of the new config: unchanged ones keep their connection settings and signed-in tokens. */
async function reuseAccounts(before: Generation, next: LoadedConfig, r: Reloading): Promise<Map<string, ImapAccount>> {
  const same = (a: AccountConfig): boolean => {
    const old = before.loaded.config.accounts.find((o) => o.name === a.name);
    return old !== undefined && JSON.stringify({ ...old, mailboxes: [] }) === JSON.stringify({ ...a, mailboxes: [] }) && before.loaded.dir === next.dir;
  };
  const fresh = await resolveAccounts(next, r.log, r.state.targetState.for("oauth2"), (a) => !same(a));
  return new Map(next.config.accounts.map((a) => [a.name, fresh.get(a.name) ?? before.accounts.get(a.name)!]));
}

/** The new config's targets: unchanged ones keep their object (and its state); added and changed ones are made. */
function reuseTargets(before: Generation, config: Config, changes: ConfigChanges, state: State): Map<string, Target> {
  const remake = new Set([...changes.targets.added, ...changes.targets.changed]);
  const made = createTargets(config.targets.filter((t) => remake.has(t.name)), { stateFor: (name) => state.targetState.for(name) });
  return new Map(config.targets.map((t) => [t.name, made.get(t.name) ?? before.targets.get(t.name)!]));
}

/**
 * A mailbox proves itself alive at least every keepalive (or poll) interval; allow two of them
 * plus the NOOP timeout before calling it stale.
 */
function staleAfterMs(config: Config): number {
  if (config.status?.staleSeconds) return config.status.staleSeconds * 1000;
  const w = config.watch;
  return (2 * Math.max(w.keepaliveSeconds, w.pollSeconds) + w.keepaliveTimeoutSeconds) * 1000;
}

/** Each target's pacing: its rateLimit, else the service's own default. */
export function pacingOf(config: Config, targets: ReadonlyMap<string, Target>): Map<string, TargetPacing> {
  return new Map(
    config.targets.map((t) => {
      const defaults = targets.get(t.name)!.defaultPacing;
      return [t.name, { perSecond: t.rateLimit?.perSecond ?? defaults.perSecond, burst: t.rateLimit?.burst ?? defaults.burst, overflow: t.overflow, digestAfter: t.digestAfter }];
    }),
  );
}

const recheckMs = 10 * 60_000;

function retryKeyLookups(state: State, log: Logger): void {
  try {
    const asked = state.setAside.requestRetryWhereReason(keyLookupFailed);
    if (asked > 0) log.info({ mails: asked }, "reading again mail set aside because a DKIM key could not be looked up");
  } catch (err) {
    log.error({ err: (err as Error).message }, "could not ask to read again mail set aside for a DKIM key lookup; `mailbell unreadable retry --all` does it by hand");
  }
}

function signalStops(signal: AbortSignal, stop: () => void): void {
  if (signal.aborted) stop();
  else signal.addEventListener("abort", stop, { once: true });
}

/** Connections set up at once: 1,000 mailboxes start as fast as with no cap (2 cores), and 8 saved no more memory. */
const connectConcurrency = 16;

/**
 * Mail whose body no rule reads is never fetched beyond its header. Where that does not depend on
 * the mail (a rule reads every body here, or none does), nothing needs asking per mail: asking
 * means decoding the header before the text is fetched, and again with it. An HTML alternative is
 * read only for mail a rule needs it for, asked per mail once its plain text is read.
 */
function bodyReading(rules: readonly CompiledRule[], account: string, mailbox: string): Pick<WatchOptions, "needsBody" | "needsHtml"> {
  const html: Pick<WatchOptions, "needsHtml"> = { needsHtml: (mail, where) => needsHtml(rules, { mail, ...where }) };
  switch (bodyNeedIn(rules, { account, mailbox })) {
    case "always":
      return html;
    case "never":
      return { needsBody: () => false };
    case "depends":
      return { needsBody: (mail, where) => needsBody(rules, { mail, ...where }), ...html };
  }
}

/**
 * What of a mail is read in this mailbox: its text only where a rule needs it, whole only where a
 * rule verifies DKIM and there only mail whose header matches such a rule. The daemon's watchers
 * and `mailbell backfill` read alike.
 */
export function mailReading(rules: readonly CompiledRule[], account: string, mailbox: string, dkim: DkimVerifier | undefined): Pick<WatchOptions, "needsBody" | "needsHtml" | "whole"> {
  return {
    ...bodyReading(rules, account, mailbox),
    ...(dkim && verifiesDkimIn(rules, { account, mailbox }) ? { whole: { wanted: (mail, { bodyRead, ...where }) => needsWhole(rules, { mail, ...where }, bodyRead), read: (source) => dkim.verify(source) } } : {}),
  };
}

/** The DKIM verifier, when a rule verifies DKIM (verify.dkim), with the config's DNS servers. */
export function dkimVerifierFor(config: Config, rules: readonly CompiledRule[]): DkimVerifier | undefined {
  const trusted = rules.flatMap((r) => r.verify?.dkim ?? []);
  if (trusted.length === 0) return undefined;
  return dkimVerifier(cachedResolver({ servers: config.dns.servers, cacheMs: config.dns.cacheSeconds * 1000, timeoutMs: config.dns.timeoutSeconds * 1000 }).resolve, trusted);
}

/**
 * Restarts a mailbox's watch loop when it fails for a reason of our own (the state database, a
 * bug): the mail was not checkpointed, so the next round reads it again rather than skipping it.
 * Such a failure is logged at error with what to do and makes the mailbox unhealthy at once; the
 * restarts back off, so a failure that does not go away is not retried every few seconds forever.
 */
async function superviseMailbox(imap: ImapAccount, account: AccountConfig, mailbox: string, config: Config, deps: PipelineDeps, options: RunOptions, shared: SharedByWatchers): Promise<void> {
  const { signal } = options;
  // Made when first needed: only failures are logged here, and a pino child kept per mailbox is ~0.4 kB at 1,000 of them.
  let child: Logger | undefined;
  const log = (): Logger => (child ??= deps.logger.child({ account: account.name, mailbox }));
  const backoff = new Backoff({ baseMs: 5000, capMs: 5 * 60_000 });
  let failFast = shared.failFast;
  while (!signal.aborted) {
    const startedAt = Date.now();
    try {
      for await (const round of watchMailboxBatches(watchOptions(imap, account, mailbox, config, deps, options, { ...shared, failFast }))) {
        handleMails(round, deps);
      }
      return;
    } catch (err) {
      // Thrown only by failFast: a first start that retrying cannot fix ends the run (exit 3)...
      if (err instanceof ImapError && !shared.loggedIn(account.name)) throw err;
      // ...unless another mailbox of the account logged in meanwhile: the credentials work, so it is retried as on any later start.
      if (err instanceof ImapError) {
        failFast = "never";
        const retryInMs = config.watch.authRetryMinutes * 60_000;
        log().error({ err: err.message, retryInMs }, "login refused, though another mailbox of this account logged in; trying again after authRetryMinutes");
        options.onWatchEvent?.(account.name, mailbox, { type: "disconnected", error: err, retryInMs });
        await sleep(retryInMs, signal);
        continue;
      }
      const error = err instanceof MailbellError ? err : new InternalError(`handling mail of account "${account.name}" mailbox "${mailbox}" failed: ${(err as Error).message}`, { cause: err });
      if (Date.now() - startedAt > 10 * 60_000) backoff.reset();
      const retryInMs = backoff.next();
      log().error({ err: error.message, code: error.code, stack: (err as Error).stack, retryInMs }, error.code === "STATE" ? "the state database failed; nothing was lost (the mail stays unread); fix the cause (disk space, permissions) — restarting this mailbox's watcher" : "handling a mail failed (a bug); nothing was lost (the mail stays unread) — restarting this mailbox's watcher");
      options.onWatchEvent?.(account.name, mailbox, { type: "failed", error, retryInMs });
      await sleep(retryInMs, signal);
    }
  }
}

/** What every mailbox's watcher shares: the connection gate, the decoding thread, the set-aside and action stores. */
interface SharedByWatchers {
  connectGate: ConnectGate;
  /** The accounts' NOTIFY notifiers (watch.notify), and this folder's wake-ups when one watches it. */
  notifiers: Notifiers;
  wakeups: WatchOptions["wakeups"];
  decode: DecodeParts;
  setAside: SetAsideStore;
  /** Also says whether actions wait in a mailbox no rule acts on any more. */
  actions: ActionQueue & { pendingIn(account: string, mailbox: string): boolean };
  /** Set when a rule verifies DKIM. */
  dkim: DkimVerifier | undefined;
  /** "first-login" for an account never watched with this state file (firstStartFailFast). */
  failFast: FailFast;
  /** Whether a mailbox of this account has opened in this run (its login then is no setup mistake). */
  loggedIn(account: string): boolean;
}

/**
 * An account none of whose mailboxes has a checkpoint has never been logged in to with this state
 * file: a refused login there is a setup mistake that retrying cannot fix (and a wrong password
 * retried risks a lockout), so the run ends with it (exit 3), as `mailbell check` would. Once
 * watched, a refused login is retried every watch.authRetryMinutes (a password changed under a
 * running service should not make systemd restart it in a loop). Anything else, a missing mailbox
 * or a port that does not answer, is retried and logged at each attempt, without holding up the
 * other mailboxes.
 */
function firstStartFailFast(state: State, account: AccountConfig): FailFast {
  return account.mailboxes.some((mailbox) => state.checkpoints.load(account.name, mailbox) !== undefined) ? "never" : "first-login";
}

/** One mailbox's watch options, from the config and the parts every watcher shares. */
function watchOptions(imap: ImapAccount, account: AccountConfig, mailbox: string, config: Config, deps: PipelineDeps, options: RunOptions, shared: SharedByWatchers): WatchOptions {
  const watch = config.watch;
  return {
    account: imap,
    mailbox,
    checkpoints: deps.state.checkpoints,
    commit: "manual",
    maxTextBytes: account.maxTextBytes,
    maxHeaderBytes: account.maxHeaderBytes,
    maxReadAttempts: watch.maxReadAttempts,
    setAside: shared.setAside,
    signal: options.signal,
    logger: deps.logger,
    idleRestartMs: watch.idleRestartMinutes * 60_000,
    keepaliveMs: watch.keepaliveSeconds * 1000,
    keepaliveTimeoutMs: watch.keepaliveTimeoutSeconds * 1000,
    pollMs: watch.pollSeconds * 1000,
    quietConnection: watch.quietConnection,
    reconnect: { capMs: watch.reconnectMaxSeconds * 1000, authFailureMs: watch.authRetryMinutes * 60_000 },
    onEvent: (event) => options.onWatchEvent?.(account.name, mailbox, event),
    failFast: shared.failFast,
    connectGate: shared.connectGate,
    wakeups: shared.wakeups,
    decode: shared.decode,
    ...mailReading(deps.rules, account.name, mailbox, shared.dkim),
    readerConnection: readerConnectionsFor(account),
    // Read-write only where a rule acts, or actions queued under an earlier config still wait.
    ...(actsIn(deps.rules, { account: account.name, mailbox }) || shared.actions.pendingIn(account.name, mailbox)
      ? { actions: shared.actions, actionRetry: { baseMs: watch.actionRetrySeconds * 1000, capMs: watch.actionRetryMaxSeconds * 1000 } }
      : {}),
  };
}

/** The accounts' connection settings (those `only` picks), with their CA files read. */
async function resolveAccounts(loaded: LoadedConfig, log: Logger, tokens: RefreshTokenStore, only: (account: AccountConfig) => boolean = () => true): Promise<Map<string, ImapAccount>> {
  const out = new Map<string, ImapAccount>();
  for (const [i, account] of loaded.config.accounts.entries()) {
    if (!only(account)) continue;
    if (account.tls === "none") log.warn({ account: account.name }, "tls: none — the password and all mail cross the network unencrypted");
    if (!account.tlsVerify) log.warn({ account: account.name }, "tlsVerify: false — the server's certificate is not checked; anyone on the path can read the password");
    out.set(account.name, await toImapAccount(account, loaded, i, tokens));
  }
  return out;
}

export async function toImapAccount(account: AccountConfig, loaded: Pick<LoadedConfig, "dir" | "file">, index: number, tokens?: RefreshTokenStore): Promise<ImapAccount> {
  let ca: Buffer | undefined;
  if (account.ca) {
    const caPath = path.resolve(loaded.dir, account.ca);
    try {
      ca = await readFile(caPath);
    } catch (err) {
      throw new ConfigError(loaded.file, [{ path: `accounts[${index}].ca`, message: `cannot read CA file ${caPath} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Give the path to a PEM file, relative to the config file.` }]);
    }
  }
  const fixedPassword = account.pass !== undefined;
  return {
    name: account.name,
    host: account.host,
    port: account.port,
    tls: account.tls,
    ca,
    tlsVerify: account.tlsVerify,
    user: account.user,
    pass: account.pass,
    ...(fixedPassword ? {} : { credentials: credentialsFor(account, loaded.dir, { tokens }) }),
  };
}
