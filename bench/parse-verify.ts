/**
 * What DKIM verification adds per mail (issue 15), on one core: the typical mails of bench/parse.ts
 * (test/fixtures), each signed in memory as its sender would sign it (d= its From domain), run
 *   parse + rules:           whole .eml → normalizeMail (mailparser) → evaluateRules
 *   parse + verify + rules:  the same, plus the whole message through the daemon's verifier
 *                            (src/verify/dkim.ts: mailauth's dkimVerify, body hash and signature)
 *                            before the rules, which then see the signatures
 *   verify alone:            the verifier only (what the difference of the two should be)
 * with the rules of examples/purchase-receipts.yaml verifying DKIM (google.com, apple.com) and a rule
 * on every mail verifying its sender's domain, so every mail is verified. Keys come through the
 * daemon's cached resolver (src/verify/dns.ts) over an in-memory lookup: after the first mail of a
 * domain there is no DNS cost, as in a catch-up of one sender's mail (bench/catchup.ts --verify
 * measures the real DNS server).
 *
 *   node bench/parse-verify.ts [--seconds 5] [--key rsa|ed25519|both]
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load.ts";
import { compileConfigRules } from "../src/config/validate.ts";
import { normalizeMail } from "../src/mail/normalize.ts";
import { evaluateRules } from "../src/rules/rules.ts";
import type { CompiledRule } from "../src/rules/rules.ts";
import { dkimVerifier } from "../src/verify/dkim.ts";
import { cachedResolver } from "../src/verify/dns.ts";
import { makeDkimKey, signMail, type DkimKeyType } from "../test/support/dkim.ts";

const root = path.resolve(import.meta.dirname, "..");
const SELECTOR = "bench";

export interface ParseVerifyResult {
  key: string;
  way: Way;
  mails: number;
  files: number;
  bytes: number;
  seconds: number;
  perSecond: number;
  /** Matches of the every-mail rule that came out verified, per pass over the files (should be `files`). */
  verifiedPerPass: number;
  /** Lookups the resolver passed on (one per domain: the rest came from its cache). */
  lookups: number;
}

type Way = "parse + rules" | "parse + verify + rules" | "verify alone";

/** The example's rules verifying DKIM instead of Gmail's verdict, and a rule on every mail verifying its sender. */
function rules(domains: readonly string[]): CompiledRule[] {
  const example = readFileSync(path.join(root, "examples/purchase-receipts.yaml"), "utf8")
    .replace(/verify: \{ authResults: gmail \}(\s*# elsewhere: verify: \{ dkim: apple\.com \})?/g, (_m, apple?: string) => `verify: { dkim: ${apple ? "apple.com" : "google.com"} }`);
  const yaml = `${example}
  - name: every-mail
    verify: { dkim: [${domains.join(", ")}] }
    notify: [team]
    template: "{{from}}: {{subject}} ({{verified}})"
`;
  return compileConfigRules(parseConfig(yaml, "examples/purchase-receipts.yaml (verify: dkim)", {}, { missingEnv: "placeholder" }));
}

export async function runParseVerify(options: { seconds: number; keyType: DkimKeyType; way: Way }): Promise<ParseVerifyResult> {
  const key = makeDkimKey(options.keyType);
  const files = readdirSync(path.join(root, "test/fixtures")).filter((f) => f.endsWith(".eml"));
  const mails: Buffer[] = [];
  const domains = new Set<string>();
  for (const f of files) {
    const raw = readFileSync(path.join(root, "test/fixtures", f));
    const domain = (await normalizeMail(raw)).from[0]!.address.split("@")[1]!.toLowerCase();
    domains.add(domain);
    mails.push(await signMail(raw, { domain, selector: SELECTOR, privateKey: key.privateKey }));
  }
  const compiled = rules([...domains]);
  const resolver = cachedResolver({ cacheMs: 3_600_000, timeoutMs: 1000, lookup: async () => [[key.txt]] });
  const verifier = dkimVerifier(resolver.resolve, [...domains]);
  const receivedAt = new Date();
  let verified = 0;
  const once = async (raw: Buffer): Promise<void> => {
    if (options.way === "verify alone") {
      if ((await verifier.verify(raw)).some((s) => s.result === "pass")) verified++;
      return;
    }
    const mail = await normalizeMail(raw);
    const dkim = options.way === "parse + verify + rules" ? await verifier.verify(raw) : undefined;
    for (const m of evaluateRules(compiled, { mail, account: "gmail", mailbox: "INBOX", receivedAt, dkim })) if (m.rule === "every-mail" && m.verified?.by) verified++;
  };
  // Warm up the JIT, the charset tables and the key cache before timing.
  for (const raw of mails) await once(raw);
  verified = 0;
  let count = 0;
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  while (performance.now() < deadline) {
    for (const raw of mails) await once(raw);
    count += mails.length;
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    key: options.keyType === "rsa" ? "RSA-2048" : "Ed25519",
    way: options.way,
    mails: count,
    files: mails.length,
    bytes: mails.reduce((n, m) => n + m.length, 0),
    seconds,
    perSecond: count / seconds,
    verifiedPerPass: count ? (verified * mails.length) / count : 0,
    lookups: resolver.lookups,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { seconds: { type: "string", default: "5" }, key: { type: "string", default: "both" } } });
  const keys: DkimKeyType[] = values.key === "both" ? ["rsa", "ed25519"] : [values.key as DkimKeyType];
  for (const keyType of keys) {
    for (const way of ["parse + rules", "parse + verify + rules", "verify alone"] as const) {
      const r = await runParseVerify({ seconds: Number(values.seconds), keyType, way });
      const per = `${((1000 * r.seconds) / r.mails).toFixed(3)} ms/mail`;
      const extra = way !== "parse + rules" ? `; ${way === "verify alone" ? "passed" : "every-mail verified"} ${r.verifiedPerPass}/${r.files} per pass; ${r.lookups} key lookups (the rest cached)` : "";
      console.log(`${r.way} (typical, ${r.key}-signed): ${r.perSecond.toFixed(0)} messages/s on one core, ${per} (${r.mails} messages in ${r.seconds.toFixed(1)} s; ${r.files} files, ${(r.bytes / 1024).toFixed(0)} KB${extra})`);
    }
  }
}
