/**
 * What to do after a watching session ended: how long to wait, what to say, and whether a refused
 * login earns one prompt retry. Pure: the backoff's state goes in and comes out as plain data.
 */

import { TlsError, type ImapError } from "../errors.ts";
import { backoffDelay } from "./backoff.ts";

/**
 * When a watcher stops retrying and throws a failure that retrying cannot fix (see retryCannotFix):
 * never (default), while the mailbox has not been opened once yet, or always. "first-login" throws
 * only a refused login, and only before the mailbox was opened once (the daemon's way on a first
 * start: a wrong password does not mend itself, and retrying it risks a lockout).
 */
export type FailFast = "never" | "first-login" | "first-connect" | "always";

export const failFastModes: readonly FailFast[] = ["never", "first-login", "first-connect", "always"];

/**
 * The failures the daemon reports at error because a person has to act, and whose next try meets
 * the same answer: a refused login (IMAP_AUTH), a mailbox that cannot be opened (IMAP_MAILBOX), a
 * certificate that fails the check or a missing STARTTLS (TlsError, code IMAP_CONNECT). Not: a
 * connection that could not be made or was lost (IMAP_CONNECT otherwise; the server may be
 * restarting), nor an unusable answer (IMAP_SERVER; a new connection may get a good one).
 */
export function retryCannotFix(failure: ImapError | undefined): boolean {
  return failure !== undefined && (failure.code === "IMAP_AUTH" || failure.code === "IMAP_MAILBOX" || failure instanceof TlsError);
}

/**
 * Whether the watcher throws this session's failure instead of retrying. A refused login that
 * earns a prompt retry with fresh credentials gets it first: a fresh token may well be accepted.
 */
export function givesUp(failure: ImapError | undefined, failFast: FailFast, state: { openedBefore: boolean; promptRetry: boolean }): boolean {
  if (failFast === "never" || state.promptRetry || !retryCannotFix(failure)) return false;
  if (failFast === "first-login") return failure?.code === "IMAP_AUTH" && !state.openedBefore;
  return failFast === "always" || !state.openedBefore;
}

export interface ReconnectLimits {
  /** Reconnect delays: exponential with jitter from baseMs up to capMs. */
  baseMs: number;
  capMs: number;
  /** The least wait after a refused login, so the server does not lock the account. */
  authFailureMs: number;
  /** How long a session must have watched before delays start again from the shortest. */
  healthyAfterMs: number;
}

export interface SessionEnd {
  /** Why the session ended (undefined: the connection closed without an error). */
  failure: { code: string; message: string } | undefined;
  /** The session before this one ended with a refused login. */
  refusedLast: boolean;
  /** The account's credentials come from a function that may hand out a fresh value. */
  canRefreshCredentials: boolean;
  /** This session logged in and opened the mailbox. */
  opened: boolean;
  /** Some session of this watcher did, this one or an earlier one. */
  openedBefore: boolean;
  /** How long the session watched (in IDLE or polling); undefined when it never got that far. */
  watchedForMs: number | undefined;
  /** Reconnects since the last healthy session. */
  attempt: number;
  /** A draw in [0, 1) for the jitter. */
  random: number;
}

export interface ReconnectPlan {
  retryInMs: number;
  /** A refused login tried once more at once with fresh credentials. */
  promptRetry: boolean;
  /** This session's login was refused: the next session's refusedLast. */
  refused: boolean;
  /** The backoff's attempt count for the next session's end. */
  attempt: number;
  log: { level: "warn" | "error"; err: string; message: string };
}

export function reconnectPlan(end: SessionEnd, limits: ReconnectLimits): ReconnectPlan {
  // A session that watched a while earns a fresh start; one dropped right after SELECT or at IDLE
  // does not, or a server that kicks us at once would see reconnects every second forever.
  const attempt = end.watchedForMs !== undefined && end.watchedForMs >= limits.healthyAfterMs ? 0 : end.attempt;
  const backoffMs = backoffDelay(attempt, limits, end.random);
  const failure = end.failure;
  const refused = failure?.code === "IMAP_AUTH";
  // A credential that can change (an OAuth2 token revoked early, a rotated password file) gets
  // one prompt retry with a fresh value before the long wait.
  const promptRetry = refused && end.canRefreshCredentials && !end.refusedLast;
  const retryInMs = refused && !promptRetry ? Math.max(limits.authFailureMs, backoffMs) : backoffMs;
  return { retryInMs, promptRetry, refused, attempt: attempt + 1, log: logLine(failure, refused, promptRetry, end, retryInMs) };
}

function logLine(failure: SessionEnd["failure"], refused: boolean, promptRetry: boolean, end: SessionEnd, retryInMs: number): ReconnectPlan["log"] {
  const err = failure?.message ?? "connection closed";
  if (promptRetry) return { level: "warn", err, message: "login refused; trying once more with fresh credentials" };
  if (refused) return { level: "error", err, message: "login refused; waiting before trying again so the server does not lock the account" };
  if (failure?.code === "IMAP_MAILBOX") return { level: "error", err, message: "cannot open the mailbox; will try again" };
  if (failure?.code === "IMAP_SERVER") return { level: "error", err, message: "the server's answer cannot be used; will try again on a new connection" };
  // A session that never connected was not disconnected: say that it cannot connect, each time, and
  // at error while the mailbox has never been opened (a first start with a wrong host or port).
  if (!end.opened && failure?.code === "IMAP_CONNECT") {
    return { level: end.openedBefore ? "warn" : "error", err, message: `cannot connect${end.openedBefore ? "" : "; never connected yet"}; retrying in ${inWords(retryInMs)}` };
  }
  return { level: "warn", err, message: `disconnected; reconnecting in ${inWords(retryInMs)}` };
}

/** "0.4 s", "10 s", "5 min". */
export function inWords(ms: number): string {
  if (ms < 10_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  return `${Math.round(ms / 60_000)} min`;
}
