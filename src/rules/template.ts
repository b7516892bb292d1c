import type { ConfigIssue } from "../errors.ts";
import { closest } from "./issues.ts";
import { formatMoney } from "./money.ts";
import type { FieldValue, PeriodKey, RunningTotal } from "./types.ts";

/*
 * Trust boundary: the template's literal text is written by the user and goes out unchanged, so
 * it may use the target's markup (Slack `*bold*`, `<!here>`). Every substituted value comes from
 * the mail, which anyone can send, so each one goes through the target's `escape` — including
 * the "[amount missing]" stand-ins, to keep one rule: what is not literal is escaped.
 */

/** Names every template knows, besides the rule's extracted fields. */
export const builtinNames = ["subject", "from", "to", "date", "total", "period", "link", "rule", "account", "mailbox", "attachments", "verified"] as const;
export type BuiltinName = (typeof builtinNames)[number];

const builtinSet: ReadonlySet<string> = new Set(builtinNames);

export function isBuiltinName(name: string): name is BuiltinName {
  return builtinSet.has(name);
}

type Part = { kind: "text"; text: string } | { kind: "field"; name: string; raw: boolean } | { kind: "builtin"; name: BuiltinName };

export interface CompiledTemplate {
  readonly source: string;
  readonly parts: readonly Part[];
}

/** What a template is rendered with. Everything here except `locale` and `timeZone` is untrusted. */
export interface TemplateValues {
  fields: Readonly<Record<string, FieldValue>>;
  /** Decoded subject. */
  subject: string;
  /** First From as "Name <address>", or the address alone; "" when the mail has none. */
  from: string;
  /** Every To address, in the same form, joined with ", ". */
  to: string;
  /** The attachments' file names (formatAttachments); "" when there are none. */
  attachments: string;
  /** The mail's Date header, else when it was received; undefined renders "[no date]". */
  date: Date | undefined;
  /** The running total after this mail; undefined renders "[no total]". */
  total?: RunningTotal | undefined;
  /** The total's period; falls back to total.period. */
  period?: PeriodKey | undefined;
  link?: string | undefined;
  /** How the sender was verified ("DKIM google.com"), for a rule with verify:; undefined renders "[not verified]". */
  verified?: string | undefined;
  rule: string;
  account: string;
  mailbox: string;
  /** Locale for money and dates (en-US, ja-JP). */
  locale: string;
  /** IANA zone {{date}} is shown in. */
  timeZone: string;
}

const placeholder = /\{\{([\s\S]*?)\}\}/g;
const nameSyntax = /^([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?$/;

function validNamesText(fieldNames: readonly string[]): string {
  const raw = fieldNames.length > 0 ? `; ${fieldNames.map((f) => `{{${f}.raw}}`).join(", ")} give${fieldNames.length === 1 ? "s" : ""} the text as captured` : "";
  return `valid names are ${[...fieldNames, ...builtinNames].join(", ")}${raw}`;
}

/**
 * Parses `{{name}}`, `{{ name }}` and `{{field.raw}}` placeholders. `fieldNames` are the rule's
 * extracted fields; the built-in names are always known. Issues carry `path` ("template").
 */
export function compileTemplate(source: string, fieldNames: readonly string[], path = "template"): CompiledTemplate | ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const parts: Part[] = [];
  const fields = new Set(fieldNames);

  const addText = (text: string): void => {
    if (text === "") return;
    if (text.includes("{{")) {
      issues.push({ path, message: `"{{" without a closing "}}" in ${JSON.stringify(source)}: write placeholders as {{name}}` });
    }
    parts.push({ kind: "text", text });
  };

  let last = 0;
  for (const m of source.matchAll(placeholder)) {
    addText(source.slice(last, m.index));
    last = m.index + m[0].length;
    const inner = m[1]!.trim();
    const syntax = nameSyntax.exec(inner);
    if (!syntax) {
      issues.push({ path, message: `${m[0]} is not a placeholder: write {{name}} or {{field.raw}}; ${validNamesText(fieldNames)}` });
      continue;
    }
    const [, name = "", suffix] = syntax;
    if (suffix !== undefined) {
      if (suffix !== "raw") {
        issues.push({ path, message: `${m[0]}: unknown suffix ".${suffix}"; the only suffix is .raw, for the text an extracted field captured` });
      } else if (!fields.has(name)) {
        const what = isBuiltinName(name) ? `${name} is built in, not an extracted field` : `${name} is not an extracted field`;
        issues.push({ path, message: `${m[0]}: ${what}; .raw works on ${fieldNames.length > 0 ? fieldNames.join(", ") : "extracted fields, and this rule extracts none"}` });
      } else {
        parts.push({ kind: "field", name, raw: true });
      }
      continue;
    }
    if (fields.has(name)) parts.push({ kind: "field", name, raw: false });
    else if (isBuiltinName(name)) parts.push({ kind: "builtin", name });
    else {
      const hint = closest(name, [...fieldNames, ...builtinNames]);
      issues.push({ path, message: `unknown placeholder ${m[0]}${hint ? ` (did you mean {{${hint}}}?)` : ""}: ${validNamesText(fieldNames)}` });
    }
  }
  addText(source.slice(last));
  return issues.length > 0 ? issues : { source, parts };
}

function formatDate(date: Date, locale: string, timeZone: string): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short", timeZone }).format(date);
}

function fieldText(name: string, raw: boolean, values: TemplateValues): string {
  const value = Object.hasOwn(values.fields, name) ? values.fields[name] : undefined;
  if (!value) return `[${name} missing]`;
  if (raw || value.kind === "text") return value.raw;
  return formatMoney(value.money, values.locale);
}

function builtinText(name: BuiltinName, values: TemplateValues): string {
  switch (name) {
    case "subject":
      return values.subject;
    case "from":
      return values.from;
    case "to":
      return values.to;
    case "date":
      return values.date ? formatDate(values.date, values.locale, values.timeZone) : "[no date]";
    case "total":
      return values.total ? formatMoney(values.total.money, values.locale) : "[no total]";
    case "period": {
      const period = values.period ?? values.total?.period;
      return period ? period.label : "[no period]";
    }
    case "link":
      return values.link ?? "[no link]";
    case "verified":
      return values.verified ?? "[not verified]";
    case "rule":
      return values.rule;
    case "account":
      return values.account;
    case "mailbox":
      return values.mailbox;
    case "attachments":
      return values.attachments;
  }
}

/** Literal text as written; every substituted value through `escape` (see the note at the top). */
export function renderTemplate(t: CompiledTemplate, values: TemplateValues, escape: (s: string) => string): string {
  let out = "";
  for (const part of t.parts) {
    if (part.kind === "text") out += part.text;
    else if (part.kind === "field") out += escape(fieldText(part.name, part.raw, values));
    else out += escape(builtinText(part.name, values));
  }
  return out;
}
