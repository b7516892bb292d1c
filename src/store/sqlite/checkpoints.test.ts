import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InternalError } from "../../errors.ts";
import { MemoryCheckpoints } from "../../imap/checkpoints.ts";
import { State } from "./state.ts";

describe("checkpoints refuse values that are not UIDs", () => {
  for (const [uidValidity, lastUid] of [[1, Number.NaN], [Number.NaN, 5], [0, 5], [1, -1], [1, 2 ** 32], [1, 1.5]] as const) {
    it(`(${uidValidity}, ${lastUid}) is a bug, reported, not stored`, () => {
      const state = State.open(":memory:");
      for (const store of [state.checkpoints, new MemoryCheckpoints()]) {
        assert.throws(() => store.save("a", "INBOX", { uidValidity, lastUid }), (err: unknown) => err instanceof InternalError && /refused to save checkpoint/.test(err.message));
        assert.equal(store.load("a", "INBOX"), undefined);
      }
      state.close();
    });
  }
});
