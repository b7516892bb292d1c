import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "../log.ts";
import { ruleSchema } from "../rules/config.ts";
import { addr, mail } from "../rules/fixtures.test.ts";
import { compileRules, type CompiledRule } from "../rules/rules.ts";
import { State } from "../store/sqlite/state.ts";
import type { WatchedMail } from "../imap/types.ts";
import type { Target } from "../targets/types.ts";
import { CatchUpTally } from "./catch-up-log.ts";
import { handleMails, type MailStore } from "./pipeline.ts";

describe("handleMails", () => {
  it("judges the rules before the round's transaction, which the delivery thread's commits wait for", () => {
    const compiled = compileRules([ruleSchema.parse({ name: "invoices", match: { subject: "invoice" }, notify: ["hook"], template: "Invoice: {{subject}}" })], { locale: "en" });
    if (!compiled.ok) assert.fail(JSON.stringify(compiled.issues));
    const state = State.open(":memory:");
    let inTransaction = false;
    const judgedWhile: boolean[] = [];
    // The rule's conditions are read as the rule is judged: note whether the transaction is open then.
    const rules = compiled.rules.map((rule) => new Proxy(rule, { get: (r, key) => (key === "match" && judgedWhile.push(inTransaction), Reflect.get(r, key)) }) as CompiledRule);
    const store: MailStore = {
      transaction: (fn) =>
        state.transaction(() => {
          inTransaction = true;
          try {
            return fn();
          } finally {
            inTransaction = false;
          }
        }),
      checkpoints: state.checkpoints,
      totals: state.totals,
      notified: state.notified,
      outbox: state.outbox,
      actions: state.actions,
    };
    const round: WatchedMail[] = [1, 2].map((uid) => ({
      account: "a",
      mailbox: "INBOX",
      uidValidity: 7,
      uid,
      receivedAt: new Date("2026-12-01T10:00:00Z"),
      size: 1000 + uid,
      mail: mail({ from: [addr("billing@example.com")], subject: `Your invoice ${uid}` }),
      bodyRead: true,
      checkpoint: { uidValidity: 7, lastUid: uid },
    }));
    const queued: string[] = [];
    handleMails(round, { rules, targets: new Map([["hook", {} as Target]]), state: store, logger: silentLogger, accounts: new Map(), backlogLimit: 100, onQueued: (t) => queued.push(...t), catchUps: new CatchUpTally() });
    assert.deepEqual(judgedWhile, [false, false], "each mail judged once, outside the transaction");
    assert.deepEqual(queued, ["hook"]);
    assert.deepEqual(state.outbox.counts(), [{ target: "hook", state: "pending", count: 2 }]);
    state.close();
  });
});
