import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { InternalError } from "../../errors.ts";
import { MemoryCheckpoints } from "../../imap/checkpoints.ts";
import { sqliteCheckpoints } from "./checkpoints.ts";
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

describe("sqliteCheckpoints on the caller's database", () => {
  const tables = (db: DatabaseSync) => (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);

  it("creates its one table only, once, and keeps what was saved when opened again", () => {
    const db = new DatabaseSync(":memory:");
    db.exec("CREATE TABLE mine (x INTEGER) STRICT");
    sqliteCheckpoints(db).save("a", "INBOX", { uidValidity: 7, lastUid: 10 });
    const again = sqliteCheckpoints(db);
    assert.deepEqual(tables(db), ["mailbell_checkpoints", "mine"]);
    assert.deepEqual({ ...again.load("a", "INBOX"), savedAt: 0 }, { uidValidity: 7, lastUid: 10, savedAt: 0 });
    assert.equal(Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version), 0, "the caller's schema version is theirs");
  });

  it("never moves backwards under the same UIDVALIDITY, and follows a new one", () => {
    const store = sqliteCheckpoints(new DatabaseSync(":memory:"));
    for (const [uidValidity, lastUid, expected] of [[7, 10, 10], [7, 4, 10], [7, 12, 12], [8, 3, 3]] as const) {
      store.save("a", "INBOX", { uidValidity, lastUid });
      assert.equal(store.load("a", "INBOX")?.lastUid, expected, `after (${uidValidity}, ${lastUid})`);
    }
  });

  it("saves in the caller's transaction: ROLLBACK leaves the checkpoint where it was", () => {
    const db = new DatabaseSync(":memory:");
    const store = sqliteCheckpoints(db);
    store.save("a", "INBOX", { uidValidity: 7, lastUid: 10 });
    db.exec("BEGIN");
    store.save("a", "INBOX", { uidValidity: 7, lastUid: 11 });
    db.exec("ROLLBACK");
    assert.equal(store.load("a", "INBOX")?.lastUid, 10);
    db.exec("BEGIN");
    store.save("a", "INBOX", { uidValidity: 7, lastUid: 11 });
    db.exec("COMMIT");
    assert.equal(store.load("a", "INBOX")?.lastUid, 11);
  });

  it("lives beside the daemon's state in one file without touching it", () => {
    const state = State.open(":memory:");
    state.checkpoints.save("a", "INBOX", { uidValidity: 7, lastUid: 10 });
    const mine = sqliteCheckpoints(state.db);
    assert.equal(mine.load("a", "INBOX"), undefined);
    mine.save("a", "INBOX", { uidValidity: 7, lastUid: 20 });
    assert.equal(state.checkpoints.load("a", "INBOX")?.lastUid, 10);
    state.close();
  });
});
