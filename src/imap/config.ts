import { z } from "zod";
import { oauth2Schema } from "../auth/config.ts";
import { identifier, seconds } from "../settings.ts";

/** The `accounts:` and `watch:` parts of the config, owned by imap/ (with auth/'s oauth2 block). */

export const tlsModes = ["implicit", "starttls", "none"] as const;

export const accountSchema = z.strictObject({
  name: identifier,
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
   * the watching one stays in IDLE. Default off: since the watching connection asks for news itself
   * while mail flows (imap/burst.ts), the reader no longer makes notifications quicker, and opening
   * it for a mail after a quiet spell made that mail ~50 ms later (BENCHMARKS.md, issue 18).
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
  /**
   * auto: where the server offers IMAP NOTIFY (RFC 5465; Dovecot does), an account with more
   * folders than connections (connectionLimit) watches them all over one connection, opening a
   * folder's own only while it has mail to read (at most its limit − 1 at once); an account whose
   * folders fit keeps one connection per folder, as a woken folder logs in before it reads
   * (~100 ms later per mail after a quiet spell). on: NOTIFY for every account with two or more
   * folders where offered (what auto meant before). off: always one connection per folder.
   */
  notify: z.enum(["auto", "on", "off"]).default("auto"),
  /**
   * What a quiet mailbox waits on. lean: once read to the end and quiet (at once, or after 60 s
   * without mail when mail was read), the imapflow connection is closed and a minimal IDLE-only one
   * of mailbell's own waits (~30 kB less per mailbox); a change opens a session to read.
   * imapflow: the reading connection stays in IDLE. Servers without IDLE, and NOTIFY, are not affected.
   */
  quietConnection: z.enum(["lean", "imapflow"]).default("lean"),
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
  /**
   * A rule's action (then:) the server refused is tried again after this long, doubling each time
   * up to actionRetryMaxSeconds; it is looked for at each keepalive (or poll) and after each mail.
   */
  actionRetrySeconds: seconds(0.1, 3600).default(60),
  actionRetryMaxSeconds: seconds(0.1, 86_400).default(3600),
  /** Targets told "1 mail could not be read" when a mail is set aside; none by default. */
  announceUnreadable: z.array(z.string().min(1)).default([]),
});

export type AccountConfig = z.infer<typeof accountSchema>;
export type WatchConfig = z.infer<typeof watchSchema>;

/** About how many IMAP connections Gmail allows one account at once. */
export const gmailConnectionLimit = 15;

export function isGmail(host: string): boolean {
  return /(^|\.)(gmail|googlemail)\.com$/i.test(host);
}

/** Microsoft 365's IMAP hosts. */
export function isMicrosoft365(host: string): boolean {
  return /(^|\.)outlook\.office(365)?\.com$/i.test(host);
}

/** Connections an account may open: maxConnections, about 15 on Gmail, else Dovecot's default of 10 per user and address. */
export function connectionLimit(account: Pick<AccountConfig, "maxConnections" | "host">): number {
  return account.maxConnections ?? (isGmail(account.host) ? gmailConnectionLimit : 10);
}

/**
 * Whether the account's folders are watched with NOTIFY where the server offers it (watch.notify):
 * never for one folder (one connection either way); with auto only when one connection per folder
 * would need more than the account may open, as NOTIFY makes each mail after a quiet spell later.
 */
export function notifyWanted(account: Pick<AccountConfig, "maxConnections" | "host" | "mailboxes">, notify: WatchConfig["notify"]): boolean {
  const folders = new Set(account.mailboxes).size;
  if (notify === "off" || folders < 2) return false;
  return notify === "on" || folders > connectionLimit(account);
}

/** Whether the account's mailboxes read new mail on a second connection: only when readerConnections asks for it. */
export function readerConnectionsFor(account: Pick<AccountConfig, "readerConnections">): boolean {
  return account.readerConnections ?? false;
}
