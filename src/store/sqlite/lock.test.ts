import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { MailbellError } from "../../errors.ts";
import { lockState } from "./lock.ts";

describe("lockState", () => {
  const statePath = () => path.join(mkdtempSync(path.join(tmpdir(), "mailbell-lock-")), "state.db");

  it("takes the lock, and releases it", () => {
    const file = statePath();
    const lock = lockState(file);
    assert.equal(readFileSync(`${file}.lock`, "utf8"), String(process.pid));
    lock.release();
    assert.ok(!existsSync(`${file}.lock`));
  });

  it("refuses while another live process holds it, naming the pid and the fix", () => {
    const file = statePath();
    writeFileSync(`${file}.lock`, "1"); // pid 1 is always alive
    assert.throws(() => lockState(file), (e: unknown) => e instanceof MailbellError && e.code === "STATE" && /another mailbell \(pid 1\) is using the state file .*delete .*\.lock/.test(e.message));
  });

  it("takes over a lock left by a process that died", () => {
    const file = statePath();
    writeFileSync(`${file}.lock`, "999999999");
    const lock = lockState(file);
    assert.equal(readFileSync(`${file}.lock`, "utf8"), String(process.pid));
    lock.release();
  });
});
