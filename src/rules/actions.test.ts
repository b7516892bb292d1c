import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { thenSchema } from "./config.ts";
import { actionsKey, compileActions, describeActions, mergeActions } from "./actions.ts";
import type { MailActions } from "./types.ts";

const none: MailActions = { seen: false, flags: [], labels: [], move: undefined };

function compile(raw: unknown): MailActions | string[] {
  const result = compileActions(thenSchema.parse(raw));
  return Array.isArray(result) ? result.map((i) => `${i.path}: ${i.message}`) : result;
}

describe("compileActions", () => {
  const rows: { name: string; then: unknown; expect: MailActions | RegExp }[] = [
    { name: "mark read", then: { seen: true }, expect: { ...none, seen: true } },
    { name: "\\Seen as a flag is the same as seen: true", then: { flag: "\\seen" }, expect: { ...none, seen: true } },
    { name: "system flags in their canonical case, keywords as given, once each", then: { flag: ["\\FLAGGED", "$Notified", "$Notified"] }, expect: { ...none, flags: ["\\Flagged", "$Notified"] } },
    { name: "labels and a move", then: { label: "Receipts", move: "Receipts/2026" }, expect: { ...none, labels: ["Receipts"], move: "Receipts/2026" } },
    { name: "\\Deleted is refused: mailbell never deletes", then: { flag: "\\Deleted" }, expect: /then\.flag: mailbell never deletes mail.*move/ },
    { name: "\\Recent is the server's", then: { flag: ["$A", "\\Recent"] }, expect: /then\.flag\[1\]: \\Recent is set by the server only/ },
    { name: "an unknown system flag", then: { flag: "\\Important" }, expect: /then\.flag: \\Important is not a system flag; .*\\Seen, \\Flagged, \\Answered, \\Draft/ },
    { name: "a keyword with a space", then: { flag: "$Not ified" }, expect: /cannot be an IMAP keyword/ },
    { name: "a keyword with a bracket", then: { flag: "a]b" }, expect: /cannot be an IMAP keyword/ },
    { name: "a keyword that is not ASCII", then: { flag: "済み" }, expect: /cannot be an IMAP keyword/ },
    { name: "a folder name with a line break", then: { move: "Receipts\r\nA1 LOGOUT" }, expect: /then\.move: .*control characters/ },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const got = compile(row.then);
      if (row.expect instanceof RegExp) {
        assert.ok(Array.isArray(got), `expected an issue, got ${JSON.stringify(got)}`);
        assert.match(got.join("\n"), row.expect);
      } else assert.deepEqual(got, row.expect);
    });
  }

  test("an empty then: is refused by the schema, with what to give", () => {
    const result = thenSchema.safeParse({});
    assert.equal(result.success, false);
    assert.match(JSON.stringify(result.error?.issues), /give at least one of seen: true, flag, label or move/);
  });
});

describe("mergeActions", () => {
  test("flags and labels add up in rule order, seen if any rule says so", () => {
    const merged = mergeActions(
      [
        { rule: "a", actions: { ...none, flags: ["$A"], labels: ["L1"] } },
        { rule: "b", actions: { ...none, seen: true, flags: ["$B", "$A"], labels: ["L2"] } },
      ],
      "INBOX",
    );
    assert.deepEqual(merged, { actions: { seen: true, flags: ["$A", "$B"], labels: ["L1", "L2"], move: undefined }, rules: ["a", "b"], notes: [] });
  });

  test("two rules moving to the same folder agree", () => {
    const merged = mergeActions(
      [
        { rule: "a", actions: { ...none, move: "X" } },
        { rule: "b", actions: { ...none, move: "X" } },
      ],
      "INBOX",
    );
    assert.deepEqual(merged.notes, []);
    assert.equal(merged.actions.move, "X");
  });
});

test("describeActions says what is done, in the order it is done", () => {
  assert.equal(describeActions({ seen: true, flags: ["$Notified"], labels: ["Receipts"], move: "Receipts/2026" }), "mark read, flag $Notified, label Receipts, move to Receipts/2026");
  assert.equal(describeActions(none), "nothing");
});

test("actionsKey: the same actions in another order are the same", () => {
  assert.equal(actionsKey({ ...none, flags: ["$A", "$B"] }), actionsKey({ ...none, flags: ["$B", "$A"] }));
  assert.notEqual(actionsKey({ ...none, flags: ["$A"] }), actionsKey({ ...none, labels: ["$A"] }));
});
