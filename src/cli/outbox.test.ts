import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { State } from "../store/sqlite/state.ts";
import { runCli } from "../../test/support/cli.ts";

function setup() {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-outbox-cli-"));
  const file = path.join(dir, "mailbell.yaml");
  writeFileSync(file, `state: ./state.db\ntargets:\n  - { name: hook, type: webhook, url: "http://127.0.0.1:9/x" }\n`);
  const state = State.open(path.join(dir, "state.db"));
  const row = (uid: number) => ({ target: "hook", rule: "r", account: "a", mailbox: "INBOX", uidValidity: 1, uid, messageId: `m${uid}@x`, subject: `subject ${uid}`, contentType: "application/json", body: "{}", summary: "s" });
  state.outbox.enqueue([row(1), { ...row(2), subject: "\u001b]0;pwned\u0007\u001b[2J evil" }, row(3)]);
  state.outbox.markDead(["a/INBOX/1/1/r/hook", "a/INBOX/1/2/r/hook"], "answered 404: no_service");
  state.outbox.markDone(["a/INBOX/1/3/r/hook"]);
  state.close();
  return { file, statePath: path.join(dir, "state.db") };
}

const cli = (args: string[]) => runCli(args);

describe("mailbell outbox", () => {
  it("lists dead rows with their reason, and retry ID re-queues exactly that one", async () => {
    const { file, statePath } = setup();
    const list = await cli(["outbox", "--config", file]);
    assert.equal(list.code, 0);
    assert.match(list.out, /outbox: 0 pending, 2 dead, 1 done/);
    assert.match(list.out, /dead {4}a\/INBOX\/1\/1\/r\/hook\n.*"subject 1"\n {8}last error: answered 404: no_service/);
    assert.ok(!list.out.includes("\u001b") && !list.out.includes("\u0007"), "a mail's subject cannot drive the terminal");
    assert.match(list.out, /"\uFFFD\]0;pwned\uFFFD\uFFFD\[2J evil"/);
    const json = await cli(["outbox", "--json", "--config", file]);
    assert.deepEqual(json.out.trim().split("\n").map((l) => (JSON.parse(l) as { id: string }).id), ["a/INBOX/1/1/r/hook", "a/INBOX/1/2/r/hook"]);

    assert.equal((await cli(["outbox", "retry", "a/INBOX/1/2/r/hook", "--config", file])).code, 0);
    const state = State.open(statePath);
    assert.equal(state.outbox.get("a/INBOX/1/2/r/hook")!.state, "pending");
    assert.equal(state.outbox.get("a/INBOX/1/1/r/hook")!.state, "dead");
    state.close();
  });

  it("refuses to resend a delivered row, names an unknown one, and explains usage", async () => {
    const { file } = setup();
    const done = await cli(["outbox", "retry", "a/INBOX/1/3/r/hook", "--config", file]);
    assert.equal(done.code, 2);
    assert.match(done.err, /was delivered already; sending it again would post it twice/);
    const unknown = await cli(["outbox", "retry", "nope", "--config", file]);
    assert.match(unknown.err, /no outbox row "nope"/);
    const usage = await cli(["outbox", "retry", "--config", file]);
    assert.equal(usage.code, 2);
    assert.match(usage.err, /one row ID .* or --all/);
  });
});
