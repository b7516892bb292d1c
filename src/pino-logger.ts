import { createRequire } from "node:module";
import pino from "pino";
import type PinoPretty from "pino-pretty";
import type { Logger } from "./log.ts";

// Loaded only for readable lines: ~2 MB in each thread that logs JSON (a service, the delivery thread).
const loadPretty = (): typeof PinoPretty => createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;

// The daemon's logger, apart from log.ts so that the library (src/index.ts) never loads pino.

/**
 * Secrets never reach the log: the config's passwords, tokens and webhook URLs are redacted by key
 * wherever they appear in a logged object.
 */
const secretKeys = ["pass", "password", "token", "accessToken", "refreshToken", "clientSecret", "secret", "key", "url", "webhook", "authorization"];
export const redactPaths = [...secretKeys, ...secretKeys.map((k) => `*.${k}`), "headers.*", "*.headers.*"];

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
  return pino(
    {
      level: options.level ?? "info",
      base: undefined,
      redact: { paths: redactPaths, censor: "****" },
      timestamp: pino.stdTimeFunctions.isoTime,
      // "level":"info" rather than pino's 30: readable in journalctl and grep without a table.
      formatters: { level: (label) => ({ level: label }) },
    },
    format === "pretty" ? prettyStream(destination) : jsonStream(destination),
  ) as unknown as Logger;
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
