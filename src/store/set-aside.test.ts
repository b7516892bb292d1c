import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { State } from "./state.ts";

describe("SqliteSetAside", () => {
  it("records, lists, takes retry requests and resolves", () => {
    const state = State.open(":memory:");
    try {
      const s = state.setAside;
      s.record("a", "INBOX", { uidValidity: 7, uid: 12, reason: "Literal size 2147483648 exceeds maximum", attempts: 3 });
      s.record("a", "Archive", { uidValidity: 9, uid: 12, reason: "NO", attempts: 3 });
      assert.deepEqual(
        s.list().map((r) => [r.account, r.mailbox, r.uidValidity, r.uid, r.attempts, r.retryRequested]),
        [
          ["a", "Archive", 9, 12, 3, false],
          ["a", "INBOX", 7, 12, 3, false],
        ],
      );
      assert.deepEqual(s.retryRequested("a", "INBOX", 7), []);
      assert.equal(s.requestRetry({ account: "a", mailbox: "INBOX", uid: 12 }), 1);
      assert.deepEqual(s.retryRequested("a", "INBOX", 7), [12]);
      assert.deepEqual(s.retryRequested("a", "INBOX", 8), [], "another UIDVALIDITY names other mail");
      s.retryTaken("a", "INBOX", 7, [12]);
      assert.deepEqual(s.retryRequested("a", "INBOX", 7), [], "taken: not asked again by the next session");
      s.requestRetry({ account: "a", mailbox: "INBOX", uid: 12 });
      // The retry failed again: attempts add up, the request is done.
      s.record("a", "INBOX", { uidValidity: 7, uid: 12, reason: "still broken", attempts: 1 });
      const again = s.list().find((r) => r.mailbox === "INBOX")!;
      assert.deepEqual([again.attempts, again.reason, again.retryRequested], [4, "still broken", false]);
      assert.equal(s.requestRetry("all"), 2);
      s.resolved("a", "INBOX", 7, 12);
      assert.deepEqual(s.list().map((r) => r.mailbox), ["Archive"]);
    } finally {
      state.close();
    }
  });
});
