import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InternalError, StateError } from "../errors.ts";
import { MemoryCheckpoints } from "./checkpoints.ts";
import { bugIfThrows, checkpointStep, ours } from "./ours.ts";

describe("ours", () => {
  it("passes a result through", async () => assert.equal(await ours("load", () => 3), 3));
  it("turns a store's failure into a StateError naming the step and the fix", async () => {
    await assert.rejects(
      ours("save the checkpoint", () => {
        throw new Error("SQLITE_FULL");
      }),
      (err: unknown) => err instanceof StateError && /could not save the checkpoint in the state database: SQLITE_FULL\. Check that the disk is not full/.test(err.message),
    );
  });
  it("leaves our own typed errors as they are", async () => {
    const own = new StateError("already ours");
    await assert.rejects(ours("x", () => Promise.reject(own)), (err: unknown) => err === own);
  });
});

describe("checkpointStep", () => {
  class MyStore extends MemoryCheckpoints {}
  const where = { account: "me", mailbox: "INBOX" };
  const cases: { name: string; step: () => unknown }[] = [
    { name: "a throw", step: () => { throw new Error("SQLITE_BUSY"); } },
    { name: "a rejection", step: () => Promise.reject(new Error("SQLITE_BUSY")) },
  ];
  for (const c of cases) {
    it(`turns ${c.name} of the store into a StateError naming the store, the mailbox and the cause`, async () => {
      await assert.rejects(checkpointStep(new MyStore(), "load the checkpoint", where, c.step), (err: unknown) => {
        assert.ok(err instanceof StateError);
        assert.equal(err.store, "MyStore");
        assert.equal((err.cause as Error).message, "SQLITE_BUSY");
        assert.match(err.message, /^could not load the checkpoint for account "me" mailbox "INBOX": the checkpoint store \(MyStore\) failed: SQLITE_BUSY\. The watcher has stopped/);
        return true;
      });
    });
  }
  it('names a plain object store "Object"', async () => {
    const plain = { load: () => undefined, save: () => undefined };
    await assert.rejects(checkpointStep(plain, "save the checkpoint", where, () => { throw new Error("x"); }), (err: unknown) => err instanceof StateError && err.store === "Object");
  });
  it("passes results and our own typed errors through", async () => {
    assert.equal(await checkpointStep(new MyStore(), "load", where, () => 3), 3);
    const own = new StateError("already ours");
    await assert.rejects(checkpointStep(new MyStore(), "load", where, () => Promise.reject(own)), (err: unknown) => err === own);
  });
});

describe("bugIfThrows", () => {
  const cases: { name: string; fn: () => unknown }[] = [
    { name: "a throw", fn: () => { throw new Error("boom"); } },
    { name: "a rejection", fn: () => Promise.reject(new Error("boom")) },
  ];
  for (const c of cases) {
    it(`reports ${c.name} of a callback as a bug`, async () => {
      await assert.rejects(async () => bugIfThrows("decoding mail", c.fn)(), (err: unknown) => err instanceof InternalError && err.message.startsWith("mailbell bug: decoding mail failed: boom."));
    });
  }
  it("passes results through", async () => {
    assert.equal(bugIfThrows("x", (a: number) => a + 1)(1), 2);
    assert.equal(await bugIfThrows("x", async (a: number) => a + 1)(1), 2);
  });
});
