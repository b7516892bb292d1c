/**
 * The library watcher against a real Dovecot: first start, catch-up from a checkpoint, reconnect,
 * UIDVALIDITY change, \Seen left alone, attachments never read.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { ImapFlow } from "imapflow";
import { MemoryCheckpoints, normalizeMail, watchMailbox, type WatchedMail, type WatchEvent, type WatchOptions } from "../src/index.ts";
import type { ImapAccount } from "../src/imap/client.ts";
import { fetchMessages, listNewUids, type DecodeParts } from "../src/imap/fetch.ts";
import { readFetchedParts } from "../src/mail/parts.ts";
import { imapAccountOf, startDovecot, type Dovecot } from "./support/dovecot.ts";
import { CaptureLogger } from "./support/logger.ts";
import { buildMail } from "./support/mail.ts";

let dovecot: Dovecot;

before(async () => {
  dovecot = await startDovecot();
});
after(async () => {
  await dovecot?.dispose();
});

const account = (user: string): ImapAccount => imapAccountOf(dovecot, user);

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
    assert.deepEqual(w2.mails.map((m) => m.uid), renumbered, "what arrived while nobody watched is read again, for the consumer to de-duplicate by identity");
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

  it("asks needsBody with the account, the mailbox and the arrival time, and reads the text of the yeses only", async () => {
    await dovecot.createMailbox("bob", "LazyWatch");
    const controller = new AbortController();
    const ev = events();
    const asked: Array<{ subject: string; text: string; account: string; mailbox: string; receivedAt: Date }> = [];
    const w = collect(
      watchMailbox({
        account: account("bob"),
        mailbox: "LazyWatch",
        signal: controller.signal,
        onEvent: ev.on,
        needsBody: (mail, where) => {
          asked.push({ subject: mail.subject, text: mail.text, ...where });
          return mail.subject === "read me";
        },
      }),
    );
    try {
      await ev.waitFor("idle");
      const arrived = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000); // IMAP dates have whole seconds
      await dovecot.append("bob", "LazyWatch", buildMail({ from: "shop@example.com", to: "bob@example.com", subject: "read me", text: "Total: 1" }), { internalDate: arrived });
      await dovecot.append("bob", "LazyWatch", buildMail({ from: "shop@example.com", to: "bob@example.com", subject: "leave me", text: "Total: 2" }));
      const mails = await w.waitFor(2);
      assert.deepEqual(
        asked.map((a) => [a.subject, a.text, a.account, a.mailbox]),
        [
          ["read me", "", "bob", "LazyWatch"],
          ["leave me", "", "bob", "LazyWatch"],
        ],
      );
      assert.equal(asked[0]!.receivedAt.getTime(), arrived.getTime(), "the server's arrival time, not the clock's");
      assert.deepEqual(
        mails.map((m) => [m.mail.subject, m.bodyRead, m.mail.text.trim()]),
        [
          ["read me", true, "Total: 1"],
          ["leave me", false, ""],
        ],
      );
    } finally {
      controller.abort();
      await w.done;
    }
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

/** A plaintext hop to Dovecot that records the commands the client sends. */
async function countingHop(): Promise<{ port: number; sent: () => string; close(): void }> {
  let sent = "";
  const server = net.createServer((client) => {
    const upstream = net.connect(dovecot.imapPort, dovecot.host);
    client.on("data", (d: Buffer) => {
      sent += d.toString("latin1");
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => client.write(d));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.on("error", () => {});
    upstream.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as net.AddressInfo).port, sent: () => sent, close: () => server.close() };
}

describe("keeping IDLE fresh", () => {
  /** bob's watcher through a counting hop; `count(re)` says how often the client sent a command. */
  async function watchThroughHop(options: Partial<WatchOptions> & { mailbox: string }) {
    const hop = await countingHop();
    const controller = new AbortController();
    const ev = events();
    const w = collect(
      watchMailbox({ account: { name: "bob", host: "127.0.0.1", port: hop.port, tls: "none", user: "bob", pass: dovecot.users.bob! }, signal: controller.signal, onEvent: ev.on, ...options }),
    );
    return {
      w,
      ev,
      count: (command: RegExp) => (hop.sent().match(command) ?? []).length,
      async stop() {
        controller.abort();
        await w.done;
        hop.close();
      },
    };
  }

  // The same on the lean connection a quiet mailbox waits on (the default) and on imapflow's.
  for (const quietConnection of ["lean", "imapflow"] as const) {
    it(`${quietConnection}: a quiet keepalive is a NOOP only: no UID SEARCH unless the NOOP says new mail came`, async () => {
      await dovecot.createMailbox("bob", `Quiet-${quietConnection}`);
      const watch = await watchThroughHop({ mailbox: `Quiet-${quietConnection}`, keepaliveMs: 200, quietConnection });
      try {
        await watch.ev.waitFor("idle");
        const searchesAtStart = watch.count(/ UID SEARCH /g);
        await new Promise((r) => setTimeout(r, 1000));
        assert.ok(watch.count(/ NOOP\r\n/g) >= 3, "keepalives were sent");
        assert.equal(watch.count(/ UID SEARCH /g), searchesAtStart, "no SEARCH after a quiet keepalive");
        await dovecot.append("bob", `Quiet-${quietConnection}`, buildMail({ from: "a@example.com", to: "bob@example.com", subject: "after quiet", text: "x" }));
        assert.equal((await watch.w.waitFor(1))[0]!.mail.subject, "after quiet");
      } finally {
        await watch.stop();
      }
    });

    it(`${quietConnection}: re-issues IDLE every idleRestartMs (servers drop long IDLEs)`, async () => {
      const watch = await watchThroughHop({ mailbox: "INBOX", idleRestartMs: 300, quietConnection });
      try {
        await watch.ev.waitFor("idle");
        const before = watch.count(/ IDLE\r\n/g);
        await new Promise((r) => setTimeout(r, 1300));
        const idles = watch.count(/ IDLE\r\n/g) - before;
        assert.ok(idles >= 3, `IDLE was issued ${idles} more times in 1.3 s with idleRestartMs 300`);
      } finally {
        await watch.stop();
      }
    });
  }
});

describe("reading on a second connection", () => {
  const sessions = async (user: string): Promise<number> => (await dovecot.doveadm("who", "-1", user)).split("\n").filter((line) => line.startsWith(`${user} `)).length;

  it("reads announced mail on a reader connection while the first stays in IDLE, and closes the reader when unused", async () => {
    await dovecot.addUser("dave", "davepw");
    await dovecot.createMailbox("dave", "Reader");
    const controller = new AbortController();
    const events: WatchEvent["type"][] = [];
    const w = collect(
      watchMailbox({ account: account("dave"), mailbox: "Reader", readerConnection: true, quietConnection: "imapflow", keepaliveMs: 1500, signal: controller.signal, onEvent: (e) => events.push(e.type) }),
    );
    try {
      while (!events.includes("idle")) await new Promise((r) => setTimeout(r, 20));
      for (let i = 0; i < 3; i++) {
        await dovecot.append("dave", "Reader", buildMail({ from: "a@example.com", to: "dave@example.com", subject: `r${i}`, text: "x" }));
        await w.waitFor(i + 1);
      }
      assert.deepEqual(w.mails.map((m) => m.mail.subject), ["r0", "r1", "r2"]);
      assert.equal(await sessions("dave"), 2, "watching and reading connections");
      // Each announced mail was read without leaving IDLE: no reconnects, and one IDLE all along.
      assert.deepEqual(events.filter((e) => e === "connected").length, 1);
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(await sessions("dave"), 1, "the reader is closed after keepaliveMs unused");
      await dovecot.append("dave", "Reader", buildMail({ from: "a@example.com", to: "dave@example.com", subject: "r3", text: "x" }));
      await w.waitFor(4);
      assert.equal(w.mails[3]!.mail.subject, "r3", "and opened again for the next mail");
    } finally {
      controller.abort();
      await w.done;
    }
  });

  it("reads at once the mail the reader is told of while it reads, instead of waiting for the next push", async () => {
    await dovecot.addUser("fay", "faypw");
    await dovecot.createMailbox("fay", "Busy");
    const controller = new AbortController();
    const events: WatchEvent["type"][] = [];
    let appendedB: number | undefined;
    // Runs between the header FETCH and the text FETCH of the first mail: the second one arrives
    // then, and Dovecot tells the reader so when that FETCH ends.
    const decode: DecodeParts = async (round) => {
      if (appendedB === undefined && round.some((m) => m.bodies.size === 0)) {
        appendedB = 0;
        await dovecot.append("fay", "Busy", buildMail({ from: "a@example.com", to: "fay@example.com", subject: "B", text: "x" }));
        appendedB = performance.now();
      }
      return round.map(readFetchedParts);
    };
    const w = collect(
      watchMailbox({ account: account("fay"), mailbox: "Busy", readerConnection: true, quietConnection: "imapflow", decode, needsBody: () => true, signal: controller.signal, onEvent: (e) => events.push(e.type) }),
    );
    try {
      while (!events.includes("idle")) await new Promise((r) => setTimeout(r, 20));
      await dovecot.append("fay", "Busy", buildMail({ from: "a@example.com", to: "fay@example.com", subject: "A", text: "x" }));
      await w.waitFor(2);
      const gotB = performance.now();
      assert.deepEqual(w.mails.map((m) => m.mail.subject), ["A", "B"]);
      // The watching connection's own push for B comes 500 ms after it (Dovecot's NOTIFY_DELAY_MSECS).
      assert.ok(gotB - appendedB! < 400, `B read ${Math.round(gotB - appendedB!)} ms after it arrived, not at the next push`);
    } finally {
      controller.abort();
      await w.done;
    }
  });

  it("falls back to the watching connection when the reader cannot be used", async () => {
    await dovecot.addUser("erin", "erinpw");
    await dovecot.createMailbox("erin", "Reader");
    const controller = new AbortController();
    const logger = new CaptureLogger();
    let idles = 0;
    // The reader logs in with a wrong password; the first connection's credentials still work.
    let logins = 0;
    const base = account("erin");
    const erin: ImapAccount = { ...base, pass: undefined, credentials: async () => ({ pass: logins++ === 0 ? base.pass! : "wrong" }) };
    const w = collect(watchMailbox({ account: erin, mailbox: "Reader", readerConnection: true, quietConnection: "imapflow", signal: controller.signal, logger, onEvent: (e) => (idles += e.type === "idle" ? 1 : 0) }));
    try {
      while (idles === 0) await new Promise((r) => setTimeout(r, 20));
      for (let i = 0; i < 2; i++) {
        await dovecot.append("erin", "Reader", buildMail({ from: "a@example.com", to: "erin@example.com", subject: `f${i}`, text: "x" }));
        await w.waitFor(i + 1);
      }
      assert.deepEqual(w.mails.map((m) => m.mail.subject), ["f0", "f1"]);
      const warned = logger.entries.filter((e) => /second connection/.test(e.msg ?? ""));
      assert.equal(warned.length, 1, "tried once, then read on the watching connection for the rest of this connection");
    } finally {
      controller.abort();
      await w.done;
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
      const gone: number[] = [];
      client.stats(true);
      for await (const m of fetchMessages(client, uids, { maxTextBytes: 4096, onGone: (u) => gone.push(...u) })) fetched.push(m);
      const { received } = client.stats();
      assert.deepEqual(fetched.map((m) => m.uid), [withAttachment, plain]);
      assert.deepEqual(gone, [doomed], "and says which was left out");
      const [invoice, long] = fetched;
      assert.ok(invoice!.size > big.length, "the server-side size includes the attachment");
      // Three headers and structures, one short text and 4 KiB of the long one; never the 3 MiB.
      assert.ok(received < 16 * 1024, `only headers and text were read (${received} bytes received)`);
      assert.equal(invoice!.mail.subject, "invoice");
      assert.match(invoice!.mail.text, /Total: \$15\.14/);
      assert.ok(long!.mail.text.length <= 4096 && long!.mail.text.length > 3000, `text capped at maxTextBytes (${long!.mail.text.length} chars)`);
      assert.ok(long!.mail.warnings.some((w) => /truncated/.test(w)), `a truncation warning: ${long!.mail.warnings.join("; ")}`);
    } finally {
      await client.logout();
    }
  });
  it("with needsBody, reads the text only of mail it says yes to, judged from the decoded header", async () => {
    const text = `Total: $15.14\r\n${"filler line of the body\r\n".repeat(400)}`;
    const uids = await dovecot.appendMany("carol", "Lazy", [
      buildMail({ from: "shop@example.com", to: "carol@example.com", subject: "=?UTF-8?B?5ZCI6KiI?= receipt", text }),
      buildMail({ from: "news@example.com", to: "carol@example.com", subject: "newsletter", text }),
      "From: shop@example.com\r\nTo: carol@example.com\r\nSubject: html receipt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Total: <b>$9.99</b></p>\r\n",
    ]);
    const client = new ImapFlow(dovecot.clientOptions("carol"));
    await client.connect();
    try {
      await client.mailboxOpen("Lazy", { readOnly: true });
      const asked: string[] = [];
      const needsBody = (mail: { subject: string; text: string; from: { address: string }[] }) => {
        assert.equal(mail.text, "", "asked before the text is read");
        asked.push(mail.subject);
        return mail.from[0]?.address === "shop@example.com";
      };
      client.stats(true);
      const fetched = [];
      for await (const m of fetchMessages(client, uids, { maxTextBytes: 64 * 1024, needsBody })) fetched.push(m);
      const { received } = client.stats();
      assert.deepEqual(asked, ["合計 receipt", "newsletter", "html receipt"]);
      assert.deepEqual(fetched.map((m) => [m.mail.subject, m.bodyRead]), [["合計 receipt", true], ["newsletter", false], ["html receipt", true]]);
      assert.match(fetched[0]!.mail.text, /^Total: \$15\.14\n/);
      assert.equal(fetched[1]!.mail.text, "");
      assert.equal(fetched[1]!.mail.html, undefined);
      assert.deepEqual(fetched[1]!.mail.warnings, []);
      assert.match(fetched[2]!.mail.text, /Total: \$9\.99/);
      // One body of ~10 KB was read; the newsletter's was not.
      assert.ok(received > text.length && received < 2 * text.length, `one text read (${received} bytes received for two of ${text.length})`);
      // Without it, everything is read, as before.
      const all = [];
      for await (const m of fetchMessages(client, uids, { maxTextBytes: 64 * 1024 })) all.push(m);
      assert.deepEqual(all.map((m) => m.bodyRead), [true, true, true]);
      assert.match(all[1]!.mail.text, /^Total: \$15\.14\n/);
    } finally {
      await client.logout();
    }
  });

  it("mail expunged between the FETCH of its header and that of its text is left out, the rest read whole", async () => {
    const text = "Total: $15.14\r\n";
    const [first, doomed, last] = await dovecot.appendMany("carol", "Vanish", [
      buildMail({ from: "shop@example.com", to: "carol@example.com", subject: "first", text }),
      buildMail({ from: "shop@example.com", to: "carol@example.com", subject: "doomed", text }),
      buildMail({ from: "shop@example.com", to: "carol@example.com", subject: "last", text }),
    ]);
    const client = new ImapFlow(dovecot.clientOptions("carol"));
    await client.connect();
    try {
      await client.mailboxOpen("Vanish", { readOnly: true });
      let passes = 0;
      // The first decoding pass (headers only) runs between the two FETCHes: the mail goes then.
      const decode: DecodeParts = async (round) => {
        if (passes++ === 0) {
          await dovecot.withClient("carol", async (c) => {
            await c.mailboxOpen("Vanish");
            await c.messageDelete(String(doomed), { uid: true });
          });
        }
        return round.map(readFetchedParts);
      };
      const fetched = [];
      const gone: number[] = [];
      for await (const m of fetchMessages(client, [first!, doomed!, last!], { maxTextBytes: 4096, decode, needsBody: () => true, onGone: (u) => gone.push(...u) })) fetched.push(m);
      assert.equal(passes, 2, "headers, then the text of what is left");
      assert.deepEqual(gone, [doomed]);
      assert.deepEqual(
        fetched.map((m) => [m.uid, m.mail.subject, m.bodyRead, m.mail.text.trim(), m.mail.warnings]),
        [
          [first, "first", true, "Total: $15.14", []],
          [last, "last", true, "Total: $15.14", []],
        ],
      );
    } finally {
      await client.logout();
    }
  });

  it("reads a forwarded message/rfc822 marked inline, as mailparser reads the whole file, and no other", async () => {
    const inner = "From: shop@example.com\r\nSubject: receipt\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nTotal: 15 =80\r\n";
    const forward = (subject: string, disposition: string) =>
      `From: a@example.com\r\nSubject: ${subject}\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n${subject}\r\n--b\r\nContent-Type: message/rfc822\r\n${disposition}\r\n${inner}--b--\r\n`;
    const raws = [
      forward("inline", "Content-Disposition: inline\r\n"),
      forward("attached", "Content-Disposition: attachment\r\n"),
      forward("unmarked", ""),
      `From: a@example.com\r\nSubject: bounce\r\nContent-Type: message/rfc822\r\n\r\n${inner}`,
    ];
    const uids = await dovecot.appendMany("carol", "Forwarded", raws);
    const client = new ImapFlow(dovecot.clientOptions("carol"));
    await client.connect();
    try {
      await client.mailboxOpen("Forwarded", { readOnly: true });
      const texts = [];
      for await (const m of fetchMessages(client, uids, { maxTextBytes: 4096 })) texts.push(m.mail.text);
      assert.deepEqual(texts, ["inline\nTotal: 15 €", "attached", "unmarked", ""]);
      // The whole file reads the same text; mailparser also puts the forwarded From/Subject lines before it.
      const whole = await Promise.all(raws.map(async (raw) => (await normalizeMail(Buffer.from(raw))).text));
      texts.forEach((text, i) => assert.deepEqual(text.split("\n").filter((line) => !whole[i]!.split("\n").includes(line)), [], `${i}: ${whole[i]}`));
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
