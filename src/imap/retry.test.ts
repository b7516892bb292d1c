import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ImapFlow } from "imapflow";
import { watchContext } from "./context.ts";
import { retriesAsked, retrySetAside, retryWaiting } from "./retry.ts";
import type { WatchedMail } from "./types.ts";
import type { SetAsideMail, SetAsideStore } from "./unreadable.ts";

/** A set-aside store that says which UIDs a person asked for and notes every call. */
function store(asked: number[]): SetAsideStore & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    record: (_a: string, _m: string, mail: SetAsideMail) => void calls.push(`record ${mail.uid} attempts ${mail.attempts}`),
    retryRequested: (_a: string, _m: string, uidValidity: number) => (uidValidity === 7 ? asked : []),
    retryTaken: (_a: string, _m: string, _v: number, uids: readonly number[]) => void calls.push(`taken ${[...uids].sort((x, y) => x - y).join(",")}`),
    resolved: (_a: string, _m: string, _v: number, uid: number) => void calls.push(`resolved ${uid}`),
  };
}

/**
 * A stand-in for the three commands a header-only read sends: FETCH answers for the mail `present`
 * and not `broken`; the NOOP and UID SEARCH after a FETCH that left mail out find what is `present`.
 */
function server(present: number[], broken: number[]): ImapFlow {
  return {
    async fetchAll(range: string) {
      const uids = range.split(",").map(Number);
      return uids.filter((uid) => present.includes(uid) && !broken.includes(uid)).map((uid) => ({ uid, internalDate: new Date(0), size: 10, headers: Buffer.from(`Subject: mail ${uid}\r\n\r\n`) }));
    },
    async noop() {},
    async search(query: { uid: string }) {
      return query.uid.split(",").map(Number).filter((uid) => present.includes(uid));
    },
  } as unknown as ImapFlow;
}

describe("retriesAsked / retryWaiting", () => {
  const w = (asked: number[]) => watchContext({ account: { host: "127.0.0.1", user: "u" }, mailbox: "INBOX", setAside: store(asked) });
  it("asks only for mail at or below the checkpoint: one above it is read by the normal round", async () => {
    assert.deepEqual(await retriesAsked(w([3, 12, 10]), 7, 10), [3, 10]);
  });
  it("waiting: any request under this UIDVALIDITY", async () => {
    assert.equal(await retryWaiting(w([12]), 7), true);
    assert.equal(await retryWaiting(w([12]), 8), false);
  });
});

describe("retrySetAside", () => {
  it("hands over what it reads with the current checkpoint; records what fails again; resolves what is gone", async () => {
    const s = store([]);
    const w = watchContext({ account: { host: "127.0.0.1", user: "u" }, mailbox: "INBOX", setAside: s });
    const batches: WatchedMail[][] = [];
    for await (const batch of retrySetAside(w, server([3, 7], [7]), [7, 5, 3], { uidValidity: 7, lastUid: 10 })) batches.push(batch);
    assert.deepEqual(
      batches.map((b) => b.map((m) => [m.uid, m.mail.subject, m.checkpoint])),
      [[[3, "mail 3", { uidValidity: 7, lastUid: 10 }]]],
    );
    // Taken before anything is read: a mail that breaks the connection is not retried by every new session.
    assert.deepEqual(s.calls, ["taken 3,5,7", "resolved 3", "record 7 attempts 1", "resolved 5"]);
  });
});
