/**
 * While mail is flowing, ask the server for news instead of waiting for its push.
 *
 * Why: a server holds IDLE pushes back (Dovecot 2.3: 500 ms after the first change it notices), so
 * in a burst every mail on a connection that stays in IDLE waits up to that long, while a command's
 * reply reports new mail at once (RFC 3501 §7.4.1: the server adds it to the session's view at a
 * command such as NOOP). So after a round that read mail, the watching connection polls with NOOP,
 * soon at first and less often as it stays quiet, and goes back to IDLE once no mail came for
 * quietMs. No mail, no poll: a mailbox where nothing arrives sends no command it did not send before.
 */
import type { ImapFlow } from "imapflow";
import { keepalive } from "./wait.ts";

export interface BurstSettings {
  /** The first poll after mail was read; each quiet poll doubles the wait, up to maxPollMs. */
  firstPollMs: number;
  maxPollMs: number;
  /** No mail for this long since the last read: back to IDLE. */
  quietMs: number;
}

/**
 * 10 ms, 20, 40, then every 80 ms for a second: at 20 mails/s a mail waits ~20 ms for a poll, not
 * ~500 ms for the push; one lone mail costs ~15 NOOPs after it. Past a second of quiet the next mail
 * is taken to start a new burst, which IDLE announces.
 */
export const defaultBurst: BurstSettings = { firstPollMs: 10, maxPollMs: 80, quietMs: 1000 };

/** When to poll next (pure): told when mail was read, asked after each quiet poll. */
export class BurstPolicy {
  readonly #settings: BurstSettings;
  #lastMailAt: number | undefined;
  #nextWaitMs = 0;

  constructor(settings: BurstSettings = defaultBurst) {
    this.#settings = settings;
  }

  /** A round read mail at `now` (ms): poll soon. */
  mailRead(now: number): void {
    this.#lastMailAt = now;
    this.#nextWaitMs = this.#settings.firstPollMs;
  }

  /** Whether mail was read less than quietMs ago (the burst goes on). */
  flowing(now: number): boolean {
    return this.#lastMailAt !== undefined && now - this.#lastMailAt < this.#settings.quietMs;
  }

  /** The wait before the next poll, or undefined: quiet long enough, wait in IDLE. Each call lengthens the next wait. */
  nextPollMs(now: number): number | undefined {
    if (!this.flowing(now)) {
      this.#lastMailAt = undefined;
      return undefined;
    }
    const wait = Math.min(this.#nextWaitMs, this.#settings.quietMs - (now - this.#lastMailAt!));
    this.#nextWaitMs = Math.min(this.#nextWaitMs * 2, this.#settings.maxPollMs);
    return wait;
  }
}

/** What polling needs of the watching connection's events (ConnectionEvents). */
export interface Polled {
  readonly news: boolean;
  readonly open: boolean;
  pause(ms: number): Promise<void>;
}

export interface Polling {
  keepaliveTimeoutMs: number;
  where: { account: string; mailbox: string };
  signal: AbortSignal;
  now?: () => number;
  /** Another folder waits for this connection (NOTIFY's shared reading connections): stop polling as if quiet. */
  giveWay?: () => boolean;
}

/**
 * Polls with NOOP on the watching connection as the policy says. "mail": a reply announced mail
 * (read it now); "quiet": the burst is over (wait in IDLE), or giveWay says another folder needs the
 * connection; "closed": the connection closed or we stop.
 * A NOOP unanswered within keepaliveTimeoutMs throws, as a keepalive's does.
 */
export async function pollWhileFlowing(client: Pick<ImapFlow, "noop">, events: Polled, policy: BurstPolicy, o: Polling): Promise<"mail" | "quiet" | "closed"> {
  const now = o.now ?? (() => performance.now());
  for (;;) {
    if (events.news) return "mail";
    if (o.giveWay?.()) return "quiet";
    const wait = policy.nextPollMs(now());
    if (wait === undefined) return "quiet";
    await events.pause(wait);
    if (!events.open || o.signal.aborted) return "closed";
    if (!events.news && !o.giveWay?.()) await keepalive(client, o.keepaliveTimeoutMs, o.where.account, o.where.mailbox);
  }
}
