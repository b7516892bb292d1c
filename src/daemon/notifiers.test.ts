import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { accountSchema, watchSchema } from "../imap/config.ts";
import { silentLogger } from "../log.ts";
import { Notifiers } from "./notifiers.ts";

const folders = (n: number) => Array.from({ length: n }, (_, i) => (i === 0 ? "INBOX" : `F${i}`));
const account = (n: number) => accountSchema.parse({ name: "a", host: "mail.example.com", user: "u", pass: "p", mailboxes: folders(n) });
const imap = { host: "mail.example.com", user: "u", pass: "p" };

describe("Notifiers.join", () => {
  it("by default, a folder of an account whose folders fit its connections watches on its own connection", () => {
    const joined = new Notifiers(silentLogger).join(imap, account(10), "INBOX", watchSchema.parse({}), AbortSignal.abort());
    assert.equal(joined.wakeups, undefined);
  });

  it("by default, the folders of an account with more folders than connections share one notifier and its limit − 1 reading connections", () => {
    const notifiers = new Notifiers(silentLogger);
    // An aborted signal: the notifier stops before it connects.
    const a = notifiers.join(imap, account(11), "INBOX", watchSchema.parse({}), AbortSignal.abort());
    const b = notifiers.join(imap, account(11), "F1", watchSchema.parse({}), AbortSignal.abort());
    assert.ok(a.wakeups);
    assert.equal(a.wakeups, b.wakeups);
    assert.equal(a.wakeups.readingConnections, 9);
    assert.deepEqual(a.wakeups.mailboxes, ["INBOX", "F1"]);
    a.leave();
    b.leave();
  });

  it("notify: on for two folders; off never", () => {
    const on = new Notifiers(silentLogger).join(imap, account(2), "INBOX", watchSchema.parse({ notify: "on" }), AbortSignal.abort());
    assert.ok(on.wakeups);
    on.leave();
    const off = new Notifiers(silentLogger).join(imap, account(20), "INBOX", watchSchema.parse({ notify: "off" }), AbortSignal.abort());
    assert.equal(off.wakeups, undefined);
  });
});
