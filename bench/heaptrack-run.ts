/**
 * What `mailbell run` keeps malloc'd at N idle mailboxes, by call stack: runs it under heaptrack
 * (which must be installed) with the launcher's settings, waits until every mailbox is in IDLE
 * (/healthz every --poll-ms), lets it settle 10 s, and SIGKILLs it, so that everything still
 * allocated then shows as "leaked" in heaptrack's report.
 *
 *   node bench/heaptrack-run.ts [--mailboxes 300] [--out /tmp/mailbell-ht] [--poll-ms 1000] [--env MALLOC_MMAP_THRESHOLD_=65536]
 *   heaptrack_print -f /tmp/mailbell-ht.zst -l 1 -p 0 -a 0 -T 0 -n 20
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { startReceiver } from "../test/support/receiver.ts";
import { freePort, sleep } from "./lib.ts";
import { benchYaml, createMailboxes, startBusyDovecot } from "./mailboxes.ts";

const { values } = parseArgs({ options: { mailboxes: { type: "string", default: "300" }, out: { type: "string", default: path.join(os.tmpdir(), "mailbell-ht") }, "poll-ms": { type: "string", default: "1000" }, env: { type: "string", multiple: true, default: [] } } });
const n = Number(values.mailboxes);
const busy = await startBusyDovecot(n + 20);
const receiver = await startReceiver();
const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-ht-"));
try {
  const { mailboxes } = await createMailboxes(busy.dc, n, 10);
  const port = await freePort();
  writeFileSync(path.join(dir, "mailbell.yaml"), benchYaml({ dc: busy.dc, mailboxes, hookUrl: receiver.url("/hook"), statusPort: port }));
  // The launcher's flags and arenas, given here: heaptrack follows the node it starts, not an execve.
  const extra = Object.fromEntries(values.env.map((kv) => kv.split("=", 2) as [string, string]));
  const entry = path.resolve(import.meta.dirname, "../dist/cli/entry.js");
  const tracker = spawn("heaptrack", ["-o", values.out, process.execPath, "--max-semi-space-size=4", "--heap-growing-percent=50", entry, "run", "--config", path.join(dir, "mailbell.yaml")], { env: { ...process.env, MALLOC_ARENA_MAX: "2", ...extra }, stdio: ["ignore", "inherit", "inherit"] });
  const exited = new Promise((resolve) => tracker.on("exit", resolve));
  const t0 = Date.now();
  for (;;) {
    await sleep(Number(values["poll-ms"]));
    const h = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.json() as Promise<{ mailboxes: { state: string }[] }>, () => undefined);
    if (h?.mailboxes.every((m) => m.state === "idle")) break;
    if (Date.now() - t0 > 300_000) throw new Error("not every mailbox reached IDLE within 5 minutes");
  }
  console.log(`all ${n} idle after ${Date.now() - t0} ms`);
  await sleep(10_000);
  const pid = Number(execFileSync("pgrep", ["-P", String(tracker.pid), "-f", "entry.js"]).toString().trim().split("\n")[0]);
  console.log(`mailbell (pid ${pid}) ${/VmRSS:\s*(\d+ kB)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]} under heaptrack`);
  process.kill(pid, "SIGKILL");
  await exited;
} finally {
  await receiver.close();
  await busy.dispose();
  rmSync(dir, { recursive: true, force: true });
}
