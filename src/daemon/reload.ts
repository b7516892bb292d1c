import type { Config } from "../config/schema.ts";
import { appliesIn, verifiesDkimIn, type CompiledRule } from "../rules/rules.ts";
import { notifyWanted } from "../imap/config.ts";

/**
 * What a config reload (SIGHUP) changes, worked out from the running config and the new one
 * without doing anything: which watchers stop, start or restart, which targets' senders are
 * replaced, and the settings a running mailbell cannot switch. Pure; run.ts applies it.
 */

/** One version of the config as the daemon runs it. */
export interface RunningConfig {
  config: Config;
  /** config.rules compiled, in the same order. */
  rules: readonly CompiledRule[];
  /** `state` resolved against the config's folder. */
  statePath: string;
}

export interface Place {
  account: string;
  mailbox: string;
}

export interface NameChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

export interface ConfigChanges {
  rules: NameChanges;
  /** By the target's own settings; `restartSenders` also counts the outbox's retry settings. */
  targets: NameChanges;
  mailboxes: {
    started: Place[];
    stopped: Place[];
    /** Watched before and after, but something their watcher reads changed (account, rules there, watch:). */
    restarted: Place[];
  };
  /** Targets whose sending loop is replaced: changed ones, and every one when the retry settings changed. */
  restartSenders: string[];
  /** Other top-level settings that differ (watch, outbox, dns, locale, status…), for the log. */
  settings: string[];
  /** Why the new config cannot be taken without a restart; the reload is refused when not empty. */
  needRestart: { path: string; message: string }[];
}

export function configChanges(before: RunningConfig, after: RunningConfig): ConfigChanges {
  const oldPlaces = mailboxKeys(before);
  const newPlaces = mailboxKeys(after);
  const places = (keys: Iterable<string>): Place[] => [...keys].map(placeOf);
  const oldSenders = senderKeys(before.config);
  const newSenders = senderKeys(after.config);
  return {
    rules: nameChanges(byName(before.config.rules, (r) => [r, before.config.locale]), byName(after.config.rules, (r) => [r, after.config.locale])),
    targets: nameChanges(byName(before.config.targets, (t) => t), byName(after.config.targets, (t) => t)),
    mailboxes: {
      started: places([...newPlaces.keys()].filter((p) => !oldPlaces.has(p))),
      stopped: places([...oldPlaces.keys()].filter((p) => !newPlaces.has(p))),
      restarted: places([...newPlaces].filter(([p, key]) => oldPlaces.has(p) && oldPlaces.get(p) !== key).map(([p]) => p)),
    },
    restartSenders: [...newSenders].filter(([name, key]) => oldSenders.has(name) && oldSenders.get(name) !== key).map(([name]) => name),
    settings: otherSettings.filter((k) => json(before.config[k]) !== json(after.config[k])),
    needRestart: needsRestart(before, after),
  };
}

/** Top-level settings reported by name when they change; accounts, targets and rules are reported item by item. */
const otherSettings = ["locale", "watch", "outbox", "dns", "status", "log"] as const;

/**
 * The state file holds the lock, checkpoints and totals of this process; the status server (its
 * socket and its settings) and the logger (whose children every watcher holds) are made once. Switching any of them
 * under a running daemon would be a restart in disguise, so the reload is refused and says so.
 */
function needsRestart(before: RunningConfig, after: RunningConfig): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  const restart = "restart mailbell to switch (systemctl restart mailbell), or put the old value back and reload again";
  if (before.statePath !== after.statePath) {
    out.push({ path: "state", message: `changed from ${before.statePath} to ${after.statePath}; a running mailbell keeps its state file: ${restart}.` });
  }
  out.push(...statusChanges(before.config.status, after.config.status, restart));
  if (json(before.config.log) !== json(after.config.log)) {
    out.push({ path: "log", message: `changed from ${json(before.config.log)} to ${json(after.config.log)}; the logger is set up once, at start: ${restart}.` });
  }
  if (before.config.outbox.thread !== after.config.outbox.thread) {
    out.push({ path: "outbox.thread", message: `changed from ${before.config.outbox.thread} to ${after.config.outbox.thread}; the sender's thread is chosen once, at start: ${restart}.` });
  }
  return out;
}

/** The status server's limits are read at each request; everything else under status: is the server's own. */
const liveStatusKeys = new Set(["staleSeconds", "reconnectBudgetSeconds"]);

function statusChanges(before: Config["status"], after: Config["status"], restart: string): { path: string; message: string }[] {
  if ((before === undefined) !== (after === undefined)) {
    return [{ path: "status", message: `${after ? "added" : "removed"}; the status server is started (or not) once, at start: ${restart}.` }];
  }
  if (!before || !after) return [];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)].filter((k) => !liveStatusKeys.has(k)));
  const at = (status: object, key: string): unknown => (status as Record<string, unknown>)[key];
  return [...keys]
    .filter((k) => json(at(before, k)) !== json(at(after, k)))
    .map((k) => ({
      path: `status.${k}`,
      // Only the address is shown: another setting there may be a secret (a token).
      message: `${k === "listen" ? `changed from ${json(before.listen)} to ${json(after.listen)}` : "changed"}; the status server keeps the settings it was started with: ${restart}.`,
    }));
}

/**
 * For each watched (account, mailbox), everything its watcher was started with: the account, the
 * watch settings, and the rules that can match mail there (they decide what is read: body, HTML,
 * whole for DKIM; read-only or not). A watcher whose key changes is restarted, after its current
 * round is committed, so a round is never read under one config and judged under another.
 * watch.announceUnreadable is left out: it is read afresh for each mail set aside.
 */
export function mailboxKeys(running: RunningConfig): Map<string, string> {
  const { config, rules } = running;
  const { announceUnreadable: _readLive, ...watch } = config.watch;
  const out = new Map<string, string>();
  for (const { mailboxes, ...account } of config.accounts) {
    for (const mailbox of new Set(mailboxes)) {
      const place = { account: account.name, mailbox };
      const here = config.rules.filter((_rule, i) => appliesIn(rules[i]!, place));
      const dns = verifiesDkimIn(rules, place) ? config.dns : undefined;
      // Folders added or removed can switch the account to or from NOTIFY (notifyWanted): then all its watchers restart.
      const notify = notifyWanted({ ...account, mailboxes }, config.watch.notify);
      out.set(placeKey(place), json({ account, watch, notify, locale: config.locale, dns, rules: here }));
    }
  }
  return out;
}

/** A target's sending loop depends on its own settings and the outbox's retry policy. */
function senderKeys(config: Config): Map<string, string> {
  const { retryBaseSeconds, retryMaxSeconds, maxAttempts } = config.outbox;
  return new Map(config.targets.map((t) => [t.name, json({ t, retry: [retryBaseSeconds, retryMaxSeconds, maxAttempts] })]));
}

export function placeKey(place: Place): string {
  // JSON keeps ("a:b", "c") and ("a", "b:c") apart, which joining with a separator would not.
  return JSON.stringify([place.account, place.mailbox]);
}

function placeOf(key: string): Place {
  const [account, mailbox] = JSON.parse(key) as [string, string];
  return { account, mailbox };
}

function byName<T extends { name: string }>(items: readonly T[], keyOf: (item: T) => unknown): Map<string, string> {
  return new Map(items.map((item) => [item.name, json(keyOf(item))]));
}

function nameChanges(before: Map<string, string>, after: Map<string, string>): NameChanges {
  return {
    added: [...after.keys()].filter((n) => !before.has(n)),
    removed: [...before.keys()].filter((n) => !after.has(n)),
    changed: [...after].filter(([n, key]) => before.has(n) && before.get(n) !== key).map(([n]) => n),
  };
}

function json(value: unknown): string {
  return JSON.stringify(value) ?? "undefined";
}

/** The reload's log line: "rules: added a, changed b; mailboxes: started alice/Shop" or "nothing changed". */
export function describeChanges(changes: ConfigChanges): string {
  const where = (places: readonly Place[]): string[] => places.map((p) => `${p.account}/${p.mailbox}`);
  const part = (what: string, lists: [string, readonly string[]][]): string[] => {
    const said = lists.filter(([, names]) => names.length > 0).map(([verb, names]) => `${verb} ${names.join(", ")}`);
    return said.length > 0 ? [`${what}: ${said.join("; ")}`] : [];
  };
  const { rules, targets, mailboxes } = changes;
  const parts = [
    ...part("rules", [["added", rules.added], ["removed", rules.removed], ["changed", rules.changed]]),
    ...part("targets", [["added", targets.added], ["removed", targets.removed], ["changed", targets.changed]]),
    ...part("mailboxes", [["started", where(mailboxes.started)], ["stopped", where(mailboxes.stopped)], ["restarted", where(mailboxes.restarted)]]),
    ...part("settings", [["changed", changes.settings]]),
  ];
  return parts.length > 0 ? parts.join(" — ") : "nothing changed";
}
