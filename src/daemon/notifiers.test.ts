import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { accountSchema, watchSchema } from "../imap/config.ts";
import { silentLogger } from "../log.ts";
import type { NotifierOptions } from "../imap/notify.ts";
import { Notifiers } from "./notifiers.ts";

const folders = (n: number) => Array.from({ length: n }, (_, i) => (i === 0 ? "INBOX" : `F${i}`));
const account = (n: number) => accountSchema.parse({ name: "a", host: "mail.example.com", user: "u", pass: "p", mailboxes: folders(n) });
const imap = { host: "mail.example.com", user: "u", pass: "p" };

describe("Notifiers.join", () => {
  it("keeps the notifier running when the folder that started it is restarted by a reload; it stops with its last folder or the run", () => {
    const runs: NotifierOptions[] = [];
    const run = new AbortController();
    const notifiers = new Notifiers(silentLogger, run.signal, async (o) => void runs.push(o));
    const watch = watchSchema.parse({});
    const a = notifiers.join(imap, account(11), "INBOX", watch);
    const b = notifiers.join(imap, account(11), "F1", watch);
    // A reload restarts INBOX: its watcher stops (its signal aborts) and it joins again.
    a.leave();
    const again = notifiers.join(imap, account(11), "INBOX", watch);
    assert.equal(runs.length, 1, "one notifier for the account");
    assert.equal(runs[0]!.signal.aborted, false, "the notifier still runs for F1 and the restarted INBOX");
    assert.equal(again.wakeups, b.wakeups);
    assert.deepEqual(again.wakeups?.mailboxes, ["F1", "INBOX"]);
    b.leave();
    again.leave();
    assert.equal(runs[0]!.signal.aborted, true, "stopped with its last folder");
    notifiers.join(imap, account(11), "INBOX", watch);
    run.abort();
    assert.equal(runs[1]!.signal.aborted, true, "and with the run");
  });

  it("waits the watchers' authRetryMinutes after a refused login, not reconnectMaxSeconds", () => {
    const runs: NotifierOptions[] = [];
    new Notifiers(silentLogger, AbortSignal.abort(), async (o) => void runs.push(o)).join(imap, account(11), "INBOX", watchSchema.parse({ authRetryMinutes: 7 }));
    assert.equal(runs[0]!.authFailureMs, 7 * 60_000);
  });

  it("by default, a folder of an account whose folders fit its connections watches on its own connection", () => {
    const joined = new Notifiers(silentLogger, AbortSignal.abort()).join(imap, account(10), "INBOX", watchSchema.parse({}));
    assert.equal(joined.wakeups, undefined);
  });

  it("by default, the folders of an account with more folders than connections share one notifier and its limit − 1 reading connections", () => {
    const notifiers = new Notifiers(silentLogger, AbortSignal.abort()); // the run stopped: the notifier stops before it connects
    const a = notifiers.join(imap, account(11), "INBOX", watchSchema.parse({}));
    const b = notifiers.join(imap, account(11), "F1", watchSchema.parse({}));
    assert.ok(a.wakeups);
    assert.equal(a.wakeups, b.wakeups);
    assert.equal(a.wakeups.readingConnections, 9);
    assert.deepEqual(a.wakeups.mailboxes, ["INBOX", "F1"]);
    a.leave();
    b.leave();
  });

  it("notify: on for two folders; off never", () => {
    const on = new Notifiers(silentLogger, AbortSignal.abort()).join(imap, account(2), "INBOX", watchSchema.parse({ notify: "on" }));
    assert.ok(on.wakeups);
    on.leave();
    const off = new Notifiers(silentLogger, AbortSignal.abort()).join(imap, account(20), "INBOX", watchSchema.parse({ notify: "off" }));
    assert.equal(off.wakeups, undefined);
  });
});
