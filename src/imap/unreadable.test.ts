import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemorySetAside, ReadFailures } from "./unreadable.ts";

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
