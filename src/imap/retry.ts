/**
 * Reading set-aside mail again because a person asked to (`mailbell unreadable retry`). Mail read
 * is handed over with the current checkpoint (nothing new is acknowledged) and its record resolved;
 * mail that fails again is recorded again with one more attempt, and mail that is gone is resolved.
 */
import type { ImapFlow } from "imapflow";
import { toWatched, type Watch } from "./context.ts";
import { fetchBatches } from "./fetch.ts";
import { ours } from "./ours.ts";
import type { WatchedMail } from "./types.ts";

/** Asked for now: set-aside UIDs at or below lastUid (one above was recorded but not passed, after a crash; the normal round reads it). */
export async function retriesAsked(w: Pick<Watch, "setAside" | "account" | "mailbox">, uidValidity: number, lastUid: number): Promise<number[]> {
  return (await ours("list mail set aside", () => w.setAside.retryRequested(w.account, w.mailbox, uidValidity))).filter((uid) => uid <= lastUid);
}

/** Whether a person asked to read set-aside mail again; checked at each keepalive. */
export async function retryWaiting(w: Pick<Watch, "setAside" | "account" | "mailbox">, uidValidity: number): Promise<boolean> {
  return (await ours("list mail set aside", () => w.setAside.retryRequested(w.account, w.mailbox, uidValidity))).length > 0;
}

export async function* retrySetAside(w: Watch, client: ImapFlow, asked: number[], where: { uidValidity: number; lastUid: number }): AsyncGenerator<WatchedMail[], void, undefined> {
  const { account, mailbox, setAside, log } = w;
  const { uidValidity } = where;
  // Taken before reading: a mail whose read breaks the connection must not be retried by every new session.
  await ours("take the retry requests", () => setAside.retryTaken(account, mailbox, uidValidity, asked));
  const gone: number[] = [];
  const options = { ...w.fetchOptions, batchSize: 1, readAhead: 0, onGone: (uids: number[]) => gone.push(...uids) };
  const ack = { uidValidity, lastUid: where.lastUid };
  for await (const round of fetchBatches(client, asked.sort((a, b) => a - b), options)) {
    if (round.mails.length > 0) yield round.mails.map((m) => toWatched(w, uidValidity, m, ack, undefined));
    for (const m of round.mails) {
      log.info({ uid: m.uid }, "mail set aside earlier was read on request");
      await ours("resolve mail set aside", () => setAside.resolved(account, mailbox, uidValidity, m.uid));
    }
    for (const u of round.unread) {
      log.error({ uid: u.uid, reason: u.reason }, "mail set aside could still not be read; it stays set aside");
      await ours("record mail set aside", () => setAside.record(account, mailbox, { uidValidity, uid: u.uid, reason: u.reason, attempts: 1 }));
    }
  }
  for (const uid of gone) await ours("resolve mail set aside", () => setAside.resolved(account, mailbox, uidValidity, uid));
}
