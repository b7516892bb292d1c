/**
 * Reading a mail's Authentication-Results headers (RFC 8601), which receiving servers write to
 * say what they checked. Only the topmost one can be the user's own server's: every header below it
 * came with the mail, and anyone can write one. Parsed with mailauth's RFC 8601 parser.
 */
import headerParser from "mailauth/lib/parse-dkim-headers.js";
import type { NormalizedMail } from "./types.ts";

/** One method's result in an Authentication-Results header: `dkim=pass header.d=google.com`. */
export interface AuthMethodResult {
  method: string;
  result: string;
  /** Properties such as `header.d`, `header.from`, `smtp.mailfrom`. */
  props: Record<string, string>;
}

export interface AuthResults {
  /** The authserv-id: who wrote it (mx.google.com); undefined when the header has none (Microsoft 365). */
  authservId: string | undefined;
  results: AuthMethodResult[];
  /** How often each method appears in the header as written (the parser keeps one dmarc result only). */
  occurrences: Record<string, number>;
}

/** The topmost Authentication-Results header of a mail, as written (never RFC 2047-decoded), parsed; undefined when it has none. */
export function topmostAuthResults(mail: Pick<NormalizedMail, "authenticationResults">): AuthResults | undefined {
  const value = mail.authenticationResults?.[0];
  return value === undefined ? undefined : parseAuthResults(value);
}

export function parseAuthResults(value: string): AuthResults {
  const { parsed } = headerParser(`Authentication-Results: ${value}`);
  const results: AuthMethodResult[] = [];
  for (const [method, entry] of Object.entries(parsed)) {
    if (method === "header" || method === "value") continue;
    for (const one of Array.isArray(entry) ? entry : [entry]) {
      if (typeof one !== "object" || one === null || typeof (one as { value?: unknown }).value !== "string") continue;
      results.push({ method: method.toLowerCase(), result: String((one as { value: string }).value).toLowerCase(), props: flatProps(one as Record<string, unknown>) });
    }
  }
  const authservId = typeof parsed.value === "string" && parsed.value !== "" ? parsed.value.toLowerCase() : undefined;
  return { authservId, results, occurrences: countMethods(value) };
}

/** `{ header: { d: "x" } }` → `{ "header.d": "x" }`; the comment and the result itself left out. */
function flatProps(entry: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [ptype, props] of Object.entries(entry)) {
    if (ptype === "value" || ptype === "comment" || typeof props !== "object" || props === null) continue;
    for (const [property, v] of Object.entries(props)) if (typeof v === "string") out[`${ptype}.${property}`.toLowerCase()] = v;
  }
  return out;
}

/** `dmarc=` and the like as they occur in the header as written, comments left out. */
function countMethods(value: string): Record<string, number> {
  const counts: Record<string, number> = {};
  const withoutComments = value.replace(/\((?:[^()\\]|\\.)*\)/g, " ");
  for (const m of withoutComments.matchAll(/(?:^|[;\s])([a-z][a-z0-9-]*)\s*=/gi)) {
    const method = m[1]!.toLowerCase();
    counts[method] = (counts[method] ?? 0) + 1;
  }
  return counts;
}
