import type { MailActions, Money } from "../rules/types.ts";

/**
 * What planning and committing a mail need to know and record, owned here by plan/ and the
 * pipeline that use them; store/ implements them (store/totals.ts, store/notified.ts).
 */

/**
 * A mail as the stores remember it, to count it once per rule and post it once per rule and
 * target. The same mail is recognised
 * - by its identity (src/mail/identity.ts) wherever it shows up again: moved out and back, copied,
 *   appended again, in two folders, renumbered;
 * - by its place, when the same UID is read again (a crash before the checkpoint moved);
 * - by its Message-ID alone, for what was recorded before identities existed (schema 5 and older):
 *   such a record blocks the same Message-ID in another mailbox or under another UIDVALIDITY, as it
 *   always did, and also in its own mailbox when the mail arrived before the record was written
 *   (a mail moved out and back keeps its arrival time). A new mail from a sender that reuses its
 *   Message-ID arrives later, so it is not taken for the old one.
 */
export interface SeenMail {
  /** account/mailbox/UIDVALIDITY/UID */
  place: string;
  /** account/mailbox/UIDVALIDITY */
  mailboxKey: string;
  /** mailIdentity() of the mail. */
  identity: string;
  messageId: string | undefined;
  /** INTERNALDATE: when the server received it. */
  receivedAt: Date;
}

/** The place of a mail, and of its mailbox, as the stores write them. */
export function placeOf(mail: { account: string; mailbox: string; uidValidity: number; uid: number }): Pick<SeenMail, "place" | "mailboxKey"> {
  const mailboxKey = `${mail.account}/${mail.mailbox}/${mail.uidValidity}`;
  return { place: `${mailboxKey}/${mail.uid}`, mailboxKey };
}

/** What adding a mail's amount did: added, or not, because the mail was counted before at `earlier` (a place). */
export type Counted = { total: Money; added: true } | { total: Money; added: false; earlier: string };

/** Running sums per rule, period and currency; each mail counts once per rule (see SeenMail). */
export interface TotalsStore {
  /** Adds `amount` unless this mail was counted for this rule before; returns the running total either way. */
  add(rule: string, mail: SeenMail, period: string, amount: Money): Counted;
  get(rule: string, period: string, currency: string): Money | undefined;
  isCounted(rule: string, mail: SeenMail): boolean;
  /** Where this mail was counted for this rule (a place), if it was. */
  countedAt(rule: string, mail: SeenMail): string | undefined;
  /**
   * Adds `amount` for a mail countedAt() found not counted, in the same transaction (the
   * pipeline's commit of a plan); returns the total after, or undefined when its place or identity
   * was recorded meanwhile and nothing was added.
   */
  record(rule: string, mail: SeenMail, period: string, amount: Money): Money | undefined;
}

/** One running total as reports show it: the amount is an exact decimal string ("3200", "15.14"). */
export interface TotalRow {
  rule: string;
  /** The period key: "2026-11-23", "2026-W48", "2026-11" or "2026". */
  period: string;
  currency: string;
  amount: string;
  /** How many mails were counted into it. */
  mails: number;
}

/** What was counted, for `mailbell totals` and the status page. */
export interface TotalsReport {
  /**
   * Rows ordered by rule, period, currency. `since` ("2026-11-01", "2026-11", "2026") keeps the
   * periods that end on or after it: a period key is kept when it is not before `since` cut to the
   * key's own length, so a month "2026-10" is dropped by since "2026-11-01" and "2026-11" is kept.
   */
  report(filter?: { rule?: string; since?: string }): TotalRow[];
}

/** The answer to "may this mail be queued for this rule and target?". */
export type Claim = { claimed: true } | { claimed: false; earlier: string };

/**
 * Which mail was queued for which rule and target, for good: each mail is posted once per rule and
 * target, however it comes back (see SeenMail). A notification that went to the dead letters is
 * retried with `mailbell outbox retry`, not by the mail showing up again.
 */
export interface NotificationLog {
  /** Records the mail for (rule, target) and says so, or says where it was queued from before. */
  claim(rule: string, target: string, mail: SeenMail, now?: number): Claim;
  /** Where the mail was queued from for (rule, target), if it was; records nothing. */
  notifiedAt(rule: string, target: string, mail: SeenMail): string | undefined;
  /**
   * Records the mail for (rule, target) after notifiedAt() found it free, in the same transaction
   * (the pipeline's commit of a plan); false when its place or identity was recorded meanwhile.
   */
  record(rule: string, target: string, mail: SeenMail, now?: number): boolean;
}

/** A mail's actions as queued for the watcher: where the mail is, what to do, and which rules asked. */
export interface QueuedActions {
  account: string;
  mailbox: string;
  uidValidity: number;
  uid: number;
  actions: MailActions;
  rules: readonly string[];
}

/**
 * Actions queued for mail, to be done by the mailbox's watcher once committed; also the record
 * that a mail was acted on, so it is acted on once however it comes back (see SeenMail).
 */
export interface ActionLog {
  /** Where actions were queued for this mail (a place), if they were; records nothing. */
  actedAt(mail: SeenMail): string | undefined;
  /**
   * Queues the actions after actedAt() found the mail free, in the same transaction (the
   * pipeline's commit of a plan); false when its place or identity was recorded meanwhile.
   */
  record(mail: SeenMail, queued: QueuedActions, now?: number): boolean;
}
