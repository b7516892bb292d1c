import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StateError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Checkpoint, CheckpointStore } from "./checkpoints.ts";
import type { EndProbe, OpenedMailbox } from "./mailbox-end.ts";
import { reconcile } from "./session.ts";
import type { WatchEvent } from "./types.ts";

/** A stand-in for the two commands lastUidOf may send; here the mailbox's end always comes from EXAMINE. */
const probe = { status: () => assert.fail("STATUS not expected"), fetchOne: () => assert.fail("FETCH not expected") } as unknown as EndProbe;
const opened = (uidValidity: number, uidNext: number): OpenedMailbox => ({ path: "INBOX", uidValidity: BigInt(uidValidity), uidNext, exists: uidNext - 1 }) as OpenedMailbox;

function world(stored?: Checkpoint, store?: CheckpointStore) {
  // As stored, savedAt included (MemoryCheckpoints would stamp its own).
  const saved: Checkpoint[] = [];
  const backing: CheckpointStore = store ?? { load: () => stored, save: () => {} };
  const events: WatchEvent[] = [];
  const lines: string[] = [];
  const line = (level: string) => (_: object, msg?: string) => void lines.push(`${level}: ${msg}`);
  const log = { error: line("error"), warn: line("warn"), info: line("info"), debug: line("debug"), trace: line("trace"), child: () => log } as Logger;
  const w = {
    account: "a",
    mailbox: "INBOX",
    checkpoints: { load: (a: string, m: string) => backing.load(a, m), save: (a: string, m: string, c: Checkpoint) => (saved.push(c), backing.save(a, m, c)) },
    log,
    emit: (e: WatchEvent) => void events.push(e),
  };
  return { w, saved, events, lines };
}

describe("reconcile", () => {
  it("a first start begins at the mailbox's end and saves it at once", async () => {
    const { w, saved, events, lines } = world();
    assert.deepEqual(await reconcile(probe, opened(7, 11), w), { uidValidity: 7, lastUid: 10, resync: undefined });
    assert.deepEqual(saved, [{ uidValidity: 7, lastUid: 10 }]);
    assert.deepEqual(events, [{ type: "connected", uidValidity: 7, lastUid: 10 }]);
    assert.match(lines.join("\n"), /info: first start on this mailbox/);
  });

  it("goes on after the checkpoint without saving or asking the server", async () => {
    const { w, saved, events } = world({ uidValidity: 7, lastUid: 4, savedAt: 1 });
    assert.deepEqual(await reconcile(probe, opened(7, 11), w), { uidValidity: 7, lastUid: 4, resync: undefined });
    assert.deepEqual(saved, []);
    assert.deepEqual(events, [{ type: "connected", uidValidity: 7, lastUid: 4 }]);
  });

  it("after a renumbering: a resync from the old checkpoint, the new end not saved until it is done", async () => {
    const savedAt = Date.UTC(2026, 0, 2);
    const { w, saved, events, lines } = world({ uidValidity: 7, lastUid: 4, savedAt });
    const start = await reconcile(probe, opened(8, 3), w);
    assert.deepEqual(start, { uidValidity: 8, lastUid: 2, resync: { since: new Date(Date.UTC(2026, 0, 1)), ack: { uidValidity: 7, lastUid: 4, savedAt } } });
    assert.deepEqual(saved, []);
    assert.deepEqual(events, [
      { type: "uidvalidity-changed", previous: 7, current: 8 },
      { type: "connected", uidValidity: 8, lastUid: 2 },
    ]);
    assert.match(lines[0]!, /^warn: UIDVALIDITY changed: .*reading again what arrived since the last checkpoint/);
  });

  it("after a renumbering with a checkpoint that does not say when: from the new end, saved", async () => {
    const { w, saved, events, lines } = world({ uidValidity: 7, lastUid: 4 });
    assert.deepEqual(await reconcile(probe, opened(8, 3), w), { uidValidity: 8, lastUid: 2, resync: undefined });
    assert.deepEqual(saved, [{ uidValidity: 8, lastUid: 2 }]);
    assert.equal(events[0]!.type, "uidvalidity-changed");
    assert.match(lines[0]!, /starting from its current end/);
  });

  it("a checkpoint store that fails is our failure (StateError), not the connection's", async () => {
    const broken: CheckpointStore = {
      load: () => {
        throw new Error("database is locked");
      },
      save: () => {},
    };
    const { w } = world(undefined, broken);
    await assert.rejects(reconcile(probe, opened(7, 11), w), (err: unknown) => err instanceof StateError && /could not load the checkpoint.*database is locked/.test(err.message));
  });
});
