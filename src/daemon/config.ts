import { z } from "zod";
import { seconds } from "../settings.ts";
import { isLoopback, parseListen, tokenMissingMessage } from "./listen.ts";

/** The `status:` part of the config, owned by daemon/ (the status server and health). */

export const statusSchema = z
  .strictObject({
    /** host:port or port for the status page, /status.json, /healthz and /metrics; loopback unless you say otherwise. */
    listen: z.union([z.string().min(1), z.number().int().min(0).max(65535)]),
    /**
     * Bearer token the page's data and /metrics require (usually `${VAR}`); needed when `listen`
     * is not loopback. Long enough that guessing is hopeless.
     */
    token: z
      .string()
      .refine((t) => t.length >= 16, "must be at least 16 characters; use a long random value such as the output of openssl rand -hex 32")
      .optional(),
    /** /healthz fails when a mailbox's last server round trip is older than this. */
    staleSeconds: seconds(1, 86_400).optional(),
    /** …or when it has been reconnecting for longer than this. */
    reconnectBudgetSeconds: seconds(1, 86_400).default(300),
  })
  .superRefine((status, ctx) => {
    // A listen that does not parse is reported when the server starts, with its own message.
    let where: { host: string; port: number };
    try {
      where = parseListen(status.listen);
    } catch {
      return;
    }
    if (!isLoopback(where.host) && status.token === undefined) ctx.addIssue({ code: "custom", path: ["token"], message: tokenMissingMessage(where.host, where.port) });
  });

export type StatusConfig = z.infer<typeof statusSchema>;
