/**
 * The daemon's NOTIFY notifiers (imap/notify.ts), one per account that wants NOTIFY (notifyWanted:
 * `watch.notify` on, or auto with more folders than connections): the folders' watchers join and leave (a reload starts
 * and stops them), the notifier follows the list and stops with its last folder.
 */
import { FolderWakeups, runNotifier, type NotifierOptions } from "../imap/notify.ts";
import { connectionLimit, notifyWanted, type AccountConfig, type WatchConfig } from "../imap/config.ts";
import type { ImapAccount } from "../imap/client.ts";
import type { Logger } from "../log.ts";

interface Running {
  wakeups: FolderWakeups;
  members: number;
  stop: AbortController;
}

export class Notifiers {
  readonly #running = new Map<string, Running>();
  readonly #log: Logger;
  readonly #signal: AbortSignal;
  readonly #run: (o: NotifierOptions) => Promise<void>;

  /**
   * `signal`: the run's. A notifier lives on it and on its last folder leaving, never on one
   * watcher's signal: a reload restarting or removing the folder that started it must not stop
   * the wake-ups of the folders that stay (they would wait forever). `run`: runNotifier (tests pass their own).
   */
  constructor(log: Logger, signal: AbortSignal, run: (o: NotifierOptions) => Promise<void> = runNotifier) {
    this.#log = log;
    this.#signal = signal;
    this.#run = run;
  }

  /**
   * The wake-ups for one folder's watcher, or undefined (watch on its own connection): notify off,
   * a single folder (one connection either way), or auto with folders that fit the connection
   * limit. Call the returned leave() when the watcher has stopped.
   */
  join(imap: ImapAccount, account: AccountConfig, mailbox: string, watch: WatchConfig): { wakeups: FolderWakeups | undefined; leave: () => void } {
    if (!notifyWanted(account, watch.notify)) return { wakeups: undefined, leave: () => {} };
    let running = this.#running.get(account.name);
    if (!running) {
      const stop = new AbortController();
      const wakeups = new FolderWakeups([], connectionLimit(account) - 1);
      running = { wakeups, members: 0, stop };
      this.#running.set(account.name, running);
      const log = this.#log.child({ account: account.name, mailbox: "(NOTIFY)" });
      void this.#run({ account: imap, accountName: account.name, wakeups, log, signal: AbortSignal.any([this.#signal, stop.signal]), keepaliveMs: watch.keepaliveSeconds * 1000, keepaliveTimeoutMs: watch.keepaliveTimeoutSeconds * 1000, reconnectMaxMs: watch.reconnectMaxSeconds * 1000, authFailureMs: watch.authRetryMinutes * 60_000 }).catch((err: unknown) => {
        // A bug of ours: the folders fall back to a connection each rather than wait for nothing.
        log.error({ err: (err as Error).message }, "the NOTIFY notifier failed; each folder is watched on its own connection");
        wakeups.setMode("off");
      });
    }
    running.members++;
    running.wakeups.add(mailbox);
    const entry = running;
    let left = false;
    return {
      wakeups: entry.wakeups,
      leave: () => {
        if (left) return;
        left = true;
        entry.wakeups.remove(mailbox);
        if (--entry.members > 0) return;
        entry.stop.abort();
        if (this.#running.get(account.name) === entry) this.#running.delete(account.name);
      },
    };
  }
}
