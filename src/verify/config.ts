import { isIP } from "node:net";
import { z } from "zod";

/** What node:dns's setServers takes: an IP address, with a port as "1.2.3.4:53" or "[::1]:53". */
export function isResolverAddress(server: string): boolean {
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(server);
  if (bracketed) return isIP(bracketed[1]!) === 6 && portOk(bracketed[2]);
  const v4 = /^([\d.]+)(?::(\d{1,5}))?$/.exec(server);
  if (v4) return isIP(v4[1]!) === 4 && portOk(v4[2]);
  return isIP(server) === 6;
}

function portOk(port: string | undefined): boolean {
  return port === undefined || (Number(port) >= 1 && Number(port) <= 65_535);
}

/**
 * The `dns:` part of the config, owned by verify/: where DKIM keys are looked up. Default: the
 * system's resolver (/etc/resolv.conf).
 */
export const dnsSchema = z.strictObject({
  /** Resolvers to ask instead of the system's: "127.0.0.1:5353", "[::1]:53", "9.9.9.9". */
  servers: z
    .array(z.string().refine(isResolverAddress, { error: (issue) => `"${String(issue.input)}" is not a resolver's IP address: give each as IP or IP:port ("9.9.9.9", "127.0.0.1:5353", "[::1]:53"); a host name cannot be used` }))
    .min(1)
    .optional(),
  /** How long a key that was found is kept (Node's resolver does not report TTLs). */
  cacheSeconds: z.number().min(0).max(86_400).default(3600),
  /** Each lookup gives up after this long. */
  timeoutSeconds: z.number().min(0.1).max(60).default(5),
});

export type DnsConfig = z.infer<typeof dnsSchema>;
