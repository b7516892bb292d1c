import { z } from "zod";

/**
 * The `dns:` part of the config, owned by verify/: where DKIM keys are looked up. Default: the
 * system's resolver (/etc/resolv.conf).
 */
export const dnsSchema = z.strictObject({
  /** Resolvers to ask instead of the system's: "127.0.0.1:5353", "[::1]:53", "9.9.9.9". */
  servers: z.array(z.string().min(1)).min(1).optional(),
  /** How long a key that was found is kept (Node's resolver does not report TTLs). */
  cacheSeconds: z.number().min(0).max(86_400).default(3600),
  /** Each lookup gives up after this long. */
  timeoutSeconds: z.number().min(0.1).max(60).default(5),
});

export type DnsConfig = z.infer<typeof dnsSchema>;
