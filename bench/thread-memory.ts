/**
 * What the delivery thread (outbox.thread: own) costs while idle, against a bare worker thread:
 * each variant in a fresh process, RSS (VmRSS) after it settles, the thread's V8 heap
 * (worker.getHeapStatistics()) and, with --modules, what the thread loaded.
 *
 *   node bench/thread-memory.ts              none, bare, delivery (dist/: build it first)
 *   node bench/thread-memory.ts --modules    also lists the modules the delivery thread loaded
 *   node bench/thread-memory.ts --daemon     `mailbell run` watching one empty INBOX (Dovecot), outbox.thread main
 *                                           and own in turn, twice each: VmRSS 10 s after "watching"
 *   node bench/thread-memory.ts --variant imports:zod,node:http --variant imports:dist/targets/index.js
 *                                           a bare thread that imports these: what each part costs
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { accountYaml } from "../test/support/config-yaml.ts";
import { startDovecot } from "../test/support/dovecot.ts";
import type * as StateModule from "../src/store/sqlite/state.ts";
import type * as TargetsModule from "../src/targets/index.ts";

const dist = new URL("../dist/", import.meta.url);
const settleMs = 3000;

const vmRss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]) / 1024;
const mb = (bytes: number): string => (bytes / 1048576).toFixed(1);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One variant, in this (child) process: prints a JSON line. */
async function child(variant: string, modules: boolean): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-thread-memory-"));
  // The process as the daemon has it before it starts the sender: state open, targets made.
  const { State } = (await import(new URL("store/sqlite/state.js", dist).href)) as typeof StateModule;
  const { targetSchema } = (await import(new URL("targets/index.js", dist).href)) as typeof TargetsModule;
  const statePath = path.join(dir, "state.db");
  const state = State.open(statePath);
  await sleep(settleMs);
  const before = vmRss();
  let worker: Worker | undefined;
  const loaded: string[] = [];
  if (variant !== "none") {
    const hooks = path.join(dir, "hooks.mjs");
    writeFileSync(hooks, `import { registerHooks } from "node:module"; import { parentPort } from "node:worker_threads";
      registerHooks({ load(url, context, next) { parentPort?.postMessage({ type: "loaded", url }); return next(url, context); } });`);
    const bare = path.join(dir, "bare.mjs");
    writeFileSync(bare, `import { parentPort } from "node:worker_threads"; parentPort.postMessage({ type: "ready" }); parentPort.on("message", () => {});`);
    // imports:a,b — a bare thread that also imports these (what each part of the delivery thread costs)
    const imports = variant.startsWith("imports:") ? variant.slice(8).split(",").map((s) => (s.startsWith("dist/") ? new URL(s.slice(5), dist).href : s.startsWith("node:") ? s : import.meta.resolve(s))) : [];
    writeFileSync(bare, `${imports.map((s) => `import ${JSON.stringify(s)};`).join("")}import { parentPort } from "node:worker_threads"; parentPort.postMessage({ type: "ready" }); parentPort.on("message", () => {});`);
    const file = variant === "delivery" ? new URL("daemon/delivery-worker.js", dist) : pathToFileURL(bare);
    const init = {
      statePath,
      targets: [targetSchema.parse({ name: "hook", type: "webhook", url: "http://127.0.0.1:9/hook" })],
      pacing: new Map([["hook", { perSecond: Infinity, burst: 1000, overflow: "paced", digestAfter: 5 }]]),
      retry: { baseMs: 50, capMs: 500, maxAttempts: 10 },
      log: { to: "fd", fd: 2, level: "info", format: "json" },
    };
    worker = new Worker(file, { workerData: init, ...(modules ? { execArgv: ["--import", pathToFileURL(hooks).href] } : {}) });
    await new Promise<void>((resolve, reject) => {
      worker!.on("message", (m: { type: string; url?: string }) => (m.type === "loaded" ? loaded.push(m.url!) : m.type === "ready" ? resolve() : reject(new Error(JSON.stringify(m)))));
      worker!.on("error", reject);
    });
    if (variant === "delivery") worker.postMessage({ type: "start" });
    await sleep(settleMs);
  }
  const heap = worker ? await worker.getHeapStatistics() : undefined;
  const after = vmRss();
  await worker?.terminate();
  state.close();
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify({ variant, before, after, heapUsed: heap?.used_heap_size, heapTotal: heap?.total_heap_size, loaded })}\n`);
}

/** `mailbell run` (bin/mailbell.js, with its launcher's heap settings) idle on one empty mailbox: VmRSS once settled. */
async function daemon(): Promise<void> {
  const dc = await startDovecot();
  const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-thread-memory-"));
  try {
    for (const thread of ["main", "own", "main", "own"]) {
      const config = path.join(dir, `${thread}.yaml`);
      writeFileSync(config, `state: ${JSON.stringify(path.join(dir, `${thread}.db`))}
outbox: { thread: ${thread} }
accounts:
${accountYaml({ name: "a", port: dc.imapsPort, caFile: dc.caFile, user: "alice", pass: "alicepw" })}targets:
  - { name: hook, type: webhook, url: "http://127.0.0.1:9/hook" }
rules:
  - { name: r, notify: [hook] }
`);
      const child = spawn(process.execPath, [new URL("../bin/mailbell.js", import.meta.url).pathname, "run", "--config", config, "--log-format", "json"], { stdio: ["ignore", "ignore", "pipe"] });
      try {
        let log = "";
        await new Promise<void>((resolve, reject) => {
          child.stderr.on("data", (d: Buffer) => {
            log += d.toString();
            if (log.includes('"msg":"watching"')) resolve();
          });
          child.once("exit", () => reject(new Error(`mailbell exited: ${log}`)));
        });
        await sleep(10_000);
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
        const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)![1]) / 1024;
        process.stdout.write(`mailbell run, outbox.thread ${thread.padEnd(4)}: VmRSS ${kb("VmRSS").toFixed(1)} MB (VmHWM ${kb("VmHWM").toFixed(1)}), threads ${/Threads:\s+(\d+)/.exec(status)![1]}; load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}\n`);
      } finally {
        child.kill("SIGTERM");
        await new Promise((r) => (child.exitCode === null ? child.once("exit", r) : r(undefined)));
      }
    }
  } finally {
    await dc.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

const { values } = parseArgs({ options: { child: { type: "string" }, modules: { type: "boolean", default: false }, variant: { type: "string", multiple: true }, daemon: { type: "boolean", default: false } } });
if (values.daemon) {
  await daemon();
} else if (values.child) {
  await child(values.child, values.modules);
} else {
  process.stdout.write(`load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}\n`);
  for (const variant of values.variant ?? ["none", "bare", "delivery"]) {
    const out = spawnSync(process.execPath, [...process.execArgv, import.meta.filename, "--child", variant, ...(values.modules ? ["--modules"] : [])], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    const r = JSON.parse(out.stdout) as { before: number; after: number; heapUsed?: number; heapTotal?: number; loaded: string[] };
    process.stdout.write(`${variant.padEnd(20)} RSS ${r.before.toFixed(1)} → ${r.after.toFixed(1)} MB (+${(r.after - r.before).toFixed(1)})${r.heapUsed ? `, thread heap used ${mb(r.heapUsed)} / total ${mb(r.heapTotal!)} MB` : ""}${r.loaded.length ? `, ${r.loaded.length} modules` : ""}\n`);
    if (values.modules && variant === "delivery") for (const url of r.loaded) process.stdout.write(`  ${url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, "$1/")}\n`);
  }
}
