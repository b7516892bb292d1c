import { createRequire } from "node:module";
import pino from "pino";
import type PinoPretty from "pino-pretty";
import type { Logger } from "./log.ts";

// Loaded only for readable lines: ~2 MB in each thread that logs JSON (a service, the delivery thread).
const loadPretty = (): typeof PinoPretty => createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;

// The daemon's logger, apart from log.ts so that the library (src/index.ts) never loads pino.

/**
 * Secrets never reach the log: the config's passwords, tokens and webhook URLs are masked by key, at
 * the top of a logged object or one level down, and so is every header under a `headers` key.
 */
const secretKeys: ReadonlySet<string> = new Set(["pass", "password", "token", "accessToken", "refreshToken", "clientSecret", "secret", "key", "url", "webhook", "authorization"]);
const censor = "****";

/**
 * The logged object with its secrets masked; the object itself when it holds none (nearly every
 * line), so a line costs no copy. Done here rather than with pino's `redact` option, which masks the
 * same keys by path: its @pinojs/redact (0.4, pino 10) parses each of its 24 paths again on every
 * line, and in a 10,000-mail catch-up that was a fifth of everything the main thread allocated
 * (440 of 2,250 MB, a sampling heap profile of `node bench/catchup.ts`).
 */
export function maskSecrets<T extends object>(obj: T): T {
  return maskKeys(obj, (key, value) => (secretKeys.has(key) ? censor : key === "headers" ? maskEvery(value) : maskKeys(value, oneLevelDown)));
}

/** One level down: a secret key, or every header of a `headers` object. */
function oneLevelDown(key: string, value: unknown): unknown {
  return secretKeys.has(key) ? censor : key === "headers" ? maskEvery(value) : value;
}

function maskEvery(value: unknown): unknown {
  return maskKeys(value, () => censor);
}

/** A copy of value with each own enumerable property replaced by mask(key, value), or value when none changes. */
function maskKeys<T>(value: T, mask: (key: string, value: unknown) => unknown): T {
  // A Buffer's bytes are its keys: never walked (a 50 MB mail would be 50 million of them).
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    const before = (value as Record<string, unknown>)[key];
    if (before === undefined) continue;
    const after = mask(key, before);
    if (after === before) continue;
    copy ??= copyOf(value as object);
    copy[key] = after;
  }
  return (copy ?? value) as T;
}

/** A shallow copy that keeps what pino's serializers look at: the prototype (an Error stays an Error) and unenumerable own properties (its message and stack). */
function copyOf(value: object): Record<string, unknown> {
  if (Array.isArray(value)) return [...(value as unknown[])] as unknown as Record<string, unknown>;
  const own = Object.getOwnPropertyDescriptors(value);
  // V8's stack is an accessor that answers only for the Error it belongs to.
  if (value instanceof Error) own.stack = { value: value.stack, writable: true, configurable: true, enumerable: false };
  return Object.defineProperties(Object.create(Object.getPrototypeOf(value) as object | null) as object, own) as Record<string, unknown>;
}

/** `json`: one JSON object per line (for journald, files, log shippers); `pretty`: readable lines; `auto`: pretty on a terminal. */
export type LogFormat = "json" | "pretty" | "auto";
export const logFormats: readonly LogFormat[] = ["json", "pretty", "auto"];

/** What `auto` means where the log goes: readable lines for a person at a terminal, JSON for anything else. */
export function resolveLogFormat(format: LogFormat, isTerminal: boolean): "json" | "pretty" {
  if (format !== "auto") return format;
  return isTerminal ? "pretty" : "json";
}

export interface LoggerOptions {
  level?: string;
  /** Default: auto, decided by whether the destination is a terminal. */
  format?: LogFormat;
  /** A file descriptor (default 2, stderr) or a stream (tests). */
  destination?: number | NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? 2;
  const format = resolveLogFormat(options.format ?? "auto", isTerminal(destination));
  const lines = format === "pretty" ? undefined : new LineHolder(jsonStream(destination));
  const logger = pino(
    {
      level: options.level ?? "info",
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        // "level":"info" rather than pino's 30: readable in journalctl and grep without a table.
        level: (label) => ({ level: label }),
        log: maskSecrets,
      },
    },
    lines ?? prettyStream(destination),
  );
  // pino gives a child's bindings to no formatter (it resets `formatters.bindings` for children),
  // so they are masked on the way in; every child inherits this from the root.
  const pinoChild = logger.child as (this: unknown, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => unknown;
  logger.child = function (this: unknown, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) {
    return pinoChild.call(this, maskSecrets(bindings), options);
  } as typeof logger.child;
  // Children are made from their parent's prototype (pino), so they share it too.
  const withLines = logger as unknown as Logger;
  withLines.together = lines ? (fn) => lines.hold(fn) : (fn) => fn();
  return withLines;
}

/** A pipe takes a write of up to 4,096 bytes whole (PIPE_BUF), so lines written together by two threads never mix. */
const maxHeldBytes = 4096;

/**
 * The JSON log's destination: each line written at once, or, inside hold(), kept and written when
 * it returns. In a catch-up the delivery thread logs one "delivered" line per row, several per
 * commit: one write each was ~0.4 s of that thread's time over 10,000 rows (`node bench/catchup.ts --profile`).
 */
export class LineHolder {
  readonly #out: { write(line: string): unknown };
  #held: string | undefined;
  #heldBytes = 0;

  constructor(out: { write(line: string): unknown }) {
    this.#out = out;
  }

  write(line: string): boolean {
    if (this.#held === undefined) {
      this.#out.write(line);
      return true;
    }
    const bytes = Buffer.byteLength(line);
    if (this.#held !== "" && this.#heldBytes + bytes > maxHeldBytes) {
      this.#out.write(this.#held);
      this.#held = "";
      this.#heldBytes = 0;
    }
    this.#held += line;
    this.#heldBytes += bytes;
    return true;
  }

  /** Runs fn; the lines written meanwhile go out when it returns or throws. Nested holds write with the outer one. */
  hold<T>(fn: () => T): T {
    if (this.#held !== undefined) return fn();
    this.#held = "";
    try {
      return fn();
    } finally {
      const held = this.#held;
      this.#held = undefined;
      this.#heldBytes = 0;
      if (held) this.#out.write(held);
    }
  }
}

// Synchronous, so the last lines before a crash or SIGKILL are not lost in a buffer.
function jsonStream(destination: number | NodeJS.WritableStream): NodeJS.WritableStream | pino.DestinationStream {
  return typeof destination === "number" ? pino.destination({ fd: destination, sync: true }) : destination;
}

/**
 * pino-pretty in this thread, as a stream (no worker-thread transport: nothing to lose on exit, no
 * extra thread for a daemon that runs for months). One line per record; colours when the terminal has them.
 */
function prettyStream(destination: number | NodeJS.WritableStream): NodeJS.WritableStream {
  const pretty = loadPretty();
  const common = { singleLine: true, translateTime: "SYS:yyyy-mm-dd HH:MM:ss.l", sync: true };
  if (typeof destination === "number") return pretty({ ...common, destination });
  return pretty({ ...common, colorize: false, destination });
}

function isTerminal(destination: number | NodeJS.WritableStream): boolean {
  if (typeof destination !== "number") return (destination as { isTTY?: boolean }).isTTY === true;
  return destination === 2 ? process.stderr.isTTY === true : destination === 1 ? process.stdout.isTTY === true : false;
}
