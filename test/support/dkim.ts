/**
 * DKIM for the tests: a key pair made here, the TXT record that publishes it (served by
 * test/support/dns.ts), and mail signed with it by mailauth's signer, so that the verifier is
 * fed signatures of a known good implementation. test/fixtures/dkim/ holds signatures nobody here made.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Resolver } from "node:dns/promises";
import { dkimSign } from "mailauth/lib/dkim/sign.js";

export type DkimKeyType = "rsa" | "ed25519";

export interface DkimKey {
  type: DkimKeyType;
  /** PKCS#8 PEM, as mailauth's signer takes it. */
  privateKey: string;
  publicKey: KeyObject;
  /** The key record: `v=DKIM1; k=rsa; p=<base64>` (RSA: SPKI DER; Ed25519: the raw 32 bytes, RFC 8463). */
  txt: string;
}

/** A fresh key; RSA is 2048 bits unless told (mailauth refuses below 1024 when verifying). */
export function makeDkimKey(type: DkimKeyType = "rsa", rsaBits = 2048): DkimKey {
  const pair = type === "rsa" ? generateKeyPairSync("rsa", { modulusLength: rsaBits }) : generateKeyPairSync("ed25519");
  const privateKey = pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return { type, privateKey, publicKey: pair.publicKey, txt: dkimTxt(pair.publicKey) };
}

/** The DNS TXT value that publishes `publicKey` as a DKIM key. */
export function dkimTxt(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  if (publicKey.asymmetricKeyType === "rsa") return `v=DKIM1; k=rsa; p=${der.toString("base64")}`;
  if (publicKey.asymmetricKeyType === "ed25519") {
    // RFC 8463 publishes the bare 32-byte key, not the SPKI structure around it
    return `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString("base64")}`;
  }
  throw new Error(`DKIM keys are rsa or ed25519, not ${publicKey.asymmetricKeyType}`);
}

/** Where a selector's key lives in DNS. */
export function dkimRecordName(selector: string, domain: string): string {
  return `${selector}._domainkey.${domain}`;
}

export interface SignOptions {
  domain: string;
  selector: string;
  privateKey: string | Buffer;
  /** Header fields to sign (From is required by DKIM); mailauth's default set unless told. */
  headers?: string[];
  canonicalization?: "relaxed/relaxed" | "simple/simple" | "relaxed/simple" | "simple/relaxed";
  signTime?: Date;
  expires?: Date;
  /** l=: sign only this many bytes of the (canonicalized) body. */
  bodyLength?: number;
}

/** `raw` with a DKIM-Signature header prepended; throws with mailauth's reason if it would not sign. */
export async function signMail(raw: string | Buffer, options: SignOptions): Promise<Buffer> {
  const signature = {
    signingDomain: options.domain,
    selector: options.selector,
    privateKey: options.privateKey,
    ...(options.headers ? { headerList: options.headers } : {}),
    ...(options.bodyLength !== undefined ? { maxBodyLength: options.bodyLength } : {}),
  };
  const result = await dkimSign(raw, {
    // mailauth 7.1.0's types require the signature's fields at the top too; its signer reads signatureData only
    ...signature,
    canonicalization: options.canonicalization ?? "relaxed/relaxed",
    ...(options.signTime ? { signTime: options.signTime } : {}),
    ...(options.expires ? { expires: options.expires } : {}),
    signatureData: [signature],
  });
  if (!result.signatures) {
    const reasons = result.errors.map((e) => e.err?.message ?? String(e)).join("; ");
    throw new Error(`mailauth did not sign the mail for d=${options.domain} s=${options.selector}: ${reasons || "no reason given"}`);
  }
  return Buffer.concat([Buffer.from(result.signatures), Buffer.isBuffer(raw) ? raw : Buffer.from(raw)]);
}

/**
 * mailauth's resolver contract ((name, "TXT") → string[][]) answered by a real DNS server, e.g.
 * `dnsResolver(dns.server)` for test/support/dns.ts. Node's errors (ENOTFOUND, ETIMEOUT…) pass through.
 */
export function dnsResolver(server: string, timeoutMs = 1000): (name: string, rrtype: string) => Promise<string[][]> {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
  resolver.setServers([server]);
  return async (name, rrtype) => {
    if (rrtype !== "TXT") throw Object.assign(new Error(`the test resolver asks for TXT only, not ${rrtype}`), { code: "ENOTIMP" });
    return resolver.resolveTxt(name);
  };
}

/** A public test vector in test/fixtures/dkim/ (vectors.json says where each comes from). */
export interface DkimVector {
  /** File name in test/fixtures/dkim/. */
  file: string;
  /** The key records it needs: name → TXT value. */
  txt: Record<string, string>;
  /** The time to verify at (its signatures carry t=); ISO 8601. */
  time: string;
  /** Each signature's `d=`/`s=` and the result mailauth gives when its key is served. */
  signatures: { domain: string; selector: string; result: "pass"; aligned: string | false }[];
  /** A piece of the body to change for the "altered body fails" check. */
  bodyChange: { from: string; to: string };
}

export const DKIM_FIXTURES = path.resolve(import.meta.dirname, "../fixtures/dkim");

export function dkimVectors(): (DkimVector & { raw: Buffer })[] {
  const list = JSON.parse(readFileSync(path.join(DKIM_FIXTURES, "vectors.json"), "utf8")) as { vectors: DkimVector[] };
  return list.vectors.map((v) => ({ ...v, raw: readFileSync(path.join(DKIM_FIXTURES, v.file)) }));
}
