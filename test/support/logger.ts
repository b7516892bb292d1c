import type { Logger } from "../../src/log.ts";

export interface LogEntry {
  level: "error" | "warn" | "info" | "debug" | "trace";
  msg: string | undefined;
  fields: Record<string, unknown>;
}

/** A Logger that keeps every entry, so tests can assert what mailbell said (and never said). */
export class CaptureLogger implements Logger {
  readonly entries: LogEntry[];
  readonly #bindings: Record<string, unknown>;

  constructor(entries: LogEntry[] = [], bindings: Record<string, unknown> = {}) {
    this.entries = entries;
    this.#bindings = bindings;
  }

  #push(level: LogEntry["level"], obj: object, msg?: string): void {
    this.entries.push({ level, msg, fields: { ...this.#bindings, ...obj } });
    if (process.env.MAILBELL_TEST_LOG && level !== "trace") process.stderr.write(`[${level}] ${msg ?? ""} ${JSON.stringify({ ...this.#bindings, ...obj })}\n`);
  }
  error(obj: object, msg?: string): void {
    this.#push("error", obj, msg);
  }
  warn(obj: object, msg?: string): void {
    this.#push("warn", obj, msg);
  }
  info(obj: object, msg?: string): void {
    this.#push("info", obj, msg);
  }
  debug(obj: object, msg?: string): void {
    this.#push("debug", obj, msg);
  }
  trace(obj: object, msg?: string): void {
    this.#push("trace", obj, msg);
  }
  child(bindings: Record<string, unknown>): Logger {
    return new CaptureLogger(this.entries, { ...this.#bindings, ...bindings });
  }

  /** Entries whose message matches, at the given level or any. */
  find(msg: RegExp, level?: LogEntry["level"]): LogEntry[] {
    return this.entries.filter((e) => (level === undefined || e.level === level) && msg.test(e.msg ?? ""));
  }

  /** Resolves once an entry matches; rejects after timeoutMs with the last entries. */
  async waitFor(msg: RegExp, timeoutMs = 10_000, level?: LogEntry["level"]): Promise<LogEntry> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.find(msg, level)[0];
      if (hit) return hit;
      if (Date.now() > deadline) {
        const tail = this.entries.slice(-15).map((e) => `  [${e.level}] ${e.msg} ${JSON.stringify(e.fields)}`).join("\n");
        throw new Error(`no log entry matching ${msg} within ${timeoutMs} ms; last entries:\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
