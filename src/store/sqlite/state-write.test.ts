import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { StateError } from "../../errors.ts";
import { notWritable, openDatabase, stateWriteProblem } from "./db.ts";

// Permissions as another user are tested in test/edges.test.ts (as root they are not enforced).
describe("stateWriteProblem", () => {
  it("finds none for a state file yet to be made, and makes nothing to find out", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-state-"));
    const file = path.join(dir, "not", "yet", "state.db");
    assert.equal(stateWriteProblem(file), undefined);
    assert.equal(existsSync(path.join(dir, "not")), false, "nothing was created");
  });

  it("says when the state's folder is a file, and openDatabase refuses it as a StateError", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-state-"));
    writeFileSync(path.join(dir, "state"), "");
    const file = path.join(dir, "state", "state.db");
    assert.deepEqual(stateWriteProblem(file), { problem: `${path.join(dir, "state")} is a file, not a folder`, fix: "set state: to another path, inside a folder" });
    assert.throws(() => openDatabase(file), (err: unknown) => err instanceof StateError && /is a file, not a folder/.test(err.message));
  });

  it("the error names the file, what is wrong and the chown that fixes it", () => {
    const err = notWritable("/var/lib/mailbell/state.db", { problem: "/var/lib/mailbell/state.db is not writable by mailbell (uid 998); it belongs to uid 0 (root)", fix: "sudo chown mailbell /var/lib/mailbell/state.db*" });
    assert.equal(err.code, "STATE");
    assert.match(err.message, /^cannot write the state database \/var\/lib\/mailbell\/state\.db: .*belongs to uid 0 \(root\)\. .*Fix: sudo chown mailbell \/var\/lib\/mailbell\/state\.db\* — or set state: to a path/);
  });
});
