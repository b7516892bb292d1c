import type { WatchedMail } from "../imap/watcher.ts";
import type { Logger } from "../log.ts";

interface Tally {
  read: number;
  matched: number;
  queued: number;
}

/**
 * How a catch-up went (the mail that waited while nobody watched): counted over its rounds, and
 * said in one line when its last mail has been handled. The watcher says when one starts.
 */
export class CatchUpTally {
  readonly #open = new Map<string, Tally>();

  /** Counts one handled mail; logs the summary when it was the catch-up's last. */
  add(watched: WatchedMail, outcome: { matched: boolean; queued: number }, logger: Logger): void {
    const catchUp = watched.catchUp;
    if (!catchUp) return;
    const key = `${watched.account}\u0000${watched.mailbox}\u0000${catchUp.id}`;
    const tally = this.#open.get(key) ?? { read: 0, matched: 0, queued: 0 };
    tally.read++;
    if (outcome.matched) tally.matched++;
    tally.queued += outcome.queued;
    if (catchUp.index < catchUp.count - 1) {
      this.#open.set(key, tally);
      return;
    }
    this.#open.delete(key);
    logger.info(
      { account: watched.account, mailbox: watched.mailbox, ...tally, of: catchUp.count },
      `caught up in ${watched.mailbox}: ${tally.read} mail${tally.read === 1 ? "" : "s"} read, ${tally.matched} matched a rule, ${tally.queued} notification${tally.queued === 1 ? "" : "s"} queued`,
    );
  }
}
