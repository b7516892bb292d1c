/**
 * A rule's `then:`: checked when the config loads, merged over every rule that matched a mail, and
 * described for logs and `mailbell test`. Pure; the watcher does the actions (imap/actions.ts).
 */
import type { ConfigIssue } from "../errors.ts";
import type { ThenConfig } from "./config.ts";
import type { MailActions } from "./types.ts";

/** The system flags a rule may add, in their canonical case (RFC 9051 §2.3.2). */
const systemFlags = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft"] as const;

/** IMAP keywords are atoms: printable ASCII without atom-specials (RFC 9051 §9, flag-keyword). */
const isKeyword = (flag: string): boolean => /^[\x21-\x7e]+$/.test(flag) && !/[(){%*"\\\]]/.test(flag);

const noActions: MailActions = { seen: false, flags: [], labels: [], move: undefined };

/** Checks a rule's `then:` and puts it in the form the watcher does; issues are under `then`. */
export function compileActions(then: ThenConfig): MailActions | ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const flags: string[] = [];
  listOf(then.flag).forEach((flag, i) => {
    const checked = checkFlag(flag);
    if (typeof checked === "string") flags.push(checked);
    else issues.push({ path: Array.isArray(then.flag) ? `then.flag[${i}]` : "then.flag", message: checked.message });
  });
  const labels = listOf(then.label);
  labels.forEach((label, i) => {
    if (hasControl(label)) issues.push({ path: Array.isArray(then.label) ? `then.label[${i}]` : "then.label", message: `label ${JSON.stringify(label)} has control characters; write the label's name as Gmail shows it` });
  });
  if (then.move !== undefined && hasControl(then.move)) issues.push({ path: "then.move", message: `mailbox ${JSON.stringify(then.move)} has control characters; write the folder's name as your mail program shows it` });
  if (issues.length > 0) return issues;
  const seen = then.seen === true || flags.includes("\\Seen");
  return { seen, flags: unique(flags.filter((f) => f !== "\\Seen")), labels: unique(labels), move: then.move };
}

/** A flag as the server takes it, or why it cannot be added. */
function checkFlag(flag: string): string | { message: string } {
  if (flag.startsWith("\\")) {
    const system = systemFlags.find((f) => f.toLowerCase() === flag.toLowerCase());
    if (system) return system;
    if (/^\\deleted$/i.test(flag)) return { message: "mailbell never deletes mail: \\Deleted is not allowed. To get mail out of the way, move it (then: { move: Trash })" };
    if (/^\\recent$/i.test(flag)) return { message: "\\Recent is set by the server only; use a keyword such as $Notified" };
    return { message: `${flag} is not a system flag; the ones a rule may add are ${systemFlags.join(", ")}, or a keyword without the backslash such as $Notified` };
  }
  if (!isKeyword(flag)) {
    return { message: `${JSON.stringify(flag)} cannot be an IMAP keyword: use letters, digits and $ _ - . only, no spaces or ( ) { } % * " \\ ] (for example $Notified)` };
  }
  return flag;
}

/**
 * What every rule that matched a mail does to it, rule by rule in config order: flags and labels
 * add up; the first move wins (a mail can be in one place), and a move into the mailbox the mail
 * is in is left out. `notes` says what was left out and why.
 */
export function mergeActions(byRule: readonly { rule: string; actions: MailActions }[], mailbox: string): { actions: MailActions; rules: string[]; notes: string[] } {
  const merged: MailActions = { ...noActions, flags: [], labels: [] };
  const rules: string[] = [];
  const notes: string[] = [];
  let movedBy: string | undefined;
  for (const { rule, actions } of byRule) {
    rules.push(rule);
    merged.seen ||= actions.seen;
    merged.flags = unique([...merged.flags, ...actions.flags]);
    merged.labels = unique([...merged.labels, ...actions.labels]);
    if (actions.move === undefined) continue;
    if (sameMailbox(actions.move, mailbox)) notes.push(`rule ${rule}: not moved to ${actions.move}: the mail is already there`);
    else if (merged.move === undefined) {
      merged.move = actions.move;
      movedBy = rule;
    } else if (merged.move !== actions.move) notes.push(`rule ${rule}: not moved to ${actions.move}: rule ${movedBy} moves it to ${merged.move} first`);
  }
  return { actions: merged, rules, notes };
}

export function hasActions(actions: MailActions): boolean {
  return actions.seen || actions.flags.length > 0 || actions.labels.length > 0 || actions.move !== undefined;
}

/** "mark read, flag $Notified, label Receipts, move to Receipts/2026", in the order they are done. */
export function describeActions(actions: MailActions): string {
  const parts: string[] = [];
  if (actions.seen) parts.push("mark read");
  if (actions.flags.length > 0) parts.push(`flag ${actions.flags.join(" ")}`);
  if (actions.labels.length > 0) parts.push(`label ${actions.labels.join(", ")}`);
  if (actions.move !== undefined) parts.push(`move to ${actions.move}`);
  return parts.length > 0 ? parts.join(", ") : "nothing";
}

/** The same actions, compared by what they do (the watcher does identical ones in one command). */
export function actionsKey(actions: MailActions): string {
  return JSON.stringify([actions.seen, [...actions.flags].sort(), [...actions.labels].sort(), actions.move ?? null]);
}

/** INBOX is the one mailbox name servers treat case-insensitively (RFC 9051 §5.1). */
function sameMailbox(a: string, b: string): boolean {
  return a === b || (a.toUpperCase() === "INBOX" && b.toUpperCase() === "INBOX");
}

function listOf(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function hasControl(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(text);
}
