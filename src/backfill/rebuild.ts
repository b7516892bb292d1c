/**
 * `mailbell totals rebuild`: after a rule's regex is fixed, its totals are counted again from the
 * mail on the server, with the same reading and planning as backfill, and REPLACE what was counted
 * for the rule (in the periods from --since, or all), in one transaction at the end: until the new
 * count is complete the old one stands, and an interrupted rebuild changes nothing. Nothing is
 * posted or acted on. Mail the running daemon counts for the rule while the rebuild reads is kept.
 * Mail the rule moved (then: { move }) is read where it went, also when that folder is not watched.
 */
import type { ImapAccount } from "../imap/client.ts";
import type { LoadedConfig } from "../config/load.ts";
import type { Logger } from "../log.ts";
import { planMail, type PlanReads } from "../plan/plan.ts";
import type { SeenMail } from "../plan/store.ts";
import { appliesIn, type CompiledRule } from "../rules/rules.ts";
import type { Money } from "../rules/types.ts";
import type { DkimVerifier } from "../verify/dkim.ts";
import { outcomeOf } from "./policy.ts";
import type { ArrivalRange } from "./range.ts";
import { readRange, type ReadHooks, type ReadTally } from "./read.ts";

/** One mail's amount for the rule, as counted again. */
export interface RecountEntry {
  mail: SeenMail;
  period: string;
  amount: Money;
}

export interface RecountScope {
  /** The first period replaced (a day, "2026-11-01"); every period when left out. */
  since?: string;
  /** Entries counted from then on (by a running daemon) are kept. */
  countedBefore: Date;
  /** Mail whose old entry stays as it is: it could not be judged again (its DKIM key is gone). */
  keep: readonly SeenMail[];
}

/** What the rebuild needs of the totals store; src/store/sqlite/totals.ts implements it. */
export interface TotalsRecount {
  /**
   * In one transaction: removes the rule's entries in periods not before `since` (all without it)
   * that were counted before `countedBefore`, adds `entries` in those periods (a mail counted
   * meanwhile is not added again), and sets the rule's sums there to the sum of what it then has.
   */
  replaceRule(rule: string, scope: RecountScope, entries: readonly RecountEntry[]): { removed: number; added: number };
}

export interface RebuildOptions {
  loaded: LoadedConfig;
  store: TotalsRecount;
  accounts: ReadonlyMap<string, ImapAccount>;
  rule: CompiledRule;
  dkim: DkimVerifier | undefined;
  /** The mail read: from the start of the first period replaced. */
  range: ArrivalRange;
  /** The first period replaced, as a day (YYYY-MM-DD); all periods when undefined. */
  sincePeriod: string | undefined;
  logger: Logger;
  signal: AbortSignal;
  progress?: Pick<ReadHooks, "onFound" | "onRead">;
  searchDatesOnly?: boolean;
}

export interface RebuildSummary extends ReadTally {
  matched: number;
  unverified: number;
  keyGone: number;
  /** Entries removed and added; undefined when nothing was changed, and `notReplaced` says why. */
  replaced: { removed: number; added: number } | undefined;
  notReplaced?: string;
}

export async function rebuildRule(options: RebuildOptions): Promise<RebuildSummary> {
  const startedAt = new Date();
  const entries = new Map<string, RecountEntry>();
  const places = new Set<string>();
  const tally = { matched: 0, unverified: 0, keyGone: 0 };
  const keep: SeenMail[] = [];
  // Counted afresh: a mail is "counted" only if this rebuild counted it already (a copy in another folder).
  const reads: PlanReads = {
    totals: { get: () => undefined, countedAt: (_rule, mail) => (entries.has(mail.identity) ? entries.get(mail.identity)!.mail.place : places.has(mail.place) ? mail.place : undefined) },
    notified: { notifiedAt: () => undefined },
    actions: { actedAt: () => undefined },
  };
  const context = { rules: [options.rule], targets: { has: () => false }, accounts: new Map(options.loaded.config.accounts.map((a) => [a.name, a])), backlogLimit: Number.MAX_SAFE_INTEGER };
  const moved = movedTo(options.loaded, options.rule);
  const onBatch = (batch: Parameters<ReadHooks["onBatch"]>[0]): void => {
    for (const at of batch) {
      const rules = moved.find((m) => m.account === at.account && m.mailbox === at.mailbox)?.rules ?? context.rules;
      const plan = planMail(at, { ...context, rules, now: Date.now() }, reads);
      const o = outcomeOf(plan, at);
      tally.matched += Number(o.matched);
      tally.unverified += Number(o.unverified);
      tally.keyGone += Number(o.keyGone);
      // Counted when its key could still be looked up: that verdict stands.
      if (o.keyGone) keep.push(plan.seen);
      for (const m of plan.matches) {
        if (m.total?.kind !== "add") continue;
        entries.set(plan.seen.identity, { mail: plan.seen, period: m.total.period.key, amount: m.total.amount });
        places.add(plan.seen.place);
      }
    }
  };
  const read = await readRange({ ...options, rules: [options.rule], alsoRead: moved }, options.range, { onBatch, ...options.progress });
  if (options.signal.aborted) return { ...read, ...tally, replaced: undefined, notReplaced: "interrupted" };
  // Mail that could not be read would drop out of the total: nothing is replaced until all of it can be.
  if (read.unread.length > 0) return { ...read, ...tally, replaced: undefined, notReplaced: `${read.unread.length} mail(s) could not be read` };
  const scope = { ...(options.sincePeriod ? { since: options.sincePeriod } : {}), countedBefore: startedAt, keep };
  return { ...read, ...tally, replaced: options.store.replaceRule(options.rule.name, scope, [...entries.values()]) };
}

/**
 * The rule's move destination in each account where it applies, when the rule does not apply
 * there itself (not watched, or a mailbox: condition leaves it out): its mail there was moved by
 * the rule and still counts, judged by the rule without its account/mailbox conditions.
 */
function movedTo(loaded: LoadedConfig, rule: CompiledRule): { account: string; mailbox: string; rules: CompiledRule[] }[] {
  const destination = rule.then?.move;
  if (destination === undefined) return [];
  const placeFree: CompiledRule = { ...rule, match: { ...rule.match, conditions: rule.match.conditions.filter((c) => c.reads !== "place") } };
  return loaded.config.accounts
    .filter((a) => a.mailboxes.some((mailbox) => appliesIn(rule, { account: a.name, mailbox })) && !(a.mailboxes.includes(destination) && appliesIn(rule, { account: a.name, mailbox: destination })))
    .map((a) => ({ account: a.name, mailbox: destination, rules: [placeFree] }));
}
