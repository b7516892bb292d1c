/**
 * Opening a watching session: the connection, EXAMINE, and where to start from the stored
 * checkpoint (a first start, going on, or a resync after the server renumbered the mailbox).
 */
import type { ImapFlow } from "imapflow";
import type { Checkpoint, CheckpointStore } from "./checkpoints.ts";
import { createImapClient } from "./client.ts";
import type { Watch } from "./context.ts";
import { lastUidOf, uidValidityOf, type EndProbe, type OpenedMailbox } from "./mailbox-end.ts";
import { checkpointStep } from "./ours.ts";
import { planStart, type Resync } from "./resync.ts";
import type { WatchEvent } from "./types.ts";
import type { Logger } from "../log.ts";

/** Where a session starts reading. */
export interface SessionStart {
  uidValidity: number;
  /** Mail above this UID is new. */
  lastUid: number;
  /** Mail to read again first, after a renumbering. */
  resync: Resync | undefined;
}

/** The watching connection, not yet connected (so its events can be wired first). */
export async function createWatchingClient(w: Watch, refusedLast: boolean): Promise<ImapFlow> {
  const account = w.options.account;
  const credentials = account.credentials ? await account.credentials(refusedLast) : { pass: account.pass ?? "" };
  // A connection that goes silent during a FETCH is given up after socketTimeout; while idle,
  // the keepalive NOOP notices sooner.
  return createImapClient(account, { logger: w.log, idleRestartMs: w.options.idleRestartMs, socketTimeoutMs: 2 * w.keepaliveMs + w.keepaliveTimeoutMs, limits: w.limits }, credentials);
}

/**
 * Connects (through the connect gate, when there is one) and opens the mailbox: read-only
 * (EXAMINE), or read-write (SELECT) when the watcher has actions to do on its mail.
 */
export async function openMailbox(w: Watch, client: ImapFlow): Promise<OpenedMailbox> {
  const acting = w.options.actions !== undefined;
  const open = async () => {
    await client.connect();
    return client.mailboxOpen(w.mailbox, { readOnly: !acting });
  };
  const opened = await (w.options.connectGate ? w.options.connectGate.run(open, w.signal) : open());
  if (acting && opened.readOnly) w.log.warn({}, "the server opened this mailbox read-only (this login may not change it): the rules' actions (then:) will fail here until it has write rights; watching goes on");
  return opened;
}

/** What reconcile() needs beside the connection. */
export interface Reconciling {
  account: string;
  mailbox: string;
  checkpoints: CheckpointStore;
  log: Logger;
  emit(event: WatchEvent): void;
}

/** Loads the checkpoint and says where to start; a first start saves the mailbox's end at once. */
export async function reconcile(probe: EndProbe, opened: OpenedMailbox, w: Reconciling, woken = false): Promise<SessionStart> {
  const where = { account: w.account, mailbox: w.mailbox };
  const uidValidity = uidValidityOf(opened, where);
  const stored = await checkpointStep(w.checkpoints, "load the checkpoint", w, () => w.checkpoints.load(w.account, w.mailbox));
  const plan = planStart(stored, uidValidity);
  if (plan.from === "end" && plan.renumbered) {
    const since = plan.resync?.since;
    w.log.warn(
      { previous: plan.renumbered.previous, current: uidValidity, since: since?.toISOString() },
      since ? "UIDVALIDITY changed: the server renumbered this mailbox; reading again what arrived since the last checkpoint, then going on from its end" : "UIDVALIDITY changed: the server renumbered this mailbox; starting from its current end",
    );
    w.emit({ type: "uidvalidity-changed", ...plan.renumbered });
  }
  let checkpoint: Checkpoint;
  if (plan.from === "checkpoint") checkpoint = plan.checkpoint;
  else {
    checkpoint = { uidValidity, lastUid: await lastUidOf(probe, opened, where) };
    if (!plan.resync) {
      await checkpointStep(w.checkpoints, "save the checkpoint", w, () => w.checkpoints.save(w.account, w.mailbox, checkpoint));
      w.log.info({ uidValidity, lastUid: checkpoint.lastUid }, "first start on this mailbox: announcing mail from now on");
    }
  }
  // A session opened for a wake-up (NOTIFY, or a quiet mailbox's lean connection) is a round of reading, not news.
  if (woken) w.log.debug({ uidValidity, lastUid: checkpoint.lastUid }, "woken (NOTIFY, or the lean connection saw a change): reading");
  else {
    w.log.info({ uidValidity, lastUid: checkpoint.lastUid }, "watching");
    w.emit({ type: "connected", uidValidity, lastUid: checkpoint.lastUid });
  }
  return { uidValidity, lastUid: checkpoint.lastUid, resync: plan.from === "end" ? plan.resync : undefined };
}
