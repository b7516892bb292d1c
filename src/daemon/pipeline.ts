import type { AccountConfig } from "../config/schema.ts";
import type { WatchedMail } from "../imap/watcher.ts";
import type { Logger } from "../log.ts";
import type { Delivery } from "../outbox/delivery.ts";
import { buildNotification } from "../outbox/notification.ts";
import { evaluateRules, type CompiledRule } from "../rules/rules.ts";
import type { RuleInput, RunningTotal } from "../rules/types.ts";
import type { State } from "../store/state.ts";
import type { Target } from "../targets/types.ts";

export interface PipelineDeps {
  rules: readonly CompiledRule[];
  targets: ReadonlyMap<string, Target>;
  state: State;
  delivery: Delivery;
  logger: Logger;
  accounts: ReadonlyMap<string, AccountConfig>;
}

/**
 * One new mail through rules, totals and targets. Totals and the checkpoint are written in one
 * transaction, so a crash either counts the mail and moves past it, or does neither.
 */
export async function handleMail(watched: WatchedMail, deps: PipelineDeps): Promise<void> {
  const log = deps.logger.child({ account: watched.account, mailbox: watched.mailbox, uid: watched.uid });
  const input: RuleInput = { mail: watched.mail, account: watched.account, mailbox: watched.mailbox, receivedAt: watched.receivedAt };
  const matches = evaluateRules([...deps.rules], input);
  log.debug({ subject: watched.mail.subject, matched: matches.map((m) => m.rule) }, "mail read");
  for (const match of matches) {
    for (const missing of match.missing) log.warn({ rule: match.rule, field: missing.field, reason: missing.reason }, "field not found; notifying with it marked missing");
  }

  const key = messageKey(watched);
  const counted = deps.state.transaction(() => {
    const totals = matches.map((match): RunningTotal | undefined => {
      if (!match.total) return undefined;
      const { amount, period } = match.total;
      if (amount) return { money: deps.state.totals.add(match.rule, key, period.key, amount).total, period };
      return undefined;
    });
    deps.state.checkpoints.save(watched.account, watched.mailbox, watched.checkpoint);
    return totals;
  });

  const link = messageLink(deps.accounts.get(watched.account), watched);
  const ruleByName = new Map(deps.rules.map((r) => [r.name, r]));
  await Promise.all(
    matches.flatMap((match, i) => {
      const rule = ruleByName.get(match.rule)!;
      const notification = buildNotification(rule, match, input, watched, { total: counted[i], link });
      return match.notify.map(async (targetName) => {
        const target = deps.targets.get(targetName);
        if (!target) return;
        const ref = { rule: match.rule, account: watched.account, mailbox: watched.mailbox, uidValidity: watched.uidValidity, uid: watched.uid };
        await deps.delivery.deliver(target, target.render(notification), ref);
      });
    }),
  );
}

/**
 * A message counts once per rule even if it shows up twice (Gmail shows one mail in INBOX and in
 * All Mail): the Message-ID identifies it when present, its place on the server otherwise.
 */
export function messageKey(watched: Pick<WatchedMail, "account" | "mailbox" | "uidValidity" | "uid" | "mail">): string {
  return watched.mail.messageId ? `mid:${watched.mail.messageId}` : `uid:${watched.account}/${watched.mailbox}/${watched.uidValidity}/${watched.uid}`;
}

const gmailHosts = /(^|\.)(gmail|googlemail)\.com$/i;

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
  if (account && gmailHosts.test(account.host) && messageId) {
    return `https://mail.google.com/mail/u/0/#search/rfc822msgid:${encodeURIComponent(messageId)}`;
  }
  return undefined;
}
