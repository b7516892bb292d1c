import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { ImapFlow, type ImapFlowOptions } from "imapflow";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import {
  Framer,
  closeAtIdle,
  dropUidNext,
  endlessLineFor,
  hugeLiteralFor,
  missingFromFetch,
  nilPartFor,
  parseFetch,
  renumberEachSession,
  slow,
  stallAfter,
  startImapProxy,
  unparsableBodystructureFor,
  wrongUidFor,
  type ImapProxy,
  type ImapRule,
} from "./support/imap-proxy.ts";

const plainMail = (n: number): string => `From: a@example.com\r\nTo: alice@example.com\r\nSubject: mail ${n}\r\nMessage-ID: <m${n}@example.com>\r\n\r\nbody ${n}\r\n`;
const multipartMail =
  "From: a@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
  "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--b--\r\n";

describe("IMAP proxy: framing", () => {
  // Each stream as [kind, text]: L = a line and the literal size it announces, B = literal bytes.
  const cases: { name: string; stream: string; events: [string, string, number?][] }[] = [
    {
      name: "a FETCH reply with a literal holding CRLF and a fake marker",
      stream: "* 1 FETCH (UID 1 BODY[HEADER] {9}\r\nab\r\n{2}\r\n)\r\nA1 OK done\r\n",
      events: [["L", "* 1 FETCH (UID 1 BODY[HEADER] {9}\r\n", 9], ["B", "ab\r\n{2}\r\n"], ["L", ")\r\n"], ["L", "A1 OK done\r\n"]],
    },
    {
      name: "literal8, a zero-length literal and a bare LF in a literal",
      stream: "* 2 FETCH (BINARY[1] ~{4}\r\n{1}\n BODY[2] {0}\r\n)\r\n",
      events: [["L", "* 2 FETCH (BINARY[1] ~{4}\r\n", 4], ["B", "{1}\n"], ["L", " BODY[2] {0}\r\n", 0], ["L", ")\r\n"]],
    },
    {
      name: "a client APPEND with a non-synchronizing literal, then IDLE and DONE",
      stream: "B APPEND INBOX {5+}\r\nhello\r\nC IDLE\r\nDONE\r\n",
      events: [["L", "B APPEND INBOX {5+}\r\n", 5], ["B", "hello"], ["L", "\r\n"], ["L", "C IDLE\r\n"], ["L", "DONE\r\n"]],
    },
  ];

  const frame = (chunks: Buffer[]): [string, string, number?][] => {
    const events: [string, string, number?][] = [];
    const framer = new Framer({
      line: (line, literal) => events.push(literal === undefined ? ["L", line.toString("latin1")] : ["L", line.toString("latin1"), literal]),
      literal: (chunk) => {
        const last = events.at(-1);
        if (last?.[0] === "B") last[1] += chunk.toString("latin1");
        else events.push(["B", chunk.toString("latin1")]);
      },
    });
    for (const chunk of chunks) framer.push(chunk);
    return events;
  };

  for (const { name, stream, events } of cases) {
    it(`${name}: the same however the bytes are cut`, () => {
      const bytes = Buffer.from(stream, "latin1");
      assert.deepEqual(frame([bytes]), events);
      for (let cut = 1; cut < bytes.length; cut++) assert.deepEqual(frame([bytes.subarray(0, cut), bytes.subarray(cut)]), events, `cut at ${cut}`);
      assert.deepEqual(frame([...bytes].map((b) => Buffer.from([b]))), events, "byte by byte");
    });
  }

  it("reads FETCH items by name, with values as sent (lists, quoted strings, literals)", () => {
    const text =
      '* 2 FETCH (UID 7 MODSEQ (3) BODYSTRUCTURE (("text" "plain" ("name" "a\\")b" "charset" "us-ascii") NIL NIL "7bit" 5 0) "mixed") ' +
      "BODY[HEADER.FIELDS (FROM)] {7}\r\nF: )(\r\n BODY[1]<0> NIL)\r\n";
    const fetch = parseFetch(text)!;
    assert.equal(fetch.seq, 2);
    assert.equal(fetch.uid, 7);
    assert.deepEqual(
      fetch.items.map((i) => [i.name, i.value]),
      [
        ["UID", "7"],
        ["MODSEQ", "(3)"],
        ["BODYSTRUCTURE", '(("text" "plain" ("name" "a\\")b" "charset" "us-ascii") NIL NIL "7bit" 5 0) "mixed")'],
        ["BODY[HEADER.FIELDS (FROM)]", "{7}\r\nF: )(\r\n"],
        ["BODY[1]<0>", "NIL"],
      ],
    );
    for (const item of fetch.items) assert.equal(text.slice(item.valueStart, item.end), item.value);
    assert.deepEqual(parseFetch(text.slice(0, 40))!.items.map((i) => i.name), ["UID", "MODSEQ"], "a cut-off reply gives the items it holds whole");
    assert.equal(parseFetch("* 3 EXISTS\r\n"), undefined);
  });
});

describe("IMAP proxy in front of Dovecot", () => {
  let dovecot: Dovecot;
  let uidValidity: bigint;
  let directHeader2: Buffer;
  before(async () => {
    dovecot = await startDovecot();
    await dovecot.appendMany("alice", "INBOX", [plainMail(1), multipartMail, plainMail(3), plainMail(4)]);
    await dovecot.createMailbox("alice", "Scratch");
    await dovecot.withClient("alice", async (c) => {
      uidValidity = (await c.mailboxOpen("INBOX")).uidValidity;
      directHeader2 = (await got(c.fetchOne("2", { headers: true }, { uid: true }))).headers!;
    });
  });
  after(() => dovecot?.dispose());

  const proxies: ImapProxy[] = [];
  const clients: ImapFlow[] = [];
  const sockets: net.Socket[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });

  const errorsOf = new Map<ImapFlow, string[]>();
  const proxyWith = async (...rules: ImapRule[]): Promise<ImapProxy> => {
    const p = await startImapProxy({ port: dovecot.imapPort, rules });
    proxies.push(p);
    return p;
  };
  const connect = async (p: ImapProxy, extra: Partial<ImapFlowOptions> = {}): Promise<ImapFlow> => {
    const c = new ImapFlow({ ...dovecot.clientOptions("alice", "plain"), port: p.port, ...extra });
    const errors: string[] = [];
    c.on("error", (err: { code?: string; message: string }) => errors.push(err.code ?? err.message));
    errorsOf.set(c, errors);
    clients.push(c);
    await c.connect();
    return c;
  };
  const uidsOf = (rows: { uid: number }[]): number[] => rows.map((r) => r.uid).sort((a, b) => a - b);
  /** fetchOne and status answer false for "nothing": here that fails the test. */
  const got = async <T>(answer: Promise<T | false>): Promise<T> => {
    const value = await answer;
    assert.ok(value, "an answer");
    return value;
  };

  /**
   * A bare socket logged in and in INBOX that keeps only the first 64 KiB of what it gets. It reads
   * into one reused buffer, so reading hundreds of MiB allocates nothing that RSS would show.
   */
  const rawSession = async (p: ImapProxy) => {
    const seen = { head: "", bytes: 0, ended: false, error: undefined as string | undefined };
    const socket = net.connect({
      host: "127.0.0.1",
      port: p.port,
      onread: {
        buffer: Buffer.alloc(65_536),
        callback: (n: number, buf: Uint8Array) => {
          if (seen.head.length < 65_536) seen.head += Buffer.from(buf.buffer, buf.byteOffset, n).toString("latin1");
          seen.bytes += n;
          return true;
        },
      },
    });
    sockets.push(socket);
    socket.on("end", () => (seen.ended = true));
    socket.on("error", (err: NodeJS.ErrnoException) => (seen.error = err.code ?? err.message));
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    const until = async (what: RegExp, ms = 5000): Promise<void> => {
      const deadline = Date.now() + ms;
      while (!what.test(seen.head)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} in ${JSON.stringify(seen.head.slice(-300))}`);
        await delay(5);
      }
    };
    const send = (line: string): void => void socket.write(`${line}\r\n`);
    await until(/^\* OK/);
    send(`a1 LOGIN alice ${dovecot.auth("alice").pass}`);
    send("a2 SELECT INBOX");
    await until(/a2 OK/);
    return { socket, seen, closed, until, send };
  };

  it("passes a whole session through: literals both ways, unilateral EXISTS, IDLE and DONE; logs commands without the password", async () => {
    const p = await proxyWith();
    const c = await connect(p);
    const box = await c.mailboxOpen("INBOX");
    assert.equal(box.uidValidity, uidValidity);
    assert.equal(typeof box.uidNext, "number");
    const row = await got(c.fetchOne("2", { uid: true, headers: true, bodyStructure: true, bodyParts: ["1"] }, { uid: true }));
    assert.deepEqual(row.headers, directHeader2);
    assert.equal(row.bodyParts!.get("1")!.toString(), "first part");
    const appended = await c.append("Scratch", plainMail(9));
    assert.ok(appended && (appended.uid ?? 0) > 0);

    const exists = once(c, "exists");
    const idling = c.idle();
    await delay(50);
    await dovecot.append("alice", "INBOX", plainMail(5));
    const [event] = (await exists) as [{ count: number }];
    assert.equal(event.count, 5);
    await c.noop();
    await idling;
    await dovecot.withClient("alice", async (d) => {
      await d.mailboxOpen("INBOX");
      assert.equal(await d.messageDelete("5", { uid: true }), true);
    });

    const names = p.commands.map((x) => x.name);
    for (const name of ["AUTHENTICATE", "SELECT", "UID FETCH", "APPEND", "IDLE", "DONE", "NOOP"]) assert.ok(names.includes(name), `${name} in ${names.join(", ")}`);
    assert.deepEqual(p.commands.find((x) => x.name === "APPEND")!.literals, [Buffer.byteLength(plainMail(9))]);
    assert.doesNotMatch(JSON.stringify(p.commands), new RegExp(dovecot.auth("alice").pass));
    assert.doesNotMatch(JSON.stringify(p.commands), /AGFsaWNl/, "no SASL response either");
    assert.equal(p.sessions, 1);
  });

  it("forwards a session untouched once STARTTLS succeeded", async () => {
    const p = await proxyWith(dropUidNext());
    const c = new ImapFlow({ ...dovecot.clientOptions("alice", "starttls"), port: p.port });
    c.on("error", () => {});
    clients.push(c);
    await c.connect();
    assert.equal(typeof (await c.mailboxOpen("INBOX")).uidNext, "number", "rules no longer apply inside TLS");
    assert.equal(p.commands.at(-1)!.name, "STARTTLS");
  });

  it("dropUidNext: SELECT and EXAMINE come without UIDNEXT; with status, STATUS too", async () => {
    const p = await proxyWith(dropUidNext({ status: true }));
    const c = await connect(p);
    assert.equal((await c.mailboxOpen("INBOX")).uidNext, undefined);
    assert.equal((await c.mailboxOpen("INBOX", { readOnly: true })).uidNext, undefined);
    const status = await got(c.status("Scratch", { uidNext: true, uidValidity: true, messages: true }));
    assert.equal(status.uidNext, undefined);
    assert.equal(typeof status.messages, "number");
    assert.ok(status.uidValidity);
    assert.ok(p.applied.some((a) => a.rule === "dropUidNext" && a.did === "drop" && /UIDNEXT/.test(a.line)));

    const plain = await connect(await proxyWith(dropUidNext()));
    assert.equal(typeof (await got(plain.status("Scratch", { uidNext: true }))).uidNext, "number", "STATUS keeps UIDNEXT unless asked");
  });

  const idleEnds = [
    { how: "close", at: "idling", expect: { ended: true, error: undefined, sawIdling: true } },
    { how: "reset", at: "idling", expect: { ended: false, error: "ECONNRESET", sawIdling: true } },
    { how: "close", at: "command", expect: { ended: true, error: undefined, sawIdling: false } },
  ] as const;
  for (const { how, at, expect } of idleEnds) {
    it(`closeAtIdle({ how: "${how}", at: "${at}" }) ends the session with ${expect.error ?? "a FIN"}`, async () => {
      const p = await proxyWith(closeAtIdle({ how, at }));
      const raw = await rawSession(p);
      raw.send("a3 IDLE");
      await raw.closed;
      assert.deepEqual({ ended: raw.seen.ended, error: raw.seen.error, sawIdling: /\+ idling/.test(raw.seen.head) }, expect);
    });
  }

  it("closeAtIdle({ sessions: 1 }) closes only the first session; imapflow sees the close", async () => {
    const p = await proxyWith(closeAtIdle({ sessions: 1 }));
    const first = await connect(p);
    await first.mailboxOpen("INBOX");
    const closed = once(first, "close");
    void first.idle().catch(() => {});
    await closed;
    const second = await rawSession(p);
    second.send("a3 IDLE");
    await second.until(/\+ idling/);
    await delay(200);
    assert.equal(second.seen.ended || second.seen.error !== undefined, false, "the second session stays up in IDLE");
    assert.equal(p.sessions, 2);
  });

  it("slow(ms) delays every reply, the greeting too", async () => {
    const fast = await connect(await proxyWith());
    let t = performance.now();
    await fast.noop();
    const direct = performance.now() - t;
    t = performance.now();
    const c = await connect(await proxyWith(slow(80)));
    assert.ok(performance.now() - t >= 80 * 3, "greeting and each login step are held");
    t = performance.now();
    await c.noop();
    const held = performance.now() - t;
    // Each reply is held 80 ms from when it came, not 80 ms more than the one before it. libuv
    // timers count whole milliseconds, so one can fire up to a millisecond early.
    assert.ok(held >= 78 && held < 80 + direct + 400, `NOOP took ${held.toFixed(1)} ms`);
  });

  it("hugeLiteralFor: imapflow with a low maxLiteralSize fails with LiteralTooLarge", async () => {
    const p = await proxyWith(hugeLiteralFor(3, 2 * 2 ** 30));
    const c = await connect(p, { maxLiteralSize: 1024 * 1024 });
    await c.mailboxOpen("INBOX");
    // imapflow reports the limit on the connection and fails the command for the lost connection.
    await assert.rejects(c.fetchOne("3", { uid: true, headers: true }, { uid: true }), { code: "NoConnection" });
    assert.deepEqual(errorsOf.get(c), ["LiteralTooLarge"]);
  });

  it("hugeLiteralFor: a 2 GB declaration is streamed, not held (128 MiB read, RSS flat), and stops when the client leaves", async (t) => {
    const p = await proxyWith(hugeLiteralFor(3, 2 * 2 ** 30));
    const raw = await rawSession(p);
    const rssBefore = process.memoryUsage.rss();
    raw.send("a3 UID FETCH 3 (UID BODY.PEEK[HEADER])");
    await raw.until(/\* 3 FETCH \(UID 3 BODY\[HEADER\] \{2147483648\}\r\n/);
    while (raw.seen.bytes < 128 * 2 ** 20) await delay(5);
    const grew = process.memoryUsage.rss() - rssBefore;
    const report = `RSS grew by ${(grew / 2 ** 20).toFixed(1)} MiB while ${(raw.seen.bytes / 2 ** 20).toFixed(0)} MiB passed`;
    t.diagnostic(report);
    // Measured: ~8 MiB; ~130 MiB when the proxy keeps what it sends.
    assert.ok(grew < 48 * 2 ** 20, report);
    raw.socket.destroy();
    const deadline = Date.now() + 2000;
    while (p.connections > 0 && Date.now() < deadline) await delay(10);
    assert.equal(p.connections, 0);
  });

  it("hugeLiteralFor: a declaration sent whole ends the reply and the session goes on; sendAtMost closes early; bytesPerSecond paces", async () => {
    const whole = await connect(await proxyWith(hugeLiteralFor(3, 100_000)));
    await whole.mailboxOpen("INBOX");
    const row = await got(whole.fetchOne("3", { uid: true, headers: true }, { uid: true }));
    assert.equal(row.headers!.length, 100_000);
    await whole.noop();

    const cut = await rawSession(await proxyWith(hugeLiteralFor(3, 10 ** 9, { sendAtMost: 1000 })));
    cut.send("a3 UID FETCH 3 (UID BODY.PEEK[HEADER])");
    await cut.closed;
    const head = "* 3 FETCH (UID 3 BODY[HEADER] {1000000000}\r\n";
    assert.equal(cut.seen.head.slice(cut.seen.head.indexOf("* 3 FETCH")).length, head.length + 1000);
    assert.equal(cut.seen.ended, true);

    const paced = await rawSession(await proxyWith(hugeLiteralFor(3, 10 ** 9, { bytesPerSecond: 50_000 })));
    const before = paced.seen.bytes;
    paced.send("a3 UID FETCH 3 (UID BODY.PEEK[HEADER])");
    await delay(400);
    const received = paced.seen.bytes - before;
    assert.ok(received > 5_000 && received < 40_000, `${received} bytes in 400 ms at 50 000 B/s`);
  });

  it("endlessLineFor: imapflow with a low maxLineLength fails with LineTooLarge; the line is bounded by maxBytes and maxMs", async () => {
    const c = await connect(await proxyWith(endlessLineFor(3)), { maxLineLength: 1024 * 1024 });
    await c.mailboxOpen("INBOX");
    // imapflow reports the limit on the connection and fails the command for the lost connection.
    await assert.rejects(c.fetchOne("3", { uid: true, headers: true }, { uid: true }), { code: "NoConnection" });
    assert.deepEqual(errorsOf.get(c), ["LineTooLarge"]);

    const raw = await rawSession(await proxyWith(endlessLineFor(3, { maxBytes: 3 * 2 ** 20 })));
    const before = raw.seen.bytes;
    raw.send("a3 UID FETCH 3 (UID BODY.PEEK[HEADER])");
    await raw.closed;
    const head = '* 3 FETCH (UID 3 BODY[HEADER] "';
    assert.equal(raw.seen.bytes - before, head.length + 3 * 2 ** 20);
    assert.doesNotMatch(raw.seen.head.slice(raw.seen.head.indexOf(head)), /[\r\n]/);
    assert.equal(raw.seen.ended, true);

    const timed = await rawSession(await proxyWith(endlessLineFor(3, { maxMs: 200, bytesPerSecond: 10_000 })));
    const t = performance.now();
    timed.send("a3 UID FETCH 3 (UID BODY.PEEK[HEADER])");
    await timed.closed;
    assert.ok(performance.now() - t < 1000);
  });

  it("wrongUidFor: the reply for the asked UID names another, the rest unchanged; times limits it", async () => {
    const c = await connect(await proxyWith(wrongUidFor(2, 1000, { times: 1 })));
    await c.mailboxOpen("INBOX");
    const rows = await c.fetchAll("1:4", { uid: true, headers: true }, { uid: true });
    assert.deepEqual(uidsOf(rows), [1, 3, 4, 1000]);
    assert.deepEqual(rows.find((r) => r.uid === 1000)!.headers, directHeader2);
    assert.deepEqual(uidsOf(await c.fetchAll("2", { uid: true }, { uid: true })), [2], "acted once only");
  });

  it("unparsableBodystructureFor: imapflow leaves the message out, other FETCHes of it work, the session goes on", async () => {
    const p = await proxyWith(unparsableBodystructureFor(3));
    const c = await connect(p);
    await c.mailboxOpen("INBOX");
    assert.deepEqual(uidsOf(await c.fetchAll("1:4", { uid: true, bodyStructure: true, headers: true }, { uid: true })), [1, 2, 4]);
    const headerOnly = await got(c.fetchOne("3", { uid: true, headers: true }, { uid: true }));
    assert.match(headerOnly.headers!.toString(), /Subject: mail 3/);
    await c.noop();
    assert.equal(p.applied.filter((a) => a.rule === "unparsableBodystructureFor").length, 1);
  });

  it("nilPartFor: the part comes back NIL (numbered parts by default, or the section named)", async () => {
    const c = await connect(await proxyWith(nilPartFor(2), nilPartFor(1, { section: "TEXT" })));
    await c.mailboxOpen("INBOX");
    const parts = await got(c.fetchOne("2", { uid: true, headers: true, bodyParts: ["1", "2"] }, { uid: true }));
    assert.equal(Buffer.isBuffer(parts.bodyParts!.get("1")), false);
    assert.equal(Buffer.isBuffer(parts.bodyParts!.get("2")), false);
    assert.deepEqual(parts.headers, directHeader2, "the header is not a part");
    const text = await got(c.fetchOne("1", { uid: true, bodyParts: ["TEXT"] }, { uid: true }));
    assert.equal(Buffer.isBuffer(text.bodyParts!.get("text")), false);
    const other = await got(c.fetchOne("3", { uid: true, bodyParts: ["1"] }, { uid: true }));
    assert.equal(other.bodyParts!.get("1")!.toString().trim(), "body 3");
  });

  it("missingFromFetch: the message is left out of every FETCH answer, or only those with a matching item", async () => {
    const every = await connect(await proxyWith(missingFromFetch(3)));
    await every.mailboxOpen("INBOX");
    assert.deepEqual(uidsOf(await every.fetchAll("1:4", { uid: true, headers: true }, { uid: true })), [1, 2, 4]);

    const partsOnly = await connect(await proxyWith(missingFromFetch(2, { items: /^BODY\[1\]/ })));
    await partsOnly.mailboxOpen("INBOX");
    assert.deepEqual(uidsOf(await partsOnly.fetchAll("1:4", { uid: true, headers: true }, { uid: true })), [1, 2, 3, 4]);
    assert.deepEqual(uidsOf(await partsOnly.fetchAll("1:4", { uid: true, bodyParts: ["1"] }, { uid: true })), [1, 3, 4]);
  });

  it("renumberEachSession: each session sees another UIDVALIDITY (SELECT, STATUS, APPENDUID) with the same UIDs", async () => {
    const p = await proxyWith(renumberEachSession());
    const seen: bigint[] = [];
    for (let session = 1; session <= 2; session++) {
      const c = await connect(p);
      const box = await c.mailboxOpen("INBOX");
      seen.push(box.uidValidity);
      assert.equal((await got(c.status("Scratch", { uidValidity: true }))).uidValidity !== undefined, true);
      assert.deepEqual(uidsOf(await c.fetchAll("1:4", { uid: true }, { uid: true })), [1, 2, 3, 4]);
      const appended = await c.append("INBOX", plainMail(10 + session));
      assert.equal(appended && appended.uidValidity, uidValidity + BigInt(session), "APPENDUID is renumbered like SELECT");
      await c.messageDelete(String(appended && appended.uid), { uid: true });
    }
    assert.deepEqual(seen, [uidValidity + 1n, uidValidity + 2n]);
    const statusShift = p.applied.filter((a) => a.rule === "renumberEachSession" && /^\* STATUS/.test(a.line));
    assert.equal(statusShift.length, 2);
  });

  it("stallAfter: the matching reply arrives, then nothing more; the server is still read", async () => {
    const p = await proxyWith(stallAfter(/^\S+ OK .*Select completed/i));
    const c = await connect(p);
    await c.mailboxOpen("INBOX");
    const answer = await Promise.race([c.noop().then(() => "answered"), delay(300).then(() => "silent")]);
    assert.equal(answer, "silent");
    assert.equal(p.connections, 1, "a hung server does not close either");
  });

  it("setRules acts on open sessions; dropAll resets them", async () => {
    const p = await proxyWith();
    const c = await connect(p);
    await c.mailboxOpen("INBOX");
    p.setRules([missingFromFetch(1)]);
    assert.deepEqual(uidsOf(await c.fetchAll("1:2", { uid: true }, { uid: true })), [2]);
    const raw = await rawSession(p);
    p.dropAll();
    await raw.closed;
    assert.equal(raw.seen.error, "ECONNRESET");
    assert.equal(p.sessions, 2);
  });

  it("streams a reply larger than maxBufferedReply intact; rules see its head and can still drop it", async () => {
    const body = `${"0123456789abcdef".repeat(63)}\r\n`.repeat(2 * 1024);
    const big = `From: a@example.com\r\nSubject: big\r\n\r\n${body}`;
    const uid = await dovecot.append("alice", "Scratch", big);
    const heads: { complete: boolean; uid: number | undefined }[] = [];
    const watch: ImapRule = { name: "watch", onReply: (r) => void (r.fetch && heads.push({ complete: r.complete, uid: r.fetch.uid })) };
    const p = await startImapProxy({ port: dovecot.imapPort, rules: [watch], maxBufferedReply: 1024 * 1024 });
    proxies.push(p);
    const c = await connect(p);
    await c.mailboxOpen("Scratch");
    const row = await got(c.fetchOne(String(uid), { uid: true, source: true }, { uid: true }));
    const sha = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");
    assert.equal(sha(row.source!), sha(big));
    assert.deepEqual(heads, [{ complete: false, uid }]);

    p.setRules([missingFromFetch(uid)]);
    assert.equal((await c.fetchAll(String(uid), { uid: true, source: true }, { uid: true })).length, 0);
    await c.noop();
  });
});
