/**
 * What one idle IMAP connection costs, layer by layer and setting by setting: N sessions to a
 * local Dovecot opened from a child process per variant (16 at a time, as mailbell's connect gate),
 * each measured as settled RSS after minus before, with the V8 heap and malloc [heap] deltas.
 *
 *   node bench/conn-layers.ts [--mailboxes 300] [--variants raw,imapflow,mailbell,...]
 */
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { parseArgs } from "node:util";
import { ImapFlow } from "imapflow";
import { createImapClient } from "../src/imap/client.ts";
import { LeanIdle } from "../src/imap/lean-idle.ts";
import { watchMailboxBatches } from "../src/imap/watcher.ts";
import { silentLogger } from "../src/log.ts";
import { processUsage, sleep, spawnTracked } from "./lib.ts";
import { createMailboxes, openBareSession, procStatus, smapsSummary, startBusyDovecot, type Mailbox } from "./mailboxes.ts";

interface Spec {
  port: number;
  ca: string;
  mailboxes: Mailbox[];
}

type Open = (m: Mailbox, spec: Spec) => Promise<unknown>;

const variants: Record<string, Open> = {
  raw: async (m, spec) => openBareSession({ port: spec.port, ca: spec.ca, user: m.user, pass: m.pass, mailbox: m.mailbox, secureContext: shared(spec) }),
  "raw-tls12": async (m, spec) => openBareSession({ port: spec.port, ca: spec.ca, user: m.user, pass: m.pass, mailbox: m.mailbox, secureContext: (tls12 ??= tls.createSecureContext({ ca: spec.ca, maxVersion: "TLSv1.2" })) }),
  imapflow: async (m, spec) => {
    const c = new ImapFlow({ host: "127.0.0.1", port: spec.port, secure: true, tls: { secureContext: shared(spec) }, auth: { user: m.user, pass: m.pass }, logger: false, disableAutoIdle: true, disableBinary: true });
    c.on("error", () => {});
    await c.connect();
    await c.mailboxOpen(m.mailbox, { readOnly: true });
    void c.idle().catch(() => {});
    return c;
  },
  // No ca: (the system's trust store, as for Gmail): a context of its own per connection, as
  // tls.connect builds it, against mailbell's shared one. The check is off only because the
  // system store does not know the test CA.
  "imapflow-sysca": async (m, spec) => {
    const c = new ImapFlow({ host: "127.0.0.1", port: spec.port, secure: true, tls: { rejectUnauthorized: false }, auth: { user: m.user, pass: m.pass }, logger: false, disableAutoIdle: true, disableBinary: true });
    c.on("error", () => {});
    await c.connect();
    await c.mailboxOpen(m.mailbox, { readOnly: true });
    void c.idle().catch(() => {});
    return c;
  },
  "mailbell-sysca": async (m, spec) => mailbellClient(m, spec, { tlsVerify: false }),
  mailbell: async (m, spec) => mailbellClient(m, spec, { ca: spec.ca }),
  // The lean IDLE-only connection alone (src/imap/lean-idle.ts), in IDLE.
  lean: async (m, spec) => {
    const account = { host: "127.0.0.1", port: spec.port, tls: "implicit" as const, ca: spec.ca, user: m.user, pass: m.pass };
    const lean = await LeanIdle.open({ account, where: { account: m.user, mailbox: m.mailbox }, log: silentLogger, keepaliveMs: 120_000, keepaliveTimeoutMs: 15_000, idleRestartMs: 600_000, signal: new AbortController().signal }, { path: m.mailbox, uidValidity: 0, uidNext: 0 }, { pass: m.pass });
    void lean.waitForChange().catch(() => {});
    return lean;
  },
  // The whole watch loop of one mailbox (watchMailboxBatches: checkpoints in memory, no logger),
  // resolved once it is in IDLE: what the watcher keeps beyond its connection. "watcher" waits on
  // the lean connection (the default), "watcher-imapflow" keeps the session's connection.
  watcher: (m, spec) => watcher(m, spec, "lean"),
  "watcher-imapflow": (m, spec) => watcher(m, spec, "imapflow"),
};

function watcher(m: Mailbox, spec: Spec, quietConnection: "lean" | "imapflow"): Promise<unknown> {
  return new Promise((resolve) => {
      const it = watchMailboxBatches({
        account: { host: "127.0.0.1", port: spec.port, tls: "implicit", ca: spec.ca, user: m.user, pass: m.pass },
        mailbox: m.mailbox,
        quietConnection,
        onEvent: (e) => (e.type === "idle" ? resolve(it) : undefined),
      });
      void (async () => {
        for await (const round of it) void round;
      })();
    });
}

/** A connection as mailbell's watcher opens it (createImapClient's options, its shared contexts). */
async function mailbellClient(m: Mailbox, spec: Spec, trust: { ca?: string; tlsVerify?: boolean }): Promise<unknown> {
  const c = createImapClient({ host: "127.0.0.1", port: spec.port, tls: "implicit", ...trust, user: m.user, pass: m.pass }, { logger: silentLogger });
  c.on("error", () => {});
  await c.connect();
  await c.mailboxOpen(m.mailbox, { readOnly: true });
  void c.idle().catch(() => {});
  return c;
}

let context: tls.SecureContext | undefined;
let tls12: tls.SecureContext | undefined;
function shared(spec: Spec): tls.SecureContext {
  return (context ??= tls.createSecureContext({ ca: spec.ca }));
}

async function child(variant: string, specFile: string): Promise<void> {
  const spec = JSON.parse(readFileSync(specFile, "utf8")) as Spec;
  const open = variants[variant.split("+")[0]!]!;
  const gc = (globalThis as { gc?: () => void }).gc!;
  const keep: unknown[] = [await open(spec.mailboxes[0]!, spec)];
  await sleep(1000);
  gc();
  await sleep(500);
  const rss0 = procStatus(process.pid, "VmRSS");
  const sm0 = smapsSummary(process.pid);
  const mem0 = process.memoryUsage();
  const rest = spec.mailboxes.slice(1);
  let i = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (i < rest.length) keep.push(await open(rest[i++]!, spec));
    }),
  );
  await sleep(5000);
  const xs: number[] = [];
  for (let k = 0; k < 5; k++) {
    xs.push(procStatus(process.pid, "VmRSS"));
    await sleep(200);
  }
  const rss1 = xs.sort((a, b) => a - b)[2]!;
  const sm1 = smapsSummary(process.pid);
  const mem1 = process.memoryUsage();
  gc();
  gc();
  await sleep(500);
  const rss2 = procStatus(process.pid, "VmRSS");
  const mem2 = process.memoryUsage();
  const n = rest.length;
  const per = (a: number, b: number) => +((a - b) / n).toFixed(1);
  const c0 = processUsage(process.pid)!.cpuSeconds;
  await sleep(3000);
  const cpu = processUsage(process.pid)!.cpuSeconds - c0;
  process.stdout.write(
    `${JSON.stringify({
      variant,
      n,
      rssKb: per(rss1, rss0),
      rssAfterGcKb: per(rss2, rss0),
      heapUsedKb: per(mem2.heapUsed / 1024, mem0.heapUsed / 1024),
      heapTotalKb: per(mem1.heapTotal / 1024, mem0.heapTotal / 1024),
      externalKb: per(mem2.external / 1024, mem0.external / 1024),
      mallocHeapKb: per(sm1.brkHeapKb, sm0.brkHeapKb),
      anonKb: per(sm1.anonKb, sm0.anonKb),
      cpu3s: +cpu.toFixed(3),
    })}\n`,
  );
  process.exit(0);
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { mailboxes: { type: "string", default: "300" }, variants: { type: "string", default: "raw,imapflow,mailbell" }, child: { type: "string" }, spec: { type: "string" }, "node-flags": { type: "string", default: "" } } });
  if (values.child) await child(values.child, values.spec!);
  else {
    const n = Number(values.mailboxes);
    const busy = await startBusyDovecot(n + 20);
    const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-conn-layers-"));
    try {
      const { mailboxes } = await createMailboxes(busy.dc, n, 10);
      const spec = path.join(dir, "spec.json");
      writeFileSync(spec, JSON.stringify({ port: busy.dc.imapsPort, ca: busy.dc.ca, mailboxes }));
      for (const v of values.variants.split(",")) {
        const flags = values["node-flags"].split(/\s+/).filter(Boolean);
        const p = spawnTracked([...flags, "--expose-gc", import.meta.filename, "--child", v, "--spec", spec], { env: envFor(v) });
        const code = await p.exited;
        const line = p.log.split("\n").filter((l) => l.startsWith("{")).at(-1);
        console.log(code === 0 && line ? line : `${v}: failed (${code}) ${p.log.slice(-1500)}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await busy.dispose();
    }
  }
}

/** glibc malloc settings a variant name asks for: +arena2, +mmap<kB> (M_MMAP_THRESHOLD), +trim (M_TRIM_THRESHOLD 0). */
function envFor(variant: string): Record<string, string> {
  const env: Record<string, string> = {};
  if (variant.includes("+arena2")) env.MALLOC_ARENA_MAX = "2";
  const mmap = /\+mmap(\d+)/.exec(variant);
  if (mmap) env.MALLOC_MMAP_THRESHOLD_ = String(Number(mmap[1]) * 1024);
  if (variant.includes("+trim")) env.MALLOC_TRIM_THRESHOLD_ = "0";
  return env;
}
