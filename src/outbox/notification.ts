import { formatAddress } from "../rules/match.ts";
import { formatMoney, moneyToDecimalString } from "../rules/money.ts";
import { renderRuleMessage, type CompiledRule } from "../rules/rules.ts";
import type { RuleInput, RuleMatch, RunningTotal } from "../rules/types.ts";
import type { Notification, NotificationField } from "../targets/types.ts";

export interface MailRef {
  uidValidity: number;
  uid: number;
}

/** Builds the target-independent notification for one rule match. Pure. */
export function buildNotification(rule: CompiledRule, match: RuleMatch, input: RuleInput, ref: MailRef, extras: { total?: RunningTotal; link?: string }): Notification {
  const fields: Record<string, NotificationField | null> = {};
  for (const [name, value] of Object.entries(match.fields)) {
    fields[name] =
      value.kind === "money"
        ? { text: formatMoney(value.money, rule.locale), raw: value.raw, amount: moneyToDecimalString(value.money), currency: value.money.currency }
        : { text: value.raw, raw: value.raw };
  }
  for (const missing of match.missing) fields[missing.field] = null;
  const total = extras.total
    ? {
        amount: moneyToDecimalString(extras.total.money),
        currency: extras.total.money.currency,
        text: formatMoney(extras.total.money, rule.locale),
        period: extras.total.period.key,
        periodLabel: extras.total.period.label,
      }
    : null;
  return {
    rule: match.rule,
    account: input.account,
    mailbox: input.mailbox,
    uidValidity: ref.uidValidity,
    uid: ref.uid,
    messageId: input.mail.messageId,
    from: input.mail.from[0] ? formatAddress(input.mail.from[0]) : "",
    subject: input.mail.subject,
    date: input.mail.date?.toISOString(),
    fields,
    total,
    period: match.total?.period.key,
    link: extras.link,
    render: (escape) => renderRuleMessage(rule, match, input, extras, escape),
  };
}
