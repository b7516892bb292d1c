/**
 * Shared helpers for the benchmarks in bench/. The API below is kept small and stable; other
 * bench files import it, so exports are only ever added, never renamed.
 *
 *   startMailbellProcess(yaml, env?, options?)  `mailbell run` as a real child process, ready when watching
 *   startUserScript(options)                    bench/user-script.ts (the imapflow baseline) as a child process
 *   spawnTracked(args, options?)                any `node …` child, killed with this process, with /proc stats
 *   processUsage(pid)                           { rssKb, peakRssKb, cpuSeconds } from /proc
 *   percentile(values, p)                       nearest-rank percentile, p in 0..100
 *   summarize(values, expected?)                { count, missing, p50, p99, max, mean } of a sample
 *   Table                                       markdown table printer
 *   machineInfo()                               cpu, cores, memory, node, dovecot, kernel, date
 *   giveUpAfter(bench, ms)                      exit 2 when a run overstays its bound
 *   freePort(), sleep(ms), fmtMs(ms)            small utilities
 *
 * Every child started here is SIGKILLed when this process exits (normally, on SIGINT/SIGTERM/SIGHUP,
 * and — through a watchdog — even when it is SIGKILLed itself), and its temp dir is removed.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { findBinary } from "../test/support/dovecot.ts";
import { listenOnLoopback } from "../test/support/loopback.ts";
import { atExit, spawnWatchdog } from "../test/support/reaper.ts";

const repo = path.resolve(import.meta.dirname, "..");
/** src/cli/entry.ts: for `entry` when a benchmark wants mailbell without the launcher. */
export const sourceEntry = path.join(repo, "src/cli/entry.ts");

let installed: string | undefined;

/**
 * The `mailbell` command as an install has it: bin/mailbell.js (copied byte for byte) over a dist/
 * compiled from the current sources, in a temp dir that lives as long as this process. Users run
 * compiled JavaScript; running the .ts sources would add Node's type stripper (a WebAssembly
 * compiler, ~30 MB RSS in each thread that loads .ts) to every memory figure. The launcher is a
 * copy, not a symlink, because Node resolves a symlinked main module to its real path (and the
 * real dist/). Built once per benchmark process (~10 s).
 */
export function installedMailbell(): string {
  if (installed) return installed;
  atExit(killAllSync);
  const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-bench-install-"));
  liveDirs.add(dir);
  const tsc = path.join(repo, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", path.join(repo, "tsconfig.build.json"), "--outDir", path.join(dir, "dist"), "--declaration", "false", "--sourceMap", "false"], { stdio: "inherit" });
  mkdirSync(path.join(dir, "bin"));
  copyFileSync(path.join(repo, "bin", "mailbell.js"), path.join(dir, "bin", "mailbell.js"));
  copyFileSync(path.join(repo, "package.json"), path.join(dir, "package.json"));
  symlinkSync(path.join(repo, "node_modules"), path.join(dir, "node_modules"));
  installed = path.join(dir, "bin", "mailbell.js");
  return installed;
}

const userScript = path.join(repo, "bench/user-script.ts");

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A benchmark's bound on itself: after `limitMs` it says so and exits with 2 (Dovecot and every
 * child are killed on exit). clearTimeout the result once the run is done.
 */
export function giveUpAfter(bench: string, limitMs: number): NodeJS.Timeout {
  const guard = setTimeout(() => {
    console.error(`${bench}: still running after ${Math.round(limitMs / 1000)} s; giving up (Dovecot and every child are killed on exit)`);
    process.exit(2);
  }, limitMs);
  guard.unref();
  return guard;
}

/** "12.3 ms" (one decimal below 100 ms, none above); "–" for NaN/undefined. */
export function fmtMs(ms: number | undefined): string {
  if (ms === undefined || Number.isNaN(ms)) return "–";
  return `${Math.abs(ms) < 100 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

/** A free TCP port on 127.0.0.1 (released before returning; fine for a config file). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  const port = await listenOnLoopback(s);
  await new Promise((r) => s.close(r));
  return port;
}

// --- statistics ---------------------------------------------------------------------------------

/** Nearest-rank percentile (p in 0..100) of the values; NaN for an empty list. Does not sort in place. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface Summary {
  /** Samples present. */
  count: number;
  /** `expected - count` (0 when expected is not given). */
  missing: number;
  p50: number;
  p99: number;
  max: number;
  min: number;
  mean: number;
}

/** p50/p99/max/min/mean of the values (NaN when empty); `missing` counts against `expected`. */
export function summarize(values: readonly number[], expected = values.length): Summary {
  const n = values.length;
  return {
    count: n,
    missing: Math.max(0, expected - n),
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    max: n ? Math.max(...values) : NaN,
    min: n ? Math.min(...values) : NaN,
    mean: n ? values.reduce((a, b) => a + b, 0) / n : NaN,
  };
}

// --- tables -------------------------------------------------------------------------------------

/** A markdown table: `new Table(["a", "b"]).add(1, "x").toString()`. Cells are stringified. */
export class Table {
  readonly columns: readonly string[];
  readonly rows: string[][] = [];

  constructor(columns: readonly string[]) {
    this.columns = columns;
  }

  /** One row; missing cells are left blank, extra cells are an error. */
  add(...cells: (string | number | undefined)[]): this {
    if (cells.length > this.columns.length) throw new Error(`Table: ${cells.length} cells for ${this.columns.length} columns`);
    this.rows.push(this.columns.map((_, i) => (cells[i] === undefined ? "" : String(cells[i]))));
    return this;
  }

  /** Several rows at once (e.g. from formatLatency). */
  addRows(rows: readonly (readonly (string | number | undefined)[])[]): this {
    for (const r of rows) this.add(...r);
    return this;
  }

  toString(): string {
    const all = [[...this.columns], ...this.rows];
    const width = this.columns.map((_, i) => Math.max(3, ...all.map((r) => r[i]!.length)));
    const line = (r: readonly string[]): string => `| ${r.map((c, i) => c.padEnd(width[i]!)).join(" | ")} |`;
    return [line(this.columns), `|${width.map((w) => "-".repeat(w + 2)).join("|")}|`, ...this.rows.map(line)].join("\n");
  }
}

// --- machine ------------------------------------------------------------------------------------

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryMb: number;
  node: string;
  dovecot: string;
  kernel: string;
  /** ISO date-time of the call. */
  date: string;
  /** All of the above on one line, for BENCHMARKS.md. */
  summary: string;
}

export function machineInfo(): MachineInfo {
  let cpu = os.cpus()[0]?.model ?? "unknown";
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  let dovecot = "not installed";
  const bin = findBinary("dovecot");
  if (bin) {
    try {
      dovecot = execFileSync(bin, ["--version"], { encoding: "utf8" }).trim();
    } catch {
      dovecot = "unknown";
    }
  }
  const info = {
    cpu,
    cores: os.availableParallelism(),
    memoryMb: Math.round(os.totalmem() / 2 ** 20),
    node: process.version,
    dovecot,
    kernel: `${os.type()} ${os.release()}`,
    date: new Date().toISOString(),
  };
  return { ...info, summary: `${info.cpu}, ${info.cores} cores, ${info.memoryMb} MB RAM, ${info.kernel}, Node ${info.node}, Dovecot ${info.dovecot}, ${info.date}` };
}

// --- /proc --------------------------------------------------------------------------------------

export interface ProcessUsage {
  /** VmRSS. */
  rssKb: number;
  /** VmHWM: the peak RSS over the process's life. */
  peakRssKb: number;
  /** utime + stime. */
  cpuSeconds: number;
  /** The kernel's part of cpuSeconds (stime): syscalls, TCP. */
  systemSeconds: number;
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Memory and CPU of a live process from /proc (Linux); undefined once it is gone. */
export function processUsage(pid: number): ProcessUsage | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s*(\\d+)`, "m").exec(status)?.[1] ?? NaN);
    // fields after "(comm)": state is field 3, utime 14, stime 15 (1-based, man 5 proc)
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpuTicks = Number(rest[11]) + Number(rest[12]);
    return { rssKb: kb("VmRSS"), peakRssKb: kb("VmHWM"), cpuSeconds: cpuTicks / ticksPerSecond(), systemSeconds: Number(rest[12]) / ticksPerSecond() };
  } catch {
    return undefined;
  }
}

// --- child processes ----------------------------------------------------------------------------

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();

function killAllSync(): void {
  for (const c of liveChildren) {
    try {
      c.kill("SIGKILL");
    } catch {
      // gone
    }
  }
  liveChildren.clear();
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  liveDirs.clear();
}

export interface TrackedProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  readonly log: string;
  /** Exit code, or the signal name when killed. */
  readonly exited: Promise<number | string | null>;
  /** Waits until the output matches `count` times (default once); rejects on exit or timeout with the log tail. */
  waitForOutput(pattern: RegExp, count?: number, timeoutMs?: number): Promise<void>;
  rssKb(): number;
  /** VmHWM; after the process ended, the last value read. */
  peakRssKb(): number;
  cpuSeconds(): number;
  /** SIGTERM, SIGKILL after graceMs (default 15 000); resolves with the exit code/signal. Idempotent. */
  stop(graceMs?: number): Promise<number | string | null>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Removed (recursively) after the process is stopped, and on exit. */
  tempDir?: string;
}

/** `node ...args` as a child that cannot outlive us, with its output captured and /proc stats. */
export function spawnTracked(args: readonly string[], options: SpawnOptions = {}): TrackedProcess {
  atExit(killAllSync);
  const child = spawn(process.execPath, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
  if (child.pid === undefined) throw new Error(`could not spawn node ${args.join(" ")}`);
  const pid = child.pid;
  liveChildren.add(child);
  if (options.tempDir) liveDirs.add(options.tempDir);
  const dog = spawnWatchdog('kill -9 "$0" 2>/dev/null', [String(pid)]);
  let log = "";
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  let last: ProcessUsage = { rssKb: NaN, peakRssKb: NaN, cpuSeconds: NaN, systemSeconds: NaN };
  const usage = (): ProcessUsage => (last = processUsage(pid) ?? last);
  let done = false;
  const exited = new Promise<number | string | null>((resolve) =>
    child.on("exit", (code, signal) => {
      done = true;
      liveChildren.delete(child);
      dog.kill("SIGKILL");
      resolve(code ?? signal);
    }),
  );
  // the usage just before exit: poll cheaply while alive so peakRssKb() has a value afterwards
  const poll = setInterval(usage, 500);
  poll.unref();
  void exited.then(() => clearInterval(poll));
  let stopping: Promise<number | string | null> | undefined;
  const tail = (): string => log.split("\n").slice(-30).join("\n");
  return {
    pid,
    child,
    get log() {
      return log;
    },
    exited,
    async waitForOutput(pattern, count = 1, timeoutMs = 30_000) {
      const deadline = performance.now() + timeoutMs;
      const g = new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`);
      for (;;) {
        if ((log.match(g)?.length ?? 0) >= count) return;
        if (done) throw new Error(`node ${path.basename(args.at(-1) ?? "")}: exited before printing ${pattern} ×${count}; output:\n${tail()}`);
        if (performance.now() > deadline) throw new Error(`node ${args.join(" ")}: no ${pattern} ×${count} within ${timeoutMs} ms; output:\n${tail()}`);
        await sleep(20);
      }
    },
    rssKb: () => usage().rssKb,
    peakRssKb: () => (done ? last : usage()).peakRssKb,
    cpuSeconds: () => (done ? last : usage()).cpuSeconds,
    stop(graceMs = 15_000) {
      stopping ??= (async () => {
        if (!done) {
          usage();
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
          await exited;
          clearTimeout(timer);
        }
        if (options.tempDir) {
          rmSync(options.tempDir, { recursive: true, force: true });
          liveDirs.delete(options.tempDir);
        }
        return exited;
      })();
      return stopping;
    },
  };
}

export interface MailbellProcess extends TrackedProcess {
  /** The temp dir holding mailbell.yaml (and mailbell.db unless `state:` says otherwise). */
  readonly dir: string;
  readonly configFile: string;
}

export interface MailbellProcessOptions {
  /**
   * How many mailboxes must be watching before this resolves. Default: every mailbox in the yaml
   * (accounts[].mailboxes, default [INBOX]). 0: do not wait.
   */
  watching?: number;
  /** Default 60 000 ms. */
  timeoutMs?: number;
  /** Node flags before the script, e.g. ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"]. */
  nodeArgs?: readonly string[];
  /** Keep the temp dir after stop() (to look at the database or a profile). */
  keepDir?: boolean;
  /**
   * Another entry point (an instrumented scratch copy, src/cli/entry.ts itself…). By default
   * mailbell starts as users start it: through bin/mailbell.js (installedMailbell), with the
   * launcher's memory settings, on the current sources compiled.
   */
  entry?: string;
}

/**
 * Writes `yaml` to a fresh temp dir and runs `mailbell run --config <it>` there (cwd =
 * the dir). Resolves once the wanted number of mailboxes is watching:
 * - at log level info or lower: by counting "watching" log lines;
 * - at warn and above ("watching" is not logged): through `status.listen`, which the yaml must then
 *   set, by polling /metrics until that many `mailbell_mailbox_up` are 1.
 * In both cases it then waits 300 ms more, so the IDLE command has reached the server.
 */
export async function startMailbellProcess(yaml: string, env: NodeJS.ProcessEnv = {}, options: MailbellProcessOptions = {}): Promise<MailbellProcess> {
  const doc = (parseYaml(yaml) ?? {}) as {
    accounts?: { mailboxes?: unknown[] }[];
    log?: { level?: string };
    status?: { listen?: string | number };
  };
  const wanted = options.watching ?? (doc.accounts ?? []).reduce((n, a) => n + (a.mailboxes?.length ?? 1), 0);
  const level = doc.log?.level ?? "info";
  const quiet = ["warn", "error", "fatal"].includes(level);
  const listen = doc.status?.listen;
  if (wanted > 0 && quiet && listen === undefined) {
    throw new Error(`startMailbellProcess: at log.level ${level} "watching" is not logged; set status.listen (e.g. 127.0.0.1:\${await freePort()}) so readiness can be read from /metrics`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-bench-"));
  const configFile = path.join(dir, "mailbell.yaml");
  writeFileSync(configFile, yaml);
  const proc = spawnTracked([...(options.nodeArgs ?? []), options.entry ?? installedMailbell(), "run", "--config", configFile], {
    env,
    cwd: dir,
    ...(options.keepDir ? {} : { tempDir: dir }),
  });
  const handle: MailbellProcess = {
    pid: proc.pid,
    child: proc.child,
    get log() {
      return proc.log;
    },
    exited: proc.exited,
    waitForOutput: proc.waitForOutput,
    rssKb: proc.rssKb,
    peakRssKb: proc.peakRssKb,
    cpuSeconds: proc.cpuSeconds,
    stop: proc.stop,
    dir,
    configFile,
  };
  try {
    const timeoutMs = options.timeoutMs ?? 60_000;
    if (wanted > 0 && !quiet) await proc.waitForOutput(/"msg":"watching"/, wanted, timeoutMs);
    else if (wanted > 0) await waitForMailboxesUp(proc, statusUrl(listen!), wanted, timeoutMs);
    if (wanted > 0) await sleep(300);
    return handle;
  } catch (err) {
    await proc.stop(2000);
    throw err;
  }
}

function statusUrl(listen: string | number): string {
  const s = String(listen);
  return `http://${/^\d+$/.test(s) ? `127.0.0.1:${s}` : s}`;
}

async function waitForMailboxesUp(proc: TrackedProcess, base: string, wanted: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let up = 0;
  for (;;) {
    try {
      const text = await (await fetch(`${base}/metrics`)).text();
      up = text.split("\n").filter((l) => l.startsWith("mailbell_mailbox_up{") && l.trimEnd().endsWith(" 1")).length;
      if (up >= wanted) return;
    } catch {
      // not listening yet
    }
    const code = await Promise.race([proc.exited, sleep(50).then(() => "running" as const)]);
    if (code !== "running") throw new Error(`mailbell exited (${code}) before ${wanted} mailbox(es) were watching; log:\n${proc.log.split("\n").slice(-30).join("\n")}`);
    if (performance.now() > deadline) throw new Error(`only ${up} of ${wanted} mailbox(es) up within ${timeoutMs} ms; log:\n${proc.log.split("\n").slice(-30).join("\n")}`);
  }
}

export interface UserScriptOptions {
  host: string;
  port: number;
  /** PEM file of the server's CA. The script always uses implicit TLS; without this it trusts the system store. */
  caFile?: string;
  user: string;
  pass: string;
  mailbox?: string;
  /** Where it POSTs {messageId, subject}. */
  url: string;
  /** Announce the mail already in the mailbox too (for catch-up runs); default only new mail. */
  all?: boolean;
  timeoutMs?: number;
}

/** Runs bench/user-script.ts as its own process and resolves once it is in IDLE ("idling" printed). */
export async function startUserScript(o: UserScriptOptions): Promise<TrackedProcess> {
  const args = [userScript, "--host", o.host, "--port", String(o.port), "--user", o.user, "--pass", o.pass, "--url", o.url, "--mailbox", o.mailbox ?? "INBOX"];
  if (o.caFile) args.push("--ca", o.caFile);
  if (o.all) args.push("--all");
  const proc = spawnTracked(args);
  try {
    await proc.waitForOutput(/^idling$/m, 1, o.timeoutMs ?? 30_000);
    // "idling" is printed just before IDLE is written; let it reach the server
    await sleep(300);
    return proc;
  } catch (err) {
    await proc.stop(2000);
    throw err;
  }
}
