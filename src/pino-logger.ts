import pino from "pino";
import type { Logger } from "./log.ts";

// The daemon's logger, apart from log.ts so that the library (src/index.ts) never loads pino.

/**
 * Secrets never reach the log: the config's passwords, tokens and webhook URLs are redacted by key
 * wherever they appear in a logged object.
 */
const secretKeys = ["pass", "password", "token", "accessToken", "refreshToken", "clientSecret", "secret", "key", "url", "webhook", "authorization"];
export const redactPaths = [...secretKeys, ...secretKeys.map((k) => `*.${k}`), "headers.*", "*.headers.*"];

export function createLogger(options: { level?: string; destination?: number | NodeJS.WritableStream } = {}): Logger {
  const destination = options.destination ?? 2;
  return pino(
    {
      level: options.level ?? "info",
      base: undefined,
      redact: { paths: redactPaths, censor: "****" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    // Synchronous, so the last lines before a crash or SIGKILL are not lost in a buffer.
    typeof destination === "number" ? pino.destination({ fd: destination, sync: true }) : destination,
  ) as unknown as Logger;
}
