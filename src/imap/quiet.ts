/**
 * A quiet mailbox waits on a lean connection (lean-idle.ts) instead of an imapflow session: the
 * session that read to the end hands over (when to: handOverNow), the lean connection IDLEs until
 * the mailbox changes, and the watcher opens a session to read. While mail flows the session stays.
 */
import { ImapError, MailbellError } from "../errors.ts";
import { actionsWaiting } from "./actions.ts";
import { classifyImapError, endpointOf } from "./client.ts";
import type { Watch } from "./context.ts";
import { LeanExamineRefused, LeanIdle, LeanUnsupported, type LeanBaseline } from "./lean-idle.ts";
import { checkpointStep } from "./ours.ts";
import { retryWaiting } from "./retry.ts";

/** For tests: runs between the session's end and the lean connection's EXAMINE, where mail must not be lost. */
export const quietHooks: { beforeLean?: (mailbox: string) => Promise<void> } = {};

export type QuietEnd =
  /** Read now: the mailbox changed (uidNext: the UIDNEXT the lean connection saw, if any), or a retry or action is due. */
  | { why: "read"; uidNext: number | undefined; renumbered?: boolean; atStart?: boolean }
  | { why: "stopped" }
  /** Start with a session after all (a start that has mail set aside to retry, actions due, or a name EXAMINE refused). */
  | { why: "session" }
  /** The lean connection could not work here (no UIDNEXT): the session keeps its own connection from now on. */
  | { why: "unsupported" }
  | { why: "failed"; failure: ImapError; opened: boolean; watchedForMs: number | undefined };

/**
 * Hand over now? At once when the session read nothing; after quietAfterMailMs without mail when it
 * read some. Returns the ms still to wait in IDLE on the session's connection, or 0 to hand over.
 */
export function handOverIn(lastMailAt: number | undefined, now: number, quietAfterMailMs: number): number {
  if (lastMailAt === undefined) return 0;
  return Math.max(0, quietAfterMailMs - (now - lastMailAt));
}

/** Whether a (re)connect starts on a lean connection, with a session only when there is mail to read. */
export function startsQuietly(w: Watch): boolean {
  // With NOTIFY possible the notifier decides; a session tells whether it is on.
  return w.quiet === "lean" && w.options.wakeups === undefined;
}

/**
 * A start (or reconnect) on a lean connection: compared with the checkpoint (or, after a reconnect,
 * with what the last session saw, which may be further on when mail was expunged), a change wakes
 * a session; a first start saves the mailbox's end as the checkpoint, as a session would.
 */
export async function startQuietly(w: Watch, refused: boolean, last: { baseline: LeanBaseline; lastUid: number } | undefined): Promise<QuietEnd> {
  const stored = await checkpointStep(w.checkpoints, "load the checkpoint", w, () => w.checkpoints.load(w.account, w.mailbox));
  if (stored && ((await retryWaiting(w, stored.uidValidity)) || (await actionsWaiting(w)))) return { why: "session" };
  // Only when everything that session handed over is committed (commit "manual" saves when it likes):
  // otherwise the checkpoint decides, and a session hands the uncommitted mail over again.
  const seen = last && stored && last.baseline.uidValidity === stored.uidValidity && stored.lastUid >= last.lastUid ? last.baseline.uidNext : 0;
  const baseline: LeanBaseline = { path: last?.baseline.path ?? w.mailbox, uidValidity: stored?.uidValidity, uidNext: Math.max(seen, (stored?.lastUid ?? 0) + 1) };
  return waitQuietly(w, baseline, {
    refused,
    opened: async (lean) => {
      const uidValidity = lean.uidValidity!;
      let lastUid = stored?.lastUid;
      if (!stored) {
        const checkpoint = { uidValidity, lastUid: (lastUid = lean.uidNext! - 1) };
        await checkpointStep(w.checkpoints, "save the checkpoint", w, () => w.checkpoints.save(w.account, w.mailbox, checkpoint));
        w.log.info({ uidValidity, lastUid }, "first start on this mailbox: announcing mail from now on");
      }
      // A renumbering is then reported by the session that reads (it reads again what came since the checkpoint).
      w.log.info({ uidValidity, lastUid }, "watching");
      w.emit({ type: "connected", uidValidity, lastUid: lastUid! });
    },
  });
}

/** Waits on a lean connection until there is something to read, it fails, or we stop. */
export async function waitQuietly(w: Watch, baseline: LeanBaseline, o: { refused?: boolean; opened?: (lean: LeanIdle) => Promise<void> } = {}): Promise<QuietEnd> {
  let lean: LeanIdle | undefined;
  let since: number | undefined;
  try {
    await quietHooks.beforeLean?.(w.mailbox);
    const account = w.options.account;
    const credentials = account.credentials ? await account.credentials(o.refused ?? false) : { pass: account.pass ?? "" };
    const settings = { account, where: w, log: w.log, keepaliveMs: w.keepaliveMs, keepaliveTimeoutMs: w.keepaliveTimeoutMs, idleRestartMs: w.options.idleRestartMs ?? 10 * 60_000, signal: w.signal };
    const open = () => LeanIdle.open(settings, baseline, credentials);
    lean = await (w.options.connectGate ? w.options.connectGate.run(open, w.signal) : open());
    await o.opened?.(lean);
    if (lean.changed) return { why: "read", atStart: o.opened !== undefined, uidNext: lean.uidNext, renumbered: baseline.uidValidity !== undefined && lean.uidValidity !== baseline.uidValidity };
    w.log.debug({ uidNext: baseline.uidNext }, "quiet: waiting on a lean connection");
    w.emit({ type: "idle" });
    since = Date.now();
    for (;;) {
      const why = await lean.waitForChange();
      if (why === "changed") return { why: "read", uidNext: lean.uidNext };
      if (why === "stopped") return { why: "stopped" };
      w.emit({ type: "alive" });
      if ((await retryWaiting(w, lean.uidValidity!)) || (await actionsWaiting(w))) return { why: "read", uidNext: undefined };
    }
  } catch (err) {
    if (w.signal.aborted) return { why: "stopped" };
    // Our own failures (the state database) are thrown on, as in a session.
    if (err instanceof MailbellError && !(err instanceof ImapError)) throw err;
    // A configured name may need the namespace prefix a session adds (Courier's "INBOX."): a session opens it.
    if (err instanceof LeanExamineRefused && o.opened) return { why: "session" };
    if (err instanceof LeanUnsupported) {
      w.log.info({ reason: err.message }, "this server does not tell the next UID on EXAMINE or STATUS: the watching connection stays open while quiet");
      return { why: "unsupported" };
    }
    const failure = classifyImapError(err, w.account, w.mailbox, endpointOf(w.options.account));
    return { why: "failed", failure, opened: lean !== undefined, watchedForMs: since === undefined ? undefined : Date.now() - since };
  } finally {
    lean?.close();
  }
}
