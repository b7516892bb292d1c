/**
 * Delivery cost per row: N notifications already queued in a fresh state file (WAL, as the daemon
 * opens it), one webhook target posting to a local receiver with pacing effectively off (1000/s,
 * burst 1000, as in bench/catchup.ts). Timed from dispatcher.start() until the last row is marked
 * delivered: wall time (bound by the pacing: 10,000 rows take ~9 s at 1000/s after the burst), and
 * CPU of the main thread (what competes with mail ingestion in the daemon) and of the whole process.
 * The receiver runs in a child process so its work is not counted.
 *
 *   node bench/dispatch.ts                        10,000 rows, 3 runs, "delivered" lines at info into a file
 *   node bench/dispatch.ts --rows 2000 --runs 5
 *   node bench/dispatch.ts --log silent           no log line written (what the "delivered" line costs: compare)
 *   node bench/dispatch.ts --rate off             no pacing at all (`rateLimit: off`, issue 18)
 *   node bench/dispatch.ts --rate off --concurrency 1   one request at a time (default: the webhook's own, 8)
 *   node bench/dispatch.ts --json
 *
 * Main-thread CPU is process.threadCpuUsage() (Node ≥ 23.9); on older Node only the process total
 * is shown. The machine is shared: run it more than once and look at the spread.
 */
import { fork } from "node:child_process";
import diagnostics from "node:diagnostics_channel";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Logger } from "../src/log.ts";
import { createLogger } from "../src/pino-logger.ts";
import { Dispatcher } from "../src/outbox/dispatcher.ts";
import type { NewOutboxRow } from "../src/outbox/store.ts";
import type { Notification } from "../src/targets/types.ts";
import { State } from "../src/store/sqlite/state.ts";
import { WebhookTarget } from "../src/targets/webhook.ts";
import { startReceiver } from "../test/support/receiver.ts";

/** The child: a receiver answering 200 to everything; tells the parent its port and, when asked, how many it got. */
async function serve(): Promise<void> {
  const receiver = await startReceiver();
  receiver.setDefault({ status: 200, headers: { "content-type": "text/plain" }, body: "ok" });
  process.on("message", (m: string) => {
    if (m === "count") {
      process.send!({ count: receiver.requests.length });
      // Bodies of earlier runs are not needed; keep the child small.
      receiver.clear();
    }
    if (m === "close") void receiver.close().then(() => process.disconnect());
  });
  process.send!({ port: receiver.port });
}

interface RunResult {
  rows: number;
  wallMs: number;
  mainCpuUs: number | undefined;
  /** Of mainCpuUs, the part spent in the kernel (syscalls: sockets, SQLite's file locks and writes, timers). */
  mainSystemUs: number | undefined;
  processCpuUs: number;
  received: number;
  /** TCP connections opened to the receiver (keep-alive: 1). */
  connections: number;
  logBytes: number;
  /** "Done" commits: delivered rows are marked done several to a commit when their answers come together. */
  commits: number;
  /** Log lines at warn or above: a run with any is not a clean measurement. */
  problems: number;
}

// New client sockets, whichever HTTP client opens them (node:http, or fetch's undici).
let connections = 0;
diagnostics.subscribe("net.client.socket", () => connections++);
diagnostics.subscribe("undici:client:connected", () => connections++);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: "string", default: "10000" },
      runs: { type: "string", default: "3" },
      log: { type: "string", default: "info" },
      rate: { type: "string", default: "1000" },
      concurrency: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const rows = Number(values.rows);
  const runs = Number(values.runs);
  const level = values.log;
  const rate = values.rate === "off" ? Infinity : Number(values.rate);
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);

  const child = fork(import.meta.filename, ["--serve"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const ask = <T>(message: string | undefined, key: keyof T & string): Promise<T> =>
    new Promise((resolve) => {
      const on = (m: T): void => {
        if (!(key in (m as object))) return;
        child.off("message", on);
        resolve(m);
      };
      child.on("message", on);
      if (message !== undefined) child.send(message);
    });
  const { port } = await ask<{ port: number }>(undefined, "port");

  const results: RunResult[] = [];
  const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-dispatch-"));
  try {
    for (let run = 0; run < runs; run++) {
      const result = await once(path.join(dir, `run${run}`), rows, port, level, rate, concurrency);
      result.received = (await ask<{ count: number }>("count", "count")).count;
      results.push(result);
      if (!values.json) console.error(`run ${run + 1}/${runs}: ${line(result)}`);
    }
  } finally {
    child.send("close");
    rmSync(dir, { recursive: true, force: true });
  }
  const sorted = [...results].sort((a, b) => (a.mainCpuUs ?? a.processCpuUs) - (b.mainCpuUs ?? b.processCpuUs));
  const median = sorted[Math.floor(sorted.length / 2)]!;
  if (values.json) {
    console.log(JSON.stringify({ rows, runs, log: level, node: process.version, median, results }, null, 2));
    return;
  }
  console.log(`node bench/dispatch.ts --rows ${rows} --runs ${runs} --log ${level} --rate ${rate === Infinity ? "off" : rate}${concurrency === undefined ? "" : ` --concurrency ${concurrency}`} (Node ${process.version}, ${os.cpus().length} cores)`);
  console.log(`median by main-thread CPU: ${line(median)}`);
  if (results.some((r) => r.received !== rows)) {
    console.log(`WRONG: the receiver did not get exactly ${rows} requests in every run: ${results.map((r) => r.received).join(", ")}`);
    process.exitCode = 1;
  }
  if (results.some((r) => r.problems > 0)) {
    console.log(`WRONG: warnings or errors were logged (${results.map((r) => r.problems).join(", ")}); see the dispatcher's log`);
    process.exitCode = 1;
  }
}

function line(r: RunResult): string {
  const perRow = (us: number | undefined): string => (us === undefined ? "–" : `${(us / r.rows).toFixed(1)} µs`);
  return (
    `${r.rows} rows in ${(r.wallMs / 1000).toFixed(2)} s (${Math.round(r.rows / (r.wallMs / 1000))}/s); ` +
    `CPU per row: main thread ${perRow(r.mainCpuUs)} (kernel ${perRow(r.mainSystemUs)}), process ${perRow(r.processCpuUs)}; received ${r.received} on ${r.connections} connection(s); log ${(r.logBytes / r.rows).toFixed(0)} B/row; ${r.commits} commits (${(r.rows / r.commits).toFixed(1)} rows each)`
  );
}

async function once(dir: string, rows: number, port: number, level: string, rate: number, concurrency: number | undefined): Promise<RunResult> {
  const state = State.open(path.join(dir, "state.db"));
  state.outbox.enqueue(Array.from({ length: rows }, (_, i) => queued(i + 1)));
  const logFile = path.join(dir, "mailbell.log");
  const fd = openSync(logFile, "a");
  let silentProblems = 0;
  // "silent": no log line at all, but a warning or error still spoils the run.
  const counting: Logger = { error: () => silentProblems++, warn: () => silentProblems++, info() {}, debug() {}, trace() {}, child: () => counting };
  const logger: Logger = level === "silent" ? counting : createLogger({ level, destination: fd });
  const target = new WebhookTarget({ name: "hook", type: "webhook", url: `http://127.0.0.1:${port}/mail`, overflow: "paced", digestAfter: 5, ...(concurrency === undefined ? {} : { concurrency }) });
  let delivered = 0;
  let commits = 0;
  let allDelivered: () => void = () => {};
  const finished = new Promise<void>((resolve) => (allDelivered = resolve));
  const dispatcher = new Dispatcher({
    outbox: state.outbox,
    targets: new Map([[target.name, target]]),
    pacing: new Map([[target.name, { perSecond: rate, burst: Math.min(rate, 1000), overflow: "paced", digestAfter: 5 }]]),
    retry: { baseMs: 2000, capMs: 600_000, maxAttempts: 12 },
    logger,
    onOutcome: (_target, outcome, n) => {
      if (outcome !== "delivered") throw new Error(`unexpected outcome ${outcome}`);
      delivered += n;
      commits++;
      if (delivered >= rows) allDelivered();
    },
  });
  const connectionsBefore = connections;
  const thread = process.threadCpuUsage?.bind(process);
  const mainBefore = thread?.();
  const processBefore = process.cpuUsage();
  const started = performance.now();
  dispatcher.start();
  await finished;
  const wallMs = performance.now() - started;
  const mainAfter = thread?.();
  const processAfter = process.cpuUsage(processBefore);
  await dispatcher.stop();
  const pending = state.outbox.counts().find((c) => c.state === "pending")?.count ?? 0;
  state.close();
  closeSync(fd);
  if (pending !== 0) throw new Error(`${pending} rows still pending after all were reported delivered`);
  const log = readFileSync(logFile, "utf8");
  return {
    rows,
    wallMs,
    mainCpuUs: mainBefore && mainAfter ? mainAfter.user - mainBefore.user + (mainAfter.system - mainBefore.system) : undefined,
    mainSystemUs: mainBefore && mainAfter ? mainAfter.system - mainBefore.system : undefined,
    processCpuUs: processAfter.user + processAfter.system,
    received: 0,
    connections: connections - connectionsBefore,
    logBytes: Buffer.byteLength(log),
    commits,
    problems: silentProblems + log.split("\n").filter((line) => /"level":(40|50|60)/.test(line)).length,
  };
}

/** A row as the pipeline queues it for a webhook target: its notification, rendered at send time into the generic JSON body, ~1.3 KB. */
function queued(n: number): NewOutboxRow {
  const subject = `Your Google Play order receipt from Nov ${(n % 28) + 1}, 2026 (#${n})`;
  const text = `Google Play: ¥480 (マンスリーパス) — ¥${480 * n} so far in November. ${"Order details follow. ".repeat(20)}`;
  const notification: Notification = {
    rule: "play-receipts",
    account: "personal",
    mailbox: "INBOX",
    uidValidity: 1700000000,
    uid: n,
    messageId: `<receipt-${n}@google.com>`,
    from: "Google Play <googleplay-noreply@google.com>",
    subject,
    date: "2026-11-24T01:54:32.000Z",
    fields: { amount: { text: "¥480", raw: "￥480（税込）", amount: "480", currency: "JPY" }, item: { text: "マンスリーパス", raw: "マンスリーパス" } },
    total: { amount: String(480 * n), currency: "JPY", text: `¥${480 * n}`, period: "2026-11", periodLabel: "November" },
    link: `https://mail.google.com/mail/u/0/#search/rfc822msgid%3Areceipt-${n}%40google.com`,
    message: [{ literal: "Google Play: " }, { fromMail: text.slice("Google Play: ".length) }],
  };
  return {
    target: "hook",
    rule: "play-receipts",
    account: "personal",
    mailbox: "INBOX",
    uidValidity: 1700000000,
    uid: n,
    messageId: `<receipt-${n}@google.com>`,
    subject,
    notification,
  };
}

if (process.argv.includes("--serve")) {
  await serve();
} else {
  await main();
}
