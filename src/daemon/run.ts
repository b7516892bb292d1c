import { readFile } from "node:fs/promises";
import path from "node:path";
import type { LoadedConfig } from "../config/load.ts";
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
import { Dispatcher, type DeliveryOutcome, type TargetPacing } from "../outbox/dispatcher.ts";
import { lockState } from "../store/sqlite/lock.ts";
import { State } from "../store/sqlite/state.ts";
import { createTargets } from "../targets/index.ts";
import type { Target } from "../targets/types.ts";
import { announceSetAside } from "./announce.ts";
import { CatchUpTally } from "./catch-up-log.ts";
import { Health, type HealthEvent } from "./health.ts";
import { createMailbellMetrics, Metrics } from "./metrics.ts";
import { startDecoder, type Decoder } from "./decoder.ts";
import { handleMails, type PipelineDeps } from "./pipeline.ts";
import { startStatusServer, type StatusServer } from "./status-server.ts";

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
}

/**
 * Watches every configured (account, mailbox) until `signal` aborts, then lets the outbox drain.
 * Each mailbox runs on its own; one that cannot connect is retried without holding up the others.
 */
export async function runDaemon(loaded: LoadedConfig, options: RunOptions): Promise<void> {
  const { config } = loaded;
  const log = options.logger;
  refuseNothingToWatch(loaded.file, config);
  const rules = compileConfigRules(loaded);
  for (const warning of loaded.warnings) log.warn({ config: loaded.file, path: warning.path, line: warning.line }, `config: ${warning.path}: ${warning.message}`);
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
  const mailboxes = config.accounts.flatMap((a) => a.mailboxes.map((mailbox) => ({ account: a.name, mailbox })));
  const health = new Health({ staleAfterMs: staleAfterMs(config), reconnectBudgetMs: (config.status?.reconnectBudgetSeconds ?? 300) * 1000 });
  for (const m of mailboxes) health.register(m.account, m.mailbox);
  const registry = new Metrics();
  const metrics = createMailbellMetrics(registry, {
    health: () => health.snapshot(Date.now()),
    outboxRows: () => state.outbox.counts(),
    outboxOldestPending: () => state.outbox.oldestPending(),
    known: { mailboxes, rules: rules.map((r) => r.name), targets: [...targets.keys()] },
  });
  const dispatcher = new Dispatcher({
    outbox: state.outbox,
    targets,
    pacing: pacingOf(config, targets),
    retry: { baseMs: config.outbox.retryBaseSeconds * 1000, capMs: config.outbox.retryMaxSeconds * 1000, maxAttempts: config.outbox.maxAttempts },
    logger: log,
    onOutcome: (target, outcome, rows) => {
      metrics.delivery(target, outcome, rows);
      options.onDelivery?.(target, outcome, rows);
    },
  });
  // The first watcher that gives up (a first start that cannot log in) stops the others.
  const givenUp = new AbortController();
  const runOptions: RunOptions = {
    ...options,
    signal: AbortSignal.any([options.signal, givenUp.signal]),
    onWatchEvent: (account, mailbox, event) => {
      health.onEvent(account, mailbox, event, Date.now());
      if (event.type === "disconnected" || event.type === "failed") metrics.sessionFailed(account, mailbox, event.error);
      if (event.type === "actions-done") metrics.mailActions(account, mailbox, "done", event.count);
      if (event.type === "action-failed") metrics.mailActions(account, mailbox, "refused", event.count, event.action);
      if (event.type === "actions-dropped") metrics.mailActions(account, mailbox, "given_up", event.count);
      if (event.type === "set-aside") {
        metrics.mailSetAside(account, mailbox);
        const names = config.watch.announceUnreadable;
        if (names.length > 0) dispatcher.kick(announceSetAside({ account, mailbox, ...event }, { names, targets, outbox: state.outbox, logger: log }));
      }
      options.onWatchEvent?.(account, mailbox, event);
    },
  };
  let status: StatusServer | undefined;
  let decoder: Decoder | undefined;
  try {
    if (config.status) {
      status = await startStatusServer({ listen: config.status.listen, health: () => health.snapshot(Date.now()), metrics: () => registry.render(), logger: log });
    }
    for (const orphan of state.outbox.orphans([...targets.keys()])) {
      const reason = `target "${orphan.target}" is no longer in the config; add it back (or rename it back) and run mailbell outbox retry --all to send these`;
      state.outbox.killTarget(orphan.target, reason);
      log.warn({ target: orphan.target, rows: orphan.count }, "notifications queued for a target that is no longer configured were moved to the dead letters");
    }
    const purged = state.outbox.purgeDone(Date.now() - config.outbox.keepDays * 86_400_000);
    if (purged > 0) log.debug({ purged }, "forgot old delivered notifications");
    dispatcher.start();
    decoder = startDecoder(log);
    const decode = decoder.decode;
    const deps: PipelineDeps = {
      rules,
      targets,
      state,
      logger: log,
      accounts: new Map(config.accounts.map((a) => [a.name, a])),
      backlogLimit: config.watch.backlogLimit,
      catchUps: new CatchUpTally(),
      onQueued: (names) => dispatcher.kick(names),
      onUnverified: (rule, code) => metrics.mailUnverified(rule, code),
      onProcessed: (watched, matched) => {
        metrics.mailProcessed(watched.account, watched.mailbox);
        for (const rule of matched) metrics.ruleMatched(rule);
        options.onProcessed?.(watched, matched);
      },
    };
    // Every watcher starts at once; setting up only a few connections at a time keeps RSS per
    // mailbox down at hundreds of mailboxes (see ConnectGate) and starts them about as fast.
    const connectGate = new ConnectGate({ concurrency: connectConcurrency });
    const trusted = rules.flatMap((r) => r.verify?.dkim ?? []);
    const dkim = trusted.length > 0 ? dkimVerifier(cachedResolver({ servers: config.dns.servers, cacheMs: config.dns.cacheSeconds * 1000, timeoutMs: config.dns.timeoutSeconds * 1000 }).resolve, trusted) : undefined;
    const watches = config.accounts.flatMap((account) => {
      const failFast = firstStartFailFast(state, account);
      return account.mailboxes.map((mailbox) => superviseMailbox(accounts.get(account.name)!, account, mailbox, config, deps, runOptions, { connectGate, decode, setAside: state.setAside, actions: state.actions, dkim, failFast }));
    });
    // Mail set aside because a DKIM key could not be looked up is read again every 10 minutes, so it
    // is counted once DNS works again without anyone asking (`mailbell unreadable retry` asks at once).
    const recheck = dkim ? setInterval(() => retryKeyLookups(state, log), recheckMs) : undefined;
    recheck?.unref();
    signalStops(options.signal, () => clearInterval(recheck));
    const pending = state.outbox.counts().filter((c) => c.state !== "done");
    log.info({ mailboxes: watches.length, rules: rules.length, targets: targets.size, state: loaded.statePath, outbox: pending }, "mailbell started");
    options.onStarted?.({ state, statusUrl: status?.url });
    await allWatchers(watches, givenUp);
    log.info({ drainSeconds: config.outbox.drainSeconds }, "stopped watching; sending what is queued");
    const { left } = await dispatcher.drain(config.outbox.drainSeconds * 1000);
    if (left > 0) log.warn({ left }, "notifications still queued; they are kept and sent on the next start");
  } finally {
    await dispatcher.stop();
    await decoder?.close();
    await status?.close();
    state.close();
    lock.release();
    log.info({}, "mailbell stopped");
  }
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

function pacingOf(config: Config, targets: ReadonlyMap<string, Target>): Map<string, TargetPacing> {
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
 * Restarts a mailbox's watch loop when it fails for a reason of our own (the state database, a
 * bug): the mail was not checkpointed, so the next round reads it again rather than skipping it.
 * Such a failure is logged at error with what to do and makes the mailbox unhealthy at once; the
 * restarts back off, so a failure that does not go away is not retried every few seconds forever.
 */
async function superviseMailbox(imap: ImapAccount, account: AccountConfig, mailbox: string, config: Config, deps: PipelineDeps, options: RunOptions, shared: SharedByWatchers): Promise<void> {
  const { signal } = options;
  const log = deps.logger.child({ account: account.name, mailbox });
  const backoff = new Backoff({ baseMs: 5000, capMs: 5 * 60_000 });
  while (!signal.aborted) {
    const startedAt = Date.now();
    try {
      for await (const round of watchMailboxBatches(watchOptions(imap, account, mailbox, config, deps, options, shared))) {
        handleMails(round, deps);
      }
      return;
    } catch (err) {
      // Thrown only by failFast: a first start that retrying cannot fix ends the run (exit 3).
      if (err instanceof ImapError) throw err;
      const error = err instanceof MailbellError ? err : new InternalError(`handling mail of account "${account.name}" mailbox "${mailbox}" failed: ${(err as Error).message}`, { cause: err });
      if (Date.now() - startedAt > 10 * 60_000) backoff.reset();
      const retryInMs = backoff.next();
      log.error({ err: error.message, code: error.code, stack: (err as Error).stack, retryInMs }, error.code === "STATE" ? "the state database failed; nothing was lost (the mail stays unread); fix the cause (disk space, permissions) — restarting this mailbox's watcher" : "handling a mail failed (a bug); nothing was lost (the mail stays unread) — restarting this mailbox's watcher");
      options.onWatchEvent?.(account.name, mailbox, { type: "failed", error, retryInMs });
      await sleep(retryInMs, signal);
    }
  }
}

/** What every mailbox's watcher shares: the connection gate, the decoding thread, the set-aside and action stores. */
interface SharedByWatchers {
  connectGate: ConnectGate;
  decode: DecodeParts;
  setAside: SetAsideStore;
  /** Also says whether actions wait in a mailbox no rule acts on any more. */
  actions: ActionQueue & { pendingIn(account: string, mailbox: string): boolean };
  /** Set when a rule verifies DKIM. */
  dkim: DkimVerifier | undefined;
  /** "first-login" for an account never watched with this state file (firstStartFailFast). */
  failFast: FailFast;
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

/** Waits for every watcher; the first that throws stops the others, and its error ends the run. */
async function allWatchers(watches: readonly Promise<void>[], stopOthers: AbortController): Promise<void> {
  const failures: unknown[] = [];
  const stopAll = (err: unknown): void => {
    failures.push(err);
    stopOthers.abort();
  };
  await Promise.all(watches.map((watch) => watch.catch(stopAll)));
  if (failures.length > 0) throw failures[0];
}

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
    reconnect: { capMs: watch.reconnectMaxSeconds * 1000, authFailureMs: watch.authRetryMinutes * 60_000 },
    onEvent: (event) => options.onWatchEvent?.(account.name, mailbox, event),
    failFast: shared.failFast,
    connectGate: shared.connectGate,
    decode: shared.decode,
    ...bodyReading(deps.rules, account.name, mailbox),
    // Read whole only where a rule verifies DKIM, and there only mail whose header matches such a rule.
    ...(shared.dkim && verifiesDkimIn(deps.rules, { account: account.name, mailbox })
      ? { whole: { wanted: (mail, { bodyRead, ...where }) => needsWhole(deps.rules, { mail, ...where }, bodyRead), read: (source) => shared.dkim!.verify(source) } }
      : {}),
    readerConnection: readerConnectionsFor(account),
    // Read-write only where a rule acts, or actions queued under an earlier config still wait.
    ...(actsIn(deps.rules, { account: account.name, mailbox }) || shared.actions.pendingIn(account.name, mailbox)
      ? { actions: shared.actions, actionRetry: { baseMs: watch.actionRetrySeconds * 1000, capMs: watch.actionRetryMaxSeconds * 1000 } }
      : {}),
  };
}

async function resolveAccounts(loaded: LoadedConfig, log: Logger, tokens: RefreshTokenStore): Promise<Map<string, ImapAccount>> {
  const out = new Map<string, ImapAccount>();
  for (const [i, account] of loaded.config.accounts.entries()) {
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
