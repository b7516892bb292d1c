/**
 * Many folders, few connections (issue 18): 1 account × N folders (default 50) on Dovecot, watched
 * with NOTIFY (one notifier connection; a folder's reading connection only while it has mail) and
 * without (one IDLE connection per folder). Each way runs in its own process; this prints the
 * connections Dovecot counts (`doveadm who`) once all are idle, the watching process's RSS (after a
 * GC), and the time for one mail appended into every folder to be read by all watchers.
 *
 *   node --expose-gc bench/notify.ts [--folders 50]
 */
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { watchMailbox } from "../src/index.ts";
import { FolderWakeups, runNotifier } from "../src/imap/notify.ts";
import { silentLogger } from "../src/log.ts";
import { startDovecot } from "../test/support/dovecot.ts";
import { buildMail } from "../test/support/mail.ts";

const { values } = parseArgs({ options: { folders: { type: "string", default: "50" }, child: { type: "string" } } });
const folderCount = Number(values.folders);
const folders = Array.from({ length: folderCount }, (_, i) => (i === 0 ? "INBOX" : `F${i}`));

if (values.child) await child(values.child === "notify");
else await parent();

/** Watches every folder, says "ready" once idle, then counts mail read until told to stop. */
async function child(notify: boolean): Promise<void> {
  const account = { name: "bench", host: "127.0.0.1", port: Number(process.env.BENCH_PORT), tls: "none" as const, user: "notifybench", pass: "pw" };
  const stop = new AbortController();
  const wakeups = notify ? new FolderWakeups(folders) : undefined;
  let read = 0;
  const running = [
    ...(wakeups ? [runNotifier({ account, accountName: "bench", wakeups, log: silentLogger, signal: stop.signal, keepaliveMs: 120_000, keepaliveTimeoutMs: 15_000, reconnectMaxMs: 5000 })] : []),
    ...folders.map(async (mailbox) => {
      for await (const _ of watchMailbox({ account, mailbox, wakeups, signal: stop.signal })) read++;
    }),
  ];
  process.on("message", (m: string) => {
    if (m === "rss") {
      (globalThis as { gc?: () => void }).gc?.();
      process.send!({ rss: process.memoryUsage().rss, read });
    }
    if (m === "stop") stop.abort();
  });
  await Promise.all(running);
  process.exit(0);
}

async function parent(): Promise<void> {
  const dovecot = await startDovecot({ ssl: "no" });
  try {
    await dovecot.addUser("notifybench", "pw");
    for (const f of folders.slice(1)) await dovecot.createMailbox("notifybench", f);
    const rows: string[] = [];
    for (const way of ["notify", "off"]) rows.push(await measure(dovecot, way));
    console.log(`1 account × ${folderCount} folders, Dovecot 2.3, load ${(await import("node:os")).loadavg()[0]!.toFixed(2)}`);
    console.log("| way | IMAP connections when idle | RSS idle (MB) | one mail into each folder → all read (ms) | connections after |");
    console.log("|---|---|---|---|---|");
    for (const r of rows) console.log(r);
  } finally {
    await dovecot.dispose();
  }
}

async function measure(dovecot: Awaited<ReturnType<typeof startDovecot>>, way: string): Promise<string> {
  const proc = spawn(process.execPath, ["--expose-gc", import.meta.filename, "--child", way, "--folders", String(folderCount)], { env: { ...process.env, BENCH_PORT: String(dovecot.imapPort) }, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const ask = () => new Promise<{ rss: number; read: number }>((resolve) => { proc.once("message", (m) => resolve(m as { rss: number; read: number })); proc.send("rss"); });
  const who = async () => (await dovecot.doveadm("who", "-1", "notifybench")).split("\n").filter((l) => l.includes("notifybench")).length;
  // Settled: the connection count stays put for 3 s.
  let last = -1;
  for (let same = 0; same < 3; await sleep(1000)) {
    const n = await who();
    same = n === last && n > 0 ? same + 1 : 0;
    last = n;
  }
  const idle = await ask();
  const before = idle.read;
  const started = performance.now();
  await dovecot.withClient("notifybench", async (c) => {
    for (const f of folders) await c.append(f, buildMail({ from: "a@example.com", to: "b@example.com", subject: `to ${f}`, text: "x" }));
  });
  for (;;) {
    if ((await ask()).read - before >= folderCount) break;
    await sleep(20);
  }
  const allRead = performance.now() - started;
  await sleep(2500);
  const afterConns = await who();
  proc.send("stop");
  await new Promise((resolve) => proc.once("exit", resolve));
  return `| ${way === "notify" ? "NOTIFY" : "one connection per folder"} | ${last} | ${(idle.rss / 1048576).toFixed(1)} | ${allRead.toFixed(0)} | ${afterConns} |`;
}
