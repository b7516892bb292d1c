import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ServerReplyError } from "../errors.ts";
import { isUid, lastUidOf, uidValidityOf, type EndProbe, type OpenedMailbox } from "./mailbox-end.ts";

const where = { account: "a", mailbox: "INBOX" };

/** A stand-in for the two commands: what STATUS and UID FETCH * answer, and which were asked. */
function probe(answers: { statusUidNext?: number; lastUid?: number }): EndProbe & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    status: (async () => {
      asked.push("STATUS");
      return answers.statusUidNext === undefined ? { path: "INBOX" } : { path: "INBOX", uidNext: answers.statusUidNext };
    }) as unknown as EndProbe["status"],
    fetchOne: (async () => {
      asked.push("FETCH *");
      return answers.lastUid === undefined ? false : { seq: 3, uid: answers.lastUid };
    }) as unknown as EndProbe["fetchOne"],
  };
}

const opened = (o: Partial<OpenedMailbox>): OpenedMailbox => ({ path: "INBOX", uidValidity: 7n, uidNext: 11, exists: 3, ...o }) as OpenedMailbox;

describe("lastUidOf", () => {
  const cases: { name: string; opened: OpenedMailbox; answers: { statusUidNext?: number; lastUid?: number }; last: number; asked: string[] }[] = [
    { name: "UIDNEXT from EXAMINE, nothing asked", opened: opened({}), answers: {}, last: 10, asked: [] },
    { name: "no UIDNEXT (Courier): STATUS tells", opened: opened({ uidNext: undefined as unknown as number }), answers: { statusUidNext: 20 }, last: 19, asked: ["STATUS"] },
    { name: "UIDNEXT NaN: STATUS tells", opened: opened({ uidNext: Number.NaN }), answers: { statusUidNext: 5 }, last: 4, asked: ["STATUS"] },
    { name: "neither: the last message's UID", opened: opened({ uidNext: undefined as unknown as number }), answers: { lastUid: 42 }, last: 42, asked: ["STATUS", "FETCH *"] },
    { name: "an empty mailbox without UIDNEXT starts at 0", opened: opened({ uidNext: undefined as unknown as number, exists: 0 }), answers: {}, last: 0, asked: [] },
    { name: "UIDNEXT 1 in an empty mailbox", opened: opened({ uidNext: 1, exists: 0 }), answers: {}, last: 0, asked: [] },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const p = probe(c.answers);
      assert.equal(await lastUidOf(p, c.opened, where), c.last);
      assert.deepEqual(p.asked, c.asked);
    });
  }

  it("fails loudly, naming the mailbox, when nothing tells the end of a non-empty mailbox", async () => {
    await assert.rejects(lastUidOf(probe({}), opened({ uidNext: undefined as unknown as number }), where), (err: unknown) => {
      assert.ok(err instanceof ServerReplyError);
      assert.equal(err.code, "IMAP_SERVER");
      assert.match(err.message, /mailbox "INBOX" holds 3 messages, but the server told its next UID neither/);
      return true;
    });
  });
});

describe("uidValidityOf", () => {
  it("takes the bigint imapflow hands over", () => assert.equal(uidValidityOf(opened({ uidValidity: 1234n }), where), 1234));
  for (const bad of [undefined, 0n, Number.NaN, -1, 2 ** 32]) {
    it(`refuses ${String(bad)}`, () => assert.throws(() => uidValidityOf(opened({ uidValidity: bad as unknown as bigint }), where), /no usable UIDVALIDITY/));
  }
});

describe("isUid", () => {
  it("is a 32-bit unsigned integer", () => {
    assert.deepEqual([0, 1, 0xffffffff, -1, 1.5, Number.NaN, 2 ** 32, "3"].map(isUid), [true, true, true, false, false, false, false, false]);
  });
});
