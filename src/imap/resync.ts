/**
 * Where a session starts, given the stored checkpoint and the mailbox's UIDVALIDITY now. Pure.
 *
 * After the server renumbered the mailbox, old UIDs mean nothing. Re-announcing everything would
 * flood the channel; mail that may have arrived while we were away (since a day before the last
 * checkpoint) is read again, and the consumer drops what it already had by its identity (the
 * daemon: src/mail/identity.ts). The new checkpoint is saved only after that, so a crash repeats
 * the recovery.
 */
import type { Checkpoint } from "./checkpoints.ts";

/** Mail read again after a renumbering. */
export interface Resync {
  /** Mail that arrived on or after this date (and below the new end) is read again. */
  since: Date;
  /** Acknowledges the mail read again: the old checkpoint stands until the resync is done. */
  ack: Checkpoint;
}

export type StartPlan =
  /** Go on after the stored checkpoint. */
  | { from: "checkpoint"; checkpoint: Checkpoint }
  /**
   * Start at the mailbox's current end: a first start, or a renumbering. With a resync, read that
   * first and save the new checkpoint after it; without, save the new end at once.
   */
  | { from: "end"; renumbered?: { previous: number; current: number }; resync?: Resync };

/** How far back before the last checkpoint a resync reads: mail may arrive with an older date. */
export const resyncMarginMs = 86_400_000;

export function planStart(stored: Checkpoint | undefined, uidValidity: number): StartPlan {
  if (!stored) return { from: "end" };
  if (stored.uidValidity === uidValidity) return { from: "checkpoint", checkpoint: stored };
  const renumbered = { previous: stored.uidValidity, current: uidValidity };
  // A checkpoint without the time it was saved (an old state file) cannot say what we missed.
  if (stored.savedAt === undefined) return { from: "end", renumbered };
  return { from: "end", renumbered, resync: { since: new Date(stored.savedAt - resyncMarginMs), ack: stored } };
}
