import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig } from "../config/load.ts";
import { compileConfigRules } from "../config/validate.ts";
import { configChanges, describeChanges, type RunningConfig } from "./reload.ts";

interface Parts {
  state?: string;
  mailboxes?: string;
  targets?: string;
  rules?: string;
  extra?: string;
  host?: string;
}

/** A config with account alice (INBOX and Shop), targets team and hook, rules play (everywhere) and shop (Shop only). */
function running(p: Parts = {}): RunningConfig {
  const yaml = `state: ${p.state ?? "./state.db"}
${p.extra ?? ""}
accounts:
  - { name: alice, host: ${p.host ?? "imap.example.com"}, user: alice, pass: pw, mailboxes: ${p.mailboxes ?? "[INBOX, Shop]"} }
targets:
${p.targets ?? `  - { name: team, type: slack, url: "https://hooks.slack.com/services/T/B/x" }
  - { name: hook, type: webhook, url: "https://example.com/hook" }`}
rules:
${
  p.rules ??
  `  - { name: play, match: { from: googleplay-noreply@google.com }, notify: [team], template: "play {{subject}}" }
  - { name: shop, match: { mailbox: Shop }, notify: [hook], template: "shop {{subject}}" }`
}
`;
  const loaded = parseConfig(yaml, "/etc/mailbell/mailbell.yaml", {});
  return { config: loaded.config, rules: compileConfigRules(loaded), statePath: loaded.statePath };
}

const inbox = { account: "alice", mailbox: "INBOX" };
const shop = { account: "alice", mailbox: "Shop" };

describe("configChanges (what a reload does)", () => {
  it("finds nothing to do in the same config", () => {
    const c = configChanges(running(), running());
    assert.deepEqual(c.mailboxes, { started: [], stopped: [], restarted: [] });
    assert.deepEqual([c.rules, c.targets], [{ added: [], removed: [], changed: [] }, { added: [], removed: [], changed: [] }]);
    assert.deepEqual([c.restartSenders, c.settings, c.needRestart], [[], [], []]);
    assert.equal(describeChanges(c), "nothing changed");
  });

  it("restarts an account's watchers when added folders switch it to NOTIFY (more folders than connections), not before", () => {
    const withMax = (folders: string) => running({ mailboxes: folders, rules: "  - { name: all, notify: [hook] }" });
    const before = running({ mailboxes: "[INBOX, Shop]", rules: "  - { name: all, notify: [hook] }" });
    // Still within the 10 connections: the running watchers go on; the new folder starts.
    const fits = configChanges(before, withMax("[INBOX, Shop, A]"));
    assert.deepEqual(fits.mailboxes, { started: [{ account: "alice", mailbox: "A" }], stopped: [], restarted: [] });
    // 11 folders: every folder now shares NOTIFY's connections, the two running ones restart to join.
    const many = configChanges(before, withMax("[INBOX, Shop, A, B, C, D, E, F, G, H, I]"));
    assert.deepEqual(many.mailboxes.restarted, [inbox, shop]);
  });

  it("restarts only the mailboxes a changed rule can match in", () => {
    const c = configChanges(running(), running({ rules: `  - { name: play, match: { from: googleplay-noreply@google.com }, notify: [team], template: "play {{subject}}" }\n  - { name: shop, match: { mailbox: Shop }, notify: [hook], template: "new {{subject}}" }` }));
    assert.deepEqual(c.rules, { added: [], removed: [], changed: ["shop"] });
    assert.deepEqual(c.mailboxes, { started: [], stopped: [], restarted: [shop] });
    assert.equal(describeChanges(c), "rules: changed shop — mailboxes: restarted alice/Shop");
  });

  it("restarts every mailbox for a rule that applies everywhere, and for watch settings", () => {
    const changedPlay = running({ rules: `  - { name: play, match: { from: googleplay-noreply@google.com }, notify: [team], template: "PLAY" }\n  - { name: shop, match: { mailbox: Shop }, notify: [hook] }` });
    assert.deepEqual(configChanges(running(), changedPlay).mailboxes.restarted, [inbox, shop]);
    const c = configChanges(running(), running({ extra: "watch: { pollSeconds: 5 }" }));
    assert.deepEqual(c.mailboxes.restarted, [inbox, shop]);
    assert.deepEqual(c.settings, ["watch"]);
  });

  it("does not restart a watcher for watch.announceUnreadable, which is read for each mail set aside", () => {
    const c = configChanges(running(), running({ extra: "watch: { announceUnreadable: [team] }" }));
    assert.deepEqual(c.mailboxes.restarted, []);
    assert.deepEqual(c.settings, ["watch"]);
  });

  it("starts added mailboxes, stops removed ones, and restarts all of an account whose connection settings changed", () => {
    const c = configChanges(running(), running({ mailboxes: "[INBOX, Archive]" }));
    assert.deepEqual(c.mailboxes, { started: [{ account: "alice", mailbox: "Archive" }], stopped: [shop], restarted: [] });
    assert.deepEqual(configChanges(running(), running({ host: "imap2.example.com" })).mailboxes.restarted, [inbox, shop]);
  });

  it("names added, removed and changed targets; a changed retry policy replaces every sender", () => {
    const c = configChanges(
      running(),
      running({
        targets: `  - { name: team, type: slack, url: "https://hooks.slack.com/services/T/B/y" }\n  - { name: hook2, type: webhook, url: "https://example.com/hook" }`,
        rules: `  - { name: play, match: { from: googleplay-noreply@google.com }, notify: [team], template: "play {{subject}}" }`,
      }),
    );
    assert.deepEqual(c.targets, { added: ["hook2"], removed: ["hook"], changed: ["team"] });
    assert.deepEqual(c.restartSenders, ["team"]);
    assert.deepEqual(c.rules.removed, ["shop"]);
    assert.deepEqual(c.mailboxes.restarted, [shop], "INBOX's rules are the same");
    assert.deepEqual(configChanges(running(), running({ extra: "outbox: { maxAttempts: 3 }" })).restartSenders, ["team", "hook"]);
  });

  it("refuses what only a restart can switch: the state file, status.listen, log", () => {
    const c = configChanges(running({ extra: "status: { listen: 9090 }" }), running({ state: "./other.db", extra: "status: { listen: 9091 }\nlog: { level: debug }" }));
    assert.deepEqual(
      c.needRestart.map((n) => n.path),
      ["state", "status.listen", "log"],
    );
    assert.match(c.needRestart[0]!.message, /changed from \/etc\/mailbell\/state\.db to \/etc\/mailbell\/other\.db; .*restart mailbell/);
    assert.match(c.needRestart[1]!.message, /changed from 9090 to 9091/);
    const budget = configChanges(running({ extra: "status: { listen: 9090 }" }), running({ extra: "status: { listen: 9090, reconnectBudgetSeconds: 60 }" }));
    assert.deepEqual(budget.needRestart, [], "the health limits are applied as they are");
    assert.deepEqual(configChanges(running(), running({ extra: "status: { listen: 9090 }" })).needRestart.map((n) => n.path), ["status"]);
    assert.deepEqual(budget.settings, ["status"]);
  });

  it("refuses switching the sender's thread (outbox.thread), and names the restart", () => {
    const c = configChanges(running(), running({ extra: "outbox: { thread: own }" }));
    assert.deepEqual(c.needRestart.map((n) => n.path), ["outbox.thread"]);
    assert.match(c.needRestart[0]!.message, /changed from auto to own; the sender's thread is chosen once, at start: restart mailbell/);
    assert.deepEqual(configChanges(running({ extra: "outbox: { thread: own }" }), running({ extra: "outbox: { thread: own, maxAttempts: 3 }" })).needRestart, []);
  });
});
