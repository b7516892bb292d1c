/**
 * Types for the parts of mailauth (pinned in package.json) that it ships without them: its RFC 8601
 * header parser and its DMARC alignment helper. Only what mailbell uses.
 */
declare module "mailauth/lib/parse-dkim-headers.js" {
  interface ParsedHeader {
    parsed: Record<string, unknown> & { header?: string; value?: string };
    original: string;
  }
  function headerParser(line: string): ParsedHeader;
  export default headerParser;
}

declare module "mailauth/lib/dkim/dkim-verifier.js" {
  import type { Writable } from "node:stream";
  import type { MailauthKeyCache } from "mailauth/lib/tools.js";
  /** A writable stream: write the message, and once it has finished, `results` holds one entry per signature. */
  export class DkimVerifier extends Writable {
    constructor(options: { resolver?: (name: string, rrtype: string) => Promise<string[][]>; minBitLength?: number; strict?: boolean });
    /** Made per message by the constructor; replaceable before the message is written. */
    keyCache: MailauthKeyCache;
    arc: { keyCache?: MailauthKeyCache };
    results: unknown[];
  }
}

declare module "mailauth/lib/tools.js" {
  import type { KeyObject } from "node:crypto";
  import type { Readable, Writable } from "node:stream";
  /** What getPublicKey() finds in a key record (mailauth gives publicKey as a PEM string). */
  export interface MailauthKey {
    publicKey: string | KeyObject;
    rr: string;
    modulusLength?: number;
    keyType: string;
    flags: string[];
    testing: boolean;
    warnings: string[];
  }
  export interface MailauthKeyCache {
    resolver: (name: string, rrtype: string) => Promise<string[][]>;
    get(type: string, name: string, minBitLength?: number, options?: { strict?: boolean; hashAlgo?: string }): Promise<MailauthKey>;
  }
  export function getPublicKey(type: string, name: string, minBitLength: number | undefined, resolver: (name: string, rrtype: string) => Promise<string[][]>, options?: { strict?: boolean; hashAlgo?: string }): Promise<MailauthKey>;
  /** RFC 8616: a U-label domain as its A-label. */
  export function toALabel(name: string): string;
  /** Writes a Buffer (in 64 KiB pieces) or pipes a stream into `stream`; resolves when it has finished. */
  export function writeToStream(stream: Writable, input: Readable | Buffer | string, chunkSize?: number): Promise<void>;

  /** The first entry of domainList that is aligned with fromDomain (relaxed unless strict), or false. */
  export function getAlignment(fromDomain: string, domainList: readonly (string | { domain: string })[], strict?: boolean): { domain: string } | false;
}
