/**
 * `verify:` on a rule: does the mail really come from who it claims? Pure: the DKIM signatures
 * were verified over the whole message before (src/verify/dkim.ts, by the watcher or `mailbell
 * test`); the provider's verdict is read from the mail's topmost Authentication-Results header.
 */
import type * as MailauthTools from "mailauth/lib/tools.js";
import { createRequire } from "node:module";
import type { ConfigIssue } from "../errors.ts";
import { topmostAuthResults, type AuthResults } from "../mail/auth-results.ts";
import type { NormalizedMail } from "../mail/types.ts";
import type { VerifyConfig } from "./config.ts";
import type { DkimSignature, RuleInput, Verdict } from "./types.ts";

// mailauth's tools bring joi and the public suffix list (~130 ms at every start, measured): loaded
// the first time a verify rule asks whose domain a signature aligns with, not before.
const requireCjs = createRequire(import.meta.url);
let alignmentOf: (typeof MailauthTools)["getAlignment"] | undefined;
function getAlignment(...args: Parameters<NonNullable<typeof alignmentOf>>): ReturnType<NonNullable<typeof alignmentOf>> {
  alignmentOf ??= (requireCjs("mailauth/lib/tools.js") as typeof MailauthTools).getAlignment;
  return alignmentOf(...args);
}

/** Whose Authentication-Results header to trust. */
export type AuthResultsSource =
  /** The header whose authserv-id is this (the user's own server, e.g. mx.google.com for Gmail). */
  | { kind: "authserv"; id: string; preset: "gmail" | undefined }
  /** Microsoft 365 (Exchange Online Protection) writes its header without an authserv-id. */
  | { kind: "microsoft" };

export interface CompiledVerify {
  /** Signing domains, lower case; a subdomain of one counts as it. */
  dkim: string[] | undefined;
  authResults: AuthResultsSource | undefined;
}

/** The presets of `authResults:`, and the host an account must be on for each. */
export const authResultsPresets = {
  gmail: { source: { kind: "authserv", id: "mx.google.com", preset: "gmail" }, provider: "Gmail" },
  microsoft: { source: { kind: "microsoft" }, provider: "Microsoft 365" },
} as const satisfies Record<string, { source: AuthResultsSource; provider: string }>;

export function compileVerify(verify: VerifyConfig): CompiledVerify | ConfigIssue[] {
  const dkim = verify.dkim === undefined ? undefined : (Array.isArray(verify.dkim) ? verify.dkim : [verify.dkim]).map((d) => d.toLowerCase());
  const given = verify.authResults?.trim().toLowerCase();
  if (given === undefined) return { dkim, authResults: undefined };
  if (given in authResultsPresets) return { dkim, authResults: authResultsPresets[given as keyof typeof authResultsPresets].source };
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(given)) {
    return [{ path: "verify.authResults", message: `"${verify.authResults}" is neither a preset (gmail, microsoft) nor an authserv-id: write the name your mail server puts first in its Authentication-Results headers, such as mx.example.org` }];
  }
  return { dkim, authResults: { kind: "authserv", id: given, preset: undefined } };
}

/** The verdict on one mail; with both dkim and authResults, both must hold. */
export function checkVerify(verify: CompiledVerify, input: Pick<RuleInput, "mail" | "dkim">): Verdict {
  const ambiguous = ambiguousHeaders(input.mail);
  if (ambiguous) return { verified: false, code: "ambiguous_headers", reason: ambiguous };
  const verdicts: Verdict[] = [];
  if (verify.dkim) verdicts.push(checkDkim(verify.dkim, input.dkim, input.mail));
  if (verify.authResults) verdicts.push(checkAuthResults(verify.authResults, input.mail));
  const failed = verdicts.find((v) => !v.verified);
  if (failed) return failed;
  return { verified: true, by: verdicts.map((v) => (v.verified ? v.by : "")).join(" and ") };
}

/**
 * A signature covers the bottom copy of a header it signs, while mail programs (and mailbell) read
 * the top one: a genuine signed mail with a second From or Subject put above it would verify. And a
 * From with two addresses lets `from:` match one while the verdict covers the other. Such mail is
 * not verified, whatever its signatures say.
 */
function ambiguousHeaders(mail: NormalizedMail): string | undefined {
  for (const name of ["from", "subject", "date", "to", "cc", "message-id"]) {
    const count = mail.headers.get(name)?.length ?? 0;
    if (count > 1) return `the mail has ${count} ${name === "message-id" ? "Message-ID" : name[0]!.toUpperCase() + name.slice(1)} headers; a signature covers only one of them`;
  }
  if (mail.from.length !== 1) return mail.from.length === 0 ? "the mail has no From address" : `its From has ${mail.from.length} addresses; a verdict covers one`;
  return undefined;
}

function fromDomainOf(mail: NormalizedMail): string | undefined {
  return mail.from[0]?.address.split("@").pop()?.toLowerCase() || undefined;
}

function isSameOrSubdomain(domain: string, of: string): boolean {
  return domain === of || domain.endsWith(`.${of}`);
}

/** A valid signature of one of `domains`, aligned with From. */
export function checkDkim(domains: readonly string[], signatures: readonly DkimSignature[] | undefined, mail: NormalizedMail): Verdict {
  if (signatures === undefined) return { verified: false, code: "not_checked", reason: "the mail was not read whole, so its DKIM signature could not be checked" };
  const signed = signatures.filter((s) => s.result !== "none");
  if (signed.length === 0) return { verified: false, code: "not_signed", reason: "the mail has no DKIM signature" };
  const passed = signed.filter((s) => s.result === "pass");
  const ours = passed.filter((s) => domains.some((d) => isSameOrSubdomain(s.domain, d)));
  const good = ours.find((s) => s.aligned);
  if (good) return { verified: true, by: `DKIM ${good.domain}` };
  const from = fromDomainOf(mail) ?? "(no From address)";
  if (ours.length > 0) return { verified: false, code: "not_aligned", reason: `signed by ${ours[0]!.domain}, but From is ${from}, which is not aligned with it` };
  if (passed.length > 0) return { verified: false, code: "other_domain", reason: `signed by ${passed.map((s) => s.domain).join(", ")}, not by ${domains.join(" or ")}` };
  const first = signed[0]!;
  return { verified: false, code: "dkim_fail", reason: `the DKIM signature of ${first.domain} did not verify: ${first.result}${first.comment ? ` (${first.comment})` : ""}` };
}

/**
 * The verdict the user's server wrote in the topmost Authentication-Results header: dmarc=pass, or
 * dkim=pass with a signing domain aligned with From. Headers further down came with the mail.
 */
export function checkAuthResults(source: AuthResultsSource, mail: NormalizedMail): Verdict {
  const top = topmostAuthResults(mail);
  const expected = source.kind === "microsoft" ? "Microsoft 365's (no authserv-id)" : source.id;
  if (!top) return { verified: false, code: "no_auth_results", reason: `the mail has no Authentication-Results header; ${expected} did not stamp it` };
  const byExpected = source.kind === "microsoft" ? top.authservId === undefined : top.authservId === source.id;
  if (!byExpected) return { verified: false, code: "no_auth_results", reason: `the topmost Authentication-Results header is by ${top.authservId ?? "(no authserv-id)"}, not by ${expected}` };
  const by = source.kind === "microsoft" ? "Microsoft 365" : source.id;
  // One server writes one dmarc result; a second one came from text it copied in (a sender's address).
  if ((top.occurrences["dmarc"] ?? 0) > 1) return { verified: false, code: "auth_results_fail", reason: `the topmost Authentication-Results header has ${top.occurrences["dmarc"]} dmarc results; one of them is not ${by}'s` };
  const from = fromDomainOf(mail);
  const dmarc = top.results.find((r) => r.method === "dmarc");
  if (dmarc?.result === "pass" && dmarc.props["header.from"]?.toLowerCase() === from) return { verified: true, by: `DMARC pass by ${by}` };
  const aligned = alignedDkimPass(top, mail);
  if (aligned) return { verified: true, by: `DKIM ${aligned} by ${by}` };
  const said = dmarc ? `dmarc=${dmarc.result}${dmarc.result === "pass" ? ` for ${dmarc.props["header.from"] ?? "no header.from"}, not for the From domain ${from ?? "(none)"}` : ""}` : "no dmarc result";
  return { verified: false, code: "auth_results_fail", reason: `${by} says ${said} and no aligned dkim=pass` };
}

function alignedDkimPass(top: AuthResults, mail: NormalizedMail): string | undefined {
  const from = fromDomainOf(mail);
  if (!from) return undefined;
  const signers = top.results.filter((r) => r.method === "dkim" && r.result === "pass").flatMap((r) => {
    const d = r.props["header.d"] ?? r.props["header.i"]?.split("@").pop();
    return d ? [d.toLowerCase()] : [];
  });
  const aligned = signers.length > 0 ? getAlignment(from, signers) : false;
  return aligned ? aligned.domain : undefined;
}
