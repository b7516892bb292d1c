/**
 * The outbox as its users see it, whatever keeps it: the rows (a notification for one target, as
 * data), what the pipeline writes, and what the dispatcher and `mailbell outbox` read and change.
 * src/store/outbox.ts keeps it in SQLite; another store implements OutboxStore.
 */
import type { Notification } from "../targets/types.ts";

export type OutboxState = "pending" | "done" | "dead";

/**
 * A payload rendered when its row was queued, as mailbell did before schema 7 (and as rows it
 * queued then still are): sent as it is, and listed in a digest by its summary.
 */
export interface QueuedPayload {
  contentType: string;
  body: string;
  /** One line, already escaped for the target, used when rows are sent as a digest. */
  summary: string;
}

/** Where a row's notification came from and how it is queued. */
interface RowPlace {
  target: string;
  rule: string;
  account: string;
  mailbox: string;
  uidValidity: number;
  uid: number;
  messageId: string | undefined;
  subject: string;
  /** Rows sharing a group are sent as one digest message (a long backlog). */
  digestGroup?: string;
  /** Not sent before this time (ms); default: at once. */
  notBefore?: number;
}

/**
 * What the pipeline writes: one notification for one target, stored as data and rendered by the
 * target when it is sent. A QueuedPayload instead is a row written the way mailbell did before.
 */
export type NewOutboxRow = RowPlace & ({ notification: Notification } | QueuedPayload);

export interface OutboxRow extends RowPlace {
  /** The notification to render at send time; undefined for a row queued before schema 7. */
  notification: Notification | undefined;
  /** The payload of a row queued before schema 7 ("" for later rows). */
  contentType: string;
  body: string;
  summary: string;
  id: string;
  seq: number;
  state: OutboxState;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | undefined;
  createdAt: number;
  updatedAt: number;
}

/**
 * The row id names the mail by its place on the server and the rule and target, so processing the
 * same mail again (after a crash before the checkpoint moved) cannot queue it twice. The same mail
 * at another place is kept from being queued again by the NotificationLog.
 */
export function outboxId(row: Pick<NewOutboxRow, "account" | "mailbox" | "uidValidity" | "uid" | "rule" | "target">): string {
  return [row.account, row.mailbox, row.uidValidity, row.uid, row.rule, row.target].map((p) => encodeURIComponent(String(p))).join("/");
}

/** What the pipeline does with the outbox: queue rows, and hold or release a backlog digest. */
export interface OutboxWriter {
  enqueue(rows: readonly NewOutboxRow[], now?: number): number;
  releaseGroup(group: string, now?: number): void;
  holdGroup(group: string, until: number): void;
}

/** What the dispatcher does with the queue: take due rows in order, and record how each went. */
export interface OutboxQueue {
  /** Pending rows of a target that are due, oldest first. */
  ready(target: string, now: number, limit: number): OutboxRow[];
  readyCount(target: string, now: number): number;
  /** When the next pending row of a target becomes due; undefined when none is pending. */
  earliestPending(target: string): number | undefined;
  pendingInGroup(target: string, group: string): OutboxRow[];
  markDone(ids: readonly string[], now?: number): void;
  markRetry(ids: readonly string[], nextAttemptAt: number, error: string, now?: number): void;
  markDead(ids: readonly string[], error: string, now?: number): void;
  /**
   * Makes a target's rows that failed and wait to retry due now (the target takes posts again).
   * Rows that never failed keep their time (a digest group held back, a later start). Returns how many.
   */
  releaseRetries(target: string, now: number): number;
  /** Row counts by target and state, for metrics, `mailbell outbox` and what a drain left. */
  counts(): { target: string; state: OutboxState; count: number }[];
}

/** The whole outbox: the pipeline's and the dispatcher's parts, and what `mailbell outbox`, metrics and start-up need. */
export interface OutboxStore extends OutboxWriter, OutboxQueue {
  get(id: string): OutboxRow | undefined;
  /** Pending rows whose target is not among `targets` (removed or renamed in the config). */
  orphans(targets: readonly string[]): { target: string; count: number }[];
  /** Moves a target's pending rows to the dead letters, with the reason. */
  killTarget(target: string, reason: string, now?: number): number;
  list(states: readonly OutboxState[], limit?: number): OutboxRow[];
  /** Puts dead (or failing pending) rows back in the queue, due now. Returns how many. */
  requeue(selector: { id: string } | { allDead: true }, now?: number): number;
  /** Per target with rows waiting, when the oldest of them was queued (epoch ms). */
  oldestPending(): { target: string; createdAt: number }[];
  /** Forgets delivered rows older than the cutoff; pending and dead rows are kept. */
  purgeDone(olderThan: number): number;
}
