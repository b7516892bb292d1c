/**
 * DKIM verification of a whole message, streamed: mailauth (postalsys, the author of imapflow)
 * checks the signatures (RFC 6376, 8301, 8463: RSA and Ed25519, both canonicalizations, l=, t= and
 * x=) and their alignment with From (relaxed, as DMARC defines it); keys come through our cached
 * resolver. mailauth is loaded only when a rule verifies DKIM.
 */
import type { Readable } from "node:stream";
import { ReadAgainLater } from "../imap/fetch.ts";
import type { DkimSignature } from "../rules/types.ts";
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
  const isTrusted = (domain: string) => trusted.some((d) => domain === d || domain.endsWith(`.${d}`));
  return {
    async verify(message) {
      const { dkimVerify } = await import("mailauth/lib/dkim/verify.js");
      const result = await dkimVerify(message, { resolver: resolve as never });
      const signatures = result.results.map(toSignature);
      const settled = signatures.some((s) => s.result === "pass" && s.aligned && isTrusted(s.domain));
      const failed = signatures.find((s) => s.result === "temperror" && isTrusted(s.domain));
      if (failed && !settled) throw new ReadAgainLater(`its DKIM signature (d=${failed.domain}) could not be checked: ${keyLookupFailed} (${failed.comment ?? "temperror"}); checked again shortly`);
      return signatures;
    },
  };
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
