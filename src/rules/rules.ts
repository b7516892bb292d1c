import type { RuleConfig, TotalConfig } from "./config.ts";
import type { ConfigIssue } from "../errors.ts";
import { emptyMail } from "../mail/types.ts";
import { compileActions } from "./actions.ts";
import { compileExtract, extractFields } from "./extract.ts";
import type { CompiledExtract } from "./extract.ts";
import { underPath } from "./issues.ts";
import { compileMatch, formatAddress, formatAttachments, matches, matchesWithoutBody } from "./match.ts";
import type { CompiledMatch } from "./match.ts";
import { periodOf, validateLocale, validateTimeZone } from "./period.ts";
import { compileTemplate, renderTemplate } from "./template.ts";
import type { CompiledTemplate, TemplateValues } from "./template.ts";
import type { MailActions, RuleInput, RuleMatch, RunningTotal, Verdict } from "./types.ts";
import { checkVerify, compileVerify, type CompiledVerify } from "./verify.ts";

export interface CompiledRule {
  readonly name: string;
  /** Target names, in config order; checked against the targets elsewhere. */
  readonly notify: readonly string[];
  /** The rule's locale, or the top-level one. */
  readonly locale: string;
  readonly total: TotalConfig | undefined;
  readonly match: CompiledMatch;
  readonly extract: CompiledExtract;
  readonly template: CompiledTemplate;
  /** What to do to the mail on the server once it is queued (`then:`). */
  readonly then: MailActions | undefined;
  /** The mail must really come from who it claims (`verify:`). */
  readonly verify: CompiledVerify | undefined;
}

function checkTotal(rule: RuleConfig, total: TotalConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const field = Object.hasOwn(rule.extract, total.sum) ? rule.extract[total.sum] : undefined;
  const moneyFields = Object.entries(rule.extract)
    .filter(([, f]) => f.as === "money")
    .map(([n]) => n);
  if (!field) {
    const known = moneyFields.length > 0 ? `the money fields are ${moneyFields.join(", ")}` : "this rule extracts no field with as: money; add one under extract";
    issues.push({ path: "total.sum", message: `"${total.sum}" is not an extracted field: ${known}` });
  } else if (field.as !== "money") {
    issues.push({ path: "total.sum", message: `"${total.sum}" is extracted as text, so it cannot be added up: set as: money on extract.${total.sum}` });
  }
  const tzError = validateTimeZone(total.timezone);
  if (tzError) issues.push({ path: "total.timezone", message: tzError });
  return issues;
}

function compileRule(rule: RuleConfig, defaultLocale: string, warnings: ConfigIssue[]): CompiledRule | ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (rule.locale !== undefined) {
    const localeError = validateLocale(rule.locale);
    if (localeError) issues.push({ path: "locale", message: localeError });
  }
  const match = compileMatch(rule.match, "match", warnings);
  if (Array.isArray(match)) issues.push(...match);
  const extract = compileExtract(rule.extract);
  if (Array.isArray(extract)) issues.push(...extract);
  if (rule.total) issues.push(...checkTotal(rule, rule.total));
  const template = compileTemplate(rule.template, Object.keys(rule.extract));
  if (Array.isArray(template)) issues.push(...template);
  const then = rule.then ? compileActions(rule.then) : undefined;
  if (Array.isArray(then)) issues.push(...then);
  const verify = rule.verify ? compileVerify(rule.verify) : undefined;
  if (Array.isArray(verify)) issues.push(...verify);
  // A verdict says the mail comes from the domain in its From, whichever that is.
  if (rule.verify && rule.match.from === undefined) {
    warnings.push({ path: "verify", message: "verify: without match.from lets any sender whose own domain checks out match this rule; add the sender, e.g. from: \"@google.com\"" });
  }
  if (rule.notify.length === 0 && !rule.then) issues.push({ path: "notify", message: "the rule neither notifies nor acts: name a target (notify: [slack]) or say what to do to the mail (then: { seen: true })" });
  if (issues.length > 0 || Array.isArray(match) || Array.isArray(extract) || Array.isArray(template) || Array.isArray(then) || Array.isArray(verify)) return issues;
  return { name: rule.name, notify: [...rule.notify], locale: rule.locale ?? defaultLocale, total: rule.total, match, extract, template, then, verify };
}

/**
 * Compiles every rule, or returns all problems at once with paths such as
 * `rules[2].extract.amount.regex`, so one edit of the config can fix them all. An invalid
 * top-level locale is reported once, at `locale`. `warnings` are for what is valid but surely not
 * what was meant (a from: that can match nothing): said at start, never refused.
 */
export type CompileRulesResult = { ok: true; rules: CompiledRule[]; warnings: ConfigIssue[] } | { ok: false; issues: ConfigIssue[]; warnings: ConfigIssue[] };

export function compileRules(rules: readonly RuleConfig[], defaults: { locale: string }): CompileRulesResult {
  const issues: ConfigIssue[] = [];
  const localeError = validateLocale(defaults.locale);
  if (localeError) issues.push({ path: "locale", message: localeError });
  const warnings: ConfigIssue[] = [];
  const compiled: CompiledRule[] = [];
  // Unique rule names and known notify targets are checked in config/validate.ts, with the whole file.
  rules.forEach((rule, i) => {
    const ruleWarnings: ConfigIssue[] = [];
    const result = compileRule(rule, defaults.locale, ruleWarnings);
    warnings.push(...underPath(`rules[${i}]`, ruleWarnings));
    if (Array.isArray(result)) issues.push(...underPath(`rules[${i}]`, result));
    else compiled.push(result);
  });
  return issues.length > 0 ? { ok: false, issues, warnings } : { ok: true, rules: compiled, warnings };
}

/** What one rule makes of the mail: matched, or its conditions held but the sender is not verified. */
export type RuleOutcome = { rule: string; match: RuleMatch } | { rule: string; unverified: Extract<Verdict, { verified: false }> };

/** judgeRule() for every rule, in rule order; rules whose conditions do not hold are left out. */
export function judgeRules(rules: readonly CompiledRule[], input: RuleInput): RuleOutcome[] {
  return rules.flatMap((rule) => {
    const outcome = judgeRule(rule, input);
    return outcome ? [outcome] : [];
  });
}

/** Undefined when the rule's conditions do not hold for the mail. */
export function judgeRule(rule: CompiledRule, input: RuleInput): RuleOutcome | undefined {
  if (!matches(rule.match, input)) return undefined;
  const verdict = rule.verify ? checkVerify(rule.verify, input) : undefined;
  if (verdict && !verdict.verified) return { rule: rule.name, unverified: verdict };
  const match = matchOf(rule, input);
  if (verdict) match.verified = verdict;
  return { rule: rule.name, match };
}

/** What one rule makes of the mail, or undefined when its match does not hold (or its sender is not verified). */
export function evaluateRule(rule: CompiledRule, input: RuleInput): RuleMatch | undefined {
  const outcome = judgeRule(rule, input);
  return outcome && "match" in outcome ? outcome.match : undefined;
}

function matchOf(rule: CompiledRule, input: RuleInput): RuleMatch {
  const { fields, missing } = extractFields(rule.extract, input);
  const result: RuleMatch = { rule: rule.name, fields, missing, notify: [...rule.notify] };
  if (rule.total) {
    const value = Object.hasOwn(fields, rule.total.sum) ? fields[rule.total.sum] : undefined;
    result.total = {
      field: rule.total.sum,
      amount: value?.kind === "money" ? value.money : undefined,
      period: periodOf(rule.total.per, input.receivedAt, rule.total.timezone, rule.locale),
    };
  }
  return result;
}

/**
 * Whether any rule needs this mail's body text, judged from the rest of the mail (its header) with
 * the body not yet read: a rule whose header conditions hold and that tests or extracts from the
 * body. When not, the daemon never fetches the text, and evaluateRules() on the header alone gives
 * what it would give with the body: no rule reads it. Templates never show the body.
 */
export function needsBody(rules: readonly CompiledRule[], headerOnly: RuleInput): boolean {
  return rules.some((rule) => readsBody(rule) && matchesWithoutBody(rule.match, headerOnly));
}

/**
 * Whether the whole message must be read, to verify its DKIM signature (the body hash covers every
 * byte, attachments included): only for mail whose header already matches a rule with verify.dkim.
 */
export function needsWhole(rules: readonly CompiledRule[], input: RuleInput, bodyRead = false): boolean {
  // With the body read, the rule's body conditions are known too: a rule that tests only the body
  // must not make every mail of the mailbox read whole.
  return rules.some((rule) => rule.verify?.dkim !== undefined && (bodyRead ? matches(rule.match, input) : matchesWithoutBody(rule.match, input)));
}

/** Whether any rule that can match mail in this mailbox verifies DKIM (else no mail there is read whole). */
export function verifiesDkimIn(rules: readonly CompiledRule[], place: { account: string; mailbox: string }): boolean {
  return rules.some((rule) => rule.verify?.dkim !== undefined && appliesIn(rule, place));
}

/**
 * needsBody() for every mail of one mailbox, where the answer does not depend on the mail:
 * "always" when a rule reads the body of any mail there (no header conditions), "never" when no
 * rule reads a body there, else "depends" (ask needsBody per mail, after reading its header).
 */
export function bodyNeedIn(rules: readonly CompiledRule[], place: { account: string; mailbox: string }): "always" | "never" | "depends" {
  const here = rules.filter((rule) => readsBody(rule) && appliesIn(rule, place));
  if (here.length === 0) return "never";
  return here.some((rule) => rule.match.conditions.every((c) => c.reads !== "header")) ? "always" : "depends";
}

/** Whether some rule that can match mail in this mailbox acts on it: then the mailbox is opened read-write. */
export function actsIn(rules: readonly CompiledRule[], place: { account: string; mailbox: string }): boolean {
  return rules.some((rule) => rule.then !== undefined && appliesIn(rule, place));
}

/** Whether the rule's account and mailbox conditions let it match mail in this mailbox. */
export function appliesIn(rule: CompiledRule, place: { account: string; mailbox: string }): boolean {
  // Place conditions read only account and mailbox; the mail in the probe is never looked at.
  const probe: RuleInput = { account: place.account, mailbox: place.mailbox, receivedAt: new Date(0), mail: { ...emptyMail(), warnings: [] } };
  return rule.match.conditions.every((c) => c.reads !== "place" || c.holds(probe));
}

function readsBody(rule: CompiledRule): boolean {
  return rule.match.conditions.some((c) => c.reads === "body") || rule.extract.fields.some((f) => f.in === "body" || f.in === "html");
}

/**
 * Whether any rule would read this mail's HTML alternative, judged from the mail with its plain
 * text read and the HTML not yet (the caller knows it has one): a rule whose header conditions hold
 * and that extracts `in: html`, or whose body condition fails on the plain text (it is tried on the
 * HTML next), or a field `in: body` the plain text does not yield. When not, evaluateRules() on the
 * mail without its HTML gives what it would give with it: the HTML is never fetched.
 */
export function needsHtml(rules: readonly CompiledRule[], withoutHtml: RuleInput): boolean {
  return rules.some((rule) => readsBody(rule) && matchesWithoutBody(rule.match, withoutHtml) && wouldReadHtml(rule, withoutHtml));
}

function wouldReadHtml(rule: CompiledRule, withoutHtml: RuleInput): boolean {
  if (rule.extract.fields.some((f) => f.in === "html")) return true;
  // The header conditions hold (see needsHtml), so a rule that does not match failed on the body.
  if (!matches(rule.match, withoutHtml)) return true;
  const byName = new Map(rule.extract.fields.map((f) => [f.name, f]));
  return extractFields(rule.extract, withoutHtml).missing.some((m) => byName.get(m.field)?.in === "body");
}

/** One RuleMatch per rule whose match holds, in rule order; every matching rule, not only the first. */
export function evaluateRules(rules: readonly CompiledRule[], input: RuleInput): RuleMatch[] {
  const out: RuleMatch[] = [];
  for (const rule of rules) {
    const result = evaluateRule(rule, input);
    if (result) out.push(result);
  }
  return out;
}

export interface RenderExtras {
  /** The running total after this mail, when the rule keeps one and the store knows it. */
  total?: RunningTotal | undefined;
  /** Link to the mail, for {{link}}. */
  link?: string | undefined;
  /** Zone for {{date}}; defaults to the total's zone, else UTC. */
  timeZone?: string | undefined;
}

/** The values a rule's template sees for this mail and match. */
export function templateValues(rule: CompiledRule, match: RuleMatch, input: RuleInput, extras: RenderExtras): TemplateValues {
  const first = input.mail.from[0];
  return {
    fields: match.fields,
    subject: input.mail.subject,
    from: first ? formatAddress(first) : "",
    to: input.mail.to.map(formatAddress).join(", "),
    attachments: formatAttachments(input.mail.attachments),
    date: input.mail.date ?? input.receivedAt,
    total: extras.total,
    period: extras.total?.period ?? match.total?.period,
    link: extras.link,
    verified: match.verified?.by,
    rule: rule.name,
    account: input.account,
    mailbox: input.mailbox,
    locale: rule.locale,
    timeZone: extras.timeZone ?? rule.total?.timezone ?? "UTC",
  };
}

/**
 * The rule's message for one target. Called once per target, each with its own `escape` (Slack
 * mrkdwn, plain JSON…): the template's literal text is kept, every value from the mail is escaped.
 */
export function renderRuleMessage(rule: CompiledRule, match: RuleMatch, input: RuleInput, extras: RenderExtras, escape: (s: string) => string): string {
  return renderTemplate(rule.template, templateValues(rule, match, input, extras), escape);
}
