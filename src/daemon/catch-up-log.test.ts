import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CaptureLogger } from "../../test/support/logger.ts";
import type { WatchedMail } from "../imap/watcher.ts";
import { CatchUpTally } from "./catch-up-log.ts";

const mail = (index: number | undefined, count = 3): WatchedMail =>
  ({ account: "a", mailbox: "INBOX", uid: 10 + (index ?? 0), ...(index === undefined ? {} : { catchUp: { id: "7.9", index, count } }) }) as WatchedMail;

describe("CatchUpTally", () => {
  it("says once, after a catch-up's last mail, how many were read, matched and queued", () => {
    const logger = new CaptureLogger();
    const tally = new CatchUpTally();
    tally.add(mail(0), { matched: true, queued: 2 }, logger);
    tally.add(mail(1), { matched: false, queued: 0 }, logger);
    assert.equal(logger.entries.length, 0, "nothing before the last");
    tally.add(mail(2), { matched: true, queued: 1 }, logger);
    assert.equal(logger.entries.length, 1);
    const [line] = logger.entries;
    assert.equal(line!.level, "info");
    assert.equal(line!.msg, "caught up in INBOX: 3 mails read, 2 matched a rule, 3 notifications queued");
    assert.deepEqual(line!.fields, { account: "a", mailbox: "INBOX", read: 3, matched: 2, queued: 3, of: 3 });
  });

  it("ignores mail that is not part of a catch-up", () => {
    const logger = new CaptureLogger();
    new CatchUpTally().add(mail(undefined), { matched: true, queued: 1 }, logger);
    assert.equal(logger.entries.length, 0);
  });
});
