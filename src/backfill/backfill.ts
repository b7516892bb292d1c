/**
 * `mailbell backfill`: the mail already in the watched mailboxes in a range, through the daemon's
 * rules, planner and commit step, into the totals.
 *
 * Beside a running daemon: backfill does not take the state lock (the daemon holds it); it opens
 * the state database beside it, as `mailbell outbox` does, and commits each FETCH batch in one
 * short transaction (BEGIN IMMEDIATE), as the daemon commits its rounds. Totals, notifications and
 * actions are keyed by the mail's identity and place (src/plan/store.ts), and each plan is made
 * inside the transaction that commits it, so whichever of the two reads a mail first counts it and
 * the other finds it counted. It never moves a checkpoint. Interrupted (SIGINT, kill), it has
 * committed whole batches only; run again, it counts the rest.
 *
 * The outbox has one sender, whoever holds the state lock. --notify digest queues one digest per
 * rule and target; at the end backfill takes the lock if it is free and sends (the outbox's
 * waiting rows, up to outbox.drainSeconds), else leaves them to the running daemon, whose
 * dispatcher finds rows queued by another process within seconds. Actions (--actions) are queued
 * like the daemon's and done by the mailbox's watcher: the running daemon's (it looks for waiting
 * actions while idle) or the next `mailbell run`'s.
 */
import { randomUUID } from "node:crypto";
import type { LoadedConfig } from "../config/load.ts";
import { MailbellError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { Dispatcher } from "../outbox/dispatcher.ts";
import { digestHoldMs, type MailAt } from "../plan/plan.ts";
import type { CompiledRule } from "../rules/rules.ts";
import { lockState } from "../store/sqlite/lock.ts";
import type { State } from "../store/sqlite/state.ts";
import { createTargets } from "../targets/index.ts";
import { pacingOf } from "../daemon/run.ts";
import { planAndCommit } from "../daemon/pipeline.ts";
import type { ImapAccount } from "../imap/client.ts";
import type { DkimVerifier } from "../verify/dkim.ts";
import { adjustPlan, digestGroupFor, outcomeOf, type NotifyMode } from "./policy.ts";
import type { ArrivalRange } from "./range.ts";
import { readRange, type ReadHooks, type ReadTally } from "./read.ts";

export interface BackfillOptions {
  loaded: LoadedConfig;
  state: State;
  accounts: ReadonlyMap<string, ImapAccount>;
  /** The rules in play (all, or the one --rule names). */
  rules: readonly CompiledRule[];
  dkim: DkimVerifier | undefined;
  range: ArrivalRange;
  notify: NotifyMode;
  actions: boolean;
  logger: Logger;
  signal: AbortSignal;
  progress?: Pick<ReadHooks, "onFound" | "onRead">;
  batchSize?: number;
  searchDatesOnly?: boolean;
}

export interface BackfillSummary extends Omit<ReadTally, "searches" | "unread"> {
  matched: number;
  counted: number;
  alreadyCounted: number;
  unverified: number;
  keyGone: number;
  unread: ReadTally["unread"];
  searches: ReadTally["searches"];
  /** Digest rows queued, and who sends them. */
  digests: { rows: number; sentBy: "backfill" | "daemon" | "nobody"; left?: number };
  interrupted: boolean;
}

export async function backfill(options: BackfillOptions): Promise<BackfillSummary> {
  const { state, loaded } = options;
  const runId = randomUUID().slice(0, 8);
  const accounts = new Map(loaded.config.accounts.map((a) => [a.name, a]));
  const targets = new Set(loaded.config.targets.map((t) => t.name));
  const tally = { matched: 0, counted: 0, alreadyCounted: 0, unverified: 0, keyGone: 0, digestRows: 0 };
  const groups = new Set<string>();
  const onBatch = (batch: MailAt[]): void => {
    const now = Date.now();
    const how = { notify: options.notify, actions: options.actions, runId, holdUntil: now + digestHoldMs };
    const committed = state.transaction(() => {
      const done = planAndCommit(batch, { rules: options.rules, targets, accounts, backlogLimit: Number.MAX_SAFE_INTEGER, now }, state, options.logger, (plan) => adjustPlan(plan, how));
      // A run that takes long keeps its digests waiting; they go out when it ends (or after the hold, if it dies).
      for (const c of done) for (const m of c.plan.matches) if (m.deliveries.some((d) => "row" in d)) groups.add(digestGroupFor(runId, m.rule));
      for (const group of groups) state.outbox.holdGroup(group, how.holdUntil);
      return done;
    });
    committed.forEach((c, i) => {
      const o = outcomeOf(c.plan, batch[i]!);
      tally.matched += Number(o.matched);
      tally.counted += Number(o.counted);
      tally.alreadyCounted += Number(o.alreadyCounted);
      tally.unverified += Number(o.unverified);
      tally.keyGone += Number(o.keyGone);
      tally.digestRows += c.targets.size;
    });
  };
  let read: ReadTally;
  try {
    read = await readRange(options, options.range, { onBatch, ...options.progress });
  } finally {
    // What was counted goes out now, also when the run failed or was stopped half way.
    for (const group of groups) state.outbox.releaseGroup(group);
  }
  const digests = tally.digestRows > 0 ? await sendQueued(loaded, state, options.logger) : { sentBy: "nobody" as const };
  const { digestRows, ...counts } = tally;
  return { ...read, ...counts, digests: { rows: digestRows, ...digests }, interrupted: options.signal.aborted };
}

/**
 * One sender: if no daemon holds the state lock, backfill takes it and sends what waits (within
 * outbox.drainSeconds; the rest stays queued for the next `mailbell run`); else the daemon sends.
 */
async function sendQueued(loaded: LoadedConfig, state: State, logger: Logger): Promise<{ sentBy: "backfill" | "daemon"; left?: number }> {
  let lock: { release(): void };
  try {
    lock = lockState(loaded.statePath);
  } catch (err) {
    if (err instanceof MailbellError && err.code === "STATE" && /another mailbell/.test(err.message)) return { sentBy: "daemon" };
    throw err;
  }
  const { config } = loaded;
  const targets = createTargets(config.targets, { stateFor: (name) => state.targetState.for(name) });
  const dispatcher = new Dispatcher({
    outbox: state.outbox,
    targets,
    pacing: pacingOf(config, targets),
    retry: { baseMs: config.outbox.retryBaseSeconds * 1000, capMs: config.outbox.retryMaxSeconds * 1000, maxAttempts: config.outbox.maxAttempts },
    logger,
  });
  try {
    dispatcher.start();
    const { left } = await dispatcher.drain(config.outbox.drainSeconds * 1000);
    return { sentBy: "backfill", left };
  } finally {
    await dispatcher.stop();
    lock.release();
  }
}
