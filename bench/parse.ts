/**
 * Parse + rules throughput on one core, two ways in:
 *   imap:  what the daemon does — the header, BODYSTRUCTURE and text parts as Dovecot returns them
 *          (fetched once from a real Dovecot before timing) → readFetchedParts → evaluateRules;
 *   whole: a whole .eml → normalizeMail (mailparser) → evaluateRules, as `mailbell test` does.
 * Two sets: "typical" is the project's receipt and notice fixtures; "corpus" adds the shared
 * real-world parser test suite (torture tests, DSNs, broken MIME), when present.
 *   node bench/parse.ts [--seconds 5]
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load.ts";
import { compileConfigRules } from "../src/config/validate.ts";
import { ImapFlow } from "imapflow";
import { fetchBatches } from "../src/imap/fetch.ts";
import { normalizeMail } from "../src/mail/normalize.ts";
import { readFetchedParts, type FetchedParts } from "../src/mail/parts.ts";
import type { NormalizedMail } from "../src/mail/types.ts";
import { evaluateRules } from "../src/rules/rules.ts";
import { startDovecot } from "../test/support/dovecot.ts";

const root = path.resolve(import.meta.dirname, "..");

export interface ParseResult {
  set: "typical" | "corpus";
  way: "imap" | "whole";
  messages: number;
  corpusFiles: number;
  corpusBytes: number;
  seconds: number;
  perSecond: number;
  matched: number;
  corpusNote: string;
}

function loadCorpus(set: "typical" | "corpus"): { mails: Buffer[]; note: string } {
  const dirs = set === "typical" ? [path.join(root, "test/fixtures")] : [path.join(root, "test/fixtures"), path.resolve(root, "../shared/corpus")];
  const mails: Buffer[] = [];
  let note = set === "typical" ? "test/fixtures" : "test/fixtures + ../shared/corpus";
  for (const dir of dirs) {
    if (!existsSync(dir)) {
      note = `test/fixtures only (${dir} not found)`;
      continue;
    }
    for (const f of readdirSync(dir).filter((f) => f.endsWith(".eml"))) mails.push(readFileSync(path.join(dir, f)));
  }
  return { mails, note };
}

/** What fetchBatches hands to the decoder for these mails, read from a real Dovecot once. */
async function fetchedFromDovecot(mails: Buffer[]): Promise<FetchedParts[]> {
  const dovecot = await startDovecot();
  try {
    const uids = await dovecot.appendMany("alice", "Parse", mails);
    const client = new ImapFlow({ ...dovecot.clientOptions("alice"), logger: false });
    await client.connect();
    const captured: FetchedParts[] = [];
    try {
      await client.mailboxOpen("Parse", { readOnly: true });
      const capture = async (round: FetchedParts[]): Promise<NormalizedMail[]> => {
        captured.push(...round);
        return round.map(readFetchedParts);
      };
      for await (const batch of fetchBatches(client, uids, { maxTextBytes: 256 * 1024, decode: capture })) void batch;
    } finally {
      await client.logout();
    }
    return captured;
  } finally {
    await dovecot.dispose();
  }
}

export async function runParse(options: { seconds: number; set: "typical" | "corpus"; way: "imap" | "whole" }): Promise<ParseResult> {
  const yaml = readFileSync(path.join(root, "examples/purchase-receipts.yaml"), "utf8");
  const loaded = parseConfig(yaml, "examples/purchase-receipts.yaml", {}, { missingEnv: "placeholder" });
  const rules = compileConfigRules(loaded);
  const { mails, note } = loadCorpus(options.set);
  const fetched = options.way === "imap" ? await fetchedFromDovecot(mails) : [];
  const decodeAll = options.way === "imap" ? async () => fetched.map(readFetchedParts) : async () => Promise.all(mails.map((raw) => normalizeMail(raw)));
  const count = options.way === "imap" ? fetched.length : mails.length;
  // Warm up the JIT and the charset tables before timing.
  for (const mail of await decodeAll()) evaluateRules(rules, { mail, account: "a", mailbox: "INBOX", receivedAt: new Date() });
  let messages = 0;
  let matched = 0;
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  while (performance.now() < deadline) {
    for (const mail of await decodeAll()) matched += evaluateRules(rules, { mail, account: "a", mailbox: "INBOX", receivedAt: new Date() }).length;
    messages += count;
  }
  const seconds = (performance.now() - started) / 1000;
  return { set: options.set, way: options.way, messages, corpusFiles: mails.length, corpusBytes: mails.reduce((n, m) => n + m.length, 0), seconds, perSecond: messages / seconds, matched, corpusNote: note };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { seconds: { type: "string", default: "5" } } });
  for (const way of ["imap", "whole"] as const) {
    for (const set of ["typical", "corpus"] as const) {
      const r = await runParse({ seconds: Number(values.seconds), set, way });
      console.log(`parse + rules (${way}, ${set}): ${r.perSecond.toFixed(0)} messages/s on one core (${r.messages} messages in ${r.seconds.toFixed(1)} s; ${r.corpusFiles} files, ${(r.corpusBytes / 1024).toFixed(0)} KB, ${r.corpusNote})`);
    }
  }
}
