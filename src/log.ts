/**
 * The logging surface mailbell's modules use; the daemon's pino (pino-logger.ts) provides it, tests
 * can pass a fake. This file imports no pino: the library loads it, and a library user brings a logger.
 */
export interface Logger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  trace(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
  /** pino's: lets a caller skip building a line nobody will see. Without it, every level counts as on. */
  isLevelEnabled?(level: string): boolean;
  /**
   * Runs fn (synchronous) and writes the lines it logged when it returns, in as few writes as the
   * log's pipe takes whole, instead of one write per line. Nothing can run in between, so a crash
   * loses no more than with a write per line. Without it, fn just runs.
   */
  together?<T>(fn: () => T): T;
}

/**
 * What a library user may pass as `logger`: pino (or anything with `child` and `trace`) is used as
 * it is; `console`, or any object with these four levels, is wrapped by asLogger().
 */
export interface LogSink {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  trace?(obj: object, msg?: string): void;
  child?(bindings: Record<string, unknown>): LogSink;
  isLevelEnabled?(level: string): boolean;
}

/**
 * A sink with `child` and `trace` is a Logger already (the daemon's pino passes through untouched).
 * Any other gets the bindings merged into each line's object, and no trace lines: trace is the
 * IMAP protocol, one line per command and reply, and console.trace prints a stack with each.
 */
export function asLogger(sink: LogSink): Logger {
  if (typeof sink.child === "function" && typeof sink.trace === "function") return sink as Logger;
  return withBindings(sink, {});
}

function withBindings(sink: LogSink, bindings: Record<string, unknown>): Logger {
  const bound = (obj: object): object => ({ ...bindings, ...obj });
  return {
    error: (obj, msg) => sink.error(bound(obj), msg),
    warn: (obj, msg) => sink.warn(bound(obj), msg),
    info: (obj, msg) => sink.info(bound(obj), msg),
    debug: (obj, msg) => sink.debug(bound(obj), msg),
    trace() {},
    child: (more) => withBindings(sink, { ...bindings, ...more }),
    isLevelEnabled: (level) => level !== "trace" && (sink.isLevelEnabled?.(level) ?? true),
  };
}

/** Discards everything; the default for library users who pass no logger. */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  trace() {},
  child() {
    return silentLogger;
  },
  isLevelEnabled() {
    return false;
  },
};
