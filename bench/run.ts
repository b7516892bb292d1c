/**
 * `npm run bench`: every benchmark of issue 5, and issue 13's commit window, one after another
 * (they must not share the CPU), printed as one table. `--write` also replaces the results section
 * of BENCHMARKS.md.
 *   node bench/run.ts [--quick] [--write] [--only latency,e2e,catchup,mailboxes,bigmail,parse,chaos,commit-window]
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { BIGMAIL_COLUMNS, formatBigMail, runBigMail } from "./bigmail.ts";
import { CATCHUP_COLUMNS, formatCatchUp, runCatchUp } from "./catchup.ts";
import { CHAOS_COLUMNS, formatChaos, runChaos } from "./chaos.ts";
import { COMMIT_WINDOW_COLUMNS, formatCommitWindow, overBound, runCommitWindow } from "./commit-window.ts";
import { E2E_COLUMNS, formatE2e, runE2e } from "./e2e.ts";
import { formatLatency, LATENCY_COLUMNS, runLatency } from "./latency.ts";
import { machineInfo, Table } from "./lib.ts";
import { formatManyMailboxes, MAILBOXES_COLUMNS, runManyMailboxes } from "./mailboxes.ts";
import { runParse } from "./parse.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    write: { type: "boolean", default: false },
    only: { type: "string" },
  },
});
const only = values.only ? new Set(values.only.split(",")) : undefined;
const want = (name: string): boolean => !only || only.has(name);
const quick = values.quick;
const sections: string[] = [];
const say = (line: string): void => void process.stderr.write(`${line}\n`);

const machine = machineInfo();
const command = `npm run bench${quick ? " -- --quick" : ""}${values.only ? ` -- --only ${values.only}` : ""}`;

if (want("latency")) {
  const mails = quick ? 100 : 1000;
  say(`latency: ${mails} mails at 20/s…`);
  const r = await runLatency({ mails, perSecond: 20, tap: true });
  sections.push(`### Latency (${mails} mails appended at 20/s; overhead over a raw IDLE client)\n\n${new Table(LATENCY_COLUMNS).addRows(formatLatency(r)).toString()}`);
  // At 20/s each of Dovecot's 500 ms pushes carries ~10 mails and two sessions' timers drift apart
  // by up to 500 ms (see the 2nd raw client): a slow rate shows one mail at a time.
  const slow = quick ? 30 : 120;
  say(`latency: ${slow} mails at 2/s…`);
  const s = await runLatency({ mails: slow, perSecond: 2, tap: true });
  sections.push(`### Latency (${slow} mails appended at 2/s)\n\n${new Table(LATENCY_COLUMNS).addRows(formatLatency(s)).toString()}`);
}
if (want("e2e")) {
  // Issue 18: what a user feels, APPEND OK → the receiver has the post, the three clients together.
  const mails = quick ? 200 : 1000;
  say(`end to end: ${mails} mails at 20/s, 3 runs…`);
  const r = await runE2e({ mails, perSecond: 20 });
  sections.push(`### End to end (${mails} mails appended at 20/s; APPEND OK → receiver, median of 3 runs)\n\n${new Table(E2E_COLUMNS).addRows(formatE2e(r)).toString()}`);
}
if (want("catchup")) {
  const mails = quick ? 1000 : 10_000;
  say(`catch-up: ${mails} mails waiting at start…`);
  const r = await runCatchUp({ mails });
  // The same backlog with rules that read every body: no mail's text can be left unread.
  say(`catch-up: ${mails} mails, rules reading every body…`);
  const every = await runCatchUp({ mails, script: false, readEveryBody: true });
  const rows = [...formatCatchUp(r), ...formatCatchUp(every, r.script)];
  sections.push(`### Catch-up (${mails} mails waiting at start, 4–200 KB, mixed charsets, some attachments)\n\n${new Table(CATCHUP_COLUMNS).addRows(rows).toString()}`);
}
if (want("mailboxes")) {
  const mailboxes = quick ? 100 : 1000;
  say(`many mailboxes: ${mailboxes}…`);
  const r = await runManyMailboxes({ mailboxes, ...(quick ? { idleSeconds: 15 } : {}) });
  sections.push(`### Many mailboxes (${mailboxes} watched, implicit TLS)\n\n${new Table(MAILBOXES_COLUMNS).addRows(formatManyMailboxes(r)).toString()}`);
}
if (want("bigmail")) {
  say("big mail: 50 MB attachment…");
  const r = await runBigMail();
  sections.push(`### Big mail (50 MB attachment, short text)\n\n${new Table(BIGMAIL_COLUMNS).addRows(formatBigMail(r)).toString()}`);
}
if (want("parse")) {
  const rows: string[][] = [];
  for (const way of ["imap", "whole"] as const) {
    for (const set of ["typical", "corpus"] as const) {
      const r = await runParse({ seconds: quick ? 2 : 5, set, way });
      const what = way === "imap" ? "as the daemon reads it: header + text parts from Dovecot → readFetchedParts" : "whole .eml → normalizeMail (mailparser)";
      rows.push(["parse + rules", `${way}, ${set}`, `${r.perSecond.toFixed(0)} msg/s`, "≥ 5,000 msg/s (typical)", `${what}; ${r.corpusFiles} files, ${(r.corpusBytes / 1024).toFixed(0)} KB (${r.corpusNote}), one core`]);
    }
  }
  sections.push(`### Parse + rules (one core)\n\n${new Table(["benchmark", "way in, set", "rate", "bar", "notes"]).addRows(rows).toString()}`);
}

if (want("chaos")) {
  // Not one of issue 5's bars: the brief's "zero lost, zero duplicated across SIGKILL, server
  // restarts and target outages", measured while mail keeps arriving.
  const mails = quick ? 200 : 600;
  say(`chaos: ${mails} mails at 20/s through SIGKILLs, Dovecot restarts and a target outage…`);
  const r = await runChaos({ mails, perSecond: 20 });
  sections.push(`### Chaos (${mails} mails at 20/s; mailbell killed twice, Dovecot restarted twice, the target down for 3 s)\n\n${new Table(CHAOS_COLUMNS).addRows(formatChaos(r)).toString()}`);
}

if (want("commit-window")) {
  // Issue 13: how long a kill -9 after the service's answer would make mailbell post again.
  const rows = quick ? 100 : 500;
  say(`commit window: ${rows} rows per receiver…`);
  const r = await runCommitWindow({ rows });
  for (const line of overBound(r)) say(line);
  sections.push(`### Commit window (${rows} rows back to back per receiver; service answered → row marked done)\n\n${new Table(COMMIT_WINDOW_COLUMNS).addRows(formatCommitWindow(r)).toString()}`);
}

const report = [`Measured ${machine.date} on: ${machine.summary}`, `Command: \`${command}\``, "", ...sections].join("\n\n");
console.log(report);

if (values.write) {
  const file = path.resolve(import.meta.dirname, "../BENCHMARKS.md");
  const text = readFileSync(file, "utf8");
  const begin = "<!-- results:begin -->";
  const end = "<!-- results:end -->";
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a === -1 || b === -1) throw new Error(`BENCHMARKS.md has no ${begin} … ${end} section to replace`);
  writeFileSync(file, `${text.slice(0, a + begin.length)}\n\n${report}\n\n${text.slice(b)}`);
  say(`wrote ${file}`);
}
