/**
 * Header decoding alone, per mail: what a catch-up where no rule reads the body costs in
 * src/mail (splitHeaderFields → buildMail: raw 8-bit values, encoded words, address lists, dates),
 * over the catch-up's own corpus (bench/corpus-gen.ts), in a child process with the heap settings
 * `mailbell run` has (bin/mailbell.js), so the garbage collector works as it does there. The first
 * pass is what a fresh daemon pays; later passes are warmed up.
 *
 *   node bench/headers.ts                 5,000 mails, 5 passes
 *   node bench/headers.ts --mails 10000 --passes 3
 */
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { corpus } from "./corpus-gen.ts";
import { findHeaderEnd, splitHeaderFields } from "../src/mail/header-block.ts";
import { buildMail } from "../src/mail/normalize.ts";

const { values } = parseArgs({ options: { mails: { type: "string", default: "5000" }, passes: { type: "string", default: "5" }, child: { type: "boolean", default: false } } });

if (!values.child) {
  // The launcher's settings (bin/mailbell.js); the passes run in the child.
  const run = spawnSync(process.execPath, ["--max-semi-space-size=4", "--heap-growing-percent=50", import.meta.filename, "--child", "--mails", values.mails, "--passes", values.passes], { stdio: "inherit", env: { ...process.env, MALLOC_ARENA_MAX: "2" } });
  process.exitCode = run.status ?? 1;
} else {
  const heads: string[] = [];
  for (const m of corpus(Number(values.mails))) heads.push(m.raw.subarray(0, findHeaderEnd(m.raw).headerEnd).toString("latin1"));
  let checksum = 0;
  for (let pass = 1; pass <= Number(values.passes); pass++) {
    const start = performance.now();
    for (const head of heads) checksum += buildMail(splitHeaderFields(head), { text: undefined, html: undefined }, []).from.length;
    const perMail = ((performance.now() - start) / heads.length) * 1000;
    console.log(`pass ${pass}: ${perMail.toFixed(1)} µs per mail (${heads.length} headers of the catch-up corpus)`);
  }
  if (checksum === 0) throw new Error("no From address decoded: the corpus or the decoder changed");
}
