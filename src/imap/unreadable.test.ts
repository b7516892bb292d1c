import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { blameRead, MemorySetAside, narrowingWindow, ReadFailures, type Reading } from "./unreadable.ts";

describe("ReadFailures", () => {
  it("counts failed reads per UID and says when a mail has used up its attempts", () => {
    const f = new ReadFailures(3);
    f.under(7);
    assert.equal(f.failed(5, "NO"), false);
    assert.equal(f.failed(5, "connection closed"), false);
    assert.equal(f.failed(6, "NO"), false);
    assert.equal(f.exhausted(5), undefined);
    assert.equal(f.failed(5, "LiteralTooLarge"), true);
    assert.deepEqual(f.exhausted(5), { attempts: 3, reason: "LiteralTooLarge" });
    assert.equal(f.attempts(6), 1);
  });

  it("forgets a mail read after all, and every count after a renumbering", () => {
    const f = new ReadFailures(2);
    f.under(1);
    f.failed(5, "x");
    f.forget(5);
    assert.equal(f.failed(5, "x"), false, "starts again from one");
    f.under(1);
    assert.equal(f.attempts(5), 1, "same UIDVALIDITY keeps the count");
    f.under(2);
    assert.equal(f.attempts(5), 0);
  });

  it("refuses fewer than one attempt", () => {
    assert.throws(() => new ReadFailures(0), /maxReadAttempts must be a whole number of at least 1, got 0/);
  });
});

describe("MemorySetAside", () => {
  it("records and resolves; asks for no retries", () => {
    const s = new MemorySetAside();
    s.record("a", "INBOX", { uidValidity: 1, uid: 9, reason: "r", attempts: 3 });
    assert.equal(s.mails.size, 1);
    assert.deepEqual(s.retryRequested(), []);
    s.resolved("a", "INBOX", 1, 9);
    assert.equal(s.mails.size, 0);
  });
});

describe("blameRead", () => {
  const uids = Array.from({ length: 400 }, (_, i) => i + 1);
  const cases: { name: string; reading: Reading; err?: string; bye?: string; blamed?: number; narrowing: boolean; said?: RegExp }[] = [
    { name: "a batch broke: none blamed yet, the next session reads one at a time", reading: { uids, narrowing: false, after: 0 }, narrowing: true, said: /reading one mail at a time/ },
    { name: "one at a time: the mail in flight is blamed", reading: { uids, narrowing: true, after: 4 }, blamed: 5, narrowing: false, said: /broke while reading this mail/ },
    { name: "past the narrowing window several were in flight again", reading: { uids, narrowing: true, after: narrowingWindow }, narrowing: true },
    { name: "all of it handed over: nothing to blame", reading: { uids: [1, 2], narrowing: true, after: 2 }, narrowing: false },
    { name: "a BYE blames no mail", reading: { uids, narrowing: true, after: 0 }, bye: "shutting down", narrowing: true, said: /ended the session for all mail/ },
    { name: "a BYE while reading in batches does not start narrowing", reading: { uids, narrowing: false, after: 0 }, bye: "shutting down", narrowing: false },
    { name: "NO [UNAVAILABLE] blames no mail", reading: { uids, narrowing: true, after: 0 }, err: "NO [UNAVAILABLE] try later", narrowing: true, said: /no mail is blamed/ },
    { name: "NO [LIMIT] blames no mail", reading: { uids, narrowing: true, after: 0 }, err: "NO [LIMIT] too many", narrowing: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const f = new ReadFailures(3);
      f.under(1);
      const said: string[] = [];
      blameRead(f, c.reading, { message: c.err ?? "Connection closed" }, c.bye, { warn: (_: object, msg?: string) => void said.push(msg ?? "") });
      const blamed = uids.filter((uid) => f.attempts(uid) > 0);
      assert.deepEqual(blamed, c.blamed === undefined ? [] : [c.blamed]);
      assert.equal(f.narrowing, c.narrowing);
      if (c.said) assert.match(said.join("\n"), c.said);
    });
  }
});
