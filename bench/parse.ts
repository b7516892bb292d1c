/**
 * Parse + rules throughput on one core: raw bytes → normalizeMail → evaluateRules, as the watcher
 * does it (up to 4 messages parsed at once, handed out in order). Two sets: "typical" is the
 * project's receipt and notice fixtures; "corpus" adds the shared real-world parser test suite
 * (torture tests, DSNs, broken MIME), when present.
 *   node bench/parse.ts [--seconds 5]
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load.ts";
import { compileConfigRules } from "../src/config/validate.ts";
import { normalizeMail } from "../src/mail/normalize.ts";
import { evaluateRules } from "../src/rules/rules.ts";

const root = path.resolve(import.meta.dirname, "..");

export interface ParseResult {
  set: "typical" | "corpus";
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

const parallel = 4;

export async function runParse(options: { seconds: number; set: "typical" | "corpus" }): Promise<ParseResult> {
  const yaml = readFileSync(path.join(root, "examples/purchase-receipts.yaml"), "utf8");
  const loaded = parseConfig(yaml, "examples/purchase-receipts.yaml", {}, { missingEnv: "placeholder" });
  const rules = compileConfigRules(loaded);
  const { mails, note } = loadCorpus(options.set);
  // Warm up the JIT and the charset tables before timing.
  for (const raw of mails) evaluateRules(rules, { mail: await normalizeMail(raw), account: "a", mailbox: "INBOX", receivedAt: new Date() });
  let messages = 0;
  let matched = 0;
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  while (performance.now() < deadline) {
    for (let i = 0; i < mails.length; i += parallel) {
      const parsed = await Promise.all(mails.slice(i, i + parallel).map((raw) => normalizeMail(raw)));
      for (const mail of parsed) {
        matched += evaluateRules(rules, { mail, account: "a", mailbox: "INBOX", receivedAt: new Date() }).length;
        messages++;
      }
    }
  }
  const seconds = (performance.now() - started) / 1000;
  return { set: options.set, messages, corpusFiles: mails.length, corpusBytes: mails.reduce((n, m) => n + m.length, 0), seconds, perSecond: messages / seconds, matched, corpusNote: note };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { seconds: { type: "string", default: "5" } } });
  for (const set of ["typical", "corpus"] as const) {
    const r = await runParse({ seconds: Number(values.seconds), set });
    console.log(`parse + rules (${set}): ${r.perSecond.toFixed(0)} messages/s on one core (${r.messages} messages in ${r.seconds.toFixed(1)} s; ${r.corpusFiles} files, ${(r.corpusBytes / 1024).toFixed(0)} KB, ${r.corpusNote})`);
  }
}
