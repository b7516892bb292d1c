/**
 * The library watcher against a real Dovecot: first start, catch-up from a checkpoint, reconnect,
 * UIDVALIDITY change, \Seen left alone, attachments never read.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { ImapFlow } from "imapflow";
import { MemoryCheckpoints, watchMailbox, type WatchedMail, type WatchEvent } from "../src/index.ts";
import type { ImapAccount } from "../src/imap/client.ts";
import { fetchMessages, listNewUids } from "../src/imap/fetch.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { CaptureLogger } from "./support/logger.ts";
import { buildMail } from "./support/mail.ts";

let dovecot: Dovecot;

before(async () => {
  dovecot = await startDovecot();
});
after(async () => {
  await dovecot?.dispose();
});

function account(user: string): ImapAccount {
  return { name: user, host: dovecot.host, port: dovecot.imapsPort, tls: "implicit", ca: dovecot.ca, user, pass: dovecot.users[user]! };
}

/** Pulls from the iterator into an array in the background, so the test can append meanwhile. */
function collect(iterator: AsyncGenerator<WatchedMail>): { mails: WatchedMail[]; waitFor(n: number, timeoutMs?: number): Promise<WatchedMail[]>; done: Promise<void> } {
  const mails: WatchedMail[] = [];
  const done = (async () => {
    for await (const m of iterator) mails.push(m);
  })();
  return {
    mails,
    done,
    async waitFor(n, timeoutMs = 8000) {
      const deadline = Date.now() + timeoutMs;
      while (mails.length < n) {
        if (Date.now() > deadline) throw new Error(`got ${mails.length} of ${n} mails: ${mails.map((m) => m.mail.subject).join(", ")}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return mails.slice(0, n);
    },
  };
}

function events(): { list: WatchEvent[]; on: (e: WatchEvent) => void; waitFor(type: WatchEvent["type"], count?: number, timeoutMs?: number): Promise<void> } {
  const list: WatchEvent[] = [];
  return {
    list,
    on: (e) => list.push(e),
    async waitFor(type, count = 1, timeoutMs = 8000) {
      const deadline = Date.now() + timeoutMs;
      while (list.filter((e) => e.type === type).length < count) {
        if (Date.now() > deadline) throw new Error(`no ${count}× ${type} event; saw ${list.map((e) => e.type).join(", ")}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

describe("watchMailbox against Dovecot", () => {
  it("starts at the mailbox's end, then yields new mail decoded, in UID order, and leaves it unread", async () => {
    await dovecot.append("alice", "INBOX", buildMail({ from: "old@example.com", to: "alice@example.com", subject: "old mail", text: "before mailbell" }));
    const controller = new AbortController();
    const ev = events();
    const watch = collect(watchMailbox({ account: account("alice"), mailbox: "INBOX", signal: controller.signal, onEvent: ev.on }));
    await ev.waitFor("idle");
    const uids = await dovecot.appendMany("alice", "INBOX", [
      buildMail({ from: "Google Play <googleplay-noreply@google.com>", to: "alice@example.com", subject: "ご注文明細", text: "合計: ￥480" }),
      buildMail({ from: "b@example.com", to: "alice@example.com", subject: "second", text: "two" }),
    ]);
    const got = await watch.waitFor(2);
    assert.deepEqual(got.map((m) => m.uid), uids);
    assert.equal(got[0]!.mail.subject, "ご注文明細");
    assert.match(got[0]!.mail.text, /合計: ￥480/);
    assert.equal(got[0]!.mail.from[0]!.address, "googleplay-noreply@google.com");
    assert.ok(!watch.mails.some((m) => m.mail.subject === "old mail"), "mail from before the first start must not be announced");
    controller.abort();
    await watch.done;

    const flags = await dovecot.withClient("alice", async (c) => {
      await c.mailboxOpen("INBOX");
      return c.fetchAll(uids.join(","), { uid: true, flags: true }, { uid: true });
    });
    for (const f of flags) assert.ok(!f.flags?.has("\\Seen"), `uid ${f.uid} was marked \\Seen`);
  });

  it("catches up from its checkpoint after a stop: mail that arrived meanwhile is yielded exactly once", async () => {
    const checkpoints = new MemoryCheckpoints();
    const first = new AbortController();
    const ev1 = events();
    const w1 = collect(watchMailbox({ account: account("bob"), mailbox: "INBOX", checkpoints, signal: first.signal, onEvent: ev1.on }));
    await ev1.waitFor("idle");
    await dovecot.append("bob", "INBOX", buildMail({ from: "a@example.com", to: "bob@example.com", subject: "while up", text: "1" }));
    await w1.waitFor(1);
    first.abort();
    await w1.done;

    const whileDown = await dovecot.appendMany(
      "bob",
      "INBOX",
      [1, 2, 3].map((i) => buildMail({ from: "a@example.com", to: "bob@example.com", subject: `while down ${i}`, text: String(i) })),
    );
    const second = new AbortController();
    const w2 = collect(watchMailbox({ account: account("bob"), mailbox: "INBOX", checkpoints, signal: second.signal }));
    const got = await w2.waitFor(3);
    await new Promise((r) => setTimeout(r, 300));
    second.abort();
    await w2.done;
    assert.deepEqual(w2.mails.map((m) => m.uid), whileDown, "exactly the mail that arrived while stopped, once each, oldest first");
    assert.deepEqual(got.map((m) => m.mail.subject), ["while down 1", "while down 2", "while down 3"]);
  });

  it("reconnects after the server drops the session and catches up", async () => {
    const controller = new AbortController();
    const ev = events();
    const logger = new CaptureLogger();
    const w = collect(
      watchMailbox({ account: account("carol"), mailbox: "INBOX", signal: controller.signal, onEvent: ev.on, logger, reconnect: { baseMs: 50, capMs: 200 } }),
    );
    await ev.waitFor("idle");
    await dovecot.kick("carol");
    await ev.waitFor("disconnected");
    const uid = await dovecot.append("carol", "INBOX", buildMail({ from: "a@example.com", to: "carol@example.com", subject: "after kick", text: "x" }));
    const [m] = await w.waitFor(1);
    assert.equal(m!.uid, uid);
    assert.equal(ev.list.filter((e) => e.type === "connected").length, 2);
    assert.ok(logger.find(/disconnected; reconnecting/, "warn").length >= 1);
    controller.abort();
    await w.done;
  });

  it("after a UIDVALIDITY change reads again what arrived since the last checkpoint, then goes on from the new end", async () => {
    await dovecot.createMailbox("alice", "Receipts");
    const checkpoints = new MemoryCheckpoints();
    const controller = new AbortController();
    const ev = events();
    const logger = new CaptureLogger();
    const w = collect(watchMailbox({ account: account("alice"), mailbox: "Receipts", checkpoints, signal: controller.signal, onEvent: ev.on, logger, reconnect: { baseMs: 50, capMs: 200 } }));
    await ev.waitFor("idle");
    const before = checkpoints.load("alice", "Receipts")!;
    controller.abort();
    await w.done;

    // Deleted and made again (a server rebuilding its index does the same): new UIDVALIDITY, and
    // two mails that arrived while nobody watched.
    await dovecot.deleteMailbox("alice", "Receipts");
    const renumbered = await dovecot.appendMany("alice", "Receipts", [1, 2].map((i) => buildMail({ from: "a@example.com", to: "alice@example.com", subject: `renumbered ${i}`, text: "x" })));
    // An old mail (arrived long before the last checkpoint) is not read again.
    await dovecot.append("alice", "Receipts", buildMail({ from: "a@example.com", to: "alice@example.com", subject: "ancient", text: "x" }), { internalDate: new Date("2020-01-01T00:00:00Z") });
    const again = new AbortController();
    const ev2 = events();
    const w2 = collect(watchMailbox({ account: account("alice"), mailbox: "Receipts", checkpoints, signal: again.signal, onEvent: ev2.on, logger }));
    await ev2.waitFor("idle");
    const changed = ev2.list.find((e) => e.type === "uidvalidity-changed");
    assert.ok(changed && changed.type === "uidvalidity-changed" && changed.previous === before.uidValidity);
    assert.deepEqual(w2.mails.map((m) => m.uid), renumbered, "what arrived while nobody watched is read again, for the consumer to de-duplicate by Message-ID");
    assert.ok(w2.mails.every((m) => m.checkpoint.uidValidity === before.uidValidity), "recovered mail acknowledges nothing new");
    const after = checkpoints.load("alice", "Receipts")!;
    assert.notEqual(after.uidValidity, before.uidValidity, "the new checkpoint is saved once the recovery is done");
    const fresh = await dovecot.append("alice", "Receipts", buildMail({ from: "a@example.com", to: "alice@example.com", subject: "after renumbering", text: "x" }));
    await w2.waitFor(3);
    assert.equal(w2.mails[2]!.uid, fresh);
    assert.equal(w2.mails.length, 3, "nothing read twice, the ancient mail not at all");
    assert.equal(logger.find(/UIDVALIDITY changed/, "warn").length, 1);
    again.abort();
    await w2.done;
  });

  it("reports a wrong password as an auth failure and waits long before trying again", async () => {
    const controller = new AbortController();
    const ev = events();
    const logger = new CaptureLogger();
    const w = collect(
      watchMailbox({ account: { ...account("bob"), pass: "wrong" }, mailbox: "INBOX", signal: controller.signal, onEvent: ev.on, logger, reconnect: { baseMs: 10, capMs: 20, authFailureMs: 60_000 } }),
    );
    await ev.waitFor("disconnected");
    const d = ev.list.find((e) => e.type === "disconnected");
    assert.ok(d?.type === "disconnected" && d.error?.code === "IMAP_AUTH");
    assert.ok(d.retryInMs >= 60_000, `auth failures wait long (got ${d.retryInMs} ms)`);
    assert.match(logger.find(/login refused/, "error")[0]?.fields.err as string, /refused the login/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ev.list.filter((e) => e.type === "connecting").length, 1, "no second attempt within the backoff");
    controller.abort();
    await w.done;
  });
});

describe("keeping IDLE fresh", () => {
  it("re-issues IDLE every idleRestartMs (servers drop long IDLEs)", async () => {
    // A plaintext hop that counts the IDLE commands the client sends.
    let idles = 0;
    const server = net.createServer((client) => {
      const upstream = net.connect(dovecot.imapPort, dovecot.host);
      client.on("data", (d: Buffer) => {
        idles += (d.toString("latin1").match(/ IDLE\r\n/g) ?? []).length;
        upstream.write(d);
      });
      upstream.on("data", (d: Buffer) => client.write(d));
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      client.on("error", () => {});
      upstream.on("error", () => {});
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const controller = new AbortController();
    const ev = events();
    const w = collect(
      watchMailbox({
        account: { name: "bob", host: "127.0.0.1", port: (server.address() as net.AddressInfo).port, tls: "none", user: "bob", pass: dovecot.users.bob! },
        mailbox: "INBOX",
        signal: controller.signal,
        onEvent: ev.on,
        idleRestartMs: 300,
      }),
    );
    try {
      await ev.waitFor("idle");
      await new Promise((r) => setTimeout(r, 1300));
      assert.ok(idles >= 4, `IDLE was issued ${idles} times in 1.3 s with idleRestartMs 300`);
    } finally {
      controller.abort();
      await w.done;
      server.close();
    }
  });
});

describe("fetching only what rules need", () => {
  it("reads headers and text, never the attachment, and skips mail expunged before the fetch", async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const [withAttachment, doomed, plain] = await dovecot.appendMany("carol", "Fetch", [
      buildMail({ from: "a@example.com", to: "carol@example.com", subject: "invoice", text: "Total: $15.14", attachments: [{ filename: "invoice.bin", content: big }] }),
      buildMail({ from: "a@example.com", to: "carol@example.com", subject: "doomed", text: "gone" }),
      buildMail({ from: "a@example.com", to: "carol@example.com", subject: "long", text: `${"x".repeat(100)}\r\n`.repeat(200) }),
    ]);
    const client = new ImapFlow({ ...dovecot.clientOptions("carol"), disableBinary: true });
    await client.connect();
    try {
      await client.mailboxOpen("Fetch", { readOnly: true });
      const uids = await listNewUids(client, withAttachment! - 1);
      assert.deepEqual(uids, [withAttachment, doomed, plain]);
      await dovecot.withClient("carol", async (c) => {
        await c.mailboxOpen("Fetch");
        await c.messageDelete(String(doomed), { uid: true });
      });
      const fetched = [];
      for await (const m of fetchMessages(client, uids, { maxTextBytes: 4096 })) fetched.push(m);
      assert.deepEqual(fetched.map((m) => m.uid), [withAttachment, plain]);
      const [invoice, long] = fetched;
      assert.ok(invoice!.size > big.length, "the server-side size includes the attachment");
      assert.ok(invoice!.raw.length < 8 * 1024, `only header and text were read (${invoice!.raw.length} bytes)`);
      assert.match(invoice!.raw.toString(), /Total: \$15\.14/);
      assert.ok(long!.raw.length < 4096 + 2048, `text capped at maxTextBytes (${long!.raw.length} bytes)`);
      assert.ok(long!.warnings.some((w) => /truncated/.test(w)), `a truncation warning: ${long!.warnings.join("; ")}`);
    } finally {
      await client.logout();
    }
  });
});

describe("UID ranges", () => {
  it("does not re-read the last message when asked for UIDs past the end (UID n:* quirk)", async () => {
    const uid = await dovecot.append("bob", "Quirk", buildMail({ from: "a@example.com", to: "bob@example.com", subject: "only", text: "x" }));
    const client = new ImapFlow(dovecot.clientOptions("bob"));
    await client.connect();
    try {
      await client.mailboxOpen("Quirk", { readOnly: true });
      assert.deepEqual(await listNewUids(client, uid), []);
      assert.deepEqual(await listNewUids(client, uid - 1), [uid]);
    } finally {
      await client.logout();
    }
  });
});
