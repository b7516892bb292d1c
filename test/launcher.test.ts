/**
 * bin/mailbell.js starts `mailbell run` with its memory settings (a small V8 young generation,
 * few malloc arenas, large buffers mapped on their own) in the same process, and leaves what the user set alone. The real launcher
 * is copied next to a stand-in dist/cli/entry.js that reports how it was started.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, "..");
let launcher: string;

interface Started {
  pid: number;
  ppid: number;
  execArgv: string[];
  argv: string[];
  mallocArenas: string | null;
  mmapThreshold: string | null;
  newSpaceMb: number;
}

before(() => {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-launcher-"));
  mkdirSync(path.join(dir, "bin"));
  mkdirSync(path.join(dir, "dist/cli"), { recursive: true });
  launcher = path.join(dir, "bin/mailbell.js");
  copyFileSync(path.join(root, "bin/mailbell.js"), launcher);
  writeFileSync(path.join(dir, "package.json"), '{ "type": "module" }\n');
  // Allocates enough short-lived garbage for the young generation to grow to its limit.
  writeFileSync(
    path.join(dir, "dist/cli/entry.js"),
    `import v8 from "node:v8";
let keep = [];
for (let i = 0; i < 2e6; i++) { const o = { i, s: "x" + i }; if (i % 8 === 0) keep.push(o); if (keep.length > 50000) keep = []; }
const newSpace = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
process.stdout.write(JSON.stringify({ pid: process.pid, ppid: process.ppid, execArgv: process.execArgv, argv: process.argv.slice(2), mallocArenas: process.env.MALLOC_ARENA_MAX ?? null, mmapThreshold: process.env.MALLOC_MMAP_THRESHOLD_ ?? null, newSpaceMb: newSpace.space_size / 1048576 }));
`,
  );
});

async function start(args: string[], env: NodeJS.ProcessEnv = {}, nodeFlags: string[] = []): Promise<Started> {
  const base = { ...process.env };
  delete base.NODE_OPTIONS;
  delete base.MALLOC_ARENA_MAX;
  delete base.MALLOC_MMAP_THRESHOLD_;
  const { stdout, stderr } = await run(process.execPath, [...nodeFlags, launcher, ...args], { env: { ...base, ...env } });
  assert.equal(stderr, "", "nothing on stderr (no experimental warning)");
  return JSON.parse(stdout) as Started;
}

describe("bin/mailbell.js", () => {
  it("runs the daemon with a small young generation and two malloc arenas, in the same process", async () => {
    const started = await start(["run", "--config", "x.yaml"]);
    assert.ok(started.execArgv.includes("--max-semi-space-size=4"), `execArgv: ${started.execArgv.join(" ")}`);
    assert.ok(started.execArgv.includes("--heap-growing-percent=50"), `execArgv: ${started.execArgv.join(" ")}`);
    assert.deepEqual(started.argv, ["run", "--config", "x.yaml"]);
    assert.equal(started.ppid, process.pid, "re-executed in place, not as a child of a launcher process");
    // 8 MB here with the setting; left alone V8 lets the young generation grow to 64 MB and more.
    assert.ok(started.newSpaceMb <= 16, `new space ${started.newSpaceMb} MB`);
    if (process.platform === "linux") assert.equal(started.mallocArenas, "2");
    // Each TLS connection's 64 kB read buffer mapped on its own: only the pages it uses are resident.
    if (process.platform === "linux") assert.equal(started.mmapThreshold, "65536");
  });

  it("keeps the user's own settings", async () => {
    // --heap-growing-percent is not allowed in NODE_OPTIONS; it can only be a node flag.
    const started = await start(["run"], { NODE_OPTIONS: "--max-semi-space-size=16", MALLOC_ARENA_MAX: "8", MALLOC_MMAP_THRESHOLD_: "131072" }, ["--heap-growing-percent=100"]);
    assert.ok(!started.execArgv.some((a) => a.startsWith("--max-semi-space-size")), `execArgv: ${started.execArgv.join(" ")}`);
    assert.deepEqual(started.execArgv.filter((a) => a.startsWith("--heap-growing-percent")), ["--heap-growing-percent=100"]);
    assert.equal(started.mallocArenas, "8");
    assert.equal(started.mmapThreshold, "131072");
  });

  it("leaves the short commands alone", async () => {
    const started = await start(["test", "--config", "x.yaml", "mail.eml"]);
    assert.deepEqual(started.execArgv, []);
    assert.equal(started.mallocArenas, null);
    assert.equal(started.mmapThreshold, null);
    assert.ok(started.newSpaceMb > 16, `without the setting the young generation grew to ${started.newSpaceMb} MB`);
  });
});
