import type { ExtractConfig } from "./config.ts";
import type { ConfigIssue } from "../errors.ts";
import { hasHtmlAlternative, htmlText } from "../mail/normalize.ts";
import { childPath } from "./issues.ts";
import { formatAddress } from "./match.ts";
import { findMoney } from "./money.ts";
import { compileRegex, execFromStart, parseRegexLiteral } from "./pattern.ts";
import { isBuiltinName } from "./template.ts";
import type { FieldValue, MissingField, RuleInput } from "./types.ts";

type Source = ExtractConfig["in"];

interface CompiledField {
  name: string;
  regex: RegExp;
  /** Which group holds the value: "value", 1, or 0 for the whole match. */
  group: "value" | number;
  as: ExtractConfig["as"];
  in: Source;
  currency: string | undefined;
}

export interface CompiledExtract {
  readonly fields: readonly CompiledField[];
}

const sourceNames: Record<Source, string> = { body: "the body", html: "the HTML part's text", subject: "the subject", from: "the From address" };

/** `/regex/flags` as it reads in messages. */
function shown(re: RegExp): string {
  return `/${re.source}/${re.flags}`;
}

/** Which group a match's value comes from, known once at config time. */
function valueGroup(re: RegExp): "value" | number {
  // An alternation with the empty string always matches, and exposes the groups the regex has.
  const probe = new RegExp(`(?:${re.source})|`, re.flags.replace(/[gy]/g, "")).exec("")!;
  if (probe.groups && Object.hasOwn(probe.groups, "value")) return "value";
  return probe.length > 1 ? 1 : 0;
}

/**
 * Compiles a rule's `extract` map. `regex` is a plain regex (flags from `flags`) or `/regex/flags`;
 * with both, the flags are combined. Issues carry paths under `path` ("extract.amount.regex").
 */
export function compileExtract(fields: Readonly<Record<string, ExtractConfig>>, path = "extract"): CompiledExtract | ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const compiled: CompiledField[] = [];
  for (const [name, config] of Object.entries(fields)) {
    const fieldPath = childPath(path, name);
    if (isBuiltinName(name)) {
      issues.push({ path: fieldPath, message: `the field name "${name}" is taken by the built-in {{${name}}}: rename the field, e.g. "${name}_text"` });
      continue;
    }
    if (name === "__proto__") {
      // Fields end up as keys of plain objects, where this name would replace the prototype.
      issues.push({ path: fieldPath, message: `the field name "__proto__" is reserved: rename the field` });
      continue;
    }
    const literal = parseRegexLiteral(config.regex);
    const body = literal ? literal.body : config.regex;
    const flags = (literal?.flags ?? "") + (config.flags ?? "");
    const re = compileRegex(body, flags);
    if (!(re instanceof RegExp)) {
      issues.push({ path: childPath(fieldPath, "regex"), message: re.error });
      continue;
    }
    compiled.push({ name, regex: re, group: valueGroup(re), as: config.as, in: config.in, currency: config.currency });
  }
  return issues.length > 0 ? issues : { fields: compiled };
}

function sourceText(source: Source, input: RuleInput): string | undefined {
  switch (source) {
    case "body":
      return input.mail.text;
    case "html":
      return htmlText(input.mail);
    case "subject":
      return input.mail.subject;
    case "from": {
      const first = input.mail.from[0];
      return first ? formatAddress(first) : "";
    }
  }
}

/** Text for a log line: whitespace runs as one space, cut at about 60 characters. */
export function snippet(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

type FieldResult = { value: FieldValue } | { reason: string };

/**
 * A field from where it says. `in: body` reads the plain text, and when that yields nothing and the
 * mail has an HTML alternative (a plain part that says "view this mail in a browser"), the HTML's
 * text: so a rule written against one receipt works whichever part carries the amount.
 */
function extractOne(field: CompiledField, input: RuleInput): FieldResult {
  const found = extractFrom(field, field.in, input);
  if ("value" in found || field.in !== "body" || !hasHtmlAlternative(input.mail)) return found;
  const fromHtml = extractFrom(field, "html", input);
  return "value" in fromHtml ? fromHtml : { reason: `${found.reason}; ${fromHtml.reason}` };
}

function extractFrom(field: CompiledField, source: Source, input: RuleInput): FieldResult {
  const where = sourceNames[source];
  const text = sourceText(source, input);
  if (text === undefined) return { reason: `the mail has no HTML part to look in (in: html); use in: body for its plain text` };
  const m = execFromStart(field.regex, text);
  if (!m) return { reason: `regex ${shown(field.regex)} found nothing in ${where}` };
  const captured = field.group === "value" ? m.groups?.["value"] : m[field.group];
  const raw = captured?.trim() ?? "";
  if (raw === "") {
    const group = field.group === "value" ? "the group (?<value>…)" : field.group === 1 ? "group 1" : "the match";
    return { reason: `regex ${shown(field.regex)} matched in ${where}, but ${group} is empty` };
  }
  if (field.as === "text") return { value: { kind: "text", raw } };
  const found = findMoney(raw, field.currency);
  if (found.ok) return { value: { kind: "money", raw, money: found.money } };
  if (found.problem === "no-currency") {
    return { reason: `no currency in "${snippet(raw)}": add a sign or code to the capture, or set currency (e.g. JPY) on the field` };
  }
  return { reason: `no amount in "${snippet(raw)}"` };
}

/** Runs every field's regex; a field that yields nothing is listed in `missing` with the reason. */
export function extractFields(compiled: CompiledExtract, input: RuleInput): { fields: Record<string, FieldValue>; missing: MissingField[] } {
  const fields: Record<string, FieldValue> = {};
  const missing: MissingField[] = [];
  for (const field of compiled.fields) {
    const result = extractOne(field, input);
    if ("value" in result) fields[field.name] = result.value;
    else missing.push({ field: field.name, reason: result.reason });
  }
  return { fields, missing };
}
