/**
 * Typed errors. Every error a user can cause or fix carries a stable `code` and a message that
 * names the input, what is valid, and the fix. Only src/cli/main.ts turns them into exit codes.
 */
export type ErrorCode =
  | "CONFIG" // the config file is missing, unreadable or invalid
  | "USAGE" // the command line is wrong
  | "INPUT" // a file named on the command line is missing or unreadable
  | "IMAP_AUTH" // the server refused our credentials
  | "IMAP_CONNECT" // the server could not be reached or the TLS handshake failed
  | "IMAP_MAILBOX" // a configured mailbox does not exist or cannot be opened
  | "IMAP_SERVER" // the server answered something mailbell cannot use (a server bug)
  | "TARGET" // a target refused a delivery
  | "STATE" // the state database cannot be opened, read or written, or is from a newer mailbell
  | "INTERNAL"; // a bug in mailbell: a value that must not occur

export class MailbellError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A config problem, located by file and key path (`rules[0].extract.amount.regex`). */
export class ConfigError extends MailbellError {
  readonly file: string;
  readonly issues: readonly ConfigIssue[];
  constructor(file: string, issues: readonly ConfigIssue[]) {
    super("CONFIG", formatConfigIssues(file, issues));
    this.file = file;
    this.issues = issues;
  }
}

export interface ConfigIssue {
  /** Key path such as `accounts[0].pass`; empty for the whole file. */
  path: string;
  /** 1-based line in the file, when known. */
  line?: number;
  /** The file the line is in, when not the config file itself (the .env beside it). */
  file?: string;
  /** What is wrong, what is valid and how to fix it. */
  message: string;
}

/** "mailbell.yaml:12: rules[0].match.from: …": one issue (or warning) of the config, located. */
export function formatConfigIssue(file: string, issue: ConfigIssue): string {
  const where = `${issue.file ?? file}${issue.line ? `:${issue.line}` : ""}`;
  return issue.path ? `${where}: ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`;
}

function formatConfigIssues(file: string, issues: readonly ConfigIssue[]): string {
  const lines = issues.map((issue) => formatConfigIssue(file, issue));
  return lines.length === 1 ? lines[0]! : `${issues.length} problems in the config:\n${lines.map((l) => `  - ${l}`).join("\n")}`;
}

export class UsageError extends MailbellError {
  constructor(message: string) {
    super("USAGE", message);
  }
}

export class ImapError extends MailbellError {
  readonly account: string;
  readonly mailbox: string | undefined;
  constructor(code: "IMAP_AUTH" | "IMAP_CONNECT" | "IMAP_MAILBOX" | "IMAP_SERVER", account: string, mailbox: string | undefined, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.account = account;
    this.mailbox = mailbox;
  }
}

/**
 * The server's answer breaks the protocol in a way that retrying on the same connection will not
 * mend (a missing UIDVALIDITY, a reply for a UID that was not asked for). Reconnecting may; it is
 * reported at error level, as the server's operator has something to fix.
 */
export class ServerReplyError extends ImapError {
  constructor(account: string, mailbox: string | undefined, message: string, options?: { cause?: unknown }) {
    super("IMAP_SERVER", account, mailbox, message, options);
  }
}

/**
 * The TLS handshake cannot succeed as configured: the server's certificate failed the check, or
 * starttls was asked for and the server does not offer it. Trying again on a new connection meets
 * the same certificate; someone has to change the config (ca, tls) or the server.
 */
export class TlsError extends ImapError {
  constructor(account: string, mailbox: string | undefined, message: string, options?: { cause?: unknown }) {
    super("IMAP_CONNECT", account, mailbox, message, options);
  }
}

/**
 * The state database failed to read or write (a full disk, a locked or corrupt file), or a
 * checkpoint store the caller passed failed: then `store` names it and `cause` is its error.
 */
export class StateError extends MailbellError {
  /** The caller's checkpoint store that failed (its class name), when it was one. */
  readonly store: string | undefined;
  constructor(message: string, options?: { cause?: unknown; store?: string }) {
    super("STATE", message, options);
    this.store = options?.store;
  }
}

/** A value that must not occur did: a bug in mailbell, never retried as if the network had failed. */
export class InternalError extends MailbellError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("INTERNAL", `mailbell bug: ${message}. Please report it with the log lines around it.`, options);
  }
}

/** A target answered with an error, or could not be reached. */
export class TargetError extends MailbellError {
  readonly target: string;
  /** HTTP status, when there was a reply. */
  readonly status: number | undefined;
  /** Whether sending again later may succeed (5xx, 429, timeouts, connection errors). */
  readonly retryable: boolean;
  /** Seconds the service asked us to wait (Retry-After), when it said. */
  readonly retryAfterSeconds: number | undefined;
  constructor(target: string, message: string, details: { status?: number; retryable: boolean; retryAfterSeconds?: number; cause?: unknown }) {
    super("TARGET", message, { cause: details.cause });
    this.target = target;
    this.status = details.status;
    this.retryable = details.retryable;
    this.retryAfterSeconds = details.retryAfterSeconds;
  }
}
