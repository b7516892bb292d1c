/**
 * Many folders, few connections (issue 18): 1 account × N folders (default 50) on Dovecot, watched
 * with NOTIFY (one notifier connection; a folder's reading connection only while it has mail) and
 * without (one IDLE connection per folder). Each way runs in its own process; this prints the
 * connections Dovecot counts (`doveadm who`) once all are idle, the watching process's RSS (after a
 * GC), and the time for one mail appended into every folder to be read by all watchers. With
 * NOTIFY at most 9 folders read at once, as the daemon allows under Dovecot's default of 10
 * connections per user (maxConnections − 1).
 *
 *   npx tsc -p tsconfig.build.json && node bench/notify.ts [--folders 50]
 */
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { existsSync } from "node:fs";
import { startDovecot } from "../test/support/dovecot.ts";
import { buildMail } from "../test/support/mail.ts";

const { values } = parseArgs({ options: { folders: { type: "string", default: "50" } } });
const folderCount = Number(values.folders);
const folders = Array.from({ length: folderCount }, (_, i) => (i === 0 ? "INBOX" : `F${i}`));


/**
 * The watching process: plain JavaScript on dist/ (run `npx tsc -p tsconfig.build.json` first),
 * so its RSS is mailbell's and not TypeScript stripping's. Counts mail read; answers "rss".
 */
const childCode = (notify: boolean, distUrl: string): string => `
const { watchMailbox } = await import(${JSON.stringify(distUrl + "index.js")});
const { FolderWakeups, runNotifier } = await import(${JSON.stringify(distUrl + "imap/notify.js")});
const { silentLogger } = await import(${JSON.stringify(distUrl + "log.js")});
const folders = ${JSON.stringify(folders)};
const account = { name: "bench", host: "127.0.0.1", port: Number(process.env.BENCH_PORT), tls: "implicit", ca: (await import("node:fs")).readFileSync(process.env.BENCH_CA), user: "notifybench", pass: "pw" };
const stop = new AbortController();
const wakeups = ${notify} ? new FolderWakeups(folders, 9) : undefined;
let read = 0;
const running = [
  ...(wakeups ? [runNotifier({ account, accountName: "bench", wakeups, log: silentLogger, signal: stop.signal, keepaliveMs: 120000, keepaliveTimeoutMs: 15000, reconnectMaxMs: 5000 })] : []),
  ...folders.map(async (mailbox) => { for await (const _ of watchMailbox({ account, mailbox, wakeups, signal: stop.signal })) read++; }),
];
process.on("message", (m) => {
  if (m === "rss") { globalThis.gc?.(); const u = process.memoryUsage(); process.send({ rss: u.rss, heap: u.heapUsed, read }); }
  if (m === "stop") stop.abort();
});
await Promise.all(running);
process.exit(0);
`;

async function parent(): Promise<void> {
  const dovecot = await startDovecot();
  try {
    await dovecot.addUser("notifybench", "pw");
    for (const f of folders.slice(1)) await dovecot.createMailbox("notifybench", f);
    const rows: string[] = [];
    for (const way of ["notify", "off"]) rows.push(await measure(dovecot, way));
    console.log(`1 account × ${folderCount} folders, implicit TLS, Dovecot 2.3, load ${(await import("node:os")).loadavg()[0]!.toFixed(2)}`);
    console.log("| way | IMAP connections when idle | RSS idle (MB) | V8 heap used idle (MB) | one mail into each folder → all read (ms) | a lone mail, APPEND OK → read, 5 tries (ms) | connections after |");
    console.log("|---|---|---|---|---|---|---|");
    for (const r of rows) console.log(r);
  } finally {
    await dovecot.dispose();
  }
}

async function measure(dovecot: Awaited<ReturnType<typeof startDovecot>>, way: string): Promise<string> {
  const dist = new URL("../dist/", import.meta.url);
  if (!existsSync(new URL("imap/notify.js", dist))) throw new Error("bench/notify.ts runs the watchers on dist/: run `npx tsc -p tsconfig.build.json` first");
  const proc = spawn(process.execPath, ["--expose-gc", "--input-type=module", "-e", childCode(way === "notify", dist.href)], { env: { ...process.env, BENCH_PORT: String(dovecot.imapsPort), BENCH_CA: dovecot.caFile }, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const ask = () =>
    new Promise<{ rss: number; heap: number; read: number }>((resolve) => {
      proc.once("message", (m) => resolve(m as { rss: number; heap: number; read: number }));
      proc.send("rss");
    });
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
  // A lone mail after a quiet spell (the reading connections closed): APPEND OK → read, 5 times.
  const lone: number[] = [];
  await dovecot.withClient("notifybench", async (c) => {
    for (let i = 0; i < 5; i++) {
      await sleep(2500);
      const before = (await ask()).read;
      await c.append("F7", buildMail({ from: "a@example.com", to: "b@example.com", subject: `lone ${i}`, text: "x" }));
      const at = performance.now();
      while ((await ask()).read === before) await sleep(2);
      lone.push(performance.now() - at);
    }
  });
  lone.sort((a, b) => a - b);
  await sleep(2500);
  const afterConns = await who();
  proc.send("stop");
  await new Promise((resolve) => proc.once("exit", resolve));
  return `| ${way === "notify" ? "NOTIFY" : "one connection per folder"} | ${last} | ${(idle.rss / 1048576).toFixed(1)} | ${(idle.heap / 1048576).toFixed(1)} | ${allRead.toFixed(0)} | ${lone.map((ms) => ms.toFixed(0)).join(", ")} | ${afterConns} |`;
}

await parent();
