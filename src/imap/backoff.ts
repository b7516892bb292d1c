/**
 * Exponential backoff with full jitter (delay drawn from [0, min(cap, base·2^n)]), so that many
 * watchers dropped by the same server outage do not reconnect in lockstep.
 */
export class Backoff {
  readonly #baseMs: number;
  readonly #capMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: { baseMs: number; capMs: number; random?: () => number }) {
    this.#baseMs = options.baseMs;
    this.#capMs = options.capMs;
    this.#random = options.random ?? Math.random;
  }

  next(): number {
    return backoffDelay(this.#attempt++, { baseMs: this.#baseMs, capMs: this.#capMs }, this.#random());
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/** The delay before retry number `attempt` (0 first), given a random draw in [0, 1). */
export function backoffDelay(attempt: number, limits: { baseMs: number; capMs: number }, random: number): number {
  const ceiling = Math.min(limits.capMs, limits.baseMs * 2 ** Math.min(attempt, 30));
  // Never below a tenth of the ceiling: zero-delay reconnects would hammer a struggling server.
  return Math.round(ceiling * (0.1 + 0.9 * random));
}

/** Resolves after ms, or at once when the signal aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
