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
