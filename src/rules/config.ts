import { z } from "zod";
import { identifier } from "../settings.ts";

/** The `rules:` part of the config, owned by rules/. */

/** A pattern is a substring (case-insensitive) or a `/regex/flags` string. */
const pattern = z.string().min(1);
const patterns = z.union([pattern, z.array(pattern).min(1)]);

export const matchSchema = z.strictObject({
  /**
   * Tested against the bare address only (user@domain), never the display name: a whole address
   * (case-insensitive), `@example.com` for a domain and its subdomains, or `/regex/flags`.
   */
  from: pattern.optional(),
  to: pattern.optional(),
  cc: pattern.optional(),
  /** The From display name ("Google Play"): a substring or /regex/, as subject. Anyone can write any name. */
  fromName: pattern.optional(),
  /** Any attachment whose file name or content type matches ("/\\.pdf$/i", "application/pdf"); never downloaded. */
  attachment: pattern.optional(),
  subject: pattern.optional(),
  body: pattern.optional(),
  /** Any header by name: `{ "List-Id": "/receipts/" }`. */
  headers: z.record(z.string().min(1), pattern).optional(),
  /** Limit the rule to these accounts / mailboxes (names as in accounts[]). */
  account: patterns.optional(),
  mailbox: patterns.optional(),
});

export const extractFields = ["body", "subject", "from", "to", "text"] as const;

export const extractSchema = z.strictObject({
  /** A regular expression with a named group `value` (or else the first group, or the whole match). */
  regex: z.string().min(1),
  /** Regex flags, e.g. "i". The `/regex/flags` form is accepted in `regex` too. */
  flags: z.string().regex(/^[dgimsuvy]*$/, "valid flags are d g i m s u v y").optional(),
  as: z.enum(["text", "money"]).default("text"),
  /**
   * Where to look. body (default): the plain text, and when the field is not found there and the
   * mail has an HTML alternative, that HTML's text. html: the HTML part's text only. subject, from.
   */
  in: z.enum(["body", "html", "subject", "from"]).default("body"),
  /** For `as: money` when the text has no currency sign, e.g. "JPY". */
  currency: z.string().regex(/^[A-Z]{3}$/, "use a three-letter ISO 4217 code such as JPY, USD or EUR").optional(),
});

export const periods = ["day", "week", "month", "year"] as const;

export const totalSchema = z.strictObject({
  /** The extracted money field to add up. */
  sum: z.string().min(1),
  per: z.enum(periods).default("month"),
  /** IANA time zone that decides where a period starts, e.g. Asia/Tokyo. */
  timezone: z.string().min(1).default("UTC"),
});

const oneOrMore = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

/**
 * What to do to the mail on the server once its notifications are safely queued (rules/actions.ts
 * checks the values; the watcher does it). Any of these, in this order: flags, labels, move.
 */
export const thenSchema = z
  .strictObject({
    /** Mark the mail read (\Seen). */
    seen: z.literal(true).optional(),
    /** Flags or keywords to add: "\Flagged", "$Notified". */
    flag: oneOrMore.optional(),
    /** Gmail labels to add (Gmail only: X-GM-LABELS). */
    label: oneOrMore.optional(),
    /** The mailbox to move it to, e.g. "Receipts/2026". */
    move: z.string().min(1).optional(),
  })
  .refine((t) => t.seen !== undefined || t.flag !== undefined || t.label !== undefined || t.move !== undefined, "give at least one of seen: true, flag, label or move");

const domainName = z
  .string()
  .min(1)
  .regex(/^(?!-)[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/, "write a domain name such as google.com (no @, no scheme)");

/**
 * Mail must really come from who it claims (rules/verify.ts decides): a valid DKIM signature of
 * one of these domains, aligned with From (checked by mailbell), and/or the verdict the user's own
 * mail server wrote in its Authentication-Results header. Both given: both must hold.
 */
export const verifySchema = z
  .strictObject({
    /** Signing domains (d=), each with its subdomains: google.com. */
    dkim: z.union([domainName, z.array(domainName).min(1)]).optional(),
    /** The authserv-id of the user's server that stamps Authentication-Results (mx.google.com), or a preset: gmail, microsoft. */
    authResults: z.string().min(1).optional(),
  })
  .refine((v) => v.dkim !== undefined || v.authResults !== undefined, "give dkim: (signing domains) or authResults: (your server's authserv-id, or gmail / microsoft)");

export const ruleSchema = z.strictObject({
  name: identifier,
  match: matchSchema.default({}),
  extract: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "field names are letters, digits and _"), extractSchema).default({}),
  total: totalSchema.optional(),
  /** Target names; may be empty only when the rule acts on the mail (then:). */
  notify: z.array(z.string().min(1)).default([]),
  then: thenSchema.optional(),
  verify: verifySchema.optional(),
  template: z.string().min(1).default("{{from}}: {{subject}}"),
  /** Locale for money amounts and period names, e.g. en-US or ja-JP. Defaults to the top-level `locale`. */
  locale: z.string().min(2).optional(),
});

export type RuleConfig = z.infer<typeof ruleSchema>;
export type MatchConfig = z.infer<typeof matchSchema>;
export type ExtractConfig = z.infer<typeof extractSchema>;
export type TotalConfig = z.infer<typeof totalSchema>;
export type ThenConfig = z.infer<typeof thenSchema>;
export type VerifyConfig = z.infer<typeof verifySchema>;
export type Period = (typeof periods)[number];
