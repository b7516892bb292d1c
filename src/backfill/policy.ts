/**
 * What a backfill changes in the daemon's plan of a mail, and how it tells the outcome. Pure.
 * Backfill plans with the daemon's planner (src/plan/plan.ts) and commits with its step
 * (planAndCommit), so a mail is counted and posted once whoever reads it first; only these differ:
 * - notifications: none (the default), or each rule's mails as one digest per target;
 * - the rules' actions (then:) only with --actions;
 * - no catch-up digests and no checkpoint (the caller never saves one).
 */
import type { MailAt, MailPlan } from "../plan/plan.ts";

export type NotifyMode = "none" | "digest";

export interface Adjusting {
  notify: NotifyMode;
  actions: boolean;
  /** Names this run's digests: one group per rule, so each target gets one summary per rule. */
  runId: string;
  /** Epoch ms the digest rows wait until, unless the run releases them first. */
  holdUntil: number;
}

/** The digest group of a rule's mails in one backfill run. */
export function digestGroupFor(runId: string, rule: string): string {
  return `backfill:${runId}:${rule}`;
}

/** The daemon's plan, changed as backfill does (see the top of this file). */
export function adjustPlan(plan: MailPlan, how: Adjusting): MailPlan {
  const matches = plan.matches.map((m) => ({
    ...m,
    deliveries:
      how.notify === "none"
        ? []
        : m.deliveries.map((d) => ("row" in d ? { ...d, row: { ...d.row, digestGroup: digestGroupFor(how.runId, m.rule), notBefore: how.holdUntil } } : d)),
  }));
  const byRule = new Map(matches.map((m) => [m.rule, m]));
  return {
    ...plan,
    digestGroup: undefined,
    matches,
    rules: plan.rules.map((r) => (r.matched ? byRule.get(r.rule)! : r)),
    actions: how.actions ? plan.actions : undefined,
  };
}

/** How one mail came out, for the summary. */
export interface MailOutcome {
  matched: boolean;
  /** Added to at least one total. */
  counted: boolean;
  /** Matched a rule with a total, but every such total had it already. */
  alreadyCounted: boolean;
  /** A rule's conditions held but the sender was not verified (verify:). */
  unverified: boolean;
  /** …because the DKIM key it was signed with is no longer published (rotated away). */
  keyGone: boolean;
}

export function outcomeOf(plan: MailPlan, at: Pick<MailAt, "dkim">): MailOutcome {
  const totals = plan.matches.map((m) => m.total?.kind).filter((k) => k === "add" || k === "counted");
  const unverified = plan.rules.filter((r) => !r.matched && r.unverified);
  return {
    matched: plan.matches.length > 0,
    counted: totals.includes("add"),
    alreadyCounted: totals.length > 0 && !totals.includes("add"),
    unverified: unverified.length > 0,
    keyGone: unverified.some((r) => !r.matched && r.unverified?.code === "dkim_fail") && keyIsGone(at.dkim),
  };
}

/**
 * mailauth says "no key" when the selector's DNS record does not exist (NXDOMAIN or no TXT): for
 * old mail, the sender rotated the key away. Such mail cannot be verified any more, by anyone.
 */
export function keyIsGone(signatures: MailAt["dkim"]): boolean {
  return (signatures ?? []).some((s) => s.result !== "pass" && /^no key\b/.test(s.comment ?? ""));
}
