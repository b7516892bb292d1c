import { formatAddress } from "../rules/match.ts";
import { formatMoney, moneyToDecimalString } from "../rules/money.ts";
import { templateValues, type CompiledRule } from "../rules/rules.ts";
import { renderTemplate, type CompiledTemplate, type TemplateValues } from "../rules/template.ts";
import type { RuleInput, RuleMatch, RunningTotal } from "../rules/types.ts";
import type { MessageSegment, Notification, NotificationField } from "../targets/types.ts";

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
    attachments: input.mail.attachments.map(({ filename, contentType, size }) => ({ filename, contentType, size })),
    total,
    period: match.total?.period.key,
    link: extras.link,
    ...(match.verified ? { verified: match.verified.by } : {}),
    message: messageSegments(rule.template, templateValues(rule, match, input, extras)),
  };
}

/**
 * The template filled in, as segments: its literal text as written, each placeholder's value as
 * a mail-derived segment (the "[amount missing]" stand-ins too: what is not literal is escaped).
 */
export function messageSegments(template: CompiledTemplate, values: TemplateValues): MessageSegment[] {
  return template.parts.map((part) => (part.kind === "text" ? { literal: part.text } : { fromMail: renderTemplate({ source: "", parts: [part] }, values, (s) => s) }));
}
