import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { NormalizedMail } from "../mail/types.ts";
import { MemoryCheckpoints } from "./checkpoints.ts";
import { toWatched, watchContext } from "./context.ts";
import type { FetchedMessage } from "./fetch.ts";
import type { WatchOptions } from "./types.ts";

const account = { host: "127.0.0.1", user: "u" };

function lines(): { log: Logger; said: string[] } {
  const said: string[] = [];
  const line = (level: string) => (obj: object, msg?: string) => void said.push(`${level}: ${msg} ${JSON.stringify(obj)}`);
  const log = { error: line("error"), warn: line("warn"), info: line("info"), debug: line("debug"), trace: line("trace"), child: () => log } as Logger;
  return { log, said };
}

describe("watchContext", () => {
  const cases: { name: string; options: Partial<WatchOptions>; expect: Record<string, unknown> }[] = [
    { name: "defaults", options: {}, expect: { account: "u@127.0.0.1", commitAuto: true, keepaliveMs: 120_000, keepaliveTimeoutMs: 15_000, pollMs: 60_000, maxAttempts: 3, maxTextBytes: 256 * 1024, maxHeaderBytes: 256 * 1024 } },
    {
      name: "as given",
      options: { account: { ...account, name: "shop" }, commit: "manual", checkpoints: new MemoryCheckpoints(), keepaliveMs: 5000, keepaliveTimeoutMs: 100, pollMs: 10, maxReadAttempts: 1, maxTextBytes: 10, maxHeaderBytes: 20 },
      expect: { account: "shop", commitAuto: false, keepaliveMs: 5000, keepaliveTimeoutMs: 100, pollMs: 10, maxAttempts: 1, maxTextBytes: 10, maxHeaderBytes: 20 },
    },
  ];
  it('refuses commit "manual" without a checkpoints store, naming the option and the fix', () => {
    assert.throws(() => watchContext({ account, mailbox: "INBOX", commit: "manual" }), (err: unknown) => err instanceof UsageError && /commit: "manual" needs a checkpoints store/.test(err.message) && /Pass checkpoints/.test(err.message));
  });
  const bad: { name: string; options: Partial<WatchOptions>; says: RegExp }[] = [
    { name: 'host ""', options: { account: { ...account, host: "" } }, says: /account\.host "" is not a server name .*connect to this machine.*e\.g\. host: "imap\.example\.com"/ },
    { name: "host of spaces", options: { account: { ...account, host: " " } }, says: /account\.host " "/ },
    { name: "port 0", options: { account: { ...account, port: 0 } }, says: /account\.port 0 is not a TCP port \(1 to 65535\)\. Leave it out/ },
    { name: "port 70000", options: { account: { ...account, port: 70_000 } }, says: /account\.port 70000/ },
    { name: "an unknown tls", options: { account: { ...account, tls: "ssl" as "none" } }, says: /account\.tls "ssl" is not one of "implicit", "starttls", "none"/ },
    { name: "empty user", options: { account: { ...account, user: "" } }, says: /account\.user "" is empty\. Pass the login name/ },
    { name: "empty mailbox", options: { mailbox: "" }, says: /mailbox "" is empty\. Pass the mailbox to watch/ },
    { name: "an unknown failFast", options: { failFast: "yes" as "always" }, says: /failFast "yes" is not one of "never", "first-login", "first-connect", "always"/ },
  ];
  for (const c of bad) {
    it(`refuses ${c.name} at the start, naming the option and the fix`, () => {
      assert.throws(() => watchContext({ account, mailbox: "INBOX", ...c.options }), (err: unknown) => err instanceof UsageError && /^watchMailbox: /.test(err.message) && c.says.test(err.message));
    });
  }
  for (const c of cases) {
    it(c.name, () => {
      const w = watchContext({ account, mailbox: "INBOX", ...c.options });
      const got = { account: w.account, commitAuto: w.commitAuto, keepaliveMs: w.keepaliveMs, keepaliveTimeoutMs: w.keepaliveTimeoutMs, pollMs: w.pollMs, maxAttempts: w.failures.maxAttempts, maxTextBytes: w.fetchOptions.maxTextBytes, maxHeaderBytes: w.fetchOptions.maxHeaderBytes };
      assert.deepEqual(got, c.expect);
    });
  }

  it("an onEvent observer that throws is logged, never passed on as connection trouble", () => {
    const { log, said } = lines();
    const w = watchContext({
      account,
      mailbox: "INBOX",
      logger: log,
      onEvent: () => {
        throw new Error("metric broke");
      },
    });
    assert.doesNotThrow(() => w.emit({ type: "idle" }));
    assert.match(said.join("\n"), /^error: an onEvent observer failed; the watcher goes on .*metric broke.*"event":"idle"/);
  });

  it("takes console as its logger: account and mailbox ride in each line's object", () => {
    const said: unknown[][] = [];
    const consoleLike = { ...console, warn: (...args: unknown[]) => void said.push(args) };
    const w = watchContext({ account, mailbox: "INBOX", logger: consoleLike });
    w.log.warn({ uid: 4 }, "slow");
    w.log.trace({ line: "A1 NOOP" });
    assert.deepEqual(said, [[{ account: "u@127.0.0.1", mailbox: "INBOX", uid: 4 }, "slow"]]);
    assert.doesNotThrow(() => watchContext({ account, mailbox: "INBOX", logger: console }));
  });

  it("a needsBody that throws is a bug, asked with the account, the mailbox and the arrival time", () => {
    const asked: unknown[] = [];
    const w = watchContext({ account, mailbox: "INBOX", needsBody: (_mail, where) => (asked.push(where), true) });
    assert.equal(w.fetchOptions.needsBody!({} as NormalizedMail, { uid: 1, internalDate: new Date(5) }), true);
    assert.deepEqual(asked, [{ account: "u@127.0.0.1", mailbox: "INBOX", receivedAt: new Date(5) }]);
    const broken = watchContext({
      account,
      mailbox: "INBOX",
      needsBody: () => {
        throw new Error("rule bug");
      },
    });
    assert.throws(() => broken.fetchOptions.needsBody!({} as NormalizedMail, { uid: 1, internalDate: new Date(5) }), /mailbell bug: asking the rules whether to read the body failed: rule bug/);
  });
});

describe("toWatched", () => {
  const fetched = { uid: 9, internalDate: new Date(1), size: 5, bodyRead: true, mail: { warnings: ["header cut"] } } as unknown as FetchedMessage;
  it("hands over the mail with its checkpoint, a catch-up only when there is one, and logs its warnings", () => {
    const { log, said } = lines();
    const w = watchContext({ account, mailbox: "INBOX", logger: log });
    const plain = toWatched(w, 7, fetched, { uidValidity: 7, lastUid: 9 }, undefined);
    assert.deepEqual({ ...plain, mail: undefined }, { account: "u@127.0.0.1", mailbox: "INBOX", uidValidity: 7, uid: 9, receivedAt: new Date(1), size: 5, bodyRead: true, checkpoint: { uidValidity: 7, lastUid: 9 }, mail: undefined });
    assert.equal("catchUp" in plain, false);
    assert.deepEqual(toWatched(w, 7, fetched, { uidValidity: 7, lastUid: 9 }, { id: "7.3", index: 0, count: 2 }).catchUp, { id: "7.3", index: 0, count: 2 });
    assert.match(said[0]!, /^warn: message read with warnings .*header cut/);
  });
});
