import type { AccountConfig } from "../imap/config.ts";
import type { WatchedMail } from "../imap/watcher.ts";
import type { Logger } from "../log.ts";
import { digestGroupOf, digestHoldMs, judgeMail, planMail, type JudgedMail, type MailAt, type MailPlan, type PlanContext } from "../plan/plan.ts";
import type { CompiledRule } from "../rules/rules.ts";
import type { OutboxWriter } from "../outbox/store.ts";
import type { ActionLog, NotificationLog, TotalsStore } from "../plan/store.ts";
import type { Checkpoint, CheckpointStore } from "../imap/checkpoints.ts";
import type { Target } from "../targets/types.ts";
import type { CatchUpTally } from "./catch-up-log.ts";

/**
 * What the pipeline needs of the state, whatever keeps it: a round's totals, notifications and
 * checkpoint are written together or not at all. SQLite here (State); another database can be
 * put behind the same interface.
 */
export interface MailStore {
  transaction<T>(fn: () => T): T;
  /** Also the watcher's; saved within the round's transaction, so at once. */
  readonly checkpoints: CheckpointStore & { save(account: string, mailbox: string, checkpoint: Checkpoint): void };
  readonly totals: TotalsStore;
  readonly notified: NotificationLog;
  readonly outbox: OutboxWriter;
  /** Actions on the mail, done by its watcher after this commit. */
  readonly actions: ActionLog;
}

export interface PipelineDeps {
  rules: readonly CompiledRule[];
  targets: ReadonlyMap<string, Target>;
  state: MailStore;
  logger: Logger;
  accounts: ReadonlyMap<string, AccountConfig>;
  /** After downtime, mails beyond this many per mailbox go out as one digest per target. */
  backlogLimit: number;
  /** New outbox rows for these targets: send them. */
  onQueued: (targets: ReadonlySet<string>) => void;
  /** For metrics. */
  onProcessed?: (watched: WatchedMail, matchedRules: readonly string[]) => void;
  /** A rule's conditions held but the sender was not verified (verify:): for metrics. */
  onUnverified?: (rule: string, code: string) => void;
  /** Says how each catch-up went, once its last mail is handled. */
  catchUps: CatchUpTally;
}

/**
 * New mail through rules and totals into the outbox: one FETCH round of a mailbox, oldest first.
 * Each mail is planned (src/plan/plan.ts) and its plan committed; totals, outbox rows and the
 * checkpoint are written in one transaction: after a crash the round is either fully queued and
 * passed, or not touched at all and read again. One commit per round rather than per mail is what
 * lets a catch-up of thousands go fast. Nothing is sent from here; the dispatcher sends, once the
 * rows are committed.
 */
export function handleMails(round: readonly WatchedMail[], deps: PipelineDeps): void {
  const last = round.at(-1);
  if (!last) return;
  const judged = round.map((at) => judgeMail(at, deps.rules));
  const queued = deps.state.transaction(() => {
    const perMail = planAndCommit(round, { ...deps, now: Date.now() }, deps.state, deps.logger, undefined, judged);
    holdOrReleaseDigests(round, perMail.map((q) => q.plan), deps);
    deps.state.checkpoints.save(last.account, last.mailbox, last.checkpoint);
    return perMail;
  });
  const queuedFor = new Set<string>();
  round.forEach((watched, i) => {
    for (const target of queued[i]!.targets) queuedFor.add(target);
    const plan = queued[i]!.plan;
    deps.onProcessed?.(watched, plan.matches.map((m) => m.rule));
    deps.catchUps.add(watched, { matched: plan.matches.length > 0, queued: queued[i]!.rows }, deps.logger);
    for (const r of plan.rules) if (!r.matched && r.unverified) deps.onUnverified?.(r.rule, r.unverified.code);
  });
  if (queuedFor.size > 0) deps.onQueued(queuedFor);
}

/** What committing one mail's plan did: the plan as committed, the targets it queued rows for, and how many rows. */
export interface Committed {
  plan: MailPlan;
  targets: Set<string>;
  rows: number;
}

/**
 * Plans each mail of a round and commits its plan, inside the caller's transaction: the daemon's
 * step, and `mailbell backfill`'s, so both count and queue alike. Planned one mail after the
 * other: each plan reads what the mails before it committed (a total that grew, a copy already
 * notified). `adjust` changes a plan before it is committed (backfill: no notifications, or a
 * digest; no actions unless asked for).
 */
export function planAndCommit(round: readonly MailAt[], context: PlanContext, state: Omit<MailStore, "checkpoints" | "transaction">, logger: Logger, adjust?: (plan: MailPlan) => MailPlan, judged?: readonly JudgedMail[]): Committed[] {
  return round.map((at, i) => {
    const planned = planMail(at, context, state, judged?.[i]);
    const plan = adjust ? adjust(planned) : planned;
    logPlan(plan, at, logger);
    return { plan, ...commitPlan(plan, at, state) };
  });
}

/** Writes what a plan decided, inside the caller's transaction; returns the targets with new rows, and how many. */
function commitPlan(plan: MailPlan, at: MailAt, state: Omit<MailStore, "checkpoints" | "transaction">): { targets: Set<string>; rows: number } {
  const queuedFor = new Set<string>();
  let queuedRows = 0;
  for (const match of plan.matches) {
    // The plan read the store in this transaction, so what it found free still is; record()
    // only refuses what the plan itself repeats (a target named twice in a rule's notify).
    if (match.total?.kind === "add") state.totals.record(match.rule, plan.seen, match.total.period.key, match.total.amount);
    const rows = match.deliveries.flatMap((d) => ("row" in d && state.notified.record(match.rule, d.target, plan.seen) ? [d.row] : []));
    state.outbox.enqueue(rows);
    queuedRows += rows.length;
    for (const row of rows) queuedFor.add(row.target);
  }
  // In the same transaction as the notifications: the watcher does the actions only once this
  // commit has put the notifications in the outbox, and repeats them after a crash until done.
  if (plan.actions?.kind === "act") {
    const { account, mailbox, uidValidity, uid } = at;
    state.actions.record(plan.seen, { account, mailbox, uidValidity, uid, actions: plan.actions.actions, rules: plan.actions.rules });
  }
  return { targets: queuedFor, rows: queuedRows };
}

function logPlan(plan: MailPlan, watched: MailAt & { bodyRead?: boolean }, logger: Logger): void {
  const log = logger.child({ account: watched.account, mailbox: watched.mailbox, uid: watched.uid });
  const identity = plan.seen.identity;
  // Mail no rule matched is said at info, in one short line: "why was I not told?" is answered
  // from the log without turning on debug. From and subject are fields, escaped by the logger.
  if (plan.matches.length === 0) log.info({ from: watched.mail.from[0]?.address, subject: watched.mail.subject }, "no rule matched");
  log.debug({ subject: watched.mail.subject, matched: plan.matches.map((m) => m.rule), bodyRead: watched.bodyRead }, "mail read");
  for (const r of plan.rules) {
    if (!r.matched && r.unverified) log.warn({ rule: r.rule, from: watched.mail.from[0]?.address, subject: watched.mail.subject, reason: r.unverified.code, why: r.unverified.reason }, "sender not verified: this rule does not count or notify the mail");
  }
  for (const match of plan.matches) {
    for (const missing of match.match.missing) log.warn({ rule: match.rule, field: missing.field, reason: missing.reason }, "field not found; notifying with it marked missing");
    if (match.total?.kind === "counted") log.info({ rule: match.rule, identity, first: match.total.earlier }, "already counted; not again");
    for (const d of match.deliveries) {
      if ("earlier" in d) log.info({ rule: match.rule, target: d.target, identity, first: d.earlier }, "already notified; not again");
    }
  }
  const actions = plan.actions;
  if (actions?.kind === "acted") log.info({ rules: actions.rules, identity, first: actions.earlier }, "already acted on; its actions are not done again");
  for (const note of actions?.notes ?? []) log.warn({ rules: actions!.rules }, `action left out: ${note}`);
}

/**
 * A backlog digest waits until its last mail is queued; if that never happens (we stop half
 * way), it goes out after the hold with what it has. A catch-up that takes long keeps pushing
 * the wait out, once per round (per mail, each mail would rewrite every row queued before it).
 */
function holdOrReleaseDigests(round: readonly WatchedMail[], plans: readonly MailPlan[], deps: PipelineDeps): void {
  for (const group of new Set(plans.map((p) => p.digestGroup).filter((g) => g !== undefined))) {
    const complete = round.some((w) => digestGroupOf(w, deps.backlogLimit) === group && w.catchUp!.index === w.catchUp!.count - 1);
    if (complete) deps.state.outbox.releaseGroup(group);
    else deps.state.outbox.holdGroup(group, Date.now() + digestHoldMs);
  }
}
