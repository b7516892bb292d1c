/**
 * Which mail a backfill asks the server for: UID SEARCH by date and, where every rule in play has
 * a plain (not regex) From or Subject condition, by those too, so a 50,000-mail mailbox costs what
 * may match, not everything. Pure. The server's FROM and SUBJECT are case-insensitive substring
 * searches (RFC 3501 §6.4.4): a superset of what the rules match, which then decide exactly. Two
 * things keep it a superset: mailbell squeezes whitespace runs in a subject (NBSP, tabs, double
 * spaces) before matching and a server need not, so only the pattern's longest word is sent; and
 * some servers match whole words, not substrings (SUBJECT "receipt" misses "Receipts"), so on
 * those only the dates narrow.
 */
import { parseRegexLiteral } from "../rules/pattern.ts";
import type { MatchConfig } from "../rules/config.ts";

/** What imapflow's client.search() takes, as far as backfill uses it. */
export interface SearchQuery {
  since?: Date;
  before?: Date;
  from?: string;
  subject?: string;
  or?: SearchQuery[];
  all?: true;
}

/** Why a search could not be narrowed beyond dates, for the summary; undefined when it was. */
export type Narrowing = { query: SearchQuery; by: "conditions" } | { query: SearchQuery; by: "dates"; because: string };

/**
 * The search for the rules that can match mail in one mailbox (`rules`, each with its name and
 * match:), between the dates. A rule without a plain From or Subject would need every mail read,
 * so then only the dates narrow; so do `--search dates` (datesOnly) and a server known to search
 * by word (`host`).
 */
export function searchFor(rules: readonly { name: string; match: MatchConfig }[], dates: { since?: Date; before?: Date }, server: { host?: string; datesOnly?: boolean } = {}): Narrowing {
  const base: SearchQuery = Object.keys(dates).length > 0 ? { ...dates } : { all: true };
  if (server.datesOnly) return { query: base, by: "dates", because: "--search dates" };
  if (server.host !== undefined && searchesByWord(server.host)) return { query: base, by: "dates", because: `${server.host} searches by whole word, not substring` };
  const perRule = rules.map((r) => ({ name: r.name, terms: literalTerms(r.match) }));
  const open = perRule.find((r) => r.terms === undefined);
  if (open || perRule.length === 0) return { query: base, by: "dates", because: open ? `rule ${open.name} has no plain from: or subject: condition` : "no rule" };
  const terms = perRule.map((r) => r.terms!);
  const dateTerms: SearchQuery = { ...dates };
  return { query: terms.length === 1 ? { ...dateTerms, ...terms[0]! } : { ...dateTerms, or: terms }, by: "conditions" };
}

/**
 * FROM/SUBJECT for a rule's plain conditions, or undefined when it has none the server can test:
 * regexes, and non-ASCII text (servers fold and decode it differently from mailbell).
 */
export function literalTerms(match: MatchConfig): SearchQuery | undefined {
  const terms: SearchQuery = {};
  const from = plain(match.from);
  // "@example.com" also means its subdomains (x@mail.example.com): search for the domain alone.
  if (from !== undefined) terms.from = from.startsWith("@") ? from.slice(1) : from;
  const subject = plain(match.subject);
  if (subject !== undefined) terms.subject = subject;
  return Object.keys(terms).length > 0 ? terms : undefined;
}

/**
 * The pattern's longest word: mail whose squeezed text contains the pattern contains each of its
 * words, however the server treats the whitespace between them.
 */
function plain(pattern: string | undefined): string | undefined {
  if (pattern === undefined || parseRegexLiteral(pattern)) return undefined;
  const text = pattern.trim();
  // Printable ASCII only, and no quote or backslash, which some servers take wrongly in a search string.
  if (text.length === 0 || !/^[\x20-\x7e]+$/.test(text) || /["\\]/.test(text)) return undefined;
  return text.split(/\s+/).reduce((longest, word) => (word.length > longest.length ? word : longest), "");
}

/** IMAP hosts whose SEARCH matches whole words or prefixes (their own search index), not substrings. */
const wordSearchHosts = ["imap.gmail.com", "imap.googlemail.com", "outlook.office365.com", "outlook.office.com", "imap-mail.outlook.com"];

export function searchesByWord(host: string): boolean {
  return wordSearchHosts.includes(host.toLowerCase().replace(/\.$/, ""));
}
