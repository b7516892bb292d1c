import type { MatchConfig } from "./config.ts";
import type { ConfigIssue } from "../errors.ts";
import { hasHtmlAlternative, htmlText } from "../mail/normalize.ts";
import type { MailAddress } from "../mail/types.ts";
import { childPath } from "./issues.ts";
import { compilePattern, isPatternError, parseRegexLiteral } from "./pattern.ts";
import type { CompiledPattern } from "./pattern.ts";
import type { RuleInput } from "./types.ts";

/*
 * Semantics: every condition given must hold (AND); an empty match holds for every mail. Within
 * one condition any value is enough: any address of From/To/Cc, any value of a repeated header,
 * any name in an account/mailbox list.
 */

interface Condition {
  /** Config path of the condition, e.g. "match.headers["List-Id"]", so `mailbell test` can say which failed. */
  path: string;
  holds(input: RuleInput): boolean;
  /**
   * What it looks at: where the mail is (account, mailbox), its header, or its body text, which is
   * read from the server only when some rule needs it.
   */
  reads: "place" | "header" | "body";
}

export interface CompiledMatch {
  readonly conditions: readonly Condition[];
}

/**
 * The forms an address is tested in: the bare address, so "/@google\.com$/" works, and
 * `Name <address>` (or `<address>` when there is no name), so a display name or "<addr>" works.
 */
export function addressForms(a: MailAddress): string[] {
  return [a.address, a.name ? `${a.name} <${a.address}>` : `<${a.address}>`];
}

/** "Name <address>", or the address alone when the mail gives no name. */
export function formatAddress(a: MailAddress): string {
  return a.name ? `${a.name} <${a.address}>` : a.address;
}

function isInbox(name: string): boolean {
  return name.toUpperCase() === "INBOX";
}

/**
 * An account or mailbox name test: `/regex/` or an exact name. Exact, because "Receipts" must
 * not also pick "Receipts/Archive"; mailbox names are case-sensitive on IMAP servers except INBOX,
 * which RFC 3501 makes case-insensitive.
 */
function compileNameTest(p: string, kind: "account" | "mailbox"): CompiledPattern | { error: string } {
  if (parseRegexLiteral(p)) return compilePattern(p);
  if (kind === "mailbox" && isInbox(p)) return { kind: "substring", source: p, test: (s) => isInbox(s) };
  return { kind: "substring", source: p, test: (s) => s === p };
}

/**
 * Compiles a rule's `match`. Issue paths start with `path` ("match.subject"); the caller puts them
 * under the rule ("rules[2].match.subject").
 */
export function compileMatch(m: MatchConfig, path = "match"): CompiledMatch | ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const conditions: Condition[] = [];

  const add = (where: string, p: string, holds: (pattern: CompiledPattern, input: RuleInput) => boolean, reads: Condition["reads"] = "header"): void => {
    const compiled = compilePattern(p);
    if (isPatternError(compiled)) issues.push({ path: where, message: compiled.error });
    else conditions.push({ path: where, holds: (input) => holds(compiled, input), reads });
  };

  for (const key of ["account", "mailbox"] as const) {
    const value = m[key];
    if (value === undefined) continue;
    const names = typeof value === "string" ? [value] : value;
    const tests: CompiledPattern[] = [];
    names.forEach((name, i) => {
      const where = typeof value === "string" ? childPath(path, key) : `${childPath(path, key)}[${i}]`;
      const compiled = compileNameTest(name, key);
      if (isPatternError(compiled)) issues.push({ path: where, message: compiled.error });
      else tests.push(compiled);
    });
    conditions.push({ path: childPath(path, key), holds: (input) => tests.some((t) => t.test(input[key])), reads: "place" });
  }

  for (const key of ["from", "to", "cc"] as const) {
    const p = m[key];
    if (p === undefined) continue;
    add(childPath(path, key), p, (pattern, input) => input.mail[key].some((a) => addressForms(a).some((form) => pattern.test(form))));
  }

  if (m.subject !== undefined) add(childPath(path, "subject"), m.subject, (pattern, input) => pattern.test(input.mail.subject));

  for (const [name, p] of Object.entries(m.headers ?? {})) {
    const where = childPath(childPath(path, "headers"), name);
    // RFC 5322 field names are printable ASCII without ":" or space; anything else can never be present.
    if (!/^[!-9;-~]+$/.test(name)) {
      issues.push({ path: where, message: `${JSON.stringify(name)} is not a header name: write it as in the mail, without ":" or spaces, e.g. List-Id` });
      continue;
    }
    const lower = name.toLowerCase();
    add(where, p, (pattern, input) => (input.mail.headers.get(lower) ?? []).some((v) => pattern.test(v)));
  }

  // Last, because the body is the longest text to search. A plain part that says less than its HTML
  // alternative ("view this mail in a browser") is not the end: the HTML's text is tried too.
  if (m.body !== undefined) add(childPath(path, "body"), m.body, (pattern, input) => pattern.test(input.mail.text) || (hasHtmlAlternative(input.mail) && pattern.test(htmlText(input.mail)!)), "body");

  return issues.length > 0 ? issues : { conditions };
}

/** Whether every condition holds for this mail. */
export function matches(compiled: CompiledMatch, input: RuleInput): boolean {
  return compiled.conditions.every((c) => c.holds(input));
}

/** Whether every condition that does not look at the body holds: all the header alone can tell. */
export function matchesWithoutBody(compiled: CompiledMatch, input: RuleInput): boolean {
  return compiled.conditions.every((c) => c.reads === "body" || c.holds(input));
}

/** Config paths of the conditions that do not hold ([] when the rule matches), for `mailbell test`. */
export function failedConditions(compiled: CompiledMatch, input: RuleInput): string[] {
  return compiled.conditions.filter((c) => !c.holds(input)).map((c) => c.path);
}
