import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { State } from "../store/sqlite/state.ts";
import { runCli } from "../../test/support/cli.ts";

function setup(): { file: string; statePath: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-unreadable-cli-"));
  const file = path.join(dir, "mailbell.yaml");
  writeFileSync(file, "state: ./state.db\n");
  const state = State.open(path.join(dir, "state.db"));
  state.checkpoints.save("a", "INBOX", { uidValidity: 7, lastUid: 30 });
  state.checkpoints.save("b", "INBOX", { uidValidity: 3, lastUid: 30 });
  state.setAside.record("a", "INBOX", { uidValidity: 7, uid: 12, reason: "Literal size 2147483648 exceeds maximum allowed size of 327680 bytes", attempts: 3 });
  state.setAside.record("b", "INBOX", { uidValidity: 3, uid: 12, reason: "\u001b[2J NO [SERVERBUG]", attempts: 3 });
  state.setAside.record("a", "INBOX", { uidValidity: 6, uid: 20, reason: "old", attempts: 3 });
  state.close();
  return { file, statePath: path.join(dir, "state.db") };
}

const cli = (args: string[]) => runCli(args);

describe("mailbell unreadable", () => {
  it("lists set-aside mail with its reason, safe for the terminal, and marks a renumbered mailbox's", async () => {
    const { file } = setup();
    const list = await cli(["unreadable", "--config", file]);
    assert.equal(list.code, 0);
    assert.match(list.out, /^3 mail\(s\) set aside because they could not be read\n/);
    assert.match(list.out, /a\/INBOX UID 12 \(UIDVALIDITY 7\): 3 failed read\(s\), set aside \S+\n {8}last error: Literal size 2147483648/);
    assert.match(list.out, /a\/INBOX UID 20 \(UIDVALIDITY 6\): .*\(the mailbox was renumbered since: this UID cannot be read again\)/);
    assert.ok(!list.out.includes("\u001b"), "a server's text cannot drive the terminal");
    const json = await cli(["unreadable", "--json", "--config", file]);
    assert.deepEqual(json.out.trim().split("\n").map((l) => (JSON.parse(l) as { account: string; uid: number }).account), ["a", "a", "b"]);
  });

  it("retry asks for one mail by UID, wants --account when two mailboxes have it, and --all for every current one", async () => {
    const { file, statePath } = setup();
    const ambiguous = await cli(["unreadable", "retry", "12", "--config", file]);
    assert.equal(ambiguous.code, 2);
    assert.match(ambiguous.err, /UID 12 is set aside in 2 mailboxes \(a\/INBOX, b\/INBOX\); say which with --account and --mailbox/);
    assert.equal((await cli(["unreadable", "retry", "12", "--account", "b", "--config", file])).code, 0);
    let state = State.open(statePath);
    assert.deepEqual(state.setAside.retryRequested("b", "INBOX", 3), [12]);
    assert.deepEqual(state.setAside.retryRequested("a", "INBOX", 7), []);
    state.close();
    const renumbered = await cli(["unreadable", "retry", "20", "--config", file]);
    assert.match(renumbered.err, /no set-aside mail with UID 20/);
    const all = await cli(["unreadable", "retry", "--all", "--config", file]);
    assert.match(all.out, /asked to read 1 set-aside mail\(s\) again/);
    state = State.open(statePath);
    assert.deepEqual(state.setAside.retryRequested("a", "INBOX", 7), [12]);
    state.close();
  });

  it("explains its usage", async () => {
    const { file } = setup();
    assert.match((await cli(["unreadable", "again", "--config", file])).err, /unknown unreadable command "again"/);
    assert.match((await cli(["unreadable", "retry", "--config", file])).err, /takes one UID .* or --all/);
    assert.match((await cli(["unreadable", "retry", "x", "--config", file])).err, /"x" is not a UID/);
  });
});
