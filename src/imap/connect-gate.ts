/**
 * Limits how many IMAP connections are being set up at once in one process.
 *
 * Opening a connection (TCP, TLS handshake, greeting, LOGIN, SELECT) allocates far more than an
 * idle connection keeps. With every watcher starting at the same moment, a thousand handshakes'
 * garbage is alive together and V8's heap grows to hold it, then keeps those pages while idle.
 * Measured at 1,000 mailboxes this cost ~30 kB of RSS per mailbox for the life of the process.
 * A handful of connects in flight keeps both CPUs busy, so starting everything takes about as long.
 */
export interface ConnectGateOptions {
  /** Connections being set up at once. */
  concurrency: number;
  /**
   * After this long a connect gives its slot to the next one even though it has not finished
   * (default 10 s). The gate is about memory, not correctness: a server that does not answer must
   * not hold up every other account's mailboxes for its connection timeout.
   */
  maxHoldMs?: number;
}

export class ConnectGate {
  readonly #concurrency: number;
  readonly #maxHoldMs: number;
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(options: ConnectGateOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) throw new RangeError(`ConnectGate: concurrency must be an integer ≥ 1, got ${options.concurrency}`);
    this.#concurrency = options.concurrency;
    this.#maxHoldMs = options.maxHoldMs ?? 10_000;
  }

  /** Connects being set up now (at most `concurrency`). */
  get active(): number {
    return this.#active;
  }

  /** Connects waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Runs `connect` once a slot is free, and returns (or throws) what it does. When `signal` aborts
   * while waiting, throws the signal's reason without running `connect`, so stopping never waits
   * for other mailboxes' handshakes.
   */
  async run<T>(connect: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.#acquire(signal);
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.#release();
    };
    const timer = setTimeout(release, this.#maxHoldMs);
    // A slot held by a connect that hangs must not keep a stopping process alive.
    timer.unref();
    try {
      return await connect();
    } finally {
      clearTimeout(timer);
      release();
    }
  }

  #acquire(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    if (this.#active < this.#concurrency) {
      this.#active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiting.indexOf(grant);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal!.reason);
      };
      // The slot is handed over by #release, which already counted it as taken.
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      this.#waiting.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#active--;
  }
}
