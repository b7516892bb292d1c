/**
 * A real Cyrus IMAP 3.6 for interop tests: private temp dir, a free loopback port below the
 * ephemeral range, its own self-signed cert, and `idled` running (without it IDLE polls every
 * 60 s). The server binaries are Debian's cyrus-imapd, unpacked by scripts/preflight.js because
 * installing it would remove Dovecot; master, ctl_cyrusdb and saslpasswd2 come from the installed
 * cyrus-common and sasl2-bin. Cyrus logs to syslog only, so logTail has little to say.
 */
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, existsSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { selfSignedCertificate } from "./certificate.ts";
import { HOST } from "./dovecot.ts";
import { groupLifecycle, imapScript, serverOf, sleep, spawnGroup, unpackedPackage, waitForGreeting, type ImapOperations, type ImapServer, type ServerGroup } from "./imap-server.ts";

const CYRUS_BIN = "/usr/lib/cyrus/bin";
const USER = "alice";
const PASS = "alicepw";
const ADMIN = "cyrus";

interface Layout {
  dir: string;
  conf: string;
  master: string;
  pidFile: string;
  sasldb: string;
  idleSocket: string;
  logFile: string;
  certFile: string;
}

function layout(dir: string): Layout {
  return {
    dir,
    conf: path.join(dir, "imapd.conf"),
    master: path.join(dir, "cyrus.conf"),
    pidFile: path.join(dir, "run", "master.pid"),
    sasldb: path.join(dir, "sasldb2"),
    idleSocket: path.join(dir, "run", "socket", "idle"),
    logFile: path.join(dir, "log", "master.log"),
    certFile: path.join(dir, "tls", "server.pem"),
  };
}

function imapdConf(l: Layout): string {
  const d = l.dir;
  return `configdirectory: ${d}/conf
proc_path: ${d}/run/proc
mboxname_lockpath: ${d}/run/lock
defaultpartition: default
partition-default: ${d}/spool
altnamespace: no
unixhierarchysep: no
hashimapspool: true
allowplaintext: yes
admins: ${ADMIN}
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: ${l.sasldb}
sasl_mech_list: PLAIN LOGIN
lmtpsocket: ${d}/run/socket/lmtp
idlesocket: ${l.idleSocket}
notifysocket: ${d}/run/socket/notify
tls_server_cert: ${l.certFile}
tls_server_key: ${d}/tls/server.key
sievedir: ${d}/sieve
`;
}

/** One entry per line: the master silently ignores a section written on one line (and then no idled). */
function cyrusConf(l: Layout, port: number): string {
  const bin = path.join(unpackedPackage("cyrus-imapd"), "usr/lib/cyrus/bin");
  return `START {
  recover cmd="${CYRUS_BIN}/ctl_cyrusdb -r -C ${l.conf}"
}
SERVICES {
  imaps cmd="${bin}/imapd -s -C ${l.conf} -U 30" listen="${HOST}:${port}" prefork=0 maxchild=100
}
EVENTS {
  checkpoint cmd="${CYRUS_BIN}/ctl_cyrusdb -c -C ${l.conf}" period=30
}
DAEMON {
  idled cmd="${bin}/idled -C ${l.conf}"
}
`;
}

function checkInstalled(): void {
  const needed = [path.join(unpackedPackage("cyrus-imapd"), "usr/lib/cyrus/bin/imapd"), `${CYRUS_BIN}/master`, "/usr/sbin/saslpasswd2"];
  const missing = needed.filter((f) => !existsSync(f));
  if (missing.length > 0) throw new Error(`Cyrus is not ready (${missing.join(", ")} missing): run \`node scripts/preflight.js\` as root first`);
}

async function saslpasswd(l: Layout, user: string, pass: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile("/usr/sbin/saslpasswd2", ["-p", "-c", "-f", l.sasldb, user], (err) => (err ? reject(err) : resolve()));
    child.stdin?.end(pass);
  });
}

/** Config, cert, users; owned by `cyrus` when we are root, as the master switches to that user. */
async function prepare(l: Layout): Promise<{ ca: string; adminPass: string }> {
  // conf/socket holds each imapd's idle client socket: without it IDLE falls back to polling
  for (const sub of ["conf/socket", "run/proc", "run/lock", "run/socket", "spool", "tls", "sieve", "log"]) await mkdir(path.join(l.dir, sub), { recursive: true });
  await selfSignedCertificate(path.join(l.dir, "tls", "server.key"), l.certFile);
  const adminPass = `admin-${Math.random().toString(36).slice(2)}`;
  await saslpasswd(l, USER, PASS);
  await saslpasswd(l, ADMIN, adminPass);
  await writeFile(l.conf, imapdConf(l));
  return { ca: await readFile(l.certFile, "utf8"), adminPass };
}

function ownTree(dir: string): void {
  if (process.getuid?.() !== 0) return;
  try {
    execFileSync("id", ["-u", ADMIN], { stdio: "ignore" });
  } catch {
    throw new Error(`no user "${ADMIN}": cyrus-common creates it; run \`node scripts/preflight.js\` as root first`);
  }
  execFileSync("chown", ["-R", `${ADMIN}:mail`, dir]);
}

async function waitForFile(file: string, group: ServerGroup, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (group.exited) throw new Error(`Cyrus master ${group.exited} before ${file} appeared`);
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms (is idled starting?)`);
    await sleep(20);
  }
}

export interface CyrusOptions {
  /** How long to wait for the greeting and idled; default 15 000 ms. */
  startTimeoutMs?: number;
}

export async function startCyrus(options: CyrusOptions = {}): Promise<ImapServer> {
  checkInstalled();
  const dir = await mkdtemp(path.join(os.tmpdir(), "mailbell-cyrus-"));
  chmodSync(dir, 0o755);
  const l = layout(dir);
  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  let port = 0;
  let ca = "";

  const life = groupLifecycle(
    () => {
      // a stale socket file would look like a running idled
      rmSync(l.idleSocket, { force: true });
      return spawnGroup(`${CYRUS_BIN}/master`, ["-C", l.conf, "-M", l.master, "-p", l.pidFile], {
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
        cwd: dir,
        logFile: l.logFile,
      });
    },
    async (g) => {
      await waitForGreeting(port, ca, () => g.exited, startTimeoutMs);
      // IDLE sessions register with idled when they start: wait for it, or the first ones poll
      await waitForFile(l.idleSocket, g, startTimeoutMs);
    },
  );

  try {
    const prepared = await prepare(l);
    ca = prepared.ca;
    await life.firstStart(async (p) => {
      port = p;
      await writeFile(l.master, cyrusConf(l, port));
      ownTree(dir);
    });
    const admin = (commands: string[]): Promise<string> => imapScript(port, ca, [`LOGIN ${ADMIN} ${prepared.adminPass}`, ...commands, "LOGOUT"]);
    await admin([`CREATE user.${USER}`]);
    return serverOf({
      kind: "cyrus",
      dir,
      port: () => port,
      caFile: l.certFile,
      ca,
      user: USER,
      pass: PASS,
      life,
      logFile: l.logFile,
      changeUidValidity: (ops) => renumber(ops, admin),
    });
  } catch (err) {
    await life.stop({ hard: true });
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Cyrus keeps a mailbox's UIDVALIDITY for its life: a new one means a new mailbox. Deleting
 * user.alice closes alice's sessions; the mail is put back, in order, with flags and dates.
 */
async function renumber(ops: ImapOperations, admin: (commands: string[]) => Promise<string>): Promise<void> {
  const before = await ops.uidValidity();
  const mails = await ops.withClient(async (c) => {
    const box = await c.mailboxOpen("INBOX", { readOnly: true });
    return box.exists === 0 ? [] : c.fetchAll("1:*", { uid: true, source: true, flags: true, internalDate: true });
  });
  await admin([`SETACL user.${USER} ${ADMIN} lrswipkxtecda`, `DELETE user.${USER}`, `CREATE user.${USER}`]);
  await ops.withClient(async (c) => {
    for (const m of mails) {
      const flags = [...(m.flags ?? [])].filter((f) => f !== "\\Recent");
      await c.append("INBOX", m.source!, flags, m.internalDate);
    }
  });
  const after = await ops.uidValidity();
  if (after === before) throw new Error(`Cyrus kept UIDVALIDITY ${before} for a new user.${USER}`);
}
