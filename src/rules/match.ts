import type { MatchConfig } from "./config.ts";
import type { ConfigIssue } from "../errors.ts";
import { hasHtmlAlternative, htmlText } from "../mail/normalize.ts";
import type { MailAddress, MailAttachment } from "../mail/types.ts";
import { childPath } from "./issues.ts";
import { compilePattern, isPatternError, parseRegexLiteral } from "./pattern.ts";
import type { CompiledPattern } from "./pattern.ts";
import type { RuleInput } from "./types.ts";

/*
 * Semantics: every condition given must hold (AND); an empty match holds for every mail. Within
 * one condition any value is enough: any address of From/To/Cc, any value of a repeated header,
 * any attachment, any name in an account/mailbox list.
 *
 * from/to/cc look at the bare address only, never the display name: anyone can write
 * `"googleplay-noreply@google.com" <attacker@evil.example>`, and a substring of the address would
 * let `googleplay-noreply@google.com.evil.example` through. The display name is matched only where
 * the rule asks for it (fromName, headers.From).
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
 * "invoice.pdf, logo.png": each attachment's file name, or its type in brackets when it has none
 * ("[image/png]"); "" when there are none. What {{attachments}} shows.
 */
export function formatAttachments(attachments: readonly MailAttachment[]): string {
  return attachments.map((a) => a.filename || `[${a.contentType}]`).join(", ");
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

/** The domain of an addr-spec, lower-cased: what follows its last "@". */
function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase();
}

const wholeAddress = /^[^@\s<>"]+@[^@\s<>"]+$/;
const wholeDomain = /^@[^@\s<>"]+$/;

/**
 * An address test: `/regex/flags` on the bare address; `@example.com` for that domain and its
 * subdomains (not `example.com.evil.example`, not `notexample.com`); anything else the whole
 * address, case-insensitively.
 */
export function compileAddressPattern(p: string): CompiledPattern | { error: string } {
  if (parseRegexLiteral(p)) return compilePattern(p);
  if (p.startsWith("@")) {
    const domain = p.slice(1).toLowerCase();
    return { kind: "substring", source: p, test: (address) => address.includes("@") && (domainOf(address) === domain || domainOf(address).endsWith(`.${domain}`)) };
  }
  const whole = p.toLowerCase();
  return { kind: "substring", source: p, test: (address) => address.toLowerCase() === whole };
}

/**
 * Why a plain from/to/cc pattern can match nothing, or undefined when it is a whole address or a
 * domain. Until address-only matching, a plain string was a substring of "Name <address>", so
 * configs still hold display names ("Google Play") and parts ("google.com", "dave@").
 */
export function addressPatternWarning(key: "from" | "to" | "cc", p: string): string | undefined {
  if (parseRegexLiteral(p) || wholeAddress.test(p) || wholeDomain.test(p)) return undefined;
  const quoted = JSON.stringify(p);
  const domain = /^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$/.test(p) ? ` (for the domain, write "@${p}")` : "";
  const name = key === "from" ? `write fromName: ${quoted} for the display name, ` : `write headers: { ${key === "to" ? "To" : "Cc"}: ${quoted} } for the display name, `;
  const fix = `${name}@example.com for a domain and its subdomains, or /regex/ for anything else`;
  if (!p.includes("@")) return `${quoted} has no @: it matches whole addresses now, so this rule matches nothing${domain}; ${fix}`;
  return `${quoted} is neither a whole address (user@example.com) nor a domain (@example.com): it matches whole addresses now, so this rule matches nothing; ${fix}`;
}

/**
 * Compiles a rule's `match`. Issue paths start with `path` ("match.subject"); the caller puts them
 * under the rule ("rules[2].match.subject"). Patterns that compile but can match nothing are added
 * to `warnings`, with the same paths.
 */
export function compileMatch(m: MatchConfig, path = "match", warnings: ConfigIssue[] = []): CompiledMatch | ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const conditions: Condition[] = [];

  const add = (where: string, p: string, holds: (pattern: CompiledPattern, input: RuleInput) => boolean, reads: Condition["reads"] = "header", compile = compilePattern): void => {
    const compiled = compile(p);
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
    const where = childPath(path, key);
    const warning = addressPatternWarning(key, p);
    if (warning) warnings.push({ path: where, message: warning });
    add(where, p, (pattern, input) => input.mail[key].some((a) => pattern.test(a.address)), "header", compileAddressPattern);
  }
  // Display names, for the rule that wants them: anyone can put any name on any address.
  if (m.fromName !== undefined) add(childPath(path, "fromName"), m.fromName, (pattern, input) => input.mail.from.some((a) => pattern.test(a.name)));

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

  // File name or type of any attachment, from the structure: the attachment itself is never read.
  if (m.attachment !== undefined) {
    add(childPath(path, "attachment"), m.attachment, (pattern, input) => input.mail.attachments.some((a) => pattern.test(a.filename) || pattern.test(a.contentType)));
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
