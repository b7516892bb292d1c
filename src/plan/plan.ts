/**
 * What one mail leads to, decided without doing it: which rules match and what they extract,
 * what each adds to which total, and which notification goes to which target, or why not. Pure:
 * what the store knows comes in through PlanReads. The daemon commits a plan in its round's
 * transaction (src/daemon/pipeline.ts); `mailbell test` prints one (src/cli/test-mail.ts), so
 * what it shows is what the daemon would do.
 */
import { isGmail, type AccountConfig } from "../imap/config.ts";
import { mailIdentity } from "../mail/identity.ts";
import type { NormalizedMail } from "../mail/types.ts";
import { buildNotification } from "../outbox/notification.ts";
import type { NewOutboxRow } from "../outbox/store.ts";
import { hasActions, mergeActions } from "../rules/actions.ts";
import { addMoney } from "../rules/money.ts";
import { judgeRules, type CompiledRule } from "../rules/rules.ts";
import type { DkimSignature, MailActions, Money, PeriodKey, RuleInput, RuleMatch, Verdict } from "../rules/types.ts";
import { placeOf, type SeenMail } from "./store.ts";
import type { Notification } from "../targets/types.ts";

/** Longest a backlog digest waits for the rest of its catch-up. */
export const digestHoldMs = 60_000;

/** One mail where it is: its place on the server, its arrival, its size, and the catch-up it came in. */
export interface MailAt {
  account: string;
  mailbox: string;
  uidValidity: number;
  uid: number;
  /** INTERNALDATE: decides the total's period. */
  receivedAt: Date;
  /** RFC822.SIZE, part of the mail's identity. */
  size: number;
  mail: NormalizedMail;
  catchUp?: { id: string; index: number; count: number } | undefined;
  /** Its DKIM signatures as verified over the whole message, when it was read whole. */
  dkim?: readonly DkimSignature[] | undefined;
}

/** What the planner asks the store; MailStore and State answer it as they are. */
export interface PlanReads {
  readonly totals: {
    get(rule: string, period: string, currency: string): Money | undefined;
    /** Where this mail was counted for this rule, if it was. */
    countedAt(rule: string, mail: SeenMail): string | undefined;
  };
  readonly notified: {
    /** Where this mail was queued from for this rule and target, if it was. */
    notifiedAt(rule: string, target: string, mail: SeenMail): string | undefined;
  };
  readonly actions: {
    /** Where actions were queued for this mail (a place), if they were. */
    actedAt(mail: SeenMail): string | undefined;
  };
}

/** A store that has seen nothing: `mailbell test` without a state file. */
export const nothingSeen: PlanReads = {
  totals: { get: () => undefined, countedAt: () => undefined },
  notified: { notifiedAt: () => undefined },
  actions: { actedAt: () => undefined },
};

export interface PlanContext {
  rules: readonly CompiledRule[];
  /** The configured targets; a rule's notify list is checked against them when the config loads. */
  targets: { has(name: string): boolean };
  accounts: ReadonlyMap<string, AccountConfig>;
  /** After downtime, mails beyond this many per mailbox go out as one digest per target. */
  backlogLimit: number;
  /** Epoch ms; a digest's rows wait from here. */
  now: number;
}

/** What a matched rule does to its total. */
export type TotalPlan =
  /** Adds the mail's amount; `after` is the running total with it. */
  | { kind: "add"; amount: Money; period: PeriodKey; after: Money }
  /** The same mail was counted for this rule before, at `earlier` (a place): the total stays `after`. */
  | { kind: "counted"; amount: Money; period: PeriodKey; after: Money; earlier: string }
  /** The money field is missing: nothing to add. */
  | { kind: "missing"; field: string; period: PeriodKey };

/** A notification for one target: queued as `row`, or not, because it was queued from `earlier` before. */
export type Delivery = { target: string; row: NewOutboxRow } | { target: string; earlier: string };

export interface MatchPlan {
  rule: string;
  matched: true;
  match: RuleMatch;
  total: TotalPlan | undefined;
  notification: Notification;
  /** In the rule's notify order; targets that do not exist are left out. */
  deliveries: Delivery[];
}

/** A rule that did not match: its conditions do not hold, or they do but the sender is not verified. */
export type RulePlan = { rule: string; matched: false; unverified?: Extract<Verdict, { verified: false }> } | MatchPlan;

/**
 * What the matched rules' `then:` do to the mail on the server, once its notifications are queued:
 * queued as `actions`, or not, because actions were queued for the same mail before, at `earlier`
 * (it came back: moved into a watched folder, or moved back by a person, who decides where it stays).
 */
export type ActionPlan =
  | { kind: "act"; actions: MailActions; rules: string[]; notes: string[] }
  | { kind: "acted"; actions: MailActions; rules: string[]; notes: string[]; earlier: string }
  /** Everything was left out (a move into the mailbox the mail is in); `notes` says why. */
  | { kind: "nothing"; actions: MailActions; rules: string[]; notes: string[] };

export interface MailPlan {
  /** The mail as the stores remember it. */
  seen: SeenMail;
  input: RuleInput;
  /** Every rule, in config order. */
  rules: RulePlan[];
  /** The rules that matched, in config order. */
  matches: MatchPlan[];
  /** Set when the mail goes out in a backlog digest. */
  digestGroup: string | undefined;
  /** Undefined when no matched rule acts on the mail. */
  actions: ActionPlan | undefined;
}

/** What a mail is to the rules, whatever the store knows: its identity and each rule's verdict. */
export interface JudgedMail {
  input: RuleInput;
  seen: SeenMail;
  outcomes: ReturnType<typeof judgeRules>;
}

/**
 * The part of planning that reads no store (the rules' conditions and extractions, the mail's
 * identity): the daemon does it before its round's transaction, so the transaction, which the
 * delivery thread's commits wait for, holds only what needs the store.
 */
export function judgeMail(at: MailAt, rules: readonly CompiledRule[]): JudgedMail {
  const input: RuleInput = { mail: at.mail, account: at.account, mailbox: at.mailbox, receivedAt: at.receivedAt, dkim: at.dkim };
  return { input, seen: seenMail(at), outcomes: judgeRules(rules, input) };
}

/** Plans one mail against what the store knows; `judged` is judgeMail's answer for it, made here when not given. */
export function planMail(at: MailAt, context: PlanContext, reads: PlanReads, judged: JudgedMail = judgeMail(at, context.rules)): MailPlan {
  const { input, seen } = judged;
  const link = messageLink(context.accounts.get(at.account), at);
  const digestGroup = digestGroupOf(at, context.backlogLimit);
  const queue: Queueing = { at, seen, digestGroup, notBefore: digestGroup ? context.now + digestHoldMs : undefined };
  const byRule = new Map(judged.outcomes.map((o) => [o.rule, o]));
  const rules = context.rules.map((rule): RulePlan => {
    const outcome = byRule.get(rule.name);
    if (!outcome) return { rule: rule.name, matched: false };
    if ("unverified" in outcome) return { rule: rule.name, matched: false, unverified: outcome.unverified };
    const match = outcome.match;
    const total = planTotal(match, seen, reads);
    const notification = buildNotification(rule, match, input, at, { total: total && total.kind !== "missing" ? { money: total.after, period: total.period } : undefined, link });
    const deliveries = match.notify.filter((t) => context.targets.has(t)).map((target) => planDelivery(target, match.rule, notification, queue, reads));
    return { rule: rule.name, matched: true, match, total, notification, deliveries };
  });
  const matches = rules.filter((r): r is MatchPlan => r.matched);
  return { seen, input, rules, matches, digestGroup, actions: planActions(matches, context.rules, at.mailbox, seen, reads) };
}

/** The matched rules' actions, merged (rules/actions.ts), unless the same mail was acted on before. */
function planActions(matches: readonly MatchPlan[], rules: readonly CompiledRule[], mailbox: string, seen: SeenMail, reads: PlanReads): ActionPlan | undefined {
  const byName = new Map(rules.map((r) => [r.name, r]));
  const acting = matches.flatMap((m) => {
    const then = byName.get(m.rule)?.then;
    return then ? [{ rule: m.rule, actions: then }] : [];
  });
  if (acting.length === 0) return undefined;
  const merged = mergeActions(acting, mailbox);
  const earlier = reads.actions.actedAt(seen);
  if (earlier !== undefined) return { kind: "acted", ...merged, earlier };
  return { kind: hasActions(merged.actions) ? "act" : "nothing", ...merged };
}

function planTotal(match: RuleMatch, seen: SeenMail, reads: PlanReads): TotalPlan | undefined {
  if (!match.total) return undefined;
  const { amount, period, field } = match.total;
  if (!amount) return { kind: "missing", field, period };
  const current = reads.totals.get(match.rule, period.key, amount.currency);
  const earlier = reads.totals.countedAt(match.rule, seen);
  if (earlier !== undefined) return { kind: "counted", amount, period, after: current ?? { units: 0n, scale: 0, currency: amount.currency }, earlier };
  return { kind: "add", amount, period, after: current ? addMoney(current, amount) : amount };
}

interface Queueing {
  at: MailAt;
  seen: SeenMail;
  digestGroup: string | undefined;
  notBefore: number | undefined;
}

function planDelivery(target: string, rule: string, notification: Notification, queue: Queueing, reads: PlanReads): Delivery {
  // The same mail back under another UID (moved out and back, appended again, a renumbering,
  // Gmail's All Mail) is not posted again.
  const earlier = reads.notified.notifiedAt(rule, target, queue.seen);
  if (earlier !== undefined) return { target, earlier };
  const { at } = queue;
  return {
    target,
    row: {
      target,
      rule,
      account: at.account,
      mailbox: at.mailbox,
      uidValidity: at.uidValidity,
      uid: at.uid,
      messageId: at.mail.messageId,
      subject: at.mail.subject,
      notification,
      digestGroup: queue.digestGroup,
      notBefore: queue.notBefore,
    },
  };
}

/** Mail beyond backlogLimit in a catch-up goes out as one digest per target. */
export function digestGroupOf(at: Pick<MailAt, "account" | "mailbox" | "catchUp">, backlogLimit: number): string | undefined {
  const catchUp = at.catchUp;
  return catchUp && catchUp.index >= backlogLimit ? `backlog:${at.account}/${at.mailbox}/${catchUp.id}` : undefined;
}

/** A mail as the stores remember it: its place on the server and its identity, to count and post it once. */
export function seenMail(at: Pick<MailAt, "account" | "mailbox" | "uidValidity" | "uid" | "mail" | "size" | "receivedAt">): SeenMail {
  const identity = mailIdentity({ mail: at.mail, size: at.size, receivedAt: at.receivedAt });
  return { ...placeOf(at), identity, messageId: at.mail.messageId, receivedAt: at.receivedAt };
}

/** {{link}}: the account's link template, or a Gmail search for the Message-ID on Gmail hosts. */
export function messageLink(account: AccountConfig | undefined, at: Pick<MailAt, "account" | "mailbox" | "uid" | "mail">): string | undefined {
  const messageId = at.mail.messageId;
  if (account?.link) {
    return account.link
      .replace(/\{messageId\}/g, encodeURIComponent(messageId ?? ""))
      .replace(/\{uid\}/g, String(at.uid))
      .replace(/\{mailbox\}/g, encodeURIComponent(at.mailbox))
      .replace(/\{account\}/g, encodeURIComponent(at.account));
  }
  if (account && isGmail(account.host) && messageId) {
    return `https://mail.google.com/mail/u/0/#search/rfc822msgid:${encodeURIComponent(messageId)}`;
  }
  return undefined;
}
