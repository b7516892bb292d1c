/**
 * DKIM verification of a whole message, streamed: mailauth (postalsys, the author of imapflow)
 * checks the signatures (RFC 6376, 8301, 8463: RSA and Ed25519, both canonicalizations, l=, t= and
 * x=) and their alignment with From (relaxed, as DMARC defines it); keys come through our cached
 * resolver. mailauth is loaded only when a rule verifies DKIM.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import type { Readable } from "node:stream";
import { ReadAgainLater } from "../imap/fetch.ts";
import type { DkimSignature } from "../rules/types.ts";
import type { MailauthKey, MailauthKeyCache } from "mailauth/lib/tools.js";
import type { TxtResolver } from "./dns.ts";

/** In the reason of mail set aside because a key lookup failed: the daemon asks to read such mail again now and then. */
export const keyLookupFailed = "the key's DNS lookup failed";

export interface DkimVerifier {
  /** The message's signatures; throws ReadAgainLater when a key lookup failed (a DNS failure is not a verdict). */
  verify(message: Readable | Buffer): Promise<DkimSignature[]>;
}

/**
 * `trusted`: the domains rules verify (verify.dkim). Only a failed lookup for one of them is worth
 * waiting for, and only while no trusted, aligned signature passed already: a sender cannot make
 * mailbell wait (and read a mail whole again and again) by signing with a domain whose DNS fails.
 */
export function dkimVerifier(resolve: TxtResolver, trusted: readonly string[]): DkimVerifier {
  const keys = parsedKeyCache(resolve);
  const isTrusted = (domain: string) => trusted.some((d) => domain === d || domain.endsWith(`.${d}`));
  return {
    async verify(message) {
      const { DkimVerifier, writeToStream } = await (mailauth ??= loadMailauth());
      // mailauth's dkimVerify(), but with our key cache in place of the one it makes per message.
      const verifier = new DkimVerifier({ resolver: resolve });
      verifier.keyCache = keys;
      verifier.arc.keyCache = keys;
      await writeToStream(verifier, message);
      const signatures = (verifier.results as MailauthSignature[]).map(toSignature);
      const settled = signatures.some((s) => s.result === "pass" && s.aligned && isTrusted(s.domain));
      const failed = signatures.find((s) => s.result === "temperror" && isTrusted(s.domain));
      if (failed && !settled) throw new ReadAgainLater(`its DKIM signature (d=${failed.domain}) could not be checked: ${keyLookupFailed} (${failed.comment ?? "temperror"}); checked again shortly`);
      return signatures;
    },
  };
}

/** Loaded at the first mail to verify, once: import() resolves its specifier again on every call. */
let mailauth: ReturnType<typeof loadMailauth> | undefined;

async function loadMailauth() {
  const [{ DkimVerifier }, { writeToStream, getPublicKey, toALabel }] = await Promise.all([import("mailauth/lib/dkim/dkim-verifier.js"), import("mailauth/lib/tools.js")]);
  return { DkimVerifier, writeToStream, getPublicKey, toALabel };
}

/** Most key records kept parsed: a sender can sign with as many made-up selectors as it likes. */
const maxParsedKeys = 1000;

/**
 * mailauth's key cache (`get` answers what getPublicKey() would), kept across messages: a key
 * record is parsed once per DNS answer instead of once per mail (createPublicKey, export, and the
 * PEM parsed again inside crypto.verify cost ~1 s of CPU in a catch-up of 10,000 verified mails).
 * An entry is used only while the resolver hands back the very same answer (the cached resolver
 * returns the same array until cacheSeconds are over), so a rotated key is seen as soon as DNS is
 * asked again. A failed lookup is not kept here: it throws from the resolver, as in getPublicKey().
 */
function parsedKeyCache(resolve: TxtResolver): MailauthKeyCache {
  const parsed = new Map<string, { records: string[][]; key: Promise<MailauthKey> }>();
  return {
    resolver: resolve,
    async get(type, name, minBitLength, options = {}) {
      const { getPublicKey, toALabel } = await (mailauth ??= loadMailauth());
      const records = await resolve(toALabel(name), "TXT");
      const id = [type, Boolean(options.strict), minBitLength ?? "", options.hashAlgo ?? "", name].join(":");
      const hit = parsed.get(id);
      if (hit && hit.records === records) return hit.key;
      const key = getPublicKey(type, name, minBitLength, async () => records, options).then(asKeyObject);
      key.catch(() => {});
      parsed.delete(id);
      if (parsed.size >= maxParsedKeys) parsed.delete(parsed.keys().next().value!);
      parsed.set(id, { records, key });
      return key;
    },
  };
}

/** The PEM mailauth returns, as a KeyObject crypto.verify takes without parsing it again; it still prints as the PEM in mailauth's results. */
function asKeyObject(found: MailauthKey): MailauthKey {
  const pem = found.publicKey as string;
  const key: KeyObject = createPublicKey(pem);
  Object.defineProperty(key, "toString", { value: () => pem });
  return { ...found, publicKey: key };
}

interface MailauthSignature {
  signingDomain?: string;
  status: { result: string; comment?: string; aligned?: string | false; underSized?: number };
}

function toSignature(r: MailauthSignature): DkimSignature {
  const domain = (r.signingDomain ?? "").toLowerCase();
  const aligned = Boolean(r.status.aligned);
  // A signature with l= covers only the start of the body: anyone may append to a genuine receipt
  // ("合計: ￥99,999" after the signed part) and it still verifies. What counts must be signed whole.
  if (r.status.result === "pass" && (r.status.underSized ?? 0) > 0) {
    return { domain, result: "policy", aligned, comment: `l= leaves ${r.status.underSized} bytes of the body unsigned` };
  }
  return { domain, result: r.status.result, aligned, ...(r.status.comment ? { comment: r.status.comment } : {}) };
}
