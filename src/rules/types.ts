import type { Period } from "./config.ts";
import type { NormalizedMail } from "../mail/types.ts";

/**
 * An exact decimal amount: `units / 10^scale` of `currency`. Never a float, so sums are exact
 * ("1.234,56 EUR" is { units: 123456n, scale: 2, currency: "EUR" }).
 */
export interface Money {
  units: bigint;
  scale: number;
  /** ISO 4217 code, e.g. "JPY". */
  currency: string;
}

/** What a rule sees: the normalized mail and where and when it arrived. */
export interface RuleInput {
  mail: NormalizedMail;
  account: string;
  mailbox: string;
  /** When the server received the mail (IMAP INTERNALDATE); decides the total's period. */
  receivedAt: Date;
  /** The mail's DKIM signatures as mailbell verified them; undefined when it did not (the mail was not read whole). */
  dkim?: readonly DkimSignature[] | undefined;
}

/** One DKIM-Signature of a mail, verified over the whole message (src/verify/dkim.ts). */
export interface DkimSignature {
  /** The signing domain (d=), lower case. */
  domain: string;
  /** pass, fail, neutral, policy, temperror, permerror or none (RFC 8601 dkim results). */
  result: string;
  /** Whether d= is aligned with the From address's domain (relaxed alignment, RFC 7489 §3.1.1). */
  aligned: boolean;
  /** Why it did not pass, when it did not ("body hash did not verify", "no key"). */
  comment?: string | undefined;
}

/** Whether a mail really comes from who it claims, for a rule with verify:. */
export type Verdict =
  | { verified: true; /** "DKIM google.com", "DMARC by mx.google.com" */ by: string }
  | { verified: false; /** A short, fixed code for the metric label. */ code: UnverifiedCode; /** For the log and mailbell test. */ reason: string };

export type UnverifiedCode = "not_signed" | "dkim_fail" | "other_domain" | "not_aligned" | "not_checked" | "no_auth_results" | "auth_results_fail" | "ambiguous_headers";

export type FieldValue =
  | { kind: "text"; raw: string }
  | { kind: "money"; raw: string; money: Money };

export interface MissingField {
  field: string;
  /** Why it is missing, for the log: "regex did not match the body", "no amount in '…'". */
  reason: string;
}

/** A period a total is kept for, in the rule's time zone. */
export interface PeriodKey {
  per: Period;
  /** Stable key stored in the database: "2026-11-23", "2026-W48", "2026-11", "2026". */
  key: string;
  /** Human label used by {{period}}: "November 23", "week 48", "November", "2026". */
  label: string;
}

/** A rule that matched one mail: what to tell, and what to add to its total. */
export interface RuleMatch {
  rule: string;
  fields: Record<string, FieldValue>;
  missing: MissingField[];
  /** Present when the rule keeps a total. `amount` is absent when the money field is missing. */
  total?: { field: string; amount: Money | undefined; period: PeriodKey };
  /** Target names, in config order. */
  notify: string[];
  /** Set when the rule has verify: and the mail passed it. */
  verified?: Extract<Verdict, { verified: true }>;
}

/** A running total after this mail was counted (or would be, for `mailbell test`). */
export interface RunningTotal {
  money: Money;
  period: PeriodKey;
}

/**
 * What a rule's `then:` does to a mail on the server after its notifications are queued, in this
 * order: flags (with \Seen), Gmail labels, then the move (which takes it out of the mailbox).
 * Plain data: planned with the mail, stored with its outbox rows, done by the watcher.
 */
export interface MailActions {
  /** Mark it read (\Seen). */
  seen: boolean;
  /** Flags and keywords to add; system flags in their canonical case ("\Flagged"). */
  flags: string[];
  /** Gmail labels to add (X-GM-LABELS). */
  labels: string[];
  /** The mailbox to move it to. */
  move: string | undefined;
}
