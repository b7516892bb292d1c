import { z } from "zod";
import { identifier } from "./identifier.ts";

/**
 * The config file's shape. Every object is strict, so a misspelt key is an error that names it,
 * not a setting silently ignored. Semantic checks that need the whole file (a rule naming an
 * unknown target, a regex that does not compile) live in validate.ts.
 */

const name = identifier;

export const tlsModes = ["implicit", "starttls", "none"] as const;

export const oauth2Providers = ["google", "microsoft", "custom"] as const;

export const oauth2Schema = z.strictObject({
  /** google and microsoft fill in the token endpoint and scope; custom needs tokenUrl. */
  provider: z.enum(oauth2Providers),
  clientId: z.string().min(1),
  /** Not needed for public clients (Microsoft's device-code apps). */
  clientSecret: z.string().min(1).optional(),
  /** From `mailbell auth google|microsoft`; kept secret like a password. */
  refreshToken: z.string().min(1),
  tokenUrl: z.url({ protocol: /^https?$/ }).optional(),
  scope: z.string().min(1).optional(),
  /** Microsoft tenant (default "common"). */
  tenant: z.string().min(1).optional(),
});

export const accountSchema = z.strictObject({
  name,
  host: z.string().min(1),
  /** Defaults to 993 for implicit TLS, 143 otherwise. */
  port: z.number().int().min(1).max(65535).optional(),
  tls: z.enum(tlsModes).default("implicit"),
  /** PEM file with the CA(s) that signed the server's certificate, for private servers. */
  ca: z.string().min(1).optional(),
  /** Verify the server's certificate (default true). Turning it off is logged as a warning. */
  tlsVerify: z.boolean().default(true),
  user: z.string().min(1),
  /** One of pass, passFile, passCommand or oauth2 (checked in validate.ts). */
  pass: z.string().min(1).optional(),
  /** A file holding the password (first line), read at each login. */
  passFile: z.string().min(1).optional(),
  /** A program printing the password (first line), run at each login without a shell: ["pass", "show", "mail"]. */
  passCommand: z.array(z.string().min(1)).min(1).optional(),
  oauth2: oauth2Schema.optional(),
  /** Connections this account may open (one per watched mailbox). Gmail allows about 15. */
  maxConnections: z.number().int().min(1).max(1000).optional(),
  /**
   * Read mail announced during IDLE on a second connection per mailbox, opened while mail flows, so
   * the watching one stays in IDLE (quicker notifications). Default: on when the connection limit
   * leaves room for two per mailbox (see readerConnectionsFor).
   */
  readerConnections: z.boolean().optional(),
  mailboxes: z.array(z.string().min(1)).min(1).default(["INBOX"]),
  /** Largest text part fetched per message, in bytes; longer bodies are cut there. */
  maxTextBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(256 * 1024),
  /** Largest message header read, in bytes; a longer one is cut there (the mail says so in its warnings). */
  maxHeaderBytes: z.number().int().min(4096).max(16 * 1024 * 1024).default(256 * 1024),
  /** Template for {{link}}: {messageId}, {uid}, {mailbox}, {account}. Gmail hosts get a search link by default. */
  link: z.string().min(1).optional(),
});

export { targetSchema, type TargetConfig } from "../targets/index.ts";
import { targetSchema } from "../targets/index.ts";

/** A pattern is a substring (case-insensitive) or a `/regex/flags` string. */
const pattern = z.string().min(1);
const patterns = z.union([pattern, z.array(pattern).min(1)]);

export const matchSchema = z.strictObject({
  from: pattern.optional(),
  to: pattern.optional(),
  cc: pattern.optional(),
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
  /** Where to look: the plain-text body (default) or the subject. */
  in: z.enum(["body", "subject", "from"]).default("body"),
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

export const ruleSchema = z.strictObject({
  name,
  match: matchSchema.default({}),
  extract: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "field names are letters, digits and _"), extractSchema).default({}),
  total: totalSchema.optional(),
  notify: z.array(z.string().min(1)).min(1),
  template: z.string().min(1).default("{{from}}: {{subject}}"),
  /** Locale for money amounts and period names, e.g. en-US or ja-JP. Defaults to the top-level `locale`. */
  locale: z.string().min(2).optional(),
});

const seconds = (min: number, max: number) => z.number().min(min).max(max);

export const watchSchema = z.strictObject({
  /** Re-issue IDLE at least this often (RFC 2177 allows 29 min; Gmail drops sooner). */
  idleRestartMinutes: seconds(1, 29).default(10),
  /**
   * While idle, prove the connection alive with a NOOP this often… A peer that vanished is already
   * noticed by TCP keepalive within ~15 s (imapflow sets it); the NOOP is for a server or proxy that
   * still acknowledges packets but no longer answers. Each one costs ~0.5 ms of CPU, which at 1,000
   * mailboxes is ~0.8 % of a core every 60 s: hence 120 s.
   */
  keepaliveSeconds: seconds(1, 3600).default(120),
  /** …and reconnect when it gets no answer within this long (a server that hangs, or a proxy whose server went away). */
  keepaliveTimeoutSeconds: seconds(1, 600).default(15),
  /** For servers without IDLE: how often to look for new mail. */
  pollSeconds: seconds(1, 3600).default(60),
  /** After downtime, this many mails per mailbox are announced one by one; the rest as one digest. */
  backlogLimit: z.number().int().min(0).max(100_000).default(50),
  /** Longest wait between reconnect attempts. */
  reconnectMaxSeconds: seconds(1, 3600).default(60),
  /** Wait after a refused login (servers lock accounts that retry fast). */
  authRetryMinutes: seconds(1, 1440).default(5),
  /**
   * A mail that cannot be read (the server breaks the connection on it, answers NO, or leaves it
   * out) is tried this often, then set aside so the mail after it goes on; `mailbell unreadable`
   * lists it and can retry it.
   */
  maxReadAttempts: z.number().int().min(1).max(100).default(3),
  /** Targets told "1 mail could not be read" when a mail is set aside; none by default. */
  announceUnreadable: z.array(z.string().min(1)).default([]),
});

export const outboxSchema = z.strictObject({
  /** A notification that failed this many times goes to the dead letters. */
  maxAttempts: z.number().int().min(1).max(1000).default(12),
  retryBaseSeconds: seconds(0.01, 3600).default(2),
  retryMaxSeconds: seconds(0.01, 86_400).default(600),
  /** On SIGTERM/SIGINT, keep sending for up to this long before exiting. */
  drainSeconds: seconds(0, 3600).default(10),
  /** Delivered notifications are kept this long (for `mailbell outbox` and duplicate checks). */
  keepDays: seconds(1, 3650).default(30),
});

export const statusSchema = z.strictObject({
  /** host:port or port for GET /healthz and /metrics; loopback unless you say otherwise. */
  listen: z.union([z.string().min(1), z.number().int().min(0).max(65535)]),
  /** /healthz fails when a mailbox's last server round trip is older than this. */
  staleSeconds: seconds(1, 86_400).optional(),
  /** …or when it has been reconnecting for longer than this. */
  reconnectBudgetSeconds: seconds(1, 86_400).default(300),
});

export const configSchema = z.strictObject({
  /** SQLite file that holds checkpoints and totals, relative to the config file. */
  state: z.string().min(1).default("./mailbell.db"),
  locale: z.string().min(2).default("en-US"),
  log: z
    .strictObject({
      level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
    })
    .default({ level: "info" }),
  watch: watchSchema.default(watchSchema.parse({})),
  outbox: outboxSchema.default(outboxSchema.parse({})),
  status: statusSchema.optional(),
  accounts: z.array(accountSchema).default([]),
  targets: z.array(targetSchema).default([]),
  rules: z.array(ruleSchema).default([]),
});

export type Config = z.infer<typeof configSchema>;
export type AccountConfig = z.infer<typeof accountSchema>;
export type RuleConfig = z.infer<typeof ruleSchema>;
export type MatchConfig = z.infer<typeof matchSchema>;
export type ExtractConfig = z.infer<typeof extractSchema>;
export type TotalConfig = z.infer<typeof totalSchema>;
export type Period = (typeof periods)[number];
export type WatchConfig = z.infer<typeof watchSchema>;
export type OutboxConfig = z.infer<typeof outboxSchema>;
export type StatusConfig = z.infer<typeof statusSchema>;
export type OAuth2Config = z.infer<typeof oauth2Schema>;
