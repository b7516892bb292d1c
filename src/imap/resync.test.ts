import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planStart, resyncMarginMs, type StartPlan } from "./resync.ts";
import type { Checkpoint } from "./checkpoints.ts";

describe("planStart", () => {
  const savedAt = Date.UTC(2026, 11, 6, 12);
  const cases: { name: string; stored: Checkpoint | undefined; uidValidity: number; plan: StartPlan }[] = [
    { name: "no checkpoint: a first start, at the mailbox's end", stored: undefined, uidValidity: 7, plan: { from: "end" } },
    { name: "the same UIDVALIDITY: go on after the checkpoint", stored: { uidValidity: 7, lastUid: 42, savedAt }, uidValidity: 7, plan: { from: "checkpoint", checkpoint: { uidValidity: 7, lastUid: 42, savedAt } } },
    {
      name: "renumbered: read again from a day before the checkpoint was saved, acknowledged by the old checkpoint",
      stored: { uidValidity: 7, lastUid: 42, savedAt },
      uidValidity: 8,
      plan: { from: "end", renumbered: { previous: 7, current: 8 }, resync: { since: new Date(savedAt - resyncMarginMs), ack: { uidValidity: 7, lastUid: 42, savedAt } } },
    },
    { name: "renumbered, but the checkpoint does not say when it was saved: start at the end", stored: { uidValidity: 7, lastUid: 42 }, uidValidity: 8, plan: { from: "end", renumbered: { previous: 7, current: 8 } } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(planStart(c.stored, c.uidValidity), c.plan));

  it("reads again a day back", () => assert.equal(resyncMarginMs, 24 * 3600 * 1000));
});
