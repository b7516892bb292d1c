import assert from "node:assert/strict";
import { test } from "node:test";
import { groupBySameActions, uidSet, type DueActions } from "./actions.ts";

const seen = { seen: true, flags: [], labels: [], move: undefined };
const moved = { seen: false, flags: [], labels: [], move: "Receipts" };

test("uidSet: ascending runs as ranges, duplicates once", () => {
  assert.equal(uidSet([9, 3, 4, 5, 12, 11, 5]), "3:5,9,11:12");
  assert.equal(uidSet([7]), "7");
});

test("groupBySameActions: one group per set of actions, in UID order with each row beside its UID, the most attempts decide the wait", () => {
  const due: DueActions[] = [
    { id: 1, uidValidity: 1, uid: 20, actions: seen, rules: ["a"], attempts: 0 },
    { id: 2, uidValidity: 1, uid: 21, actions: moved, rules: ["b"], attempts: 2 },
    { id: 3, uidValidity: 1, uid: 10, actions: { ...seen }, rules: ["c", "a"], attempts: 1 },
  ];
  assert.deepEqual(groupBySameActions(due), [
    { actions: seen, ids: [3, 1], uids: [10, 20], attempts: 1, rules: ["c", "a"] },
    { actions: moved, ids: [2], uids: [21], attempts: 2, rules: ["b"] },
  ]);
});
