/**
 * End to end (issue 18, bursts): the time a user feels, from the APPEND's tagged OK ("the mail is
 * in the mailbox") to the local receiver having the post ("the post is in the channel"), for the
 * three clients watching the same INBOX at once — mailbell (its webhook to the receiver), the user
 * script (bench/user-script.ts) and the raw IDLE client (bench/raw-idle-client.ts: to its
 * `* N EXISTS`, it posts nothing). Each figure is the median of 3 runs, since one run's tail
 * depends on how Dovecot's per-session push timers happened to line up.
 *
 *   node bench/e2e.ts                 1000 mails at 20/s, 3 runs
 *   node bench/e2e.ts --mails 200     a shorter burst
 *   node bench/e2e.ts --quick         200 mails, 3 runs
 *   node bench/e2e.ts --runs 1        one run (development)
 *   node bench/e2e.ts --json          the E2eResult as JSON
 *   node bench/e2e.ts --reader off    mailbell's account with readerConnections: false (on: true; default: left out)
 *   node bench/e2e.ts --entry FILE    mailbell from FILE (e.g. an install of an older commit) instead of the current sources
 *
 * How it relates to bench/latency.ts: that one measures *overhead over the raw client* (arrival −
 * the raw client's EXISTS), which hides whatever a client gains or loses on Dovecot's push timer —
 * a client that asks the server itself (the script leaving IDLE to fetch) can be *ahead* of the raw
 * client, one that waits for the push is ~500 ms behind for the mails that push covers. This one
 * starts the clock where the user does. The runs are bench/latency.ts's (runLatency with its
 * per-mail samples), so the two measures come from the same mails and the same clients.
 */
import os from "node:os";
import { parseArgs } from "node:util";
import { runLatency, type LatencyResult, type LatencySample } from "./latency.ts";
import { fmtMs, giveUpAfter, machineInfo, summarize, Table, type Summary } from "./lib.ts";

export interface E2eOptions {
  mails: number;
  perSecond: number;
  /** Runs whose figures are taken the median of (default 3). */
  runs?: number;
  verbose?: boolean;
  /** Passed to runLatency: a scratch mailbell entry point instead of the compiled sources. */
  mailbellEntry?: string;
  /** Passed to runLatency: mailbell's account readerConnections (default: left out). */
  readerConnections?: boolean;
}

/** One client's end-to-end figures: per run, and the median of the runs. */
export interface E2eClient {
  runs: Summary[];
  p50: number;
  p99: number;
  /** Mails that never arrived, over all runs. */
  missing: number;
}

export interface E2eResult {
  mails: number;
  perSecond: number;
  raw: E2eClient;
  mailbell: E2eClient;
  script: E2eClient;
  /** 1-minute load average before each run and after it: the machine's other work. */
  load: { before: number; after: number }[];
  /** The same runs as bench/latency.ts reads them: mailbell's and the script's overhead over the raw client (p50 of each run). */
  overheadP50: { mailbell: number[]; script: number[] };
}

/** The middle value (the lower middle of an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** APPEND tagged OK → the moment `at` picks out (the receiver's arrival, the raw client's EXISTS), per mail. */
export function endToEnd(samples: readonly LatencySample[], at: (s: LatencySample) => number | undefined): Summary {
  const values = samples.flatMap((s) => {
    const t = at(s);
    return t === undefined ? [] : [t - s.appendDone];
  });
  return summarize(values, samples.length);
}

function combine(runs: Summary[]): E2eClient {
  return { runs, p50: median(runs.map((r) => r.p50)), p99: median(runs.map((r) => r.p99)), missing: runs.reduce((n, r) => n + r.missing, 0) };
}

export async function runE2e(options: E2eOptions): Promise<E2eResult> {
  const runs = options.runs ?? 3;
  const results: LatencyResult[] = [];
  for (let i = 0; i < runs; i++) {
    if (options.verbose) process.stderr.write(`[e2e] run ${i + 1} of ${runs}: ${options.mails} mails at ${options.perSecond}/s (load ${os.loadavg()[0]!.toFixed(2)})\n`);
    // No second raw client: it is latency.ts's noise floor, and here it would only add load.
    results.push(
      await runLatency({
        mails: options.mails,
        perSecond: options.perSecond,
        samples: true,
        calibrate: false,
        verbose: options.verbose ?? false,
        ...(options.mailbellEntry ? { mailbellEntry: options.mailbellEntry } : {}),
        ...(options.readerConnections === undefined ? {} : { readerConnections: options.readerConnections }),
      }),
    );
  }
  const per = (at: (s: LatencySample) => number | undefined): E2eClient => combine(results.map((r) => endToEnd(r.samples!, at)));
  return {
    mails: options.mails,
    perSecond: options.perSecond,
    raw: per((s) => s.rawAt),
    mailbell: per((s) => s.mailbellAt),
    script: per((s) => s.scriptAt),
    load: results.map((r) => ({ before: r.loadBefore, after: r.loadAfter })),
    overheadP50: { mailbell: results.map((r) => r.mailbell!.p50), script: results.map((r) => r.script!.p50) },
  };
}

export const E2E_COLUMNS = ["end to end, measured together", "mailbell", "user script", "raw IDLE client sees EXISTS", "bar", "notes"] as const;

/** One row of medians, then one row per run; the bar is issue 18's. */
export function formatE2e(r: E2eResult): string[][] {
  const pair = (c: E2eClient): string => `${fmtMs(c.p50)} / ${fmtMs(c.p99)}${c.missing ? ` (${c.missing} missing)` : ""}`;
  const runPair = (s: Summary): string => `${fmtMs(s.p50)} / ${fmtMs(s.p99)}${s.missing ? ` (${s.missing} missing)` : ""}`;
  const p50Met = r.mailbell.p50 < r.script.p50;
  const p99Met = r.mailbell.p99 <= r.raw.p99 + 25;
  const bar = `p50 < script's (${p50Met ? "met" : "NOT met"}; half: ${r.mailbell.p50 <= r.script.p50 / 2 ? "yes" : "no"}), p99 ≤ raw + 25 ms (${p99Met ? "met" : "NOT met"})`;
  const what = `${r.mails} mails appended at ${r.perSecond}/s, APPEND OK → receiver, p50 / p99`;
  const load = r.load.map((l) => `${l.before.toFixed(1)}→${l.after.toFixed(1)}`).join(", ");
  return [
    [`${what}, median of ${r.raw.runs.length}`, pair(r.mailbell), pair(r.script), pair(r.raw), bar, `load ${load}`],
    ...r.raw.runs.map((raw, i) => [
      `  run ${i + 1}`,
      runPair(r.mailbell.runs[i]!),
      runPair(r.script.runs[i]!),
      runPair(raw),
      "",
      `overhead over raw p50 (latency.ts's measure): mailbell ${fmtMs(r.overheadP50.mailbell[i])}, script ${fmtMs(r.overheadP50.script[i])}`,
    ]),
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      mails: { type: "string", default: "1000" },
      rate: { type: "string", default: "20" },
      runs: { type: "string", default: "3" },
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      entry: { type: "string" },
      reader: { type: "string" },
    },
  });
  if (values.reader !== undefined && values.reader !== "on" && values.reader !== "off") throw new Error(`--reader takes on or off, not ${values.reader}`);
  const reader = values.reader === undefined ? {} : { readerConnections: values.reader === "on" };
  const mails = values.quick ? 200 : Number(values.mails);
  const perSecond = Number(values.rate);
  const runs = Number(values.runs);
  if (!(mails > 0) || !(perSecond > 0) || !(runs >= 1)) throw new Error(`--mails, --rate and --runs take positive numbers (got ${values.mails}, ${values.rate}, ${values.runs})`);
  const guard = giveUpAfter("e2e", runs * ((mails / perSecond) * 1000 * 1.5 + 180_000));
  const result = await runE2e({ mails, perSecond, runs, verbose: !values.json, ...reader, ...(values.entry ? { mailbellEntry: values.entry } : {}) });
  clearTimeout(guard);
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`\n${machineInfo().summary}`);
    console.log(`node bench/e2e.ts --mails ${mails} --rate ${perSecond} --runs ${runs}${values.reader ? ` --reader ${values.reader}` : ""}${values.entry ? ` --entry ${values.entry}` : ""}\n`);
    console.log(new Table(E2E_COLUMNS).addRows(formatE2e(result)).toString());
  }
}
