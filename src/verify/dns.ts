/**
 * DNS for DKIM keys: node:dns's resolver (the system's servers, or the configured ones) with a
 * cache, so a catch-up of 10,000 mails from one sender costs one lookup per key. Node does not
 * report TTLs, so what was found is kept for a fixed time (dns.cacheSeconds, default an hour); a
 * name that does not exist for 5 minutes; a failure (timeout, SERVFAIL, refused) not at all.
 */
import { promises as dns } from "node:dns";

/** The resolver mailauth calls: `dns.promises.resolve`'s signature, TXT records only. */
export type TxtResolver = (name: string, rrtype: string) => Promise<string[][]>;

export interface CachedResolverOptions {
  servers?: readonly string[] | undefined;
  cacheMs: number;
  timeoutMs: number;
  now?: () => number;
  /** For tests: the lookup itself. */
  lookup?: (name: string) => Promise<string[][]>;
}

/** Answers that mean "no such record": worth remembering for a while, unlike a failed lookup. */
const absent = new Set(["ENOTFOUND", "ENODATA", "NXDOMAIN"]);
const absentCacheMs = 5 * 60_000;

export interface CachedResolver {
  resolve: TxtResolver;
  /** Lookups that went to the network (for tests and the benchmark). */
  readonly lookups: number;
}

export function cachedResolver(options: CachedResolverOptions): CachedResolver {
  const now = options.now ?? Date.now;
  const lookup = options.lookup ?? systemLookup(options);
  const cache = new Map<string, { until: number; answer: Promise<string[][]> }>();
  let lookups = 0;
  const resolve: TxtResolver = async (name, rrtype) => {
    if (rrtype !== "TXT") throw Object.assign(new Error(`only TXT records are looked up here, not ${rrtype}`), { code: "ENOTIMP" });
    const key = name.toLowerCase();
    const hit = cache.get(key);
    if (hit && hit.until > now()) return hit.answer;
    lookups++;
    // The promise is cached, so the many mails of one catch-up waiting for the same key share one lookup.
    const answer = lookup(key);
    cache.set(key, { until: Number.POSITIVE_INFINITY, answer });
    try {
      const records = await answer;
      cache.set(key, { until: now() + options.cacheMs, answer });
      return records;
    } catch (err) {
      const code = (err as { code?: string }).code ?? "";
      // A failure is not kept: the next try may work. (A batch stops at its first mail that waits for
      // DNS, fetch.ts readWholeMails, so an outage costs one timeout per batch, not one per mail.)
      if (absent.has(code)) cache.set(key, { until: now() + absentCacheMs, answer });
      else cache.delete(key);
      throw err;
    }
  };
  return {
    resolve,
    get lookups() {
      return lookups;
    },
  };
}

function systemLookup(options: Pick<CachedResolverOptions, "servers" | "timeoutMs">): (name: string) => Promise<string[][]> {
  const resolver = new dns.Resolver({ timeout: options.timeoutMs, tries: 2 });
  if (options.servers) resolver.setServers([...options.servers]);
  return (name) => resolver.resolveTxt(name);
}
