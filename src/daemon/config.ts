import { z } from "zod";
import { seconds } from "../settings.ts";

/** The `status:` part of the config, owned by daemon/ (the status server and health). */

export const statusSchema = z.strictObject({
  /** host:port or port for GET /healthz and /metrics; loopback unless you say otherwise. */
  listen: z.union([z.string().min(1), z.number().int().min(0).max(65535)]),
  /** /healthz fails when a mailbox's last server round trip is older than this. */
  staleSeconds: seconds(1, 86_400).optional(),
  /** …or when it has been reconnecting for longer than this. */
  reconnectBudgetSeconds: seconds(1, 86_400).default(300),
});

export type StatusConfig = z.infer<typeof statusSchema>;
