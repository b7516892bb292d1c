/**
 * Waiting for another connection's write lock in short steps. SQLite's own busy handler
 * (busy_timeout) sleeps 1, 2, 5, 10, 15… ms between tries, so a writer that meets a transaction of
 * 3 ms gets the lock after 8, and one of 10 ms after 18. The delivery thread's "done" commits meet
 * the main thread's round commits in a catch-up, and every such wait is inside the double-post
 * window. With busy_timeout 0 on its connection, this tries again every `stepMs` (the thread
 * sleeps; nothing else can run on it meanwhile, as before), up to `timeoutMs` as busy_timeout did.
 * In the 10,000-mail catch-up the difference was within the noise of a shared machine
 * (BENCHMARKS.md); busy.test.ts shows the bound.
 */

/** SQLITE_BUSY, and its extended codes (the low byte). */
function isBusy(err: unknown): boolean {
  const code = (err as { errcode?: unknown }).errcode;
  return typeof code === "number" && (code & 0xff) === 5;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs fn, again while SQLite says the database is locked. fn must do all or nothing (one
 * statement, or one transaction that BEGIN IMMEDIATE starts), as every store method does.
 */
export function retryWhileBusy<T>(fn: () => T, options: { stepMs?: number; timeoutMs?: number } = {}): T {
  const firstStepMs = options.stepMs ?? 0.1;
  const start = performance.now();
  const deadline = start + (options.timeoutMs ?? 5000);
  let stepMs = firstStepMs;
  for (;;) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || performance.now() >= deadline) throw err;
      Atomics.wait(sleeper, 0, 0, stepMs);
      // A round's commit is over within ~20 ms (more on a loaded machine); a lock held past 50 ms (another process's
      // `mailbell outbox`, a backup) is waited for in longer steps: 0.1 ms steps for 3 s cost ~11 % of a core.
      if (performance.now() - start > longWaitAfterMs) stepMs = Math.min(stepMs * 2, maxStepMs);
    }
  }
}

const longWaitAfterMs = 50;
const maxStepMs = 5;
