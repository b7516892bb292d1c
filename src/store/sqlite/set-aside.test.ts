import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { State } from "./state.ts";

describe("SqliteSetAside", () => {
  it("records, lists, takes retry requests and resolves", () => {
    const state = State.open(":memory:");
    try {
      const s = state.setAside;
      state.checkpoints.save("a", "INBOX", { uidValidity: 7, lastUid: 20 });
      state.checkpoints.save("a", "Archive", { uidValidity: 9, lastUid: 20 });
      // Set aside before the mailbox was renumbered: listed, but its UID names nothing now.
      s.record("a", "INBOX", { uidValidity: 6, uid: 12, reason: "old", attempts: 3 });
      s.record("a", "INBOX", { uidValidity: 7, uid: 12, reason: "Literal size 2147483648 exceeds maximum", attempts: 3 });
      s.record("a", "Archive", { uidValidity: 9, uid: 12, reason: "NO", attempts: 3 });
      assert.deepEqual(
        s.list().map((r) => [r.account, r.mailbox, r.uidValidity, r.uid, r.attempts, r.retryRequested, r.current]),
        [
          ["a", "Archive", 9, 12, 3, false, true],
          ["a", "INBOX", 6, 12, 3, false, false],
          ["a", "INBOX", 7, 12, 3, false, true],
        ],
      );
      assert.deepEqual(s.retryRequested("a", "INBOX", 7), []);
      assert.equal(s.requestRetry({ account: "a", mailbox: "INBOX", uid: 12 }), 1, "only the current UIDVALIDITY's");
      assert.deepEqual(s.retryRequested("a", "INBOX", 7), [12]);
      assert.deepEqual(s.retryRequested("a", "INBOX", 8), [], "another UIDVALIDITY names other mail");
      s.retryTaken("a", "INBOX", 7, [12]);
      assert.deepEqual(s.retryRequested("a", "INBOX", 7), [], "taken: not asked again by the next session");
      s.requestRetry({ account: "a", mailbox: "INBOX", uid: 12 });
      // The retry failed again: attempts add up, the request is done.
      s.record("a", "INBOX", { uidValidity: 7, uid: 12, reason: "still broken", attempts: 1 });
      const again = s.list().find((r) => r.mailbox === "INBOX" && r.current)!;
      assert.deepEqual([again.attempts, again.reason, again.retryRequested], [4, "still broken", false]);
      assert.equal(s.requestRetry("all"), 2);
      s.resolved("a", "INBOX", 7, 12);
      assert.deepEqual(s.list().map((r) => [r.mailbox, r.uidValidity]), [["Archive", 9], ["INBOX", 6]]);
    } finally {
      state.close();
    }
  });
});
