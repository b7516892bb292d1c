import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ImapFlow } from "imapflow";
import { fetchMessages } from "./fetch.ts";

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
