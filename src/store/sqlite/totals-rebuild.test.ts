import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SeenMail } from "../../plan/store.ts";
import { State } from "./state.ts";

const jpy = (units: bigint) => ({ units, scale: 0, currency: "JPY" });
const mail = (uid: number): SeenMail => ({ place: `a/INBOX/1/${uid}`, mailboxKey: "a/INBOX/1", identity: `id-${uid}`, messageId: `<${uid}@x>`, receivedAt: new Date("2026-11-01T00:00:00Z") });
const rows = (state: State) => state.totals.report({ rule: "r" }).map((t) => [t.period, t.amount, t.mails]);

describe("totals replaceRule", () => {
  it("replaces the rule's entries and sums from `since` in one go; earlier periods, other rules and newer entries stay", () => {
    const state = State.open(":memory:");
    state.totals.add("r", mail(1), "2026-10", jpy(1n));
    state.totals.add("r", mail(2), "2026-11", jpy(2n));
    state.totals.add("r", mail(3), "2026-11", jpy(3n));
    state.totals.add("other", mail(2), "2026-11", jpy(7n));
    const startedAt = new Date(Date.now() + 1000);
    const replaced = state.totals.replaceRule("r", { since: "2026-11-01", countedBefore: startedAt, keep: [] }, [
      { mail: mail(1), period: "2026-10", amount: jpy(100n) }, // before since: not touched
      { mail: mail(2), period: "2026-11", amount: jpy(200n) },
      { mail: mail(3), period: "2026-11", amount: jpy(300n) },
    ]);
    assert.deepEqual(replaced, { removed: 2, added: 2 });
    assert.deepEqual(rows(state), [["2026-10", "1", 1], ["2026-11", "500", 2]]);
    assert.deepEqual(state.totals.report({ rule: "other" }).map((t) => t.amount), ["7"]);
  });

  it("keeps entries counted after the rebuild began (a running daemon's) and mail it was told to keep, and adds neither twice", () => {
    const state = State.open(":memory:");
    state.totals.add("r", mail(1), "2026-11", jpy(1n));
    state.totals.add("r", mail(2), "2026-11", jpy(2n));
    const startedAt = new Date(Date.now() - 60_000); // both "counted since the rebuild began"
    state.totals.replaceRule("r", { countedBefore: startedAt, keep: [] }, [{ mail: mail(1), period: "2026-11", amount: jpy(100n) }]);
    assert.deepEqual(rows(state), [["2026-11", "3", 2]]);
    const later = new Date(Date.now() + 1000);
    state.totals.replaceRule("r", { countedBefore: later, keep: [mail(2)] }, [{ mail: mail(1), period: "2026-11", amount: jpy(100n) }]);
    assert.deepEqual(rows(state), [["2026-11", "102", 2]], "mail 2's old entry kept (its DKIM key is gone), mail 1 counted again");
  });

  it("drops a period that has nothing left, and changes nothing when it throws", () => {
    const state = State.open(":memory:");
    state.totals.add("r", mail(1), "2026-11", jpy(1n));
    state.totals.replaceRule("r", { countedBefore: new Date(Date.now() + 1000), keep: [] }, []);
    assert.deepEqual(rows(state), []);
    state.totals.add("r", mail(2), "2026-11", jpy(2n));
    const bad = { mail: mail(3), period: "2026-11", amount: { units: 1n, scale: 0, currency: undefined as unknown as string } };
    assert.throws(() => state.totals.replaceRule("r", { countedBefore: new Date(Date.now() + 1000), keep: [] }, [bad]));
    assert.deepEqual(rows(state), [["2026-11", "2", 1]], "the transaction rolled back");
  });
});
