import { createSecureContext, type SecureContext } from "node:tls";
import { ImapFlow, type ImapFlowOptions } from "imapflow";
import { ImapError, ServerReplyError, TlsError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { sleep } from "./backoff.ts";
import { describeCertificateError, describeTransportError, greetingTimeoutFor, type Endpoint } from "./transport-errors.ts";

/** How to reach and log in to one IMAP account. */
export interface ImapAccount {
  /** Used in logs and as the checkpoint key; defaults to `user@host`. */
  name?: string;
  host: string;
  /** Defaults to 993 for implicit TLS and 143 otherwise. */
  port?: number;
  /** implicit (default): TLS from the first byte. starttls: upgrade, and refuse to go on without it. none: plaintext. */
  tls?: "implicit" | "starttls" | "none";
  /** PEM CA certificate(s) to trust instead of the system store. */
  ca?: string | Buffer;
  /** Verify the server certificate (default true). */
  tlsVerify?: boolean;
  user: string;
  /** The password, for a fixed one. */
  pass?: string;
  /**
   * Called before every login instead of using `pass`: for OAuth2 access tokens and passwords read
   * from a file or program. `refused` is true right after the server refused a login, so a cached
   * token is refreshed rather than offered again.
   */
  credentials?: (refused: boolean) => Promise<Credentials>;
}

export type Credentials = { pass: string } | { accessToken: string };

export function accountName(account: ImapAccount): string {
  return account.name ?? `${account.user}@${account.host}`;
}

export function defaultPort(tls: ImapAccount["tls"]): number {
  return (tls ?? "implicit") === "implicit" ? 993 : 143;
}

export interface ClientOptions {
  logger: Logger;
  /** Restart IDLE at least this often; servers drop long IDLEs (RFC 2177 allows 29 min, Gmail less). */
  idleRestartMs?: number;
  /** Inactivity after which the connection is dropped (imapflow's default is 5 minutes). */
  socketTimeoutMs?: number;
  /** What one server reply may make us hold; by default sized for 256 KiB headers and text parts. */
  limits?: ReplyLimits;
}

/** Caps on one server reply, in bytes; a reply over one fails the connection (imapflow's limits). */
export interface ReplyLimits {
  maxLiteralBytes: number;
  maxLineBytes: number;
  maxResponseBytes: number;
}

/** Longest reply line without a literal: a UID SEARCH answer for about four million mails. */
const maxLineBytes = 32 * 1024 * 1024;
/** Text parts one message may have fetched (mail/parts.ts DEFAULT_MAX_TEXT_PARTS). */
const maxTextPartsPerMail = 50;

/**
 * Everything mailbell asks for comes back capped (the header to maxHeaderBytes, each text part to
 * maxTextBytes), so any literal or reply bigger than that is the server's doing (a 2 GB literal
 * declared for a broken message) and must not be held: imapflow's defaults would take 1 GB per
 * literal and 2 GB per reply.
 */
export function replyLimits(maxHeaderBytes: number, maxTextBytes: number): ReplyLimits {
  const slack = 64 * 1024;
  return {
    maxLiteralBytes: Math.max(maxHeaderBytes, maxTextBytes) + slack,
    maxLineBytes,
    maxResponseBytes: maxLineBytes + maxHeaderBytes + maxTextPartsPerMail * (maxTextBytes + slack),
  };
}

export function createImapClient(account: ImapAccount, options: ClientOptions, credentials: Credentials = { pass: account.pass ?? "" }): ImapFlow {
  const refusal: { last: CommandRefusal | undefined } = { last: undefined };
  const tls = account.tls ?? "implicit";
  const greetingTimeout = greetingTimeoutFor(endpointOf(account));
  const imapOptions: ImapFlowOptions = {
    host: account.host,
    port: account.port ?? defaultPort(tls),
    secure: tls === "implicit",
    // starttls must never fall back to plaintext when the offer is missing (or stripped).
    doSTARTTLS: tls === "starttls" ? true : tls === "none" ? false : undefined,
    tls: {
      secureContext: sharedContext(account.ca || undefined),
      rejectUnauthorized: account.tlsVerify ?? true,
      servername: isIpAddress(account.host) ? undefined : account.host,
    },
    // A watcher reads a few kilobytes per mail; DEFLATE state costs ~250 KB per idle connection and
    // CPU on every keepalive, which matters at hundreds of mailboxes.
    disableCompression: true,
    auth: "accessToken" in credentials ? { user: account.user, accessToken: credentials.accessToken } : { user: account.user, pass: credentials.pass },
    clientInfo: { name: "mailbell" },
    // We drive IDLE ourselves: imapflow's auto-IDLE waits 15 s before starting, which would delay
    // every push that arrives in that window.
    disableAutoIdle: true,
    // Parts must arrive with their transfer encoding intact, as mail/ reassembles them into MIME.
    disableBinary: true,
    maxIdleTime: options.idleRestartMs ?? 10 * 60_000,
    ...imapLimits(options.limits ?? replyLimits(256 * 1024, 256 * 1024)),
    ...(options.socketTimeoutMs ? { socketTimeout: options.socketTimeoutMs } : {}),
    // Port 993 asked for plain text sends nothing: say so in seconds, not after imapflow's 16.
    ...(greetingTimeout ? { greetingTimeout } : {}),
    logger: imapLogger(options.logger, refusal),
  };
  const client = new ImapFlow(imapOptions);
  refusals.set(client, refusal);
  return client;
}

/** The server's answer to a command it refused (NO or BAD), as imapflow reported it. */
export interface CommandRefusal {
  /** The text after NO/BAD. */
  text: string;
  /** The response code, e.g. TRYCREATE, NONEXISTENT, NOPERM, READ-ONLY. */
  code: string | undefined;
}

/**
 * imapflow answers `false` when the server refuses a STORE, MOVE or COPY, and reports the
 * server's words only to its logger; they are kept here, so an action that failed can say why.
 */
const refusals = new WeakMap<ImapFlow, { last: CommandRefusal | undefined }>();

/** The last command refusal on this connection since clearRefusal(), if any. */
export function lastRefusal(client: ImapFlow): CommandRefusal | undefined {
  return refusals.get(client)?.last;
}

export function clearRefusal(client: ImapFlow): void {
  const holder = refusals.get(client);
  if (holder) holder.last = undefined;
}

function imapLimits(limits: ReplyLimits): Pick<ImapFlowOptions, "maxLiteralSize" | "maxLineLength" | "maxResponseSize"> {
  return { maxLiteralSize: limits.maxLiteralBytes, maxLineLength: limits.maxLineBytes, maxResponseSize: limits.maxResponseBytes };
}

const contexts = new Map<string, SecureContext>();

/**
 * One TLS context per CA, the system's trust store being one: without a context of its own
 * tls.connect builds one per connection (an SSL_CTX and its settings, tens of kilobytes each for
 * the life of the connection), while every mailbox of an account, and every account that trusts
 * the same CA, can share one. Only the trust store goes into it; the certificate check
 * (rejectUnauthorized, servername) is set per connection.
 */
export function sharedContext(ca: string | Buffer | undefined): SecureContext {
  const key = ca === undefined ? "" : `ca:${ca.toString()}`;
  let context = contexts.get(key);
  if (!context) {
    context = createSecureContext(ca === undefined ? {} : { ca });
    contexts.set(key, context);
  }
  return context;
}

function isIpAddress(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(":");
}

/** imapflow logs every protocol step at info; that is debug detail for a daemon. */
function imapLogger(logger: Logger, refusal: { last: CommandRefusal | undefined }): ImapFlowOptions["logger"] {
  const quiet = (obj: object) => logger.trace(strip(obj));
  // Ours for each of imapflow's levels. imapflow asks before it serialises a command or a server
  // reply for its log; without an answer it serialises every reply, FETCH replies with their mail
  // bodies included, only for the line to be dropped.
  const ours: Record<string, string | undefined> = { trace: undefined, debug: "trace", info: "trace", warn: "debug", error: "debug", fatal: "warn" };
  return {
    isLevelEnabled: (level: string) => {
      const mapped = ours[level];
      return mapped !== undefined && (logger.isLevelEnabled?.(mapped) ?? true);
    },
    trace: () => {},
    debug: quiet,
    info: quiet,
    warn: (obj: object) => {
      keepRefusal(obj, refusal);
      logger.debug(strip(obj));
    },
    error: (obj: object) => logger.debug(strip(obj)),
    fatal: (obj: object) => logger.warn(strip(obj)),
  } as unknown as ImapFlowOptions["logger"];
}

function keepRefusal(obj: object, refusal: { last: CommandRefusal | undefined }): void {
  const err = (obj as { err?: { responseStatus?: string; responseText?: string; serverResponseCode?: string; message?: string } }).err;
  if (!err || (err.responseStatus !== "NO" && err.responseStatus !== "BAD")) return;
  refusal.last = { text: err.responseText || err.message || `${err.responseStatus}`, code: err.serverResponseCode };
}

function strip(obj: object): object {
  const { msg, err, cid } = obj as { msg?: string; err?: Error; cid?: string };
  return { imap: msg, cid, ...(err ? { error: err.message } : {}) };
}

/** Where the account connects, as configured (the port defaulted by tls:). */
export function endpointOf(account: Pick<ImapAccount, "host" | "port" | "tls">): Endpoint {
  const tls = account.tls ?? "implicit";
  return { host: account.host, port: account.port ?? defaultPort(tls), tls };
}

/**
 * Turns imapflow's error into one that says what happened and what to do. With the endpoint, a
 * socket or TLS failure names host:port and the setting that fixes it (transport-errors.ts).
 */
export function classifyImapError(err: unknown, account: string, mailbox?: string, endpoint?: Endpoint): ImapError {
  if (err instanceof ImapError) return err;
  const e = err as { message?: string; code?: string; authenticationFailed?: boolean; responseText?: string; serverResponseCode?: string };
  const detail = e.responseText || e.message || String(err);
  if (e.authenticationFailed && turnedAwayForNow(e.serverResponseCode, detail)) {
    // Not the credentials: an auth backend down at boot, too many connections. Retried as a connection failure, never given up on.
    return new ImapError("IMAP_CONNECT", account, mailbox, `account "${account}": the server turned the login away for now, not for the password (${e.serverResponseCode && !detail.includes(`[${e.serverResponseCode}]`) ? `[${e.serverResponseCode}] ` : ""}${detail}); try again later`, { cause: err });
  }
  if (e.authenticationFailed) {
    return new ImapError("IMAP_AUTH", account, mailbox, `account "${account}": the server refused the login (${detail}). Check user and pass (Gmail and others need an app password).`, { cause: err });
  }
  if (e.code === "ServerAnswer") return new ServerReplyError(account, mailbox, `account "${account}"${mailbox ? ` mailbox "${mailbox}"` : ""}: ${e.message}`, { cause: err });
  const code = e.code ?? "";
  const transport = endpoint ? describeTransportError(e, endpoint) : undefined;
  if (transport) {
    const message = `account "${account}": ${transport.message}`;
    return transport.settled ? new TlsError(account, mailbox, message, { cause: err }) : new ImapError("IMAP_CONNECT", account, mailbox, message, { cause: err });
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME|altnames/i.test(`${code} ${e.message ?? ""}`)) {
    const specific = endpoint ? describeCertificateError(code, endpoint) : undefined;
    return new TlsError(
      account,
      mailbox,
      `account "${account}": TLS certificate check failed (${code || detail}). ${specific ? `${specific[0]!.toUpperCase()}${specific.slice(1)}.` : "For a private server set ca: to its CA file; tlsVerify: false turns the check off (not recommended)."}`,
      { cause: err },
    );
  }
  if (/STARTTLS/i.test(detail)) {
    return new TlsError(account, mailbox, `account "${account}": ${detail}. The server does not offer STARTTLS; use tls: implicit on its TLS port, or tls: none if plaintext is truly intended.`, { cause: err });
  }
  if (mailbox && (e.serverResponseCode === "NONEXISTENT" || /doesn't exist|does not exist|not found|unknown mailbox/i.test(detail))) {
    return new ImapError("IMAP_MAILBOX", account, mailbox, `account "${account}": mailbox "${mailbox}" does not exist (${detail}). Check the name in mailboxes: (Gmail labels look like "[Gmail]/All Mail").`, { cause: err });
  }
  return new ImapError("IMAP_CONNECT", account, mailbox, `account "${account}": ${code ? `${code}: ` : ""}${detail}`, { cause: err });
}

/** Response codes with which a server refuses a login for reasons of its own, not the credentials' (RFC 5530). */
const notTheCredentials = /^(UNAVAILABLE|INUSE|LIMIT|THROTTLED)$/i;

function turnedAwayForNow(code: string | undefined, text: string): boolean {
  return notTheCredentials.test(code ?? "") || /\[(UNAVAILABLE|INUSE|LIMIT|THROTTLED)\]/i.test(text);
}

/** LOGOUT when graceful and the connection is usable (within 2 s), then close; never throws. */
export async function closeQuietly(client: ImapFlow, graceful: boolean): Promise<void> {
  try {
    if (graceful && client.usable) {
      const done = new AbortController();
      await Promise.race([client.logout(), sleep(2000, done.signal)]);
      done.abort();
    }
  } catch {
    // already gone
  }
  try {
    client.close();
  } catch {
    // already closed
  }
}
