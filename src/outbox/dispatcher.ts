import { TargetError } from "../errors.ts";
import { Backoff } from "../imap/backoff.ts";
import type { Logger } from "../log.ts";
import type { OutboxQueue, OutboxRow } from "./store.ts";
import type { DigestEntry, Target, TargetPayload } from "../targets/types.ts";

export interface RetryPolicy {
  /** First retry delay; doubles per attempt, with jitter. */
  baseMs: number;
  capMs: number;
  /** After this many failed attempts a row goes to the dead letters. */
  maxAttempts: number;
}

export interface TargetPacing {
  /** Sustained sends per second (Slack incoming webhooks: about 1). */
  perSecond: number;
  /** Sends allowed at once before pacing starts. */
  burst: number;
  /** paced: send every row, spaced out. digest: when more than digestAfter wait, send one summary. */
  overflow: "paced" | "digest";
  digestAfter: number;
}

export type DeliveryOutcome = "delivered" | "retry" | "dead";

/**
 * A target's pause, handed from a sender that stops to the one that takes over (outbox.thread
 * auto moving between threads): until when it holds the whole target, and whether the service
 * asked for it (Retry-After) or our backoff chose it.
 */
export interface TargetPause {
  until: number;
  asked: boolean;
}

export interface DispatcherOptions {
  outbox: OutboxQueue;
  targets: ReadonlyMap<string, Target>;
  pacing: ReadonlyMap<string, TargetPacing>;
  retry: RetryPolicy;
  logger: Logger;
  /** Called once per row outcome, for metrics. */
  onOutcome?: (target: string, outcome: DeliveryOutcome, rows: number) => void;
  now?: () => number;
  random?: () => number;
}

/**
 * The longest Retry-After followed as given (unless retryMaxSeconds is longer): a service that
 * asks for days, by mistake or by a date in the past century, must not park its queue that long.
 */
const retryAfterCeilingMs = 3600_000;
const minRetryAfterMs = 1000;

/** Most rows listed one by one in a digest; the rest are counted. */
const digestListMax = 20;

/** How often an idle loop looks at the table for rows queued by another process. */
const idlePollMs = 5000;

/** Shortest wait for tokens: a faster rate is met by sending a few rows per wake-up. */
const minPacingSleepMs = 10;

/**
 * Rows read per query. One query per page instead of one per row: during a catch-up the per-row
 * read cost as much CPU as the commit that marks the row done, on the thread that also reads mail.
 */
export const pageSize = 100;

/**
 * A page is read again once it is this old, so a row re-queued by `mailbell outbox retry` (an older
 * rowid than the page's) goes out in order soon even while the loop never runs out of work.
 */
const pageMaxAgeMs = 1000;

/**
 * Sends outbox rows, one loop per target so a slow or failing service holds up only itself. Rows
 * leave the queue only when the service said 2xx (done) or said something final (dead); anything
 * else is retried with backoff, and a 429's Retry-After pauses the whole target for that long.
 *
 * A target sends one row at a time, in queue order, unless it allows more in flight
 * (Target.concurrency: services where order does not matter, such as a webhook). Then up to that
 * many rows are sent at once, and the rows whose answers came in during one turn of the event loop
 * are marked done in one transaction at its end (setImmediate), not one commit each.
 *
 * A row can be sent twice only if the process dies between the service's answer and the commit
 * that marks it done. Targets resolve as soon as the answer tells success (the 2xx status line; the
 * body only where the service says it there, as Slack's Web API does) and the commit follows at
 * once (one row at a time) or at the end of the event-loop turn (several in flight), so that window
 * is the reply's trip plus one SQLite transaction: README promises its bound, and
 * bench/commit-window.ts measures it. A row keeps its place among those in flight until its commit
 * is written, so a crash resends at most `concurrency` rows.
 */
export class Dispatcher {
  #o: DispatcherOptions;
  readonly #loops = new Map<string, TargetLoop>();
  readonly #now: () => number;

  constructor(options: DispatcherOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Starts a loop per target; `pauses`: where another sender left off (see TargetPause). */
  start(pauses?: ReadonlyMap<string, TargetPause>): void {
    for (const target of this.#o.targets.values()) this.#startLoop(target, pauses?.get(target.name));
  }

  #startLoop(target: Target, pause?: TargetPause): void {
    const loop = new TargetLoop(target, this.#o, this.#now, pause);
    this.#loops.set(target.name, loop);
    loop.run().catch((err: unknown) => this.#o.logger.error({ target: target.name, err: (err as Error).stack }, "dispatcher loop crashed"));
  }

  /**
   * Switches to the targets of a reloaded config. The loops of targets that are gone, or named in
   * `replace`, finish the send in flight (its answer is committed, so it is never posted again) and
   * stop; then new loops start for the new and replaced ones, and read their rows from the outbox.
   * The other loops go on untouched, pacing and pauses included. Once `stopping` aborts (mailbell
   * stops), the sends in flight are abandoned instead, their rows left pending as at any stop: a
   * slow service (an HTTP post's 15 s, a command's timeoutSeconds) must not hold shutdown.
   * Resolves with the pauses the ended loops were still in; `pauses` are taken up by the loops it
   * starts (both for outbox.thread auto, which hands sending from one sender to another).
   */
  async reconfigure(next: Pick<DispatcherOptions, "targets" | "pacing" | "retry">, replace: ReadonlySet<string>, stopping?: AbortSignal, pauses?: ReadonlyMap<string, TargetPause>): Promise<Map<string, TargetPause>> {
    const ending = [...this.#loops].filter(([name]) => !next.targets.has(name) || replace.has(name));
    for (const [, loop] of ending) loop.finishBy(this.#now());
    const abandon = (): void => ending.forEach(([, loop]) => loop.abort());
    if (stopping?.aborted) abandon();
    stopping?.addEventListener("abort", abandon, { once: true });
    try {
      await Promise.allSettled(ending.map(([, loop]) => loop.done));
    } finally {
      stopping?.removeEventListener("abort", abandon);
    }
    const left = new Map<string, TargetPause>();
    for (const [name, loop] of ending) {
      const pause = loop.pause();
      if (pause) left.set(name, pause);
      this.#loops.delete(name);
    }
    this.#o = { ...this.#o, ...next };
    for (const target of next.targets.values()) if (!this.#loops.has(target.name)) this.#startLoop(target, pauses?.get(target.name));
    return left;
  }

  /** New rows were queued: wake the loops that may have been sleeping. */
  kick(targets?: Iterable<string>): void {
    for (const name of targets ?? this.#loops.keys()) this.#loops.get(name)?.wake();
  }

  /**
   * Keeps sending whatever is due until nothing is, or the deadline passes; then stops. What is
   * left stays in the database and goes out on the next start.
   */
  async drain(deadlineMs: number): Promise<{ left: number }> {
    const deadline = this.#now() + deadlineMs;
    for (const loop of this.#loops.values()) loop.finishBy(deadline);
    const done = Promise.allSettled([...this.#loops.values()].map((l) => l.done));
    // A send in flight (a slow command, a hanging service) must not hold shutdown past the deadline.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), Math.max(0, deadlineMs) + 50)));
    if ((await Promise.race([done, late])) === "late") await this.stop();
    clearTimeout(timer);
    const left = this.#o.outbox.counts().reduce((n, c) => n + (c.state === "pending" ? c.count : 0), 0);
    return { left };
  }

  /** Stops at once; an in-flight request is abandoned (its row stays pending). */
  async stop(): Promise<void> {
    for (const loop of this.#loops.values()) loop.abort();
    await Promise.allSettled([...this.#loops.values()].map((l) => l.done));
  }
}

class TargetLoop {
  readonly #target: Target;
  readonly #o: DispatcherOptions;
  readonly #now: () => number;
  readonly #pacing: TargetPacing;
  /** Rows sent at once; 1 keeps the queue's order. */
  readonly #limit: number;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #abort = new AbortController();
  #tokens: number;
  #lastRefill: number;
  #pausedUntil = 0;
  /** The pause was asked for by the service (Retry-After), not chosen by our backoff. */
  #pauseAsked = false;
  /**
   * Some row may wait to retry since the last success: the next success releases those rows. True
   * at start, for rows an earlier run left waiting.
   */
  #failing = true;
  #wake: (() => void) | undefined;
  #finishBy: number | undefined;
  /**
   * Due rows read ahead, oldest first; #page[#next] is the next to send. Only this loop makes a
   * pending row of its target anything but pending, so a page stays true while its single rows go
   * out; it is dropped after anything else (a digest, a failure).
   */
  #page: OutboxRow[] = [];
  #next = 0;
  #pageReadAt = 0;
  /** Rows sent and not yet settled (their commit included): never read into a page again. */
  readonly #inFlight = new Set<string>();
  /** Failures so far; each row in flight remembers the count when it was sent (see #markDone). */
  #failures = 0;
  readonly #startedIn = new Map<string, number>();
  readonly #sending = new Set<Promise<void>>();
  /** Rows the service took whose "done" commit is due at the end of this event-loop turn. */
  #taken: OutboxRow[] = [];
  #commitScheduled: NodeJS.Immediate | undefined;
  done: Promise<void> = Promise.resolve();

  constructor(target: Target, o: DispatcherOptions, now: () => number, pause?: TargetPause) {
    this.#target = target;
    if (pause && pause.until > now()) {
      this.#pausedUntil = pause.until;
      this.#pauseAsked = pause.asked;
    }
    this.#o = o;
    this.#now = now;
    this.#pacing = o.pacing.get(target.name) ?? { perSecond: 10, burst: 10, overflow: "paced", digestAfter: 10 };
    this.#limit = Math.max(1, Math.floor(target.concurrency ?? 1));
    this.#log = o.logger.child({ target: target.name });
    this.#backoff = new Backoff({ baseMs: o.retry.baseMs, capMs: o.retry.capMs, random: o.random });
    this.#tokens = this.#pacing.burst;
    this.#lastRefill = now();
  }

  run(): Promise<void> {
    this.done = this.#loop();
    return this.done;
  }

  wake(): void {
    this.#wake?.();
  }

  /** The pause this loop is in, if any. */
  pause(): TargetPause | undefined {
    return this.#pausedUntil > this.#now() ? { until: this.#pausedUntil, asked: this.#pauseAsked } : undefined;
  }

  finishBy(deadline: number): void {
    this.#finishBy = deadline;
    this.wake();
  }

  abort(): void {
    this.#abort.abort();
    this.wake();
  }

  /** The loop body must never end the loop: a failing database is retried, loudly, not given up on. */
  async #loop(): Promise<void> {
    try {
      while (!this.#abort.signal.aborted) {
        try {
          if ((await this.#round()) === "finished") return;
        } catch (err) {
          this.#dropPage();
          this.#log.error({ err: (err as Error).message }, "sending failed unexpectedly (state database?); trying again in 5 s");
          await this.#sleep(5000);
        }
      }
    } finally {
      // Whatever is in flight ends (aborted, or answered) and what the service took is committed
      // before the loop says it is done: the caller may close the database next.
      await Promise.allSettled([...this.#sending]);
      this.#commitTaken();
    }
  }

  async #round(): Promise<"finished" | "again"> {
    const outbox = this.#o.outbox;
    const now = this.#now();
    if (this.#finishBy !== undefined && now >= this.#finishBy) return "finished";
    if (this.#pausedUntil > now) {
      if (this.#finishBy !== undefined && this.#pausedUntil > this.#finishBy) return "finished";
      await this.#sleep(this.#pausedUntil - now);
      return "again";
    }
    // A settling row wakes the loop: a free place, or a failure to act on.
    if (this.#inFlight.size >= this.#limit) {
      await this.#sleep(idlePollMs);
      return "again";
    }
    const next = this.#peek(now);
    if (!next) {
      if (this.#inFlight.size > 0) await this.#sleep(idlePollMs);
      else if (this.#finishBy !== undefined) return "finished";
      else {
        const earliest = outbox.earliestPending(this.#target.name);
        // Re-read the table now and then: `mailbell outbox retry` re-queues rows from another process.
        await this.#sleep(Math.min(earliest === undefined ? idlePollMs : Math.max(1, earliest - now), idlePollMs));
      }
      return "again";
    }
    // A digest goes out alone, after whatever is in flight has settled.
    if (this.#inFlight.size > 0 && (next.digestGroup || this.#pacing.overflow === "digest")) {
      await this.#sleep(idlePollMs);
      return "again";
    }
    const wait = this.#takeToken();
    if (wait > 0) {
      await this.#sleep(wait);
      return "again";
    }
    const batch = this.#batchFor(next, now);
    if (!Array.isArray(batch)) {
      this.#next++;
      this.#start([batch]);
      return "again";
    }
    // Whatever the digest marks (or the failure re-times) may sit further down the page.
    this.#dropPage();
    if (batch.length > 0) this.#start(batch);
    return "again";
  }

  /** The oldest due row not already in flight, from the page; a used-up or old page is read again. */
  #peek(now: number): OutboxRow | undefined {
    if (this.#next >= this.#page.length || now - this.#pageReadAt >= pageMaxAgeMs) {
      const rows = this.#o.outbox.ready(this.#target.name, now, pageSize + this.#inFlight.size);
      this.#page = this.#inFlight.size === 0 ? rows : rows.filter((r) => !this.#inFlight.has(r.id));
      this.#next = 0;
      this.#pageReadAt = now;
    }
    return this.#page[this.#next];
  }

  #dropPage(): void {
    this.#page = [];
    this.#next = 0;
  }

  /**
   * The row itself, or a digest: a backlog group, or (overflow: digest) everything that piled up.
   * Digests are read afresh, not from the page: the pipeline may have held the group back since.
   * An empty digest means the group is no longer due.
   */
  #batchFor(next: OutboxRow, now: number): OutboxRow | OutboxRow[] {
    const outbox = this.#o.outbox;
    if (next.digestGroup) return outbox.pendingInGroup(this.#target.name, next.digestGroup).filter((r) => r.nextAttemptAt <= now);
    if (this.#pacing.overflow === "digest" && outbox.readyCount(this.#target.name, now) > this.#pacing.digestAfter) {
      return outbox.ready(this.#target.name, now, 1000).filter((r) => !r.digestGroup);
    }
    return next;
  }

  /** Sends rows (one, or a digest) without waiting; they hold their place in flight until settled. */
  #start(rows: OutboxRow[]): void {
    for (const r of rows) {
      this.#inFlight.add(r.id);
      this.#startedIn.set(r.id, this.#failures);
    }
    const sending: Promise<void> = this.#send(rows)
      .catch((err: unknown): "failed" => {
        this.#log.error({ err: (err as Error).message }, "recording a delivery failed (state database?); the row stays pending");
        return "failed";
      })
      .then((outcome) => {
        this.#sending.delete(sending);
        // A taken row keeps its place until its commit is written (#commitTaken frees it).
        if (outcome !== "taken") for (const r of rows) this.#forget(r.id);
        this.wake();
      });
    this.#sending.add(sending);
  }

  /** "taken": the service took the row and its commit waits for the end of this turn. */
  async #send(rows: OutboxRow[]): Promise<DeliveryOutcome | "taken" | "stopped"> {
    const ids = rows.map((r) => r.id);
    // A backlog group is always a digest, even if only one of its rows is left to send.
    const single = rows.length === 1 && !rows[0]!.digestGroup;
    const idempotencyKey = single ? rows[0]!.id : `digest:${ids[0]}:${rows.length}`;
    try {
      // Rendered here, at send time, from the stored notification: the payload is never stored.
      const payload = single ? payloadOf(this.#target, rows[0]!) : this.#target.renderDigest(rows.slice(0, digestListMax).map((r) => digestEntryOf(this.#target, r)), rows.length);
      await this.#target.send(payload, { signal: this.#abort.signal, idempotencyKey });
    } catch (err) {
      if (this.#abort.signal.aborted) return "stopped";
      return this.#failed(rows, err);
    }
    // Nothing may come between the send and this commit: it would widen the double-post window.
    // With one row at a time the commit is now; with several in flight, at the end of this turn,
    // together with every other answer that came in during it (#take).
    if (this.#limit > 1 && single) {
      this.#take(rows[0]!);
      return "taken";
    }
    this.#markDone(rows, !single);
    return "delivered";
  }

  /**
   * The commit waits for the end of this turn only while other requests are still out, whose
   * answers may come in during it; the last answer (a lone mail, the end of a burst) commits now.
   */
  #take(row: OutboxRow): void {
    this.#taken.push(row);
    if (this.#inFlight.size > this.#taken.length) this.#commitScheduled ??= setImmediate(() => this.#commitTakenLater());
    else this.#commitTaken();
  }

  /** #commitTaken from the event loop, where nothing else would catch a failing database. */
  #commitTakenLater(): void {
    try {
      this.#commitTaken();
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, "recording deliveries failed (state database?); those rows stay pending and are sent again");
    }
  }

  /** Commits every row the service took since the last commit, in one transaction. */
  #forget(id: string): void {
    this.#inFlight.delete(id);
    this.#startedIn.delete(id);
  }

  #commitTaken(): void {
    if (this.#commitScheduled) clearImmediate(this.#commitScheduled);
    this.#commitScheduled = undefined;
    const rows = this.#taken;
    if (rows.length === 0) return;
    this.#taken = [];
    try {
      this.#markDone(rows, false);
    } finally {
      for (const r of rows) this.#forget(r.id);
      this.wake();
    }
  }

  /** Marks rows done: single rows (one, or several taken in one turn), or the rows of one digest. */
  #markDone(rows: OutboxRow[], digest: boolean): void {
    const now = this.#now();
    this.#o.outbox.markDone(
      rows.map((r) => r.id),
      now,
    );
    // Only a request sent after the last failure says the target takes posts again: one that was
    // already in flight when another failed says nothing about the failed row (a bad backend, a
    // row the service refuses), and must not release it at once or reset the backoff.
    const sentSinceLastFailure = rows.some((r) => (this.#startedIn.get(r.id) ?? this.#failures) === this.#failures);
    if (sentSinceLastFailure) {
      if (this.#failing) this.#recovered(now);
      this.#backoff.reset();
    }
    if (digest) this.#log.info({ digest: rows.length, first: rows[0]!.id, rows: rows.length }, "delivered as one digest");
    else {
      // The rows of one commit: their lines in one write (a catch-up commits several at a time).
      const each = (): void => rows.forEach((r) => this.#log.info({ ...refOf(r), rows: 1 }, "delivered"));
      if (this.#log.together) this.#log.together(each);
      else each();
    }
    this.#o.onOutcome?.(this.#target.name, "delivered", rows.length);
  }

  /**
   * The target takes posts again after failing: its backlog flows at the normal rate at once. The
   * rows that were set to retry later are due now, and a pause our backoff chose ends; a pause the
   * service asked for (Retry-After) is kept.
   */
  #recovered(now: number): void {
    this.#failing = false;
    const released = this.#o.outbox.releaseRetries(this.#target.name, now);
    if (!this.#pauseAsked && this.#pausedUntil > now) this.#pausedUntil = 0;
    if (released === 0) return;
    this.#dropPage();
    this.#log.info({ released }, "the target takes posts again; the rows waiting to retry are due now");
  }

  #failed(rows: OutboxRow[], err: unknown): DeliveryOutcome {
    const outbox = this.#o.outbox;
    const ids = rows.map((r) => r.id);
    const ref = rows.length === 1 && !rows[0]!.digestGroup ? refOf(rows[0]!) : { digest: rows.length, first: ids[0] };
    const error = err instanceof TargetError ? err : new TargetError(this.#target.name, `target "${this.#target.name}": ${(err as Error).message}`, { retryable: true, cause: err });
    const attempts = Math.max(...rows.map((r) => r.attempts)) + 1;
    if (!error.retryable || attempts >= this.#o.retry.maxAttempts) {
      const reason = error.retryable ? `${error.message} (gave up after ${attempts} attempts)` : error.message;
      outbox.markDead(ids, reason, this.#now());
      this.#log.error({ ...ref, status: error.status, attempts, err: reason }, "delivery failed for good; moved to the dead letters (mailbell outbox retry puts it back)");
      this.#o.onOutcome?.(this.#target.name, "dead", rows.length);
      return "dead";
    }
    // The service is down or asked us to wait: hold the whole target, not only this row, so the
    // queue keeps its order and we do not hammer a service that is struggling.
    const at = this.#pauseFor(error);
    outbox.markRetry(ids, at, error.message, this.#now());
    this.#dropPage();
    this.#log.warn({ ...ref, status: error.status, attempts, retryInMs: at - this.#now(), err: error.message }, "delivery failed; will retry");
    this.#o.onOutcome?.(this.#target.name, "retry", rows.length);
    return "retry";
  }

  /**
   * Until when the target waits after a retryable failure. A Retry-After is the service's own word
   * and is followed as given (up to an hour, or retryMaxSeconds if longer), whatever our backoff had reached after
   * earlier 5xx answers. Otherwise the backoff grows once per failure; rows that were already in
   * flight and fail during the pause it started share it rather than growing it again.
   */
  #pauseFor(error: TargetError): number {
    const now = this.#now();
    this.#failing = true;
    this.#failures++;
    const asked = error.retryAfterSeconds;
    if (asked !== undefined && Number.isFinite(asked) && asked >= 0) {
      // At least a second (Retry-After's own resolution): "0", a date in the past or a negative
      // Telegram retry_after must not turn the retries into a burst that dead-letters the queue.
      const askedMs = Math.min(Math.max(asked * 1000, minRetryAfterMs), Math.max(this.#o.retry.capMs, retryAfterCeilingMs));
      // Several answers in flight: a shorter one does not cut short a longer pause asked before.
      this.#pausedUntil = Math.max(this.#pauseAsked ? this.#pausedUntil : 0, now + askedMs);
      this.#pauseAsked = true;
    } else if (this.#pausedUntil <= now) {
      this.#pausedUntil = now + this.#backoff.next();
      this.#pauseAsked = false;
    }
    return this.#pausedUntil;
  }

  /** Token bucket; returns how long to wait for the next token (0 = took one). No limit when perSecond is Infinity. */
  #takeToken(): number {
    if (this.#pacing.perSecond === Infinity) return 0;
    const now = this.#now();
    const rate = this.#pacing.perSecond / 1000;
    this.#tokens = Math.min(this.#pacing.burst, this.#tokens + (now - this.#lastRefill) * rate);
    this.#lastRefill = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    // At high rates wait for a few tokens and send them back to back instead of a timer wake-up
    // per row (1000 a second at 1000/s). Never more at once than the burst allows.
    const want = Math.max(1, Math.min(this.#pacing.burst, Math.floor(rate * minPacingSleepMs)));
    return Math.ceil((want - this.#tokens) / rate);
  }

  /**
   * Waits ms, or until the drain deadline, wake() or abort(). abort() wakes it too, so it needs no
   * listener on the abort signal: at high rates it runs every few rows.
   */
  #sleep(ms: number): Promise<void> {
    if (this.#abort.signal.aborted) return Promise.resolve();
    const limit = this.#finishBy !== undefined ? Math.min(ms, Math.max(0, this.#finishBy - this.#now())) : ms;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, limit);
      this.#wake = done;
    });
  }
}

/** How logs name a row. */
function refOf(row: OutboxRow): Record<string, unknown> {
  return { id: row.id, rule: row.rule, uid: row.uid, account: row.account, mailbox: row.mailbox };
}

/** The row's payload: its notification rendered by the target, or the payload a row queued before schema 7 carries. */
function payloadOf(target: Target, row: OutboxRow): TargetPayload {
  return row.notification ? target.render(row.notification) : { contentType: row.contentType, body: row.body };
}

/** How a digest lists the row: from its notification, or by what a row queued before schema 7 carries. */
function digestEntryOf(target: Target, row: OutboxRow): DigestEntry {
  if (!row.notification) return { rule: row.rule, subject: row.subject, summary: row.summary, body: row.body };
  const payload = target.render(row.notification);
  return { rule: row.rule, subject: row.subject, summary: target.summarize(row.notification), body: payload.body, ...(payload.thread !== undefined ? { thread: payload.thread } : {}) };
}
