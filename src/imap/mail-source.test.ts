import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ImapFlow } from "imapflow";
import { StateError } from "../errors.ts";
import { silentLogger } from "../log.ts";
import type { FetchedMessage } from "./fetch.ts";
import { describeUids, exhaustedFirst, MailSource, readyBefore, retryDelayMs } from "./mail-source.ts";
import { ReaderConnection } from "./reader.ts";
import { ReadFailures } from "./unreadable.ts";

/** UIDs 5 and 9 used up their attempts; 7 was set aside earlier. */
function failures(): ReadFailures {
  const f = new ReadFailures(2);
  f.under(1);
  for (const uid of [5, 9, 7]) for (let i = 0; i < 2; i++) f.failed(uid, `bad ${uid}`);
  f.markSetAside(7);
  f.failed(6, "once");
  return f;
}

describe("exhaustedFirst", () => {
  const cases: { name: string; uids: number[]; resync: boolean; setAside: number[]; read: number[] }[] = [
    { name: "nothing exhausted: read all", uids: [1, 2, 3], resync: false, setAside: [], read: [1, 2, 3] },
    { name: "new mail: the exhausted head is set aside", uids: [5, 6, 8], resync: false, setAside: [5], read: [6, 8] },
    { name: "new mail: one in the middle is not (the checkpoint cannot pass mail still to read)", uids: [6, 8, 9], resync: false, setAside: [], read: [6, 8, 9] },
    { name: "new mail: a run at the head", uids: [5, 9, 10], resync: false, setAside: [5, 9], read: [10] },
    { name: "a resync: anywhere, and mail set aside earlier left out", uids: [4, 5, 6, 7, 8, 9], resync: true, setAside: [5, 9], read: [4, 6, 8] },
    { name: "none listed", uids: [], resync: false, setAside: [], read: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = exhaustedFirst(c.uids, failures(), c.resync);
      assert.deepEqual(got.read, c.read);
      assert.deepEqual(got.setAside.map((s) => s.uid), c.setAside);
      for (const s of got.setAside) assert.deepEqual(s, { uid: s.uid, attempts: 2, reason: `bad ${s.uid}` });
    });
  }
});

describe("readyBefore", () => {
  const mails = [3, 4, 6].map((uid) => ({ uid }) as FetchedMessage);
  const cases: { stoppedAt?: number; ready: number[] }[] = [{ ready: [3, 4, 6] }, { stoppedAt: 5, ready: [3, 4] }, { stoppedAt: 3, ready: [] }];
  for (const c of cases) {
    it(`stopped at ${c.stoppedAt ?? "none"}: ${c.ready.join(",") || "nothing"}`, () => {
      assert.deepEqual(readyBefore(mails, c.stoppedAt === undefined ? undefined : { uid: c.stoppedAt, reason: "NO" }).map((m) => m.uid), c.ready);
    });
  }
});

describe("retryDelayMs", () => {
  it("1 s, doubling, at most 30 s", () => assert.deepEqual([1, 2, 3, 5, 6, 20].map((n) => retryDelayMs(n)), [1000, 2000, 4000, 16_000, 30_000, 30_000]));
  it("for a check that could not be made yet: 15 s, doubling, at most 2 min", () => assert.deepEqual([1, 2, 3, 4, 9].map((n) => retryDelayMs(n, true)), [15_000, 30_000, 60_000, 120_000, 120_000]));
});

describe("describeUids", () => {
  it("says none, one, or a range", () => assert.deepEqual([[], [4], [4, 5, 9]].map(describeUids), ["none", "4", "3 UIDs from 4 to 9"]));
});

/** A stand-in connection: what a view of the mailbox holds, NOOPs counted, and whether it is usable. */
function conn(exists: number, o: { afterNoop?: number } = {}) {
  const c = { mailbox: { exists }, usable: true, noops: 0, closed: false };
  return Object.assign(c, {
    async noop() {
      c.noops++;
      if (o.afterNoop !== undefined) c.mailbox.exists = o.afterNoop;
    },
    close() {
      c.closed = true;
    },
    async logout() {},
  });
}
const as = (c: object) => c as unknown as ImapFlow;

describe("MailSource", () => {
  it("reads on the watching connection unless it idles with mail announced", async () => {
    const watching = as(conn(3));
    const reader = as(conn(3));
    const source = new MailSource(watching, new ReaderConnection(async () => reader, 60_000), silentLogger);
    assert.equal(await source.pick(false), watching, "not idling");
    source.watchingIdles = true;
    assert.equal(await source.pick(true), watching, "a resync reads on the watching connection");
    assert.equal(source.watchingIdles, false, "any command ends IDLE");
    source.watchingIdles = true;
    assert.equal(await source.pick(false), reader);
    source.release(reader);
    source.close();
  });

  it("without a reader connection, always the watching one", async () => {
    const watching = as(conn(3));
    const source = new MailSource(watching, undefined, silentLogger);
    source.watchingIdles = true;
    assert.equal(await source.pick(false), watching);
  });

  it("a reader behind the watching connection after its NOOP is not read on", async () => {
    const source = new MailSource(as(conn(5)), undefined, silentLogger);
    source.watchingIdles = true;
    const behind = conn(3, { afterNoop: 4 });
    assert.equal(await source.readerView(as(behind)), undefined);
    assert.equal(behind.noops, 1, "a NOOP first: the server adds new mail to a session's view at commands like NOOP");
    assert.equal(source.watchingIdles, false, "the next round reads on the watching connection");
    assert.equal(await source.readerView(as(conn(3, { afterNoop: 6 }))), 6);
  });

  it("mail the reader heard of while it read is looked for at once", () => {
    const watching = as(conn(5));
    const source = new MailSource(watching, undefined, silentLogger);
    assert.equal(source.readerHeardMore(as(conn(6)), 5), true);
    assert.equal(source.readerHeardMore(as(conn(5)), 5), false);
    assert.equal(source.readerHeardMore(watching, 0), false, "the watching connection hears of its own mail");
  });

  it("a reader that cannot be opened is given up: the watching connection reads", async () => {
    const watching = as(conn(3));
    let opens = 0;
    const source = new MailSource(
      watching,
      new ReaderConnection(async () => {
        opens++;
        throw new Error("ECONNREFUSED");
      }, 60_000),
      silentLogger,
    );
    source.watchingIdles = true;
    assert.equal(await source.pick(false), watching);
    source.watchingIdles = true;
    assert.equal(await source.pick(false), watching);
    assert.equal(opens, 1, "not tried again in this session");
  });

  it("our own failure on the reader is not taken for connection trouble", () => {
    const source = new MailSource(as(conn(3)), undefined, silentLogger);
    assert.throws(() => source.readerFailed(new StateError("disk full"), "read"), StateError);
  });
});
