import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ImapError, ServerReplyError, TlsError } from "../errors.ts";
import { givesUp, reconnectPlan, retryCannotFix, type FailFast, type ReconnectPlan, type SessionEnd } from "./reconnect-policy.ts";

const limits = { baseMs: 1000, capMs: 60_000, authFailureMs: 300_000, healthyAfterMs: 60_000 };
const auth = { code: "IMAP_AUTH", message: "AUTHENTICATIONFAILED" };
const base: SessionEnd = { failure: undefined, refusedLast: false, canRefreshCredentials: false, opened: true, openedBefore: true, watchedForMs: undefined, attempt: 0, random: 1 };

describe("reconnectPlan", () => {
  const cases: { name: string; end: Partial<SessionEnd>; plan: Partial<ReconnectPlan> & { level?: string; message?: RegExp; err?: string } }[] = [
    { name: "a closed connection: warn, the shortest delay", end: {}, plan: { retryInMs: 1000, attempt: 1, promptRetry: false, refused: false, level: "warn", err: "connection closed", message: /^disconnected; reconnecting in 1 s$/ } },
    { name: "delays double per attempt", end: { attempt: 3 }, plan: { retryInMs: 8000, attempt: 4 } },
    { name: "up to the cap", end: { attempt: 12 }, plan: { retryInMs: 60_000, attempt: 13 } },
    { name: "never below a tenth of the ceiling", end: { attempt: 2, random: 0 }, plan: { retryInMs: 400 } },
    { name: "a session that watched a minute starts again from the shortest", end: { attempt: 5, watchedForMs: 60_000 }, plan: { retryInMs: 1000, attempt: 1 } },
    { name: "one dropped sooner does not", end: { attempt: 5, watchedForMs: 59_999 }, plan: { retryInMs: 32_000, attempt: 6 } },
    { name: "one that never watched does not", end: { attempt: 5, watchedForMs: undefined }, plan: { retryInMs: 32_000 } },
    { name: "a refused login waits authFailureMs at least, at error", end: { failure: auth }, plan: { retryInMs: 300_000, promptRetry: false, refused: true, level: "error", err: "AUTHENTICATIONFAILED", message: /so the server does not lock the account/ } },
    { name: "refreshable credentials get one prompt retry", end: { failure: auth, canRefreshCredentials: true }, plan: { retryInMs: 1000, promptRetry: true, refused: true, level: "warn", message: /trying once more with fresh credentials/ } },
    { name: "but not twice in a row", end: { failure: auth, canRefreshCredentials: true, refusedLast: true }, plan: { retryInMs: 300_000, promptRetry: false, level: "error" } },
    { name: "a mailbox that cannot be opened: error", end: { failure: { code: "IMAP_MAILBOX", message: "NONEXISTENT" } }, plan: { retryInMs: 1000, refused: false, level: "error", err: "NONEXISTENT", message: /cannot open the mailbox/ } },
    { name: "an unusable answer: error", end: { failure: { code: "IMAP_SERVER", message: "no UIDVALIDITY" } }, plan: { level: "error", message: /the server's answer cannot be used/ } },
    { name: "a connection failure: warn", end: { failure: { code: "IMAP_CONNECT", message: "ECONNRESET" } }, plan: { level: "warn", err: "ECONNRESET", message: /^disconnected; reconnecting in 1 s$/ } },
    {
      name: "a first connection that fails is not a disconnection: error, with the next try",
      end: { failure: { code: "IMAP_CONNECT", message: "nothing listens on h:143" }, opened: false, openedBefore: false, attempt: 3 },
      plan: { retryInMs: 8000, level: "error", err: "nothing listens on h:143", message: /^cannot connect; never connected yet; retrying in 8 s$/ },
    },
    {
      name: "a reconnect that cannot connect, after the mailbox was watched: warn, in words",
      end: { failure: { code: "IMAP_CONNECT", message: "nothing listens on h:143" }, opened: false, openedBefore: true, attempt: 6 },
      plan: { retryInMs: 60_000, level: "warn", message: /^cannot connect; retrying in 60 s$/ },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plan = reconnectPlan({ ...base, ...c.end }, limits);
      const { level, message, err, ...fields } = c.plan;
      for (const [key, value] of Object.entries(fields)) assert.deepEqual(plan[key as keyof ReconnectPlan], value, key);
      if (level) assert.equal(plan.log.level, level);
      if (err) assert.equal(plan.log.err, err);
      if (message) assert.match(plan.log.message, message);
    });
  }
});

describe("retryCannotFix: what the daemon reports at error because a person must act", () => {
  const cases: { name: string; failure: ImapError | undefined; cannotFix: boolean }[] = [
    { name: "a refused login", failure: new ImapError("IMAP_AUTH", "a", "INBOX", "refused"), cannotFix: true },
    { name: "a mailbox that does not exist", failure: new ImapError("IMAP_MAILBOX", "a", "Nope", "NONEXISTENT"), cannotFix: true },
    { name: "a certificate that fails the check", failure: new TlsError("a", "INBOX", "self-signed"), cannotFix: true },
    { name: "an unreachable or lost connection", failure: new ImapError("IMAP_CONNECT", "a", "INBOX", "ECONNREFUSED"), cannotFix: false },
    { name: "an unusable answer (a new connection may get a good one)", failure: new ServerReplyError("a", "INBOX", "no UIDVALIDITY"), cannotFix: false },
    { name: "a connection the server closed", failure: undefined, cannotFix: false },
  ];
  for (const c of cases) it(c.name, () => assert.equal(retryCannotFix(c.failure), c.cannotFix));
});

describe("givesUp", () => {
  const auth = new ImapError("IMAP_AUTH", "a", "INBOX", "refused");
  const lost = new ImapError("IMAP_CONNECT", "a", "INBOX", "ECONNRESET");
  const cases: { mode: FailFast; failure: ImapError; openedBefore: boolean; promptRetry?: boolean; gives: boolean }[] = [
    { mode: "never", failure: auth, openedBefore: false, gives: false },
    { mode: "first-connect", failure: auth, openedBefore: false, gives: true },
    { mode: "first-connect", failure: auth, openedBefore: true, gives: false },
    { mode: "first-login", failure: auth, openedBefore: false, gives: true },
    { mode: "first-login", failure: auth, openedBefore: true, gives: false },
    { mode: "first-login", failure: new ImapError("IMAP_MAILBOX", "a", "INBOX", "NONEXISTENT"), openedBefore: false, gives: false },
    { mode: "first-login", failure: new TlsError("a", "INBOX", "certificate"), openedBefore: false, gives: false },
    { mode: "first-login", failure: lost, openedBefore: false, gives: false },
    { mode: "always", failure: auth, openedBefore: true, gives: true },
    { mode: "always", failure: lost, openedBefore: false, gives: false },
    { mode: "always", failure: auth, openedBefore: false, promptRetry: true, gives: false },
  ];
  for (const c of cases) {
    it(`${c.mode}, ${c.failure.code}, ${c.openedBefore ? "opened before" : "never opened"}${c.promptRetry ? ", prompt retry due" : ""}: ${c.gives ? "throws" : "retries"}`, () => {
      assert.equal(givesUp(c.failure, c.mode, { openedBefore: c.openedBefore, promptRetry: c.promptRetry ?? false }), c.gives);
    });
  }
});
