import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Readable } from "node:stream";
import type { ImapFlow } from "imapflow";
import { fetchBatches, fetchMessages, planWholeGroups, ReadAgainLater, wholeGroupBytes, type WholeGroup, type WholeReading } from "./fetch.ts";

/**
 * A server that answers the body FETCH with NIL parts, as some do for an empty part and Dovecot does
 * for mail another session expunged meanwhile. Only what readBatch() calls is here; `present` is
 * what a UID SEARCH finds after the NOOP.
 */
function nilServer(present: number[]): { client: ImapFlow; calls: string[] } {
  const calls: string[] = [];
  const header = (uid: number): Buffer => Buffer.from(`From: shop@example.com\r\nSubject: mail ${uid}\r\n\r\n`);
  const client = {
    async fetchAll(range: string, query: { bodyParts?: (string | { key: string })[] }) {
      const keys = (query.bodyParts ?? []).map((k) => (typeof k === "string" ? k : k.key));
      const headers = keys.includes("HEADER");
      calls.push(headers ? `FETCH header ${range}` : `FETCH text ${range}`);
      const uids = range.split(",").map(Number);
      if (headers) {
        return uids.map((uid) => ({ uid, internalDate: new Date(0), size: 100, headers: header(uid), bodyStructure: { type: "text/plain", parameters: { charset: "utf-8" }, encoding: "7bit", size: 20 } }));
      }
      // UID 1 has its text; UIDs 2 and 3 come back NIL; UID 4 does not come back at all.
      return uids.filter((uid) => uid !== 4).map((uid) => ({ uid, bodyParts: new Map(keys.map((key) => [key, uid === 1 ? Buffer.from("Total: $5\r\n") : null])) }));
    },
    async noop() {
      calls.push("NOOP");
    },
    async search(query: { uid: string }) {
      calls.push(`SEARCH ${query.uid}`);
      return query.uid.split(",").map(Number).filter((uid) => present.includes(uid));
    },
  };
  return { client: client as unknown as ImapFlow, calls };
}

describe("fetchMessages when text parts come back NIL", () => {
  it("asks whether the mail still exists: what is gone is left out and reported, what is there is read with the part empty", async () => {
    const { client, calls } = nilServer([1, 3, 4]);
    const gone: number[] = [];
    const fetched = [];
    for await (const m of fetchMessages(client, [1, 2, 3, 4], { maxTextBytes: 4096, onGone: (uids) => gone.push(...uids) })) fetched.push(m);
    assert.deepEqual(gone, [2]);
    assert.deepEqual(
      fetched.map((m) => [m.uid, m.mail.subject, m.mail.text.trim(), m.mail.warnings]),
      [
        [1, "mail 1", "Total: $5", []],
        [3, "mail 3", "", []],
        [4, "mail 4", "", ["text part 1 was not returned by the server; left out"]],
      ],
    );
    assert.deepEqual(calls, ["FETCH header 1,2,3,4", "FETCH text 1,2,3,4", "NOOP", "SEARCH 2,3,4"]);
  });

  it("asks nothing more when every part came back", async () => {
    const { client, calls } = nilServer([]);
    for await (const m of fetchMessages(client, [1], { maxTextBytes: 4096 })) assert.equal(m.mail.text.trim(), "Total: $5");
    assert.deepEqual(calls, ["FETCH header 1", "FETCH text 1"]);
  });
});

/**
 * Mail 1..n, each a multipart/alternative of a plain part ("1") and HTML ("2"). The plain part of
 * the UIDs in `short` says "view in a browser"; every HTML part has the amount.
 */
function alternativeServer(short: number[]): { client: ImapFlow; calls: string[] } {
  const calls: string[] = [];
  const header = (uid: number): Buffer => Buffer.from(`From: shop@example.com\r\nSubject: mail ${uid}\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n`);
  const leaf = (type: string, part: string) => ({ type, part, parameters: { charset: "utf-8" }, encoding: "7bit", size: 40 });
  const structure = { type: "multipart/alternative", parameters: { boundary: "b" }, childNodes: [leaf("text/plain", "1"), leaf("text/html", "2")] };
  const client = {
    async fetchAll(range: string, query: { bodyParts?: (string | { key: string })[] }) {
      const keys = (query.bodyParts ?? []).map((k) => (typeof k === "string" ? k : k.key));
      calls.push(`FETCH ${keys.join(" ")} ${range}`);
      const uids = range.split(",").map(Number);
      if (keys.includes("HEADER")) return uids.map((uid) => ({ uid, internalDate: new Date(0), size: 100, headers: header(uid), bodyStructure: structure }));
      const body = (uid: number, key: string): Buffer => Buffer.from(key === "2" ? `<table><tr><td>Total</td><td>$${uid}.00</td></tr></table>` : short.includes(uid) ? "View this mail in a browser\r\n" : `Total $${uid}.50\r\n`);
      return uids.map((uid) => ({ uid, bodyParts: new Map(keys.map((key) => [key, body(uid, key)])) }));
    },
  };
  return { client: client as unknown as ImapFlow, calls };
}

describe("fetchMessages: an HTML alternative only when needed", () => {
  const wantsAmount = (mail: { text: string }): boolean => !/Total/.test(mail.text);

  it("fetches the HTML parts of the mail needsHtml says yes to, in one more FETCH for those alone", async () => {
    const { client, calls } = alternativeServer([2, 4]);
    const asked: number[] = [];
    const fetched = [];
    for await (const m of fetchMessages(client, [1, 2, 3, 4], { maxTextBytes: 4096, needsHtml: (mail, { uid }) => (asked.push(uid), wantsAmount(mail)) })) fetched.push(m);
    assert.deepEqual(calls, ["FETCH HEADER 1,2,3,4", "FETCH 1 1,2,3,4", "FETCH 2 2,4"]);
    assert.deepEqual(asked, [1, 2, 3, 4]);
    assert.deepEqual(
      fetched.map((m) => [m.uid, m.mail.text.trim(), m.mail.html]),
      [
        [1, "Total $1.50", undefined],
        [2, "View this mail in a browser", "<table><tr><td>Total</td><td>$2.00</td></tr></table>"],
        [3, "Total $3.50", undefined],
        [4, "View this mail in a browser", "<table><tr><td>Total</td><td>$4.00</td></tr></table>"],
      ],
    );
  });

  it("costs what it did when no mail needs its HTML, or nothing asks", async () => {
    for (const needsHtml of [() => false, undefined]) {
      const { client, calls } = alternativeServer([1, 2]);
      for await (const m of fetchMessages(client, [1, 2], { maxTextBytes: 4096, ...(needsHtml ? { needsHtml } : {}) })) assert.equal(m.mail.html, undefined);
      assert.deepEqual(calls, ["FETCH HEADER 1,2", "FETCH 1 1,2"]);
    }
  });

  it("never asks about mail whose body was not read", async () => {
    const { client, calls } = alternativeServer([1]);
    let asked = 0;
    for await (const m of fetchMessages(client, [1], { maxTextBytes: 4096, needsBody: () => false, needsHtml: () => (asked++, true) })) assert.equal(m.bodyRead, false);
    assert.equal(asked, 0);
    assert.deepEqual(calls, ["FETCH HEADER 1"]);
  });
});

/**
 * Mail 1..n of the given sizes (RFC822.SIZE), text/plain. Whole mail comes back from FETCH
 * BODY.PEEK[]<0.n> as the server has it, except: `cut` comes back cut at n (its size was a lie),
 * `nil` not at all; download() streams any of them.
 */
function wholeServer(sizes: number[], odd: { cut?: number; nil?: number } = {}): { client: ImapFlow; calls: string[] } {
  const calls: string[] = [];
  const source = (uid: number): Buffer => {
    const head = `From: shop@example.com\r\nSubject: mail ${uid}\r\n\r\n`;
    return Buffer.from(head + "x".repeat(Math.max(0, sizes[uid - 1]! - head.length)));
  };
  const client = {
    async fetchAll(range: string, query: { bodyParts?: (string | { key: string })[]; source?: { maxLength: number } }) {
      const uids = range.split(",").map(Number);
      if (query.source) {
        calls.push(`FETCH BODY[]<0.${query.source.maxLength}> ${range}`);
        return uids.filter((uid) => uid !== odd.nil).map((uid) => ({ uid, source: uid === odd.cut ? Buffer.alloc(query.source!.maxLength, 120) : source(uid).subarray(0, query.source!.maxLength) }));
      }
      calls.push(`FETCH HEADER ${range}`);
      return uids.map((uid) => ({ uid, internalDate: new Date(0), size: sizes[uid - 1], headers: source(uid).subarray(0, source(uid).indexOf("\r\n\r\n") + 4) }));
    },
    async download(uid: string) {
      calls.push(`DOWNLOAD ${uid}`);
      return { content: Readable.from([source(Number(uid))]) };
    },
  };
  return { client: client as unknown as ImapFlow, calls };
}

describe("fetchMessages: mail read whole (DKIM)", () => {
  /** A WholeReading that says which mail it was handed, whole: its Subject and its length. */
  const reader = (seen: string[], later?: number): WholeReading => ({
    wanted: () => true,
    async read(content) {
      const bytes = Buffer.isBuffer(content) ? content : Buffer.concat(await content.toArray());
      const subject = /Subject: (.*)\r\n/.exec(bytes.toString())![1]!;
      if (subject === `mail ${later}`) throw new ReadAgainLater("DNS down");
      seen.push(`${subject}: ${bytes.length}`);
      return [{ domain: "shop.example", result: "pass", aligned: true }];
    },
  });
  const big = 300 * 1024;

  it("small mail in one FETCH for many; over one piece, cut short by the server, or left out: streamed", async () => {
    const { client, calls } = wholeServer([1000, 2000, big, 1000, 1000, 3000], { cut: 4, nil: 5 });
    const seen: string[] = [];
    const read = [];
    for await (const m of fetchMessages(client, [1, 2, 3, 4, 5, 6], { maxTextBytes: 4096, whole: reader(seen) })) read.push(m.uid);
    assert.deepEqual(read, [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(seen, ["mail 1: 1000", "mail 2: 2000", `mail 3: ${big}`, "mail 4: 1000", "mail 5: 1000", "mail 6: 3000"]);
    assert.deepEqual(calls, ["FETCH HEADER 1,2,3,4,5,6", `FETCH BODY[]<0.${3000 + 375 + 1024}> 1,2,4,5,6`, "DOWNLOAD 3", "DOWNLOAD 4", "DOWNLOAD 5"]);
  });

  it("groups asking at most 2 MiB; the next asked for while this one is read; a mail waiting for DNS ends the round", async () => {
    const sizes = Array.from({ length: 15 }, () => 200 * 1024);
    const { client, calls } = wholeServer(sizes);
    const seen: string[] = [];
    const round = [];
    for await (const batch of fetchBatches(client, sizes.map((_, i) => i + 1), { maxTextBytes: 4096, whole: reader(seen, 4) })) round.push(batch);
    // 200 KiB stated, asked up to 225 KiB + 1 KiB each: 9 a FETCH.
    const partial = 200 * 1024 + 25 * 1024 + 1024;
    assert.deepEqual(calls.slice(1), [`FETCH BODY[]<0.${partial}> 1,2,3,4,5,6,7,8,9`, `FETCH BODY[]<0.${partial}> 10,11,12,13,14,15`]);
    assert.deepEqual(round[0]!.mails.map((m) => m.uid), [1, 2, 3]);
    assert.deepEqual(round[0]!.unread, [{ uid: 4, reason: "DNS down", checkLater: true }]);
  });
});

describe("planWholeGroups", () => {
  const chunk = 256 * 1024;
  const asked = (groups: WholeGroup[]) => groups.map((g) => g.uids.length * g.partial);

  it("bounds what a group asks for by the budget, whatever sizes the server states", () => {
    // A server that says every mail is 100 bytes: each is asked for up to 1137 bytes, never a piece.
    const lying = Array.from({ length: 5000 }, (_, i) => ({ uid: i + 1, size: 100 }));
    const groups = planWholeGroups(lying, chunk);
    assert.deepEqual(new Set(groups.map((g) => g.partial)), new Set([1137]));
    assert.ok(asked(groups).every((bytes) => bytes <= wholeGroupBytes));
    assert.deepEqual(groups.flatMap((g) => g.uids), lying.map((m) => m.uid), "each mail in one group, in UID order");
  });

  it("one bigger mail narrows the group it joins; mail of a piece or more, or without a size, is streamed", () => {
    const mails = [{ uid: 1, size: 100 }, { uid: 2, size: 200_000 }, ...Array.from({ length: 20 }, (_, i) => ({ uid: i + 3, size: 100 })), { uid: 30, size: chunk }, { uid: 31, size: 0 }];
    const groups = planWholeGroups(mails, chunk);
    assert.ok(asked(groups).every((bytes) => bytes <= wholeGroupBytes), JSON.stringify(asked(groups)));
    assert.deepEqual(groups[0], { uids: [1, 2, 3, 4, 5, 6, 7, 8, 9], partial: 200_000 + 25_000 + 1024 });
    assert.deepEqual(groups.flatMap((g) => g.uids), mails.slice(0, 22).map((m) => m.uid));
  });

  it("a mail asked for over the budget is streamed, even where a piece is bigger (maxTextBytes up to 16 MiB)", () => {
    const bigChunk = 8 * 1024 * 1024;
    const mails = [{ uid: 1, size: 100 }, { uid: 2, size: 4_000_000 }, { uid: 3, size: 1_900_000 }, { uid: 4, size: 100 }];
    const groups = planWholeGroups(mails, bigChunk);
    assert.ok(asked(groups).every((bytes) => bytes <= wholeGroupBytes), JSON.stringify(asked(groups)));
    assert.deepEqual(groups.flatMap((g) => g.uids), [1, 4], "the 4 MB mail, and the 1.9 MB one asked for 2.14 MB (over 2 MiB), are streamed");
  });
});

