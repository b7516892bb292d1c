/**
 * The server's own limit: an IMAP client written by hand on a plain socket (node:tls for implicit
 * TLS, node:net for plaintext), no library. LOGIN, EXAMINE, IDLE, and nothing else: every
 * `* N EXISTS` that arrives during IDLE is stamped with performance.now() and Date.now() the moment
 * its chunk arrives, before any parsing. Nothing can learn of new mail sooner than this, so it is
 * what other clients' latency is measured against. EXAMINE (read-only), not SELECT: a read-write
 * session takes the new mail's \Recent flag and (Maildir) moves it from new/ to cur/, and that
 * change starts the push timer of every other session on the mailbox, the ones being measured
 * included. An observer should not move what it observes.
 *
 *   const raw = await startRawIdleClient({ host, port, ca, user, pass, mailbox: "INBOX" });
 *   raw.initialCount;           // EXISTS from EXAMINE: mails already in the mailbox
 *   await raw.waitFor(n);       // the first event with count >= n
 *   raw.events;                 // [{ count, at, epochMs }, …] in arrival order
 *   await raw.close();
 *
 * Only counts are tracked: an EXPUNGE (which lowers the count) is recorded as the next EXISTS the
 * server sends and is not otherwise interpreted; benchmarks append only.
 */
import net from "node:net";
import tls from "node:tls";

export interface RawIdleOptions {
  host: string;
  port: number;
  /** PEM CA to trust. Given: implicit TLS (the IMAPS port). Absent: plaintext (the IMAP port) unless `tls` says otherwise. */
  ca?: string | Buffer;
  /** Force TLS on/off; default: on when `ca` is given. */
  tls?: boolean;
  user: string;
  pass: string;
  /** Default INBOX. */
  mailbox?: string;
  /** For connect, LOGIN, EXAMINE and the IDLE continuation; default 10 000 ms. */
  timeoutMs?: number;
}

export interface ExistsEvent {
  /** N of `* N EXISTS`: the number of messages in the mailbox. */
  count: number;
  /** performance.now() when the chunk holding the line arrived. */
  at: number;
  /** Date.now() at the same moment. */
  epochMs: number;
}

export interface RawIdleClient {
  /** EXISTS received during IDLE, in arrival order. */
  readonly events: readonly ExistsEvent[];
  /** The message count EXAMINE reported. */
  readonly initialCount: number;
  /** performance.now() when the server accepted IDLE ("+ idling"). */
  readonly idleSince: number;
  /** Resolves with the first event whose count is >= `count` (at once if one is there). */
  waitFor(count: number, timeoutMs?: number): Promise<ExistsEvent>;
  /** DONE, LOGOUT, close the socket. */
  close(): Promise<void>;
}

/**
 * Splits a server→client IMAP byte stream into response lines, skipping literal contents (`{n}`
 * at a line end: the next n bytes are data, not lines, e.g. a message body in a FETCH reply).
 * Each line is reported with performance.now()/Date.now() taken when its chunk arrived, before
 * any parsing. Also used by the latency benchmark to watch other clients' connections.
 */
export class ImapLineScanner {
  #buffered = "";
  #literalLeft = 0;
  readonly #onLine: (line: string, at: number, epochMs: number) => void;

  constructor(onLine: (line: string, at: number, epochMs: number) => void) {
    this.#onLine = onLine;
  }

  push(chunk: Buffer): void {
    // Stamp first: parsing must not count against the server.
    const at = performance.now();
    const epochMs = Date.now();
    this.#buffered += chunk.toString("latin1");
    for (;;) {
      if (this.#literalLeft > 0) {
        const take = Math.min(this.#literalLeft, this.#buffered.length);
        this.#buffered = this.#buffered.slice(take);
        this.#literalLeft -= take;
        if (this.#literalLeft > 0) return;
      }
      const eol = this.#buffered.indexOf("\r\n");
      if (eol < 0) return;
      const line = this.#buffered.slice(0, eol);
      this.#buffered = this.#buffered.slice(eol + 2);
      const literal = /\{(\d+)\+?\}$/.exec(line);
      if (literal) this.#literalLeft = Number(literal[1]);
      this.#onLine(line, at, epochMs);
    }
  }
}

function quote(s: string): string {
  if (/[\r\n\0]/.test(s)) throw new Error("raw IDLE client: CR, LF and NUL cannot be sent in a quoted string");
  return `"${s.replace(/(["\\])/g, "\\$1")}"`;
}

export async function startRawIdleClient(options: RawIdleOptions): Promise<RawIdleClient> {
  const useTls = options.tls ?? options.ca !== undefined;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const mailbox = options.mailbox ?? "INBOX";
  const socket: net.Socket = useTls
    ? tls.connect({ host: options.host, port: options.port, ...(options.ca ? { ca: options.ca } : {}), ...(net.isIP(options.host) ? {} : { servername: options.host }) })
    : net.connect({ host: options.host, port: options.port });
  socket.setNoDelay(true);

  const events: ExistsEvent[] = [];
  const waiters = new Set<() => void>();
  let lineHandler: (line: string) => void = () => {};
  let failure: Error | undefined;
  let closed = false;
  /** EXISTS lines count as events only once IDLE is accepted (EXAMINE's own EXISTS is initialCount). */
  let idling = false;
  const failWaiters = (): void => {
    for (const w of [...waiters]) w();
  };

  const scanner = new ImapLineScanner((line, at, epochMs) => {
    const exists = /^\* (\d+) EXISTS$/i.exec(line);
    if (exists && idling) {
      events.push({ count: Number(exists[1]), at, epochMs });
      for (const w of [...waiters]) w();
    }
    lineHandler(line);
  });
  socket.on("data", (chunk: Buffer) => scanner.push(chunk));
  socket.on("error", (err) => {
    failure ??= err;
    failWaiters();
    lineHandler("");
  });
  socket.on("close", () => {
    closed = true;
    failure ??= new Error("raw IDLE client: connection closed");
    failWaiters();
    lineHandler("");
  });

  /** Waits for a line matching `done` (or throws on a tagged NO/BAD, close, timeout); returns all lines seen. */
  const until = (what: string, done: (line: string) => boolean, tag?: string): Promise<string[]> =>
    new Promise((resolve, reject) => {
      const seen: string[] = [];
      const timer = setTimeout(() => reject(new Error(`raw IDLE client: no reply to ${what} within ${timeoutMs} ms; got:\n${seen.join("\n")}`)), timeoutMs);
      lineHandler = (line) => {
        if (failure) {
          clearTimeout(timer);
          reject(new Error(`raw IDLE client: ${what}: ${failure.message}`));
          return;
        }
        seen.push(line);
        if (tag && line.startsWith(`${tag} `) && !/^\S+ OK/i.test(line)) {
          clearTimeout(timer);
          reject(new Error(`raw IDLE client: ${what} refused: ${line}`));
        } else if (done(line)) {
          clearTimeout(timer);
          lineHandler = () => {};
          resolve(seen);
        }
      };
    });

  const send = (line: string): void => {
    socket.write(`${line}\r\n`, "utf8");
  };

  try {
    await until("the greeting", (l) => /^\* (OK|PREAUTH)/i.test(l));
    const loggedIn = until("LOGIN", (l) => l.startsWith("a1 OK"), "a1");
    send(`a1 LOGIN ${quote(options.user)} ${quote(options.pass)}`);
    await loggedIn;
    const selected = until("EXAMINE", (l) => l.startsWith("a2 OK"), "a2");
    // Non-ASCII mailbox names would need modified UTF-7; the benchmarks use ASCII names.
    send(`a2 EXAMINE ${quote(mailbox)}`);
    const selectLines = await selected;
    const initial = selectLines.map((l) => /^\* (\d+) EXISTS$/i.exec(l)).find(Boolean);
    const initialCount = initial ? Number(initial[1]) : 0;
    const accepted = until("IDLE", (l) => l.startsWith("+"), "a3");
    send("a3 IDLE");
    await accepted;
    idling = true;
    const idleSince = performance.now();

    return {
      events,
      initialCount,
      idleSince,
      waitFor(count, waitMs = 30_000) {
        const hit = (): ExistsEvent | undefined => events.find((e) => e.count >= count);
        const now = hit();
        if (now) return Promise.resolve(now);
        return new Promise((resolve, reject) => {
          const check = (): void => {
            const h = hit();
            if (h) {
              cleanup();
              resolve(h);
            } else if (failure) {
              cleanup();
              reject(new Error(`raw IDLE client: waiting for EXISTS >= ${count}: ${failure.message}`));
            }
          };
          const timer = setTimeout(() => {
            cleanup();
            reject(new Error(`raw IDLE client: no EXISTS >= ${count} within ${waitMs} ms (last: ${events.at(-1)?.count ?? initialCount})`));
          }, waitMs);
          const cleanup = (): void => {
            clearTimeout(timer);
            waiters.delete(check);
          };
          waiters.add(check);
        });
      },
      async close() {
        if (closed) return;
        idling = false;
        const gone = new Promise<void>((r) => socket.once("close", () => r()));
        send("DONE");
        send("a4 LOGOUT");
        socket.end();
        const timer = setTimeout(() => socket.destroy(), 1000);
        await gone;
        clearTimeout(timer);
      },
    };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** The same function under the name the benchmark notes use. */
export { startRawIdleClient as start };
