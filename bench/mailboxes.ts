/**
 * Many mailboxes: N watched mailboxes (users × folders) in one mailbell process, over implicit TLS
 * to a local Dovecot, with one IMAP connection per mailbox.
 *
 *   node bench/mailboxes.ts [--mailboxes 1000] [--idle-seconds 120] [--keepalive-seconds 120] [--samples 5] [--analyze] [--heap-snapshot] [--compress]
 *                           [--node-flags="--max-semi-space-size=1"] [--src-entry] [--system-ca] [--healthz-poll-ms N] [--json]
 *
 * mailbell is started as users start it: through the `mailbell` command (bin/mailbell.js), which
 * re-executes `mailbell run` with its memory settings, over a dist/ compiled from the current
 * sources into a temp dir (bench/lib.ts installedMailbell).
 *
 * Measures: time until every mailbox is in IDLE (from spawn, polled on /healthz), RSS per mailbox
 * (settled RSS with N mailboxes minus the settled RSS of the same config with one mailbox, divided
 * by N − 1: with zero accounts `mailbell run` exits at once, so there is nothing settled to measure),
 * CPU while idle (utime+stime from /proc/<pid>/stat over --idle-seconds, default one keepalive period,
 * as % of one core; a short --keepalive-seconds makes the cost of one keepalive stand out), and time
 * to notify when one random mailbox gets mail (APPEND done → local webhook receiver has it), next to
 * the raw IDLE client (bench/raw-idle-client.ts) on the same mailbox so Dovecot's fixed ~500 ms push
 * delay can be told apart from mailbell's own overhead.
 *
 * --analyze also opens the same N sessions from bare clients in child processes (`--child …`,
 * internal), all at once as mailbell does, to split the per-mailbox RSS into layers: a hand-written
 * TLS IDLE session with its own SecureContext (what tls.connect({ ca }) does) and with one shared
 * SecureContext, and an imapflow client with `tls: { ca }` (as mailbell) and with a shared one.
 * --heap-snapshot writes a heap snapshot of the loaded mailbell and prints what the heap holds.
 * --compress makes Dovecot offer COMPRESS=DEFLATE (as Gmail does); imapflow then uses it.
 * --node-flags passes V8/Node flags to both mailbell processes, to try memory settings (a flag the
 * launcher would set, given here, replaces the launcher's value).
 * --src-entry runs `node src/cli/entry.ts` directly instead, without the launcher's settings.
 * --system-ca leaves `ca:` out of the accounts and adds the test CA to the system's store
 * (NODE_EXTRA_CA_CERTS), the way most accounts (Gmail, Fastmail…) are trusted.
 *
 * Needs root (or a raised fs.inotify.max_user_instances) for push on more than ~100 sessions: it
 * raises the limit for the run and puts it back afterwards. A guard ends a run that overruns.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { parseArgs } from "node:util";
import { ImapFlow } from "imapflow";
import { startDovecot, type Dovecot } from "../test/support/dovecot.ts";
import { buildMail } from "../test/support/mail.ts";
import { startReceiver, type Receiver } from "../test/support/receiver.ts";
import { fmtMs, freePort, giveUpAfter, machineInfo, percentile, processUsage, sleep, sourceEntry, spawnTracked, startMailbellProcess, Table, type MailbellProcess } from "./lib.ts";
import { startRawIdleClient } from "./raw-idle-client.ts";

// ---------------------------------------------------------------------------------------------
// /proc readers and a mailbell process that can be asked about its memory (shared with bigmail.ts)
// ---------------------------------------------------------------------------------------------

/** A numeric field of /proc/<pid>/status (VmRSS, VmHWM, RssAnon, RssFile in kB; Threads); NaN when gone. */
export function procStatus(pid: number, key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Resets VmHWM to the current RSS (`echo 5 > /proc/<pid>/clear_refs`, Linux ≥ 4.0). */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

const median = (xs: readonly number[]): number => percentile(xs, 50);

/** Resident kB by kind of mapping, from /proc/<pid>/smaps: where RSS lives. */
export interface SmapsSummary {
  /** [heap]: the main thread's malloc arena (brk), where OpenSSL, libuv and Node's C++ objects live. */
  brkHeapKb: number;
  /** Anonymous mmaps: V8's heap pages, other threads' malloc arenas, large mallocs. */
  anonKb: number;
  /** File-backed: the node binary and shared libraries (the same for any run). */
  fileKb: number;
  /** [stack] and the rest. */
  otherKb: number;
}

export function smapsSummary(pid: number): SmapsSummary {
  const out: SmapsSummary = { brkHeapKb: 0, anonKb: 0, fileKb: 0, otherKb: 0 };
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, "latin1");
  } catch {
    return out;
  }
  let kind: keyof SmapsSummary = "otherKb";
  for (const line of text.split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const name = head[2]!;
      kind = name === "[heap]" ? "brkHeapKb" : name === "" ? "anonKb" : name.startsWith("/") ? "fileKb" : "otherKb";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[kind] += Number(rss[1]);
  }
  return out;
}

/** What the preload below writes on SIGUSR2: process.memoryUsage() before and after a full GC. */
export interface MemoryProbe {
  before: NodeJS.MemoryUsage;
  afterGc: NodeJS.MemoryUsage;
  /** V8 heap spaces after GC: committed size, used bytes and resident bytes. */
  spaces: Record<string, { size: number; used: number; physical: number }>;
  /** v8.getHeapStatistics() after GC (total_physical_size, malloced_memory, …). */
  heap: Record<string, number>;
  /** process.getActiveResourcesInfo() counted by type (TCPSocketWrap, Timeout, …). */
  resources: Record<string, number>;
  heapSnapshot?: string;
}

// Loaded with --import into mailbell: answers SIGUSR2 with a memory report (and a heap snapshot
// when asked), so the bench can look inside without touching src/.
const probeSource = `
import v8 from "node:v8";
import { readFileSync, writeFileSync, renameSync } from "node:fs";
const dir = process.env.MB_PROBE_DIR;
process.on("SIGUSR2", () => {
  const req = JSON.parse(readFileSync(dir + "/request.json", "utf8"));
  const before = process.memoryUsage();
  if (globalThis.gc) { globalThis.gc(); globalThis.gc(); }
  const afterGc = process.memoryUsage();
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size, physical: s.physical_space_size }]));
  const heap = v8.getHeapStatistics();
  const resources = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  const out = { before, afterGc, spaces, heap, resources };
  if (req.snapshot) out.heapSnapshot = v8.writeHeapSnapshot(req.snapshot);
  const file = dir + "/probe-" + req.id + ".json";
  writeFileSync(file + ".tmp", JSON.stringify(out));
  renameSync(file + ".tmp", file);
});
`;

export interface ProbedMailbell {
  proc: MailbellProcess;
  /** performance.now() just before the spawn. */
  spawnedAt: number;
  /** Memory report from inside the process (forces a GC first); optional heap snapshot file. */
  probe(options?: { snapshot?: string; timeoutMs?: number }): Promise<MemoryProbe>;
  /** Stops mailbell and removes the probe's temp dir. */
  stop(): Promise<void>;
}

/**
 * lib.ts's startMailbellProcess (watching: 0, so readiness is timed here) with a preload that
 * answers memory probes. The preload costs the same few kB in every run compared.
 */
export async function startProbedMailbell(yaml: string, env: NodeJS.ProcessEnv = {}, nodeFlags: readonly string[] = [], entry?: string): Promise<ProbedMailbell> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-bench-probe-"));
  const probeFile = path.join(dir, "probe.mjs");
  writeFileSync(probeFile, probeSource);
  const spawnedAt = performance.now();
  const proc = await startMailbellProcess(yaml, { ...env, MB_PROBE_DIR: dir }, { watching: 0, nodeArgs: [...nodeFlags, "--expose-gc", `--import=${probeFile}`], ...(entry ? { entry } : {}) });
  let probes = 0;
  return {
    proc,
    spawnedAt,
    async probe(options = {}) {
      const id = ++probes;
      const timeoutMs = options.timeoutMs ?? 120_000;
      writeFileSync(path.join(dir, "request.json"), JSON.stringify({ id, snapshot: options.snapshot ?? null }));
      const out = path.join(dir, `probe-${id}.json`);
      proc.child.kill("SIGUSR2");
      const deadline = Date.now() + timeoutMs;
      while (!existsSync(out)) {
        if (Date.now() > deadline) throw new Error(`mailbell did not answer the memory probe within ${timeoutMs} ms`);
        await sleep(50);
      }
      return JSON.parse(readFileSync(out, "utf8")) as MemoryProbe;
    },
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Distinct messages of warn-or-worse JSON log lines, with counts. */
export function logProblems(log: string): string[] {
  const counts = new Map<string, number>();
  for (const line of log.split("\n")) {
    if (!line.startsWith("{")) {
      // the CLI's own note on SIGTERM is how every run ends, not a problem
      if (line.trim() && !/SIGTERM received, stopping/.test(line)) counts.set(line.slice(0, 160), (counts.get(line.slice(0, 160)) ?? 0) + 1);
      continue;
    }
    try {
      const e = JSON.parse(line) as { level?: number | string; msg?: string; err?: string };
      const lvl = typeof e.level === "number" ? e.level : { warn: 40, error: 50, fatal: 60 }[String(e.level)] ?? 0;
      if (lvl < 40) continue;
      const key = `${e.msg ?? "?"}${e.err ? `: ${String(e.err).slice(0, 120)}` : ""}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    } catch {
      // not JSON after all
    }
  }
  return [...counts].map(([k, n]) => `${n}× ${k}`);
}

/** Warning/Error/Fatal lines of Dovecot's log, grouped with their counts. */
export function dovecotProblems(dc: Dovecot): string[] {
  let text: string;
  try {
    text = readFileSync(path.join(dc.dir, "log", "dovecot.log"), "utf8");
  } catch {
    return [];
  }
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^\w+ +\d+ [\d:]+ (\S+?): (Warning|Error|Fatal|Panic): (.*)$/.exec(line);
    if (!m) continue;
    // strip session ids, pids and numbers so repeats group together
    const key = `${m[1]!.replace(/\(.*?\)/g, "")} ${m[2]}: ${m[3]!.replace(/session=<[^>]*>/g, "").replace(/\d+/g, "#").slice(0, 200)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${n}× ${k}`);
}

/** Processes in Dovecot's process group by name, and their summed RSS. */
export function dovecotProcesses(pgid: number | undefined): { byName: Record<string, number>; rssMb: number } {
  const byName: Record<string, number> = {};
  let rssKb = 0;
  if (pgid === undefined) return { byName, rssMb: 0 };
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "latin1");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(f[2]) !== pgid) continue;
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      byName[name] = (byName[name] ?? 0) + 1;
      rssKb += procStatus(Number(e), "VmRSS") || 0;
    } catch {
      // gone meanwhile
    }
  }
  return { byName, rssMb: Math.round(rssKb / 1024) };
}

// ---------------------------------------------------------------------------------------------
// A bare IDLE session for the layer analysis (bench/raw-idle-client.ts cannot share a SecureContext)
// ---------------------------------------------------------------------------------------------

/** TLS, LOGIN, EXAMINE, IDLE written by hand; resolves with a closer once IDLE is accepted. */
export async function openBareSession(o: { port: number; ca: string; user: string; pass: string; mailbox: string; secureContext?: tls.SecureContext }): Promise<() => void> {
  const sock = tls.connect({ host: "127.0.0.1", port: o.port, ...(o.secureContext ? { secureContext: o.secureContext } : { ca: o.ca }) });
  let buf = "";
  let want: { re: RegExp; resolve: (line: string) => void } | undefined;
  let failure: Error | undefined;
  sock.setEncoding("latin1");
  sock.on("data", (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf("\r\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      if (want?.re.test(line)) {
        const w = want;
        want = undefined;
        w.resolve(line);
      }
    }
  });
  const fail = (err: Error) => {
    failure ??= err;
    want?.resolve("");
  };
  sock.on("error", fail);
  sock.on("close", () => fail(new Error("bare session: connection closed")));
  const wait = (re: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`bare session: no ${re} within 30 s`)), 30_000);
      want = {
        re,
        resolve: (line) => {
          clearTimeout(t);
          if (failure) reject(failure);
          else resolve(line);
        },
      };
    });
  const q = (x: string) => `"${x.replace(/["\\]/g, "\\$&")}"`;
  try {
    await wait(/^\* OK/);
    sock.write(`a LOGIN ${q(o.user)} ${q(o.pass)}\r\n`);
    if (!/^a OK/.test(await wait(/^a /))) throw new Error("bare session: LOGIN refused");
    sock.write(`b EXAMINE ${q(o.mailbox)}\r\n`);
    if (!/^b OK/.test(await wait(/^b /))) throw new Error("bare session: EXAMINE refused");
    sock.write("c IDLE\r\n");
    await wait(/^\+ /);
  } catch (err) {
    sock.destroy();
    throw err;
  }
  return () => {
    sock.end("DONE\r\nz LOGOUT\r\n");
    setTimeout(() => sock.destroy(), 500).unref();
  };
}

// ---------------------------------------------------------------------------------------------
// Dovecot for N concurrent IDLE sessions
// ---------------------------------------------------------------------------------------------

export interface BusyDovecot {
  dc: Dovecot;
  compress: boolean;
  /** What was done about inotify, in words. */
  inotify: string;
  /** Puts fs.inotify.max_user_instances back if we raised it; stops Dovecot. */
  dispose(): Promise<void>;
}

const inotifySysctl = "/proc/sys/fs/inotify/max_user_instances";

function restoreInotify(value: number): void {
  try {
    writeFileSync(inotifySysctl, String(value));
  } catch {
    // leave it raised
  }
}

/**
 * Every IDLE session is an imap process running as the one mail uid, and each holds an inotify
 * instance: fs.inotify.max_user_instances (128 by default) caps push at 128 sessions per uid.
 */
export async function startBusyDovecot(sessions: number, options: { compress?: boolean } = {}): Promise<BusyDovecot> {
  const needed = sessions + 256;
  let inotify: string;
  let restore: number | undefined;
  let idleCheckInterval: number | undefined;
  const current = Number(readFileSync(inotifySysctl, "utf8").trim());
  if (current >= needed) inotify = `fs.inotify.max_user_instances = ${current} (already ≥ ${needed}); push via inotify`;
  else {
    try {
      writeFileSync(inotifySysctl, String(needed));
      restore = current;
      // also when the run is cut short (the guard's process.exit, a signal handled by lib.ts)
      process.once("exit", () => {
        if (restore !== undefined) restoreInotify(restore);
      });
      inotify = `raised fs.inotify.max_user_instances ${current} → ${needed} for the run (sysctl -w); push via inotify`;
    } catch (err) {
      idleCheckInterval = 1;
      inotify = `could not raise fs.inotify.max_user_instances (${current}; ${(err as NodeJS.ErrnoException).code}): sessions beyond the limit poll with mailbox_idle_check_interval = 1 s`;
    }
  }
  const limit = Math.max(1000, sessions + 200);
  const loginProcs = Math.max(2, os.cpus().length);
  const dc = await startDovecot({
    ...(idleCheckInterval ? { idleCheckInterval } : {}),
    extraConfig: [
      // every process and every connection to master/anvil/stats/auth counts against these
      `default_process_limit = ${limit + 100}`,
      `default_client_limit = ${limit * 4}`,
      "protocol imap {",
      `  mail_max_userip_connections = ${limit}`,
      // COMPRESS=DEFLATE, as Gmail offers it: imapflow negotiates it unless disableCompression
      ...(options.compress ? ["  mail_plugins = $mail_plugins zlib imap_zlib"] : []),
      "}",
      // one imap process per session (client_limit 1, Dovecot's default and the safe choice)
      "service imap {",
      `  process_limit = ${limit}`,
      "}",
      // high-performance login mode: a login process stays as the TLS proxy of every session it
      // accepted, so with the default service_count = 1 each TLS session would keep its own
      // imap-login process; service_count = 0 lets a few processes hold them all
      "service imap-login {",
      "  service_count = 0",
      `  process_limit = ${loginProcs}`,
      `  process_min_avail = ${loginProcs}`,
      `  client_limit = ${limit * 2}`,
      "}",
      "service auth {",
      `  client_limit = ${limit * 4}`,
      "}",
    ],
  });
  return {
    dc,
    inotify,
    compress: options.compress ?? false,
    async dispose() {
      await dc.dispose();
      if (restore !== undefined) restoreInotify(restore);
      restore = undefined;
    },
  };
}

/** Runs fn over items with at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export interface Mailbox {
  user: string;
  pass: string;
  mailbox: string;
}

/** ceil(n / perUser) users, each with INBOX and folders F01…, n mailboxes in all. */
export async function createMailboxes(dc: Dovecot, n: number, perUser = 10): Promise<{ users: string[]; mailboxes: Mailbox[] }> {
  const users: string[] = [];
  const mailboxes: Mailbox[] = [];
  for (let u = 0; u * perUser < n; u++) {
    const user = `u${String(u).padStart(4, "0")}`;
    const pass = `pw-${user}`;
    users.push(user);
    await dc.addUser(user, pass);
    for (let f = 0; f < perUser && u * perUser + f < n; f++) mailboxes.push({ user, pass, mailbox: f === 0 ? "INBOX" : `F${String(f).padStart(2, "0")}` });
  }
  await pool(users, 8, async (user) => {
    const folders = mailboxes.filter((m) => m.user === user && m.mailbox !== "INBOX").map((m) => m.mailbox);
    if (folders.length === 0) return;
    await dc.withClient(user, async (c) => {
      for (const f of folders) await c.mailboxCreate(f);
    });
  });
  return { users, mailboxes };
}

const q = (s: string | number) => JSON.stringify(String(s));

/**
 * A config with one account per user (its mailboxes listed), a webhook target and a catch-all rule.
 * NOTIFY off: this measures one TLS connection per mailbox (bench/notify.ts measures NOTIFY).
 * systemCa: no `ca:` (the server is trusted through the system's store, as for Gmail; the caller
 * adds the test CA to it with NODE_EXTRA_CA_CERTS).
 */
export function benchYaml(o: { dc: Dovecot; port?: number; mailboxes: readonly Mailbox[]; hookUrl: string; statusPort?: number; logLevel?: string; keepaliveSeconds?: number; systemCa?: boolean; quietConnection?: "lean" | "imapflow" }): string {
  const byUser = new Map<string, Mailbox[]>();
  for (const m of o.mailboxes) byUser.set(m.user, [...(byUser.get(m.user) ?? []), m]);
  const accounts = [...byUser].map(
    ([user, ms]) =>
      `  - { name: ${user}, host: 127.0.0.1, port: ${o.port ?? o.dc.imapsPort}, tls: implicit, ${o.systemCa ? "" : `ca: ${q(o.dc.caFile)}, `}user: ${user}, pass: ${q(ms[0]!.pass)}, maxConnections: ${Math.max(ms.length, 1)}, mailboxes: [${ms.map((m) => q(m.mailbox)).join(", ")}] }`,
  );
  const watch = ["notify: off", o.keepaliveSeconds ? `keepaliveSeconds: ${o.keepaliveSeconds}` : "", o.quietConnection ? `quietConnection: ${o.quietConnection}` : ""].filter(Boolean);
  // state: the default ./mailbell.db, next to the config in the run's temp dir
  return `log: { level: ${o.logLevel ?? "warn"} }
${o.statusPort ? `status: { listen: "127.0.0.1:${o.statusPort}" }\n` : ""}${watch.length ? `watch: { ${watch.join(", ")} }\n` : ""}outbox: { drainSeconds: 2 }
accounts:${accounts.length ? `\n${accounts.join("\n")}` : " []"}
targets:
  - { name: hook, type: webhook, url: ${q(o.hookUrl)} }
rules:
  - { name: all, match: {}, notify: [hook], template: "{{subject}}" }
`;
}

interface HealthzMailbox {
  state: string;
  reconnects: number;
  lastError: string | null;
}

async function healthz(port: number): Promise<HealthzMailbox[] | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    const body = (await res.json()) as { mailboxes: HealthzMailbox[] };
    return body.mailboxes;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------------

export interface NotifySample {
  mailbox: string;
  /** APPEND answered OK → the receiver has the webhook POST. Includes Dovecot's ~500 ms. */
  appendToReceivedMs: number;
  /** APPEND answered OK → the raw IDLE client on the same mailbox sees `* N EXISTS` (Dovecot's delay). */
  appendToExistsMs: number;
  /** The raw client's EXISTS → the receiver has it: mailbell's own overhead. */
  existsToReceivedMs: number;
}

export interface ManyMailboxesResult {
  mailboxes: number;
  users: number;
  foldersPerUser: number;
  inotify: string;
  compress: boolean;
  /** The accounts had no `ca:` (the test CA in the system's store). */
  systemCa: boolean;
  /** Extra node flags mailbell ran with (none by default). */
  nodeFlags: string[];
  /** How mailbell was started: "bin/mailbell.js" (the launcher, as users) or "src/cli/entry.ts". */
  startedAs: string;
  /** The loaded mailbell's node flags and MALLOC_ARENA_MAX as it ran (after the launcher). */
  runtime: { execArgv: string[]; mallocArenaMax: string | null; mallocMmapThreshold: string | null };
  /** Baseline run (one mailbox): spawn → /healthz answers (node + mailbell startup). */
  startupMs: number;
  /** Baseline run: spawn → its single mailbox is in IDLE. */
  baselineIdleMs: number;
  /** spawn → every mailbox reported connected (SELECTed, checkpoint read). */
  allConnectedMs: number;
  /** spawn → every mailbox in IDLE. */
  allIdleMs: number;
  /** Mailboxes that never reached IDLE within the time limit. */
  notIdle: number;
  reconnects: number;
  rssBaselineKb: number;
  rssLoadedKb: number;
  /** (rssLoadedKb − rssBaselineKb) / (mailboxes − 1). */
  rssPerMailboxKb: number;
  peakRssKb: number;
  rssAfterIdleKb: number;
  idleSeconds: number;
  /** watch.keepaliveSeconds in effect: one NOOP per mailbox this often. */
  keepaliveSeconds: number;
  idleCpuSeconds: number;
  /** The kernel's part of idleCpuSeconds. */
  idleSystemSeconds: number;
  idleCpuPercent: number;
  notify: NotifySample[];
  memory: { baseline: MemoryProbe; loaded: MemoryProbe };
  /** Where the RSS lives, read right after rssBaselineKb / rssLoadedKb (before any forced GC). */
  smaps: { baseline: SmapsSummary; loaded: SmapsSummary };
  dovecot: { processes: Record<string, number>; rssMb: number; problems: string[] };
  mailbellProblems: string[];
  threads: number;
  heapTop?: HeapRow[];
  layers?: LayerResult[];
  totalSeconds: number;
}

export interface ManyMailboxesOptions {
  mailboxes: number;
  /** Window for idle CPU; default one full keepalive period (watch.keepaliveSeconds). */
  idleSeconds?: number;
  /** Notifications to time, each to another random mailbox; default 5. */
  samples?: number;
  /** Settle time after all are idle before RSS is read; default 10 s. */
  settleSeconds?: number;
  /** Split the per-mailbox RSS into TLS, imapflow and mailbell layers (child processes). */
  analyze?: boolean;
  /** Write a heap snapshot of the loaded mailbell and summarise it. */
  heapSnapshot?: boolean;
  /** Dovecot offers COMPRESS=DEFLATE (imap_zlib), as Gmail does; imapflow then compresses every session. */
  compress?: boolean;
  /** Extra node flags for both mailbell processes (e.g. --max-semi-space-size=1), to try V8 settings. */
  nodeFlags?: readonly string[];
  /** watch.quietConnection for mailbell (default: the config's default, lean). */
  quietConnection?: "lean" | "imapflow";
  /** Run src/cli/entry.ts directly, without the launcher's memory settings (default false). */
  srcEntry?: boolean;
  /** watch.keepaliveSeconds for both mailbell processes; default mailbell's own. A short one makes
   * the cost of one keepalive measurable: (idle CPU) / (mailboxes × idle window / keepalive). */
  keepaliveSeconds?: number;
  /** How often /healthz is asked while the mailboxes connect; default healthzPollMs(). */
  healthzPollMs?: number;
  /** Accounts without `ca:`, trusting the test CA through the system's store (NODE_EXTRA_CA_CERTS), as most users' accounts do. */
  systemCa?: boolean;
  /** Progress lines go here (default: stderr). */
  progress?: (line: string) => void;
}

/**
 * How often to ask /healthz while the mailboxes connect: every 100 ms for a few mailboxes, once a
 * second at 1,000 (n ms, within 100–1000). Each answer lists every mailbox (~200 B each): asked
 * every 100 ms at 1,000 mailboxes, the ~2 MB/s of JSON and HTTP buffers made while the connections
 * were being set up stayed in mailbell's RSS, as if each mailbox cost ~20 kB more (BENCHMARKS.md,
 * "Memory per idle mailbox"), which no user's monitoring would cause.
 */
export function healthzPollMs(mailboxes: number, given?: number): number {
  return given ?? Math.min(1000, Math.max(100, mailboxes));
}

/** Settled VmRSS of a process: the median of five readings 200 ms apart. */
async function steadyRss(p: MailbellProcess): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    xs.push(p.rssKb());
    await sleep(200);
  }
  return median(xs);
}

export async function runManyMailboxes(options: ManyMailboxesOptions): Promise<ManyMailboxesResult> {
  const t0 = performance.now();
  const n = options.mailboxes;
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`runManyMailboxes: mailboxes must be an integer ≥ 2 (the baseline is one mailbox), got ${n}`);
  // mailbell's default watch.keepaliveSeconds
  const keepaliveSeconds = options.keepaliveSeconds ?? 120;
  const idleSeconds = options.idleSeconds ?? keepaliveSeconds;
  const settleMs = (options.settleSeconds ?? 10) * 1000;
  const say = options.progress ?? ((l: string) => process.stderr.write(`[mailboxes] ${l}\n`));
  const perUser = Math.min(10, n);
  // + the raw IDLE client and the appending connection of each notify sample
  const busy = await startBusyDovecot(n + 50, { compress: options.compress });
  const { dc } = busy;
  // undefined: startMailbellProcess's default, the launcher as users run it.
  const entry = options.srcEntry ? sourceEntry : undefined;
  const quiet = options.quietConnection ? { quietConnection: options.quietConnection } : {};
  let receiver: Receiver | undefined;
  const running = new Set<ProbedMailbell>();
  const stop = async (m: ProbedMailbell) => {
    running.delete(m);
    await m.stop();
  };
  try {
    receiver = await startReceiver();
    say(`dovecot up (${busy.inotify}); creating ${n} mailboxes`);
    const { users, mailboxes } = await createMailboxes(dc, n, perUser);
    say(`${users.length} users × ${perUser} folders ready (${((performance.now() - t0) / 1000).toFixed(1)} s)`);

    // --- baseline: the same config with one mailbox. With zero accounts `mailbell run` warns
    // "nothing to watch" and exits at once, so there is no settled process to measure. ---
    const basePort = await freePort();
    const trust = { systemCa: options.systemCa };
    const env = options.systemCa ? { NODE_EXTRA_CA_CERTS: dc.caFile } : {};
    const base = await startProbedMailbell(benchYaml({ dc, mailboxes: mailboxes.slice(0, 1), hookUrl: receiver.url("/hook"), statusPort: basePort, keepaliveSeconds: options.keepaliveSeconds, ...quiet, ...trust }), env, options.nodeFlags, entry);
    running.add(base);
    let startupMs = NaN;
    for (;;) {
      const h = await healthz(basePort);
      const now = performance.now() - base.spawnedAt;
      if (h && Number.isNaN(startupMs)) startupMs = now;
      if (h?.[0]?.state === "idle") break;
      if (now > 30_000) throw new Error(`baseline mailbell did not reach IDLE:\n${base.proc.log}`);
      await sleep(10);
    }
    const baselineIdleMs = performance.now() - base.spawnedAt;
    await sleep(settleMs);
    const rssBaselineKb = await steadyRss(base.proc);
    const baseSmaps = smapsSummary(base.proc.pid);
    const baseMem = await base.probe();
    await stop(base);
    say(`baseline (1 mailbox): RSS ${rssBaselineKb} kB, spawn → /healthz ${startupMs.toFixed(0)} ms, → IDLE ${baselineIdleMs.toFixed(0)} ms`);

    // --- N mailboxes ---
    const port = await freePort();
    const mb = await startProbedMailbell(benchYaml({ dc, mailboxes, hookUrl: receiver.url("/hook"), statusPort: port, keepaliveSeconds: options.keepaliveSeconds, ...quiet, ...trust }), env, options.nodeFlags, entry);
    running.add(mb);
    let allConnectedMs = NaN;
    let allIdleMs = NaN;
    let last: HealthzMailbox[] = [];
    let lastReport = 0;
    const connectLimitMs = Math.max(60_000, n * 150);
    const pollMs = healthzPollMs(n, options.healthzPollMs);
    for (;;) {
      const h = await healthz(port);
      const now = performance.now() - mb.spawnedAt;
      if (h) {
        last = h;
        const connected = h.filter((m) => m.state === "connected" || m.state === "idle").length;
        const idle = h.filter((m) => m.state === "idle").length;
        if (connected === n && Number.isNaN(allConnectedMs)) allConnectedMs = now;
        if (idle === n) {
          allIdleMs = now;
          break;
        }
        if (now - lastReport > 5000) {
          lastReport = now;
          say(`  ${(now / 1000).toFixed(1)} s: ${connected} connected, ${idle} idle of ${n}`);
        }
      }
      const state = await Promise.race([mb.proc.exited, sleep(pollMs).then(() => "running" as const)]);
      if (state !== "running") throw new Error(`mailbell exited (${state}):\n${mb.proc.log.slice(-3000)}`);
      if (now > connectLimitMs) break;
    }
    const notIdle = last.filter((m) => m.state !== "idle").length;
    say(`all idle after ${(allIdleMs / 1000).toFixed(2)} s (connected ${(allConnectedMs / 1000).toFixed(2)} s); not idle: ${notIdle}`);

    await sleep(settleMs);
    const rssLoadedKb = await steadyRss(mb.proc);
    const loadedSmaps = smapsSummary(mb.proc.pid);
    const runtime = mailbellRuntime(mb.proc.pid);
    const peakRssKb = mb.proc.peakRssKb();
    say(`loaded RSS ${rssLoadedKb} kB (peak ${peakRssKb} kB) → ${((rssLoadedKb - rssBaselineKb) / (n - 1)).toFixed(1)} kB per mailbox; measuring idle CPU for ${idleSeconds} s`);

    const c0 = mb.proc.cpuSeconds();
    const s0 = processUsage(mb.proc.pid)?.systemSeconds ?? NaN;
    const w0 = performance.now();
    await sleep(idleSeconds * 1000);
    const idleCpuSeconds = mb.proc.cpuSeconds() - c0;
    const idleSystemSeconds = (processUsage(mb.proc.pid)?.systemSeconds ?? NaN) - s0;
    const wall = (performance.now() - w0) / 1000;
    const idleCpuPercent = (idleCpuSeconds / wall) * 100;
    const rssAfterIdleKb = mb.proc.rssKb();
    say(`idle CPU ${idleCpuPercent.toFixed(2)} % of one core (${idleCpuSeconds.toFixed(2)} s CPU in ${wall.toFixed(1)} s, of which ${idleSystemSeconds.toFixed(2)} s in the kernel)`);

    const loadedMem = await mb.probe();

    const notify: NotifySample[] = [];
    for (let i = 0; i < (options.samples ?? 5); i++) {
      const m = mailboxes[Math.floor(Math.random() * mailboxes.length)]!;
      notify.push(await notifySample(dc, receiver, m, `mbx-${i}`));
      say(`  notify ${m.user}/${m.mailbox}: ${fmtSample(notify.at(-1)!)}`);
    }

    let heapTop: HeapRow[] | undefined;
    if (options.heapSnapshot) {
      const file = path.join(os.tmpdir(), `mailbell-bench-${n}-${process.pid}.heapsnapshot`);
      say(`writing heap snapshot ${file}`);
      await mb.probe({ snapshot: file, timeoutMs: 300_000 });
      heapTop = summariseHeapSnapshot(file, n);
      if (!process.env.MAILBELL_KEEP_BENCH) rmSync(file, { force: true });
    }

    const h = (await healthz(port)) ?? last;
    const reconnects = h.reduce((sum, m) => sum + m.reconnects, 0);
    const threads = procStatus(mb.proc.pid, "Threads");
    const dovecot = { ...dovecotProcesses(dc.pid), problems: dovecotProblems(dc) };
    const mailbellLog = mb.proc.log;
    await stop(mb);
    const mailbellProblems = logProblems(mailbellLog);

    let layers: LayerResult[] | undefined;
    if (options.analyze) layers = await analyzeLayers(dc, mailboxes, say);

    return {
      mailboxes: n,
      users: users.length,
      foldersPerUser: perUser,
      inotify: busy.inotify,
      compress: busy.compress,
      systemCa: options.systemCa ?? false,
      nodeFlags: [...(options.nodeFlags ?? [])],
      startedAs: entry ? "src/cli/entry.ts" : "bin/mailbell.js",
      runtime,
      startupMs,
      baselineIdleMs,
      allConnectedMs,
      allIdleMs,
      notIdle,
      reconnects,
      rssBaselineKb,
      rssLoadedKb,
      rssPerMailboxKb: (rssLoadedKb - rssBaselineKb) / (n - 1),
      peakRssKb,
      rssAfterIdleKb,
      idleSeconds,
      keepaliveSeconds,
      idleCpuSeconds,
      idleSystemSeconds,
      idleCpuPercent,
      notify,
      memory: { baseline: baseMem, loaded: loadedMem },
      smaps: { baseline: baseSmaps, loaded: loadedSmaps },
      dovecot: { processes: dovecot.byName, rssMb: dovecot.rssMb, problems: dovecot.problems },
      mailbellProblems,
      threads,
      ...(heapTop ? { heapTop } : {}),
      ...(layers ? { layers } : {}),
      totalSeconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const m of running) await m.stop().catch(() => {});
    await receiver?.close();
    await busy.dispose();
  }
}

/** The node flags and MALLOC_ARENA_MAX a running mailbell has, from /proc (what the launcher set). */
function mailbellRuntime(pid: number): ManyMailboxesResult["runtime"] {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(1);
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    const value = (name: string) => env.find((e) => e.startsWith(`${name}=`))?.slice(name.length + 1) ?? null;
    return { execArgv: argv.slice(0, argv.findIndex((a) => !a.startsWith("-"))), mallocArenaMax: value("MALLOC_ARENA_MAX"), mallocMmapThreshold: value("MALLOC_MMAP_THRESHOLD_") };
  } catch {
    return { execArgv: [], mallocArenaMax: null, mallocMmapThreshold: null };
  }
}

/**
 * One mail to `m`: the raw IDLE client and an appending imapflow connection are opened first, so
 * the clock starts when the APPEND is answered and nothing else is timed.
 */
export async function notifySample(dc: Dovecot, receiver: Receiver, m: Mailbox, tag: string, raw?: (subject: string) => Buffer | string): Promise<NotifySample> {
  const subject = `${tag} ${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const mail = raw ? raw(subject) : buildMail({ from: "Shop <shop@example.com>", to: `${m.user}@example.com`, subject, text: "Total: $15.14\r\n" });
  const idle = await startRawIdleClient({ host: dc.host, port: dc.imapsPort, ca: dc.ca, user: m.user, pass: m.pass, mailbox: m.mailbox });
  const appender = new ImapFlow({ ...dc.clientOptions(m.user), auth: { user: m.user, pass: m.pass } });
  appender.on("error", () => {});
  try {
    await appender.connect();
    const existsP = idle.waitFor(idle.initialCount + 1, 60_000);
    const receivedP = receiver.waitFor((r) => r.text.includes(subject), 120_000);
    await appender.append(m.mailbox, mail);
    const appended = performance.now();
    const [received] = await receivedP;
    const exists = await existsP;
    return {
      mailbox: `${m.user}/${m.mailbox}`,
      appendToReceivedMs: received!.at - appended,
      appendToExistsMs: exists.at - appended,
      existsToReceivedMs: received!.at - exists.at,
    };
  } finally {
    await idle.close();
    await appender.logout().catch(() => appender.close());
  }
}

function fmtSample(s: NotifySample): string {
  return `APPEND→received ${fmtMs(s.appendToReceivedMs)} (APPEND→raw EXISTS ${fmtMs(s.appendToExistsMs)}, EXISTS→received ${fmtMs(s.existsToReceivedMs)})`;
}

// ---------------------------------------------------------------------------------------------
// Analysis: heap snapshot summary and per-layer RSS
// ---------------------------------------------------------------------------------------------

export interface HeapRow {
  what: string;
  count: number;
  selfBytes: number;
  perMailboxCount: number;
  perMailboxBytes: number;
}

/** Self sizes in a .heapsnapshot by constructor (objects, closures, native) or node type. */
export function summariseHeapSnapshot(file: string, perN: number, top = 25): HeapRow[] {
  const snap = JSON.parse(readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf("type");
  const iName = fields.indexOf("name");
  const iSize = fields.indexOf("self_size");
  const rows = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!]!;
    const name = snap.strings[snap.nodes[i + iName]!]!;
    // strings by their first characters, so a string repeated per connection shows up as one row
    const key =
      type === "object" || type === "closure" || type === "native"
        ? `${type} ${name.slice(0, 60)}`
        : type === "string"
          ? `(string) ${JSON.stringify(name.slice(0, 40))}`
          : `(${type})`;
    const r = rows.get(key) ?? { count: 0, bytes: 0 };
    r.count++;
    r.bytes += snap.nodes[i + iSize]!;
    rows.set(key, r);
  }
  return [...rows]
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .slice(0, top)
    .map(([what, r]) => ({ what, count: r.count, selfBytes: r.bytes, perMailboxCount: r.count / perN, perMailboxBytes: r.bytes / perN }));
}

export interface LayerResult {
  layer: string;
  connections: number;
  rssBeforeKb: number;
  rssAfterKb: number;
  perConnectionKb: number;
  heapUsedPerConnectionKb: number;
  externalPerConnectionKb: number;
  idleCpuPercent: number;
}

/**
 * The same N sessions opened by a bare client in a child process: raw TLS (LOGIN, EXAMINE, IDLE
 * written by hand) and imapflow (connect, mailboxOpen, idle()), each measured as RSS after minus
 * RSS before connecting. Tells what Node's TLS socket costs, what imapflow adds, and so what is
 * left for mailbell itself.
 */
async function analyzeLayers(dc: Dovecot, mailboxes: readonly Mailbox[], say: (l: string) => void): Promise<LayerResult[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-bench-layers-"));
  const spec = path.join(dir, "spec.json");
  writeFileSync(spec, JSON.stringify({ port: dc.imapsPort, ca: dc.ca, mailboxes }));
  const out: LayerResult[] = [];
  try {
    for (const layer of ["raw", "raw-shared", "imapflow", "imapflow-shared"]) {
      say(`layer ${layer}: opening ${mailboxes.length} sessions in a child process`);
      const child = spawnTracked(["--expose-gc", import.meta.filename, "--child", layer, "--spec", spec]);
      const code = await child.exited;
      const line = child.log.split("\n").filter((l) => l.startsWith("{")).at(-1);
      if (code !== 0 || !line) throw new Error(`layer ${layer} child failed (${code}): ${child.log.slice(-2000)}`);
      out.push(JSON.parse(line) as LayerResult);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

async function childLayer(layer: string, specFile: string): Promise<void> {
  const spec = JSON.parse(readFileSync(specFile, "utf8")) as { port: number; ca: string; mailboxes: Mailbox[] };
  const gc = (globalThis as { gc?: () => void }).gc;
  const secureContext = layer.endsWith("-shared") ? tls.createSecureContext({ ca: spec.ca }) : undefined;
  const open = async (m: Mailbox): Promise<() => Promise<void>> => {
    if (layer.startsWith("raw")) {
      const close = await openBareSession({ port: spec.port, ca: spec.ca, user: m.user, pass: m.pass, mailbox: m.mailbox, secureContext });
      return async () => close();
    }
    const c = new ImapFlow({
      host: "127.0.0.1",
      port: spec.port,
      secure: true,
      tls: secureContext ? { secureContext } : { ca: spec.ca },
      auth: { user: m.user, pass: m.pass },
      logger: false,
      disableAutoIdle: true,
      disableBinary: true,
    });
    c.on("error", () => {});
    await c.connect();
    await c.mailboxOpen(m.mailbox, { readOnly: true });
    void c.idle().catch(() => {});
    return async () => void (await c.logout().catch(() => c.close()));
  };
  // warm up: load modules and make one connection, so only the per-connection cost is left
  const warm = await open(spec.mailboxes[0]!);
  await sleep(2000);
  gc?.();
  await sleep(1000);
  const rss0 = procStatus(process.pid, "VmRSS");
  const mem0 = process.memoryUsage();
  const closers: (() => Promise<void>)[] = [];
  const rest = spec.mailboxes.slice(1);
  let i = 0;
  // all at once by default, as mailbell starts every watcher at once
  const concurrency = Number(process.env.MB_LAYER_CONCURRENCY) || rest.length;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, rest.length) }, async () => {
      while (i < rest.length) closers.push(await open(rest[i++]!));
    }),
  );
  await sleep(10_000);
  const samples: number[] = [];
  for (let k = 0; k < 5; k++) {
    samples.push(procStatus(process.pid, "VmRSS"));
    await sleep(200);
  }
  const rss1 = median(samples);
  const c0 = processUsage(process.pid)!.cpuSeconds;
  await sleep(10_000);
  const cpu = ((processUsage(process.pid)!.cpuSeconds - c0) / 10) * 100;
  gc?.();
  const mem1 = process.memoryUsage();
  const n = rest.length;
  const result: LayerResult = {
    layer: layerNames[layer] ?? layer,
    connections: n,
    rssBeforeKb: rss0,
    rssAfterKb: rss1,
    perConnectionKb: (rss1 - rss0) / n,
    heapUsedPerConnectionKb: (mem1.heapUsed - mem0.heapUsed) / 1024 / n,
    externalPerConnectionKb: (mem1.external - mem0.external) / 1024 / n,
    idleCpuPercent: cpu,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await Promise.all(closers.map((c) => c()));
  await warm();
  await sleep(300);
}

const layerNames: Record<string, string> = {
  raw: "bare TLS IDLE session, own SecureContext (tls.connect({ ca }))",
  "raw-shared": "bare TLS IDLE session, one shared SecureContext",
  imapflow: "imapflow idle(), tls: { ca } (as mailbell)",
  "imapflow-shared": "imapflow idle(), tls: { secureContext } shared",
};

// ---------------------------------------------------------------------------------------------
// Output and standalone
// ---------------------------------------------------------------------------------------------

export const MAILBOXES_COLUMNS = ["benchmark", "measure", "value", "bar", "notes"] as const;

const mbytes = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;

/** Rows for MAILBOXES_COLUMNS. */
export function formatManyMailboxes(r: ManyMailboxesResult): string[][] {
  const name = `many mailboxes: ${r.mailboxes}`;
  const per = (a: number, b: number) => `${((a - b) / 1024 / (r.mailboxes - 1)).toFixed(1)} kB`;
  const mem = r.memory;
  const medianOf = (k: keyof Omit<NotifySample, "mailbox">) => median(r.notify.map((x) => x[k]));
  const each = (k: keyof Omit<NotifySample, "mailbox">) => r.notify.map((x) => fmtMs(x[k])).join(", ");
  return [
    [name, "time to connect all (spawn → all in IDLE)", `${(r.allIdleMs / 1000).toFixed(2)} s`, "", `${r.users} users × ${r.foldersPerUser} folders, implicit TLS, one connection each; all SELECTed at ${(r.allConnectedMs / 1000).toFixed(2)} s; one mailbox alone: ${fmtMs(r.baselineIdleMs)}${r.notIdle ? `; ${r.notIdle} NEVER reached IDLE` : ""}; ${r.reconnects} reconnects`],
    [name, "RSS per idle mailbox", `${r.rssPerMailboxKb.toFixed(0)} kB`, "≤ 150 kB", `(${mbytes(r.rssLoadedKb)} − ${mbytes(r.rssBaselineKb)} with one mailbox) / ${r.mailboxes - 1}; heap ${per(mem.loaded.afterGc.heapUsed, mem.baseline.afterGc.heapUsed)}, V8 heap reserved ${per(mem.loaded.afterGc.heapTotal, mem.baseline.afterGc.heapTotal)}, rest native`],
    [name, "RSS total", mbytes(r.rssLoadedKb), "", `peak ${mbytes(r.peakRssKb)}; ${mbytes(r.rssAfterIdleKb)} after the idle window`],
    [name, `CPU while idle (${r.idleSeconds} s)`, `${r.idleCpuPercent.toFixed(2)} %`, "< 1 % of a core", `${r.idleCpuSeconds.toFixed(2)} s CPU (${r.idleSystemSeconds.toFixed(2)} s of it in the kernel); ${r.idleSeconds >= r.keepaliveSeconds ? `covers ${Math.floor(r.idleSeconds / r.keepaliveSeconds)} keepalive(s) per mailbox (every ${r.keepaliveSeconds} s: DONE, NOOP, IDLE), ${((r.idleCpuSeconds * 1000 * r.keepaliveSeconds) / r.idleSeconds / r.mailboxes).toFixed(2)} ms CPU each` : `shorter than the ${r.keepaliveSeconds} s keepalive period, so it may miss the keepalives`}`],
    [name, "time to notify (APPEND done → receiver)", fmtMs(medianOf("appendToReceivedMs")), "", `median of ${r.notify.length} (${each("appendToReceivedMs")}); Dovecot holds every push ~500 ms`],
    [name, "  Dovecot: APPEND done → raw client's EXISTS", fmtMs(medianOf("appendToExistsMs")), "", "the server's own limit (bench/raw-idle-client.ts on the same mailbox)"],
    [name, "  mailbell: raw EXISTS → receiver", fmtMs(medianOf("existsToReceivedMs")), "", `each: ${each("existsToReceivedMs")}; two Dovecot sessions' 500 ms timers differ by a few ms`],
  ];
}

export function printManyMailboxes(r: ManyMailboxesResult): void {
  console.log(new Table(MAILBOXES_COLUMNS).addRows(formatManyMailboxes(r)).toString());
  console.log(`\ninotify: ${r.inotify}; COMPRESS=DEFLATE offered: ${r.compress ? "yes (imap_zlib, as Gmail)" : "no (Dovecot's default)"}; server trusted through ${r.systemCa ? "the system's store (no ca:, NODE_EXTRA_CA_CERTS)" : "ca: in each account"}; extra node flags: ${r.nodeFlags.length ? r.nodeFlags.join(" ") : "none"}`);
  const own = r.runtime.execArgv.filter((a) => a !== "--expose-gc" && !a.startsWith("--import="));
  console.log(`started as ${r.startedAs}; running with node flags: ${own.join(" ") || "none"}, MALLOC_ARENA_MAX ${r.runtime.mallocArenaMax ?? "unset"}, MALLOC_MMAP_THRESHOLD_ ${r.runtime.mallocMmapThreshold ?? "unset"} (the bench's probe adds --expose-gc and an --import)`);
  console.log(`dovecot: ${Object.entries(r.dovecot.processes).map(([k, v]) => `${k} ${v}`).join(", ")} (${r.dovecot.rssMb} MB RSS in all); mailbell threads: ${r.threads}`);
  const mu = (m: NodeJS.MemoryUsage) =>
    `rss ${(m.rss / 1048576).toFixed(1)}, heapTotal ${(m.heapTotal / 1048576).toFixed(1)}, heapUsed ${(m.heapUsed / 1048576).toFixed(1)}, external ${(m.external / 1048576).toFixed(1)}, arrayBuffers ${(m.arrayBuffers / 1048576).toFixed(1)} MB`;
  console.log(`memoryUsage() after GC, 1 mailbox:  ${mu(r.memory.baseline.afterGc)}`);
  console.log(`memoryUsage() after GC, ${r.mailboxes} mailboxes: ${mu(r.memory.loaded.afterGc)}`);
  const sm = (x: SmapsSummary) => `malloc [heap] ${mbytes(x.brkHeapKb)}, anonymous mmaps (V8 heap, thread arenas) ${mbytes(x.anonKb)}, files ${mbytes(x.fileKb)}, other ${mbytes(x.otherKb)}`;
  const d = (k: keyof SmapsSummary) => ((r.smaps.loaded[k] - r.smaps.baseline[k]) / (r.mailboxes - 1)).toFixed(1);
  console.log(`RSS by mapping, 1 mailbox:  ${sm(r.smaps.baseline)}`);
  console.log(`RSS by mapping, ${r.mailboxes} mailboxes: ${sm(r.smaps.loaded)}`);
  console.log(`  per mailbox: malloc [heap] ${d("brkHeapKb")} kB, anonymous mmaps ${d("anonKb")} kB, files ${d("fileKb")} kB`);
  console.log(`active handles, ${r.mailboxes} mailboxes: ${Object.entries(r.memory.loaded.resources).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  if (r.layers) {
    console.log("\nper-connection RSS of the layers underneath (the same sessions from bare clients, each in its own process):");
    const t = new Table(["layer", "RSS / connection", "heap / connection", "external / connection", "idle CPU (10 s)"]);
    for (const l of r.layers) t.add(l.layer, `${l.perConnectionKb.toFixed(1)} kB`, `${l.heapUsedPerConnectionKb.toFixed(1)} kB`, `${l.externalPerConnectionKb.toFixed(1)} kB`, `${l.idleCpuPercent.toFixed(2)} %`);
    t.add("mailbell (this run)", `${r.rssPerMailboxKb.toFixed(1)} kB`, `${((r.memory.loaded.afterGc.heapUsed - r.memory.baseline.afterGc.heapUsed) / 1024 / (r.mailboxes - 1)).toFixed(1)} kB`, `${((r.memory.loaded.afterGc.external - r.memory.baseline.afterGc.external) / 1024 / (r.mailboxes - 1)).toFixed(1)} kB`, `${r.idleCpuPercent.toFixed(2)} % (${r.idleSeconds} s)`);
    console.log(t.toString());
  }
  if (r.heapTop) {
    console.log("\nheap snapshot of the loaded mailbell, largest self sizes (per mailbox = total / N, so fixed costs are included):");
    const t = new Table(["what", "count / mailbox", "kB / mailbox", "total MB"]);
    for (const h of r.heapTop) t.add(h.what, h.perMailboxCount.toFixed(1), (h.perMailboxBytes / 1024).toFixed(2), (h.selfBytes / 1048576).toFixed(2));
    console.log(t.toString());
  }
  if (r.mailbellProblems.length) console.log(`\nmailbell warnings:\n  ${r.mailbellProblems.slice(0, 10).join("\n  ")}`);
  if (r.dovecot.problems.length) console.log(`\ndovecot warnings:\n  ${r.dovecot.problems.slice(0, 10).join("\n  ")}`);
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      mailboxes: { type: "string", default: "1000" },
      "idle-seconds": { type: "string" },
      "keepalive-seconds": { type: "string" },
      samples: { type: "string", default: "5" },
      analyze: { type: "boolean", default: false },
      "heap-snapshot": { type: "boolean", default: false },
      compress: { type: "boolean", default: false },
      "node-flags": { type: "string", default: "" },
      "src-entry": { type: "boolean", default: false },
      "system-ca": { type: "boolean", default: false },
      "quiet-connection": { type: "string" },
      "healthz-poll-ms": { type: "string" },
      json: { type: "boolean", default: false },
      child: { type: "string" },
      spec: { type: "string" },
    },
  });
  if (values.child) {
    await childLayer(values.child, values.spec!);
  } else {
    const n = Number(values.mailboxes);
    const limitMs = (Number(values["idle-seconds"] ?? values["keepalive-seconds"] ?? 120) + 300 + n * 0.15 + (values.analyze ? 60 + n * 0.2 : 0) + (values["heap-snapshot"] ? 120 : 0)) * 1000;
    const guard = giveUpAfter("mailboxes", limitMs);
    const r = await runManyMailboxes({
      mailboxes: Number(values.mailboxes),
      ...(values["idle-seconds"] ? { idleSeconds: Number(values["idle-seconds"]) } : {}),
      samples: Number(values.samples),
      analyze: values.analyze,
      heapSnapshot: values["heap-snapshot"],
      compress: values.compress,
      nodeFlags: values["node-flags"].split(/\s+/).filter(Boolean),
      srcEntry: values["src-entry"],
      systemCa: values["system-ca"],
      ...(values["quiet-connection"] ? { quietConnection: values["quiet-connection"] as "lean" | "imapflow" } : {}),
      ...(values["healthz-poll-ms"] ? { healthzPollMs: Number(values["healthz-poll-ms"]) } : {}),
      ...(values["keepalive-seconds"] ? { keepaliveSeconds: Number(values["keepalive-seconds"]) } : {}),
    });
    if (values.json) console.log(JSON.stringify(r, null, 2));
    else {
      console.log(`\n${machineInfo().summary}`);
      console.log(`node bench/mailboxes.ts ${process.argv.slice(2).join(" ")}\n`);
      printManyMailboxes(r);
    }
    clearTimeout(guard);
  }
}
