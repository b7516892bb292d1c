/**
 * Rules' actions on mail (`then:` — mark read, flag, label, move), done by the mailbox's watcher on
 * its own connection once the mail's plan is committed: at the start of each session (what a crash
 * left undone) and after every round. Mail with the same actions goes in one command. A refusal
 * (folder missing, no permission, read-only mailbox) is logged, reported and retried with backoff;
 * it never stops watching. A lost connection leaves the actions due for the next session.
 */
import type { ImapFlow } from "imapflow";
import { describeActions, actionsKey } from "../rules/actions.ts";
import type { MailActions } from "../rules/types.ts";
import { backoffDelay } from "./backoff.ts";
import { clearRefusal, lastRefusal } from "./client.ts";
import type { Watch } from "./context.ts";
import { ours } from "./ours.ts";

export type { MailActions } from "../rules/types.ts";

/** One mail's actions, waiting to be done. */
export interface DueActions {
  id: number;
  uidValidity: number;
  uid: number;
  actions: MailActions;
  /** The rules whose then: these are, for the log. */
  rules: readonly string[];
  /** Failed tries so far. */
  attempts: number;
}

/**
 * Where the watcher finds the actions to do and records what came of them; owned here, store/
 * implements it (the daemon's pipeline queues the actions in the same transaction as the mail's
 * notifications).
 */
export interface ActionQueue {
  /** Actions for this mailbox due at `now` (not waiting for a retry), oldest first, at most `limit`. */
  due(account: string, mailbox: string, now: number, limit: number): readonly DueActions[] | Promise<readonly DueActions[]>;
  done(ids: readonly number[], now: number): void | Promise<void>;
  /** Tried and refused: tried again from `retryAt`. */
  failed(ids: readonly number[], reason: string, retryAt: number): void | Promise<void>;
  /** Given up: the mail left the mailbox (a person moved or deleted it); it still counts as acted on. */
  dropped(ids: readonly number[], reason: string, now: number): void | Promise<void>;
  /**
   * The mailbox was renumbered: actions waiting under any other UIDVALIDITY name other mail now.
   * Forgotten (due or not), so the mail is acted on when the watcher reads it again under its new
   * UID; returns how many.
   */
  forgetRenumbered(account: string, mailbox: string, uidValidity: number): number | Promise<number>;
}

/** Which action a refusal stopped at (the metric's label). */
export type ActionKind = "seen" | "flag" | "label" | "move";

export interface ActionRefusal {
  action: ActionKind;
  reason: string;
}

/** Retries of refused actions: 1 minute, doubling, up to an hour. */
export const defaultActionRetry = { baseMs: 60_000, capMs: 60 * 60_000 };

/** Actions read from the queue at a time, so a catch-up of thousands is done in a few commands without holding them all. */
const batchLimit = 1000;

/** Connections an action may break before it waits like a refused one. */
const maxBreaks = 2;

/**
 * Actions whose command was in flight when the connection broke, counted per queue row. A command
 * that breaks the connection every time (a server that crashes on one mail) would otherwise end
 * every session before it reads new mail: after maxBreaks it waits for its retry instead.
 */
export class ActionBreaks {
  readonly #counts = new Map<number, number>();
  /** The rows whose command is in flight now. */
  inFlight: readonly number[] | undefined;

  /** The session ended with a broken connection. */
  broke(): void {
    for (const id of this.inFlight ?? []) this.#counts.set(id, (this.#counts.get(id) ?? 0) + 1);
    this.inFlight = undefined;
  }

  /** The rows that broke the connection maxBreaks times; their count starts again. */
  takeExhausted(ids: readonly number[]): number[] {
    const out = ids.filter((id) => (this.#counts.get(id) ?? 0) >= maxBreaks);
    for (const id of out) this.#counts.delete(id);
    return out;
  }

  forget(ids: readonly number[]): void {
    for (const id of ids) this.#counts.delete(id);
  }
}

/**
 * Does the actions due for this mailbox, on the watching connection (selected read-write). Returns
 * whether it sent the server anything: that ended the watching connection's IDLE.
 */
export async function runDueActions(w: Watch, client: ImapFlow, uidValidity: number): Promise<boolean> {
  const queue = w.options.actions;
  if (!queue) return false;
  let sent = false;
  // Before the resync reads the mail again: a row left waiting would make it "acted on before".
  const renumbered = await ours("forget actions of a renumbered mailbox", () => queue.forgetRenumbered(w.account, w.mailbox, uidValidity));
  if (renumbered > 0) w.log.warn({ mails: renumbered }, "actions waiting from before the server renumbered this mailbox were set aside: the old UIDs name other mail now; mail read again under its new UID is acted on then");
  for (;;) {
    const due = await ours("read the actions due", () => queue.due(w.account, w.mailbox, Date.now(), batchLimit));
    if (due.length === 0) return sent;
    for (const group of groupBySameActions(due.filter((a) => a.uidValidity === uidValidity))) {
      const breaking = w.actionBreaks.takeExhausted(group.ids);
      if (breaking.length > 0) await refuse(w, queue, only(group, breaking), { action: firstAction(group.actions), reason: `the connection broke each of the last ${maxBreaks} times this was tried` });
      const rest = group.ids.filter((id) => !breaking.includes(id));
      if (rest.length > 0) {
        sent = true;
        await runGroup(w, client, queue, only(group, rest));
      }
    }
    // Refused ones wait for their retry now, so the next look finds only what is left.
    if (due.length < batchLimit) return sent;
  }
}

/** Whether actions are due now: the watcher looks at each keepalive, so retries do not wait for new mail. */
export async function actionsWaiting(w: Pick<Watch, "options" | "account" | "mailbox">): Promise<boolean> {
  const queue = w.options.actions;
  if (!queue) return false;
  return (await ours("read the actions due", () => queue.due(w.account, w.mailbox, Date.now(), 1))).length > 0;
}

interface ActionGroup {
  actions: MailActions;
  /** The queue's rows, and their mails' UIDs, in UID order: ids[i] is the row of uids[i]. */
  ids: number[];
  uids: number[];
  /** The most failed tries of any of them: decides the next wait. */
  attempts: number;
  /** The rules that asked, for the log. */
  rules: string[];
}

/** Mail that needs the same actions, in UID order: one command does them all. */
export function groupBySameActions(due: readonly DueActions[]): ActionGroup[] {
  const groups = new Map<string, ActionGroup>();
  for (const a of [...due].sort((x, y) => x.uid - y.uid)) {
    const key = actionsKey(a.actions);
    const group = groups.get(key) ?? { actions: a.actions, ids: [], uids: [], attempts: 0, rules: [] };
    group.ids.push(a.id);
    group.uids.push(a.uid);
    group.attempts = Math.max(group.attempts, a.attempts);
    for (const rule of a.rules) if (!group.rules.includes(rule)) group.rules.push(rule);
    groups.set(key, group);
  }
  return [...groups.values()];
}

async function runGroup(w: Watch, client: ImapFlow, queue: ActionQueue, group: ActionGroup): Promise<void> {
  // A retry first asks which of its mails are still here: one a person moved away meanwhile is done with.
  if (group.attempts > 0) group = await leaveOutGone(w, client, queue, group);
  if (group.ids.length === 0) return;
  w.actionBreaks.inFlight = group.ids;
  const refused = await applyActions(client, group.uids, group.actions);
  w.actionBreaks.inFlight = undefined;
  w.actionBreaks.forget(group.ids);
  if (!refused) {
    await ours("record actions done", () => queue.done(group.ids, Date.now()));
    w.log.debug({ uids: sample(group.uids), rules: group.rules, actions: describeActions(group.actions) }, "actions done");
    w.emit({ type: "actions-done", count: group.ids.length });
    return;
  }
  await refuse(w, queue, group, refused);
}

/** Records a refusal: logged, reported, and tried again after a backoff. */
async function refuse(w: Watch, queue: ActionQueue, group: ActionGroup, refused: ActionRefusal): Promise<void> {
  const retryInMs = backoffDelay(group.attempts, w.options.actionRetry ?? defaultActionRetry, Math.random());
  await ours("record actions refused", () => queue.failed(group.ids, refused.reason, Date.now() + retryInMs));
  w.log.warn(
    { uids: sample(group.uids), mails: group.ids.length, rules: group.rules, action: refused.action, actions: describeActions(group.actions), reason: refused.reason, attempts: group.attempts + 1, retryInMs },
    `could not ${verbOf(refused.action, group.actions)}: ${refused.reason}; its notifications are queued all the same, and this is tried again later (fix then: of rule ${group.rules.join(", ")}, or move the mail yourself: mailbell stops trying once it has left the mailbox)`,
  );
  w.emit({ type: "action-failed", action: refused.action, count: group.ids.length, reason: refused.reason, retryInMs });
}

/** The part of a group with these rows. */
function only(group: ActionGroup, ids: readonly number[]): ActionGroup {
  const keep = group.ids.map((id, i) => ({ id, uid: group.uids[i]! })).filter((m) => ids.includes(m.id));
  return { ...group, ids: keep.map((m) => m.id), uids: keep.map((m) => m.uid) };
}

async function leaveOutGone(w: Watch, client: ImapFlow, queue: ActionQueue, group: ActionGroup): Promise<ActionGroup> {
  const found = await client.search({ uid: uidSet(group.uids) }, { uid: true });
  if (!Array.isArray(found)) return group; // refused or cut off: try them all, which says more
  const here = new Set(found);
  const gone = group.ids.filter((_, i) => !here.has(group.uids[i]!));
  if (gone.length === 0) return group;
  const goneGroup = only(group, gone);
  await drop(w, queue, goneGroup.ids.map((id, i) => ({ id, uid: goneGroup.uids[i]! })), "the mail is no longer in the mailbox (moved or deleted by someone else)");
  return only(group, group.ids.filter((id) => !gone.includes(id)));
}

async function drop(w: Watch, queue: ActionQueue, mails: readonly { id: number; uid: number }[], reason: string): Promise<void> {
  await ours("record actions given up", () => queue.dropped(mails.map((m) => m.id), reason, Date.now()));
  w.log.warn({ uids: sample(mails.map((m) => m.uid)), mails: mails.length, reason }, "actions given up: " + reason);
  w.emit({ type: "actions-dropped", count: mails.length, reason });
}

/**
 * Does the actions to these mails of the selected mailbox, in order: flags, labels, move. Returns
 * the first refusal, or undefined when all were done. Throws when the connection is lost, so the
 * session ends and the actions stay due.
 */
export async function applyActions(client: ImapFlow, uids: readonly number[], actions: MailActions): Promise<ActionRefusal | undefined> {
  const range = uidSet(uids);
  const flags = [...(actions.seen ? ["\\Seen"] : []), ...actions.flags];
  const mailbox = client.mailbox || undefined;
  if (mailbox?.readOnly) return { action: firstAction(actions), reason: "the server opened the mailbox read-only: this login may read it but not change it (ask for write rights, or remove the rule's then:)" };
  if (flags.length > 0) {
    const flagAction = actions.flags.length > 0 ? "flag" : "seen";
    const unkept = flags.filter((f) => mailbox?.permanentFlags && !mailbox.permanentFlags.has("\\*") && !mailbox.permanentFlags.has(f));
    if (unkept.length > 0) return { action: flagAction, reason: `the mailbox does not keep ${unkept.join(" ")} (it keeps ${[...mailbox!.permanentFlags!].join(" ") || "no flags"})` };
    const refused = await command(client, () => client.messageFlagsAdd(range, flags, { uid: true }));
    if (refused) return { action: flagAction, reason: refused };
  }
  if (actions.labels.length > 0) {
    if (!client.capabilities.has("X-GM-EXT-1")) return { action: "label", reason: "the server does not offer Gmail's labels (X-GM-EXT-1)" };
    const refused = await command(client, () => client.messageFlagsAdd(range, actions.labels, { uid: true, useLabels: true }));
    if (refused) return { action: "label", reason: refused };
  }
  if (actions.move !== undefined) {
    // imapflow would fall back to COPY, STORE \Deleted and EXPUNGE: a retry after a failure half way
    // through would copy the mail again, and without UIDPLUS the EXPUNGE takes every deleted mail.
    if (!client.capabilities.has("MOVE")) return { action: "move", reason: "the server does not offer MOVE (RFC 6851); mailbell does not copy and delete instead, which could leave copies behind when it fails half way. Use flag: or label: there" };
    const refused = await command(client, () => client.messageMove(range, actions.move!, { uid: true }));
    if (refused) return { action: "move", reason: refused.includes("TRYCREATE") || /doesn't exist|does not exist/i.test(refused) ? `folder "${actions.move}" does not exist (${refused}); create it, or fix the rule's then.move` : refused };
  }
  return undefined;
}

/** Runs one imapflow command that answers false on refusal; returns the server's reason, or undefined when done. */
async function command(client: ImapFlow, run: () => Promise<unknown>): Promise<string | undefined> {
  clearRefusal(client);
  const result = await run();
  if (result !== false && result !== undefined) return undefined;
  if (!client.usable) throw Object.assign(new Error("the connection closed while acting on mail"), { code: "NoConnection" });
  const refusal = lastRefusal(client);
  if (!refusal) return "the server refused it";
  return `the server said: ${refusal.code ? `[${refusal.code}] ` : ""}${refusal.text}`;
}

function firstAction(actions: MailActions): ActionKind {
  if (actions.seen && actions.flags.length === 0) return "seen";
  if (actions.flags.length > 0) return "flag";
  if (actions.labels.length > 0) return "label";
  return "move";
}

function verbOf(action: ActionKind, actions: MailActions): string {
  switch (action) {
    case "seen":
      return "mark mail read";
    case "flag":
      return `flag mail ${[...(actions.seen ? ["\\Seen"] : []), ...actions.flags].join(" ")}`;
    case "label":
      return `label mail ${actions.labels.join(", ")}`;
    case "move":
      return `move mail to ${actions.move}`;
  }
}

/** "3:5,9": UIDs in order as an IMAP sequence set. */
export function uidSet(uids: readonly number[]): string {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

function sample(uids: readonly number[]): number[] {
  return uids.slice(0, 20);
}
