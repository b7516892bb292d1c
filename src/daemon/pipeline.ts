import type { AccountConfig } from "../imap/config.ts";
import { isGmail } from "../config/validate.ts";
import type { WatchedMail } from "../imap/watcher.ts";
import type { Logger } from "../log.ts";
import { mailIdentity } from "../mail/identity.ts";
import { buildNotification } from "../outbox/notification.ts";
import { evaluateRules, type CompiledRule } from "../rules/rules.ts";
import type { RuleInput, RunningTotal } from "../rules/types.ts";
import type { NewOutboxRow } from "../outbox/store.ts";
import { placeOf, type SeenMail } from "../store/seen.ts";
import type { MailStore } from "../store/state.ts";
import type { Target } from "../targets/types.ts";

/** Longest a backlog digest waits for the rest of its catch-up. */
const digestHoldMs = 60_000;

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
}

/**
 * New mail through rules and totals into the outbox: one FETCH round of a mailbox, oldest first.
 * Totals, outbox rows and the checkpoint are written in one transaction: after a crash the round is
 * either fully queued and passed, or not touched at all and read again. One commit per round rather
 * than per mail is what lets a catch-up of thousands go fast. Nothing is sent from here; the
 * dispatcher sends, once the rows are committed.
 */
export function handleMails(round: readonly WatchedMail[], deps: PipelineDeps): void {
  const last = round.at(-1);
  if (!last) return;
  const queued = deps.state.transaction(() => {
    const perMail = round.map((watched) => queueMail(watched, deps));
    // A backlog digest waits until its last mail is queued; if that never happens (we stop half
    // way), it goes out after the hold with what it has. A catch-up that takes long keeps pushing
    // the wait out, once per round (per mail, each mail would rewrite every row queued before it).
    for (const group of new Set(perMail.map((q) => q.digestGroup).filter((g) => g !== undefined))) {
      const complete = round.some((w) => digestGroupOf(w, deps) === group && w.catchUp!.index === w.catchUp!.count - 1);
      if (complete) deps.state.outbox.releaseGroup(group);
      else deps.state.outbox.holdGroup(group, Date.now() + digestHoldMs);
    }
    deps.state.checkpoints.save(last.account, last.mailbox, last.checkpoint);
    return perMail;
  });
  const queuedFor = new Set<string>();
  round.forEach((watched, i) => {
    for (const target of queued[i]!.targets) queuedFor.add(target);
    deps.onProcessed?.(watched, queued[i]!.matched);
  });
  if (queuedFor.size > 0) deps.onQueued(queuedFor);
}

/** Rules, totals and outbox rows for one mail, inside the caller's transaction. */
function queueMail(watched: WatchedMail, deps: PipelineDeps): { targets: Set<string>; matched: string[]; digestGroup: string | undefined } {
  const log = deps.logger.child({ account: watched.account, mailbox: watched.mailbox, uid: watched.uid });
  const input: RuleInput = { mail: watched.mail, account: watched.account, mailbox: watched.mailbox, receivedAt: watched.receivedAt };
  const matches = evaluateRules(deps.rules, input);
  log.debug({ subject: watched.mail.subject, matched: matches.map((m) => m.rule), bodyRead: watched.bodyRead }, "mail read");
  for (const match of matches) {
    for (const missing of match.missing) log.warn({ rule: match.rule, field: missing.field, reason: missing.reason }, "field not found; notifying with it marked missing");
  }

  const seen = seenMail(watched);
  const link = messageLink(deps.accounts.get(watched.account), watched);
  const ruleByName = new Map(deps.rules.map((r) => [r.name, r]));
  const digestGroup = digestGroupOf(watched, deps);
  const notBefore = digestGroup ? Date.now() + digestHoldMs : undefined;
  const queuedFor = new Set<string>();

  for (const match of matches) {
    const rule = ruleByName.get(match.rule)!;
    let total: RunningTotal | undefined;
    if (match.total?.amount) {
      const counted = deps.state.totals.add(match.rule, seen, match.total.period.key, match.total.amount);
      if (!counted.added) log.info({ rule: match.rule, identity: seen.identity, first: counted.earlier }, "already counted; not again");
      total = { money: counted.total, period: match.total.period };
    }
    const notification = buildNotification(rule, match, input, watched, { total, link });
    const rows: NewOutboxRow[] = [];
    for (const targetName of match.notify) {
      const target = deps.targets.get(targetName);
      if (!target) continue;
      // The same mail back under another UID (moved out and back, appended again, a renumbering,
      // Gmail's All Mail) is not posted again.
      const claim = deps.state.notified.claim(match.rule, targetName, seen);
      if (!claim.claimed) {
        log.info({ rule: match.rule, target: targetName, identity: seen.identity, first: claim.earlier }, "already notified; not again");
        continue;
      }
      rows.push({
        target: targetName,
        rule: match.rule,
        account: watched.account,
        mailbox: watched.mailbox,
        uidValidity: watched.uidValidity,
        uid: watched.uid,
        messageId: watched.mail.messageId,
        subject: watched.mail.subject,
        notification,
        digestGroup,
        notBefore,
      });
      queuedFor.add(targetName);
    }
    deps.state.outbox.enqueue(rows);
  }
  return { targets: queuedFor, matched: matches.map((m) => m.rule), digestGroup };
}

/** Mail beyond backlogLimit in a catch-up goes out as one digest per target. */
function digestGroupOf(watched: WatchedMail, deps: PipelineDeps): string | undefined {
  const catchUp = watched.catchUp;
  return catchUp && catchUp.index >= deps.backlogLimit ? `backlog:${watched.account}/${watched.mailbox}/${catchUp.id}` : undefined;
}

/** A mail as the stores remember it: its place on the server and its identity, to count and post it once. */
export function seenMail(watched: Pick<WatchedMail, "account" | "mailbox" | "uidValidity" | "uid" | "mail" | "size" | "receivedAt">): SeenMail {
  const identity = mailIdentity({ mail: watched.mail, size: watched.size, receivedAt: watched.receivedAt });
  return { ...placeOf(watched), identity, messageId: watched.mail.messageId, receivedAt: watched.receivedAt };
}

/** {{link}}: the account's link template, or a Gmail search for the Message-ID on Gmail hosts. */
export function messageLink(account: AccountConfig | undefined, watched: Pick<WatchedMail, "account" | "mailbox" | "uid" | "mail">): string | undefined {
  const messageId = watched.mail.messageId;
  if (account?.link) {
    return account.link
      .replace(/\{messageId\}/g, encodeURIComponent(messageId ?? ""))
      .replace(/\{uid\}/g, String(watched.uid))
      .replace(/\{mailbox\}/g, encodeURIComponent(watched.mailbox))
      .replace(/\{account\}/g, encodeURIComponent(watched.account));
  }
  if (account && isGmail(account.host) && messageId) {
    return `https://mail.google.com/mail/u/0/#search/rfc822msgid:${encodeURIComponent(messageId)}`;
  }
  return undefined;
}
