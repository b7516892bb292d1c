import { z } from "zod";
import { seconds } from "../settings.ts";

/** The `outbox:` part of the config, owned by outbox/. */

export const outboxSchema = z.strictObject({
  /** A notification that failed this many times goes to the dead letters. */
  maxAttempts: z.number().int().min(1).max(1000).default(12),
  retryBaseSeconds: seconds(0.01, 3600).default(2),
  retryMaxSeconds: seconds(0.01, 86_400).default(600),
  /** On SIGTERM/SIGINT, keep sending for up to this long before exiting. */
  drainSeconds: seconds(0, 3600).default(10),
  /** Delivered notifications are kept this long (for `mailbell outbox` and duplicate checks). */
  keepDays: seconds(1, 3650).default(30),
  /**
   * Where the sender runs: `main`, on the thread that reads mail; `own`, on a thread of its own
   * (faster catch-ups on 2+ cores, but a second JavaScript heap: more memory all the time); `auto`,
   * on the main thread, and on its own thread while a catch-up of 1,000 mails or more is read.
   */
  thread: z.enum(["main", "own", "auto"]).default("auto"),
});

export type OutboxConfig = z.infer<typeof outboxSchema>;
