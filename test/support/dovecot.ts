/**
 * A real Dovecot 2.3 for integration tests: private temp dir, free loopback ports, its own
 * self-signed cert, no service manager. Mirrors the recipe measured in the team's notes, carried
 * here so `npm test` needs nothing outside the repo but the `dovecot-imapd`/`dovecot-lmtpd` packages.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, openSync, closeSync, readFileSync, rmSync, statSync, chownSync, chmodSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ImapFlow } from "imapflow";
import type { ImapFlowOptions } from "imapflow";
import type { ImapAccount } from "../../src/imap/client.ts";
import { selfSignedCertificate } from "./certificate.ts";
import { readFirstLine } from "./loopback.ts";
import { atExit, groupAlive, KILL_GROUP, killGroupSync, spawnWatchdog } from "./reaper.ts";

const execFileP = promisify(execFile);

export const HOST = "127.0.0.1";

export interface DovecotOptions {
  /** `mailbox_idle_check_interval`: a number is seconds, a string is passed as is ("30 secs"). Only the fallback poll; inotify pushes new mail anyway. */
  idleCheckInterval?: number | string;
  /** Lines appended at the end of dovecot.conf; a later plain setting overrides an earlier one. */
  extraConfig?: string | readonly string[];
  /** Hierarchy separator: "/" (default; Maildir LAYOUT=fs, like Gmail) or "." (Dovecot's Maildir++ default). */
  separator?: "/" | ".";
  /** "no": no TLS at all, STARTTLS is not advertised, the IMAPS listener is off and `imapsPort` is 0. */
  ssl?: "yes" | "no";
  /** URL of an OAuth2 token introspection endpoint (must be on 127.0.0.1): enables XOAUTH2/OAUTHBEARER. */
  oauth2Introspection?: string;
  /** How long to wait for the IMAP greeting; default 10 000 ms. */
  startTimeoutMs?: number;
  /**
   * Turns on the ACL plugin (per-mailbox `dovecot-acl` files, read afresh on every access), which
   * `readOnlyMailbox` needs. Off by default: without a `dovecot-acl` file the owner keeps all rights
   * anyway, but the plugin adds the ACL capability and MYRIGHTS/GETACL to every session.
   */
  acl?: boolean;
}

export interface StopOptions {
  /**
   * true: SIGTERM the whole process group (SIGKILL after 250 ms): clients see the close within ms.
   * Default: SIGTERM the master only; it exits after ~1.1 s and open sessions live on for ~10 s.
   */
  hard?: boolean;
}

export interface AppendOptions {
  internalDate?: Date;
  flags?: string[];
}

export interface LmtpOptions {
  /** Envelope sender; default `sender@example.com`. Use "" for the null sender. */
  from?: string;
}

/** How a client reaches the server: implicit TLS, plain port upgraded with STARTTLS, or plain text. */
export type ClientMode = "tls" | "starttls" | "plain";

export interface Dovecot {
  readonly host: string;
  readonly imapPort: number;
  /** 0 when started with `ssl: "no"`. */
  readonly imapsPort: number;
  readonly lmtpPort: number;
  /** Self-signed server cert (SAN localhost, 127.0.0.1, ::1); trust it as the only CA. */
  readonly caFile: string;
  /** PEM text of `caFile`, ready for `tls: { ca }`. */
  readonly ca: string;
  readonly dir: string;
  readonly confFile: string;
  /** name → password. alice/alicepw, bob/bobpw, carol/carolpw, plus anything added with addUser. */
  readonly users: Readonly<Record<string, string>>;
  /** PID (and process group id) of the running master, undefined while stopped. */
  readonly pid: number | undefined;
  /** Milliseconds from spawn to the `* OK` greeting, for the last start. */
  readonly startMs: number;

  addUser(name: string, pass: string): Promise<void>;
  /** `{ user, pass }` for imapflow's `auth`; throws for an unknown user. */
  auth(user: string): { user: string; pass: string };
  /** ImapFlow options for `user` that trust only `caFile`; logger off, auto-IDLE off. Spread your own on top. */
  clientOptions(user: string, mode?: ClientMode): ImapFlowOptions;
  /** Runs `fn` on a fresh logged-in connection and logs out afterwards. */
  withClient<T>(user: string, fn: (client: ImapFlow) => Promise<T>): Promise<T>;
  /** IMAP APPEND; creates the mailbox when missing; returns the new UID. */
  append(user: string, mailbox: string, raw: Buffer | string, opts?: AppendOptions): Promise<number>;
  /** Like append for many mails over one connection; returns the UIDs in order. */
  appendMany(user: string, mailbox: string, raws: readonly (Buffer | string)[], opts?: AppendOptions): Promise<number[]>;
  /** Delivers over LMTP to INBOX of each recipient; resolves with the per-recipient final replies, throws on any non-2xx. */
  deliverLmtp(user: string | readonly string[], raw: Buffer | string, opts?: LmtpOptions): Promise<string[]>;
  createMailbox(user: string, name: string): Promise<void>;
  /**
   * Creates the mailbox when missing and leaves its owner only the rights `lr` (needs `acl: true`).
   * Dovecot then answers SELECT with `OK [READ-ONLY]` and PERMANENTFLAGS (), MOVE/APPEND with
   * `NO [NOPERM] Permission denied`; STORE and EXPUNGE still answer OK but change nothing.
   * FETCH, EXAMINE and COPY out of it work. Applies to the next command of sessions already open too.
   */
  readOnlyMailbox(user: string, name: string): Promise<void>;
  deleteMailbox(user: string, name: string): Promise<void>;
  /** `doveadm kick`: closes the user's sessions at once (clients get "close"). */
  kick(user: string): Promise<void>;
  /** Runs `doveadm -c <conf> ...args`, returns stdout. */
  doveadm(...args: string[]): Promise<string>;
  stop(opts?: StopOptions): Promise<void>;
  /**
   * Stops (hard by default, which also ends sessions left over from a graceful stop) and starts
   * again on the same ports with the same mail and users. Waits out ports still held after a graceful stop.
   */
  restart(opts?: StopOptions): Promise<void>;
  /** Last `n` lines of Dovecot's log and the master's stdout/stderr. */
  logTail(n?: number): string;
  /** Hard stop and remove the temp dir. Also what `await using` calls. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULT_USERS: Record<string, string> = { alice: "alicepw", bob: "bobpw", carol: "carolpw" };

export function findBinary(name: string): string | undefined {
  // Debian puts dovecot in /usr/sbin, which a non-root PATH often lacks
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/**
 * Ports for Dovecot below the kernel's ephemeral range. A restart leaves them unbound for a
 * moment, and a port from that range can be taken meanwhile as the local end of any outgoing
 * connection of any test running alongside; then Dovecot cannot come back on its port.
 */
function portPool(): { low: number; high: number } | undefined {
  try {
    const [ephemeralLow] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (ephemeralLow !== undefined && ephemeralLow > 12_000) return { low: 10_000, high: ephemeralLow - 1 };
  } catch {
    // not Linux: let the kernel choose
  }
  return undefined;
}

/** Holds all listeners open together so the ports are distinct. */
export async function freePorts(count: number): Promise<number[]> {
  const pool = portPool();
  const servers: net.Server[] = [];
  try {
    while (servers.length < count) {
      const s = net.createServer();
      const port = pool ? pool.low + Math.floor(Math.random() * (pool.high - pool.low + 1)) : 0;
      const bound = await new Promise<boolean>((resolve, reject) => {
        s.once("error", (err: NodeJS.ErrnoException) => (pool && err.code === "EADDRINUSE" ? resolve(false) : reject(err)));
        s.listen(port, HOST, () => resolve(true));
      });
      if (bound) servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** Runs `fn` on a fresh connection logged in with `options`, and logs out afterwards. */
export async function withImapClient<T>(options: ImapFlowOptions, fn: (client: ImapFlow) => Promise<T>): Promise<T> {
  const client = new ImapFlow(options);
  client.on("error", () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.logout().catch(() => client.close());
  }
}

interface Identity {
  root: boolean;
  internalUser: string;
  internalGroup: string;
  loginUser: string;
  mailUser: string;
  mailGroup: string;
  mailUid: number;
  mailGid: number;
}

function idOf(flag: string, user?: string): string {
  return execFileSync("id", user ? [flag, user] : [flag], { encoding: "utf8" }).trim();
}

function ensureVmail(): void {
  // Test files run in parallel: a concurrent useradd may win the race or hold the passwd lock
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      idOf("-u", "vmail");
      return;
    } catch {
      // not there yet
    }
    try {
      execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "vmail"], { stdio: "ignore" });
      return;
    } catch {
      execFileSync("sleep", ["0.1"]);
    }
  }
  idOf("-u", "vmail");
}

function identity(): Identity {
  const root = process.getuid?.() === 0;
  if (root) {
    // Dovecot refuses root for login and mail processes: use the package's users and a vmail user
    ensureVmail();
    return {
      root,
      internalUser: "dovecot",
      internalGroup: "dovecot",
      loginUser: "dovenull",
      mailUser: "vmail",
      mailGroup: idOf("-gn", "vmail"),
      mailUid: Number(idOf("-u", "vmail")),
      mailGid: Number(idOf("-g", "vmail")),
    };
  }
  const user = os.userInfo().username;
  const group = idOf("-gn");
  return {
    root,
    internalUser: user,
    internalGroup: group,
    loginUser: user,
    mailUser: user,
    mailGroup: group,
    mailUid: os.userInfo().uid,
    mailGid: os.userInfo().gid,
  };
}

function checkAncestorsEnterable(dir: string): void {
  // vmail and dovecot are neither owner nor group of the parents: they need the "others" x bit
  let d = path.dirname(dir);
  for (;;) {
    const st = statSync(d);
    if ((st.mode & 0o001) === 0) {
      throw new Error(`Dovecot's mail user cannot enter ${d} (mode ${(st.mode & 0o777).toString(8)}); set TMPDIR to a world-enterable folder such as /tmp`);
    }
    const up = path.dirname(d);
    if (up === d) return;
    d = up;
  }
}

interface ConfInput {
  dir: string;
  id: Identity;
  imapPort: number;
  imapsPort: number;
  lmtpPort: number;
  options: DovecotOptions;
}

function renderConf({ dir, id, imapPort, imapsPort, lmtpPort, options }: ConfInput): string {
  const ssl = options.ssl ?? "yes";
  const sep = options.separator ?? "/";
  const idle = options.idleCheckInterval ?? 30;
  const oauth = options.oauth2Introspection;
  const acl = options.acl ?? false;
  // per-mailbox dovecot-acl files; cache_secs=0: a change counts at once instead of after up to 30 s
  const aclPlugin = acl ? "mail_plugins = $mail_plugins acl\nplugin {\n  acl = vfile::cache_secs=0\n}\n" : "";
  const extra = typeof options.extraConfig === "string" ? [options.extraConfig] : [...(options.extraConfig ?? [])];
  // One file per user: Dovecot re-reads a passwd-file at most once per second, but a file it has
  // never seen is read at once, so addUser works for the very next login.
  const passwdFile = `passdb {
  driver = passwd-file
${oauth ? "  mechanisms = plain login\n" : ""}  args = scheme=PLAIN username_format=%u ${dir}/users/%u
}`;
  return `# Generated by test/support/dovecot.ts (Dovecot 2.3 syntax; 2.4 changed much of it)
protocols = imap lmtp
listen = ${HOST}
instance_name = mailbell-test
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/log/dovecot.log
info_log_path = ${dir}/log/dovecot.log

default_internal_user = ${id.internalUser}
default_internal_group = ${id.internalGroup}
default_login_user = ${id.loginUser}
first_valid_uid = ${id.mailUid}
first_valid_gid = ${id.mailGid}
mail_uid = ${id.mailUser}
mail_gid = ${id.mailGroup}

disable_plaintext_auth = no
auth_mechanisms = plain login${oauth ? " xoauth2 oauthbearer" : ""}
# wrong-password tests would otherwise wait 2 s per failure
auth_failure_delay = 0
auth_cache_size = 0
${oauth ? `passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = ${dir}/oauth2.conf.ext\n}\n` : ""}${passwdFile}
userdb {
  driver = static
  args = uid=${id.mailUser} gid=${id.mailGroup} home=${dir}/mail/%u
}
mail_location = maildir:${dir}/mail/%u/Maildir${sep === "/" ? ":LAYOUT=fs" : ""}
${aclPlugin}# test mail is disposable; fsync only slows every APPEND down
mail_fsync = never
postmaster_address = postmaster@localhost

namespace inbox {
  inbox = yes
  separator = ${sep}
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Junk {
    special_use = \\Junk
  }
  mailbox Trash {
    special_use = \\Trash
  }
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox Archive {
    special_use = \\Archive
  }
}

ssl = ${ssl}
${ssl === "yes" ? `ssl_cert = <${dir}/ssl/cert.pem\nssl_key = <${dir}/ssl/key.pem` : ""}

# IDLE is pushed through inotify (after a fixed 500 ms delay); this is only the fallback poll
mailbox_idle_check_interval = ${typeof idle === "number" ? `${idle} secs` : idle}

protocol imap {
  # the default of 10 per user and IP is quickly reached by parallel test clients
  mail_max_userip_connections = 100
${acl ? "  mail_plugins = $mail_plugins imap_acl\n" : ""}}

service imap-login {
  chroot =
  inet_listener imap {
    port = ${imapPort}
  }
  inet_listener imaps {
    port = ${ssl === "yes" ? imapsPort : 0}
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    address = ${HOST}
    port = ${lmtpPort}
  }
}

# chroot needs root; the auth-penalty listener off stops anvil delaying logins after failures
service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
${extra.join("\n")}
`;
}

// --- process bookkeeping: no Dovecot may outlive the test process ---

/** A master's process group and the watchdog that kills it should this process die. */
interface Group {
  pgid: number;
  watchdog: ChildProcess;
}

interface Live {
  current: Group | undefined;
  /** Groups of gracefully stopped masters whose sessions have not ended yet. */
  lingering: Set<Group>;
  dir: string;
}

const live = new Set<Live>();

function cleanupSync(l: Live): void {
  for (const g of [...(l.current ? [l.current] : []), ...l.lingering]) {
    killGroupSync(g.pgid, "SIGKILL");
    g.watchdog.kill("SIGKILL");
  }
  l.current = undefined;
  l.lingering.clear();
  live.delete(l);
  if (!process.env.MAILBELL_KEEP_DOVECOT) {
    try {
      rmSync(l.dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
    } catch {
      // processes dying under SIGKILL may still hold files; a stray temp dir is harmless
    }
  }
}

function cleanupAllSync(): void {
  for (const l of [...live]) cleanupSync(l);
}

/** Kills the master's group, and removes the temp dir too, when this process is gone for any reason. */
function spawnDovecotWatchdog(pgid: number, dir: string): ChildProcess {
  const rm = process.env.MAILBELL_KEEP_DOVECOT ? "" : '; sleep 0.3; case "$1" in */mailbell-dovecot-*) rm -rf "$1";; esac';
  return spawnWatchdog(`${KILL_GROUP}${rm}`, [String(pgid), dir]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Reads one line from a fresh connection; resolves with it or "" on any failure. */
function readGreeting(port: number, timeoutMs: number): Promise<string> {
  return readFirstLine(() => net.connect({ host: HOST, port }), timeoutMs);
}

class LmtpSession {
  private buf = "";
  private waiters: ((line: string) => void)[] = [];
  private lines: string[] = [];
  private failure: Error | undefined;
  private readonly sock: net.Socket;

  constructor(sock: net.Socket) {
    this.sock = sock;
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, nl).replace(/\r$/, "");
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    const fail = (err: Error): void => {
      this.failure = err;
      for (const w of this.waiters.splice(0)) w("");
    };
    sock.on("error", fail);
    sock.on("close", () => fail(new Error("LMTP connection closed")));
  }

  private nextLine(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiters.push((line) => (this.failure && line === "" ? reject(this.failure) : resolve(line)));
    });
  }

  /** A whole (possibly multi-line) reply, e.g. "250-..." lines up to "250 ...". */
  async reply(): Promise<{ code: number; text: string }> {
    const parts: string[] = [];
    for (;;) {
      const line = await this.nextLine();
      parts.push(line);
      if (line[3] !== "-") return { code: Number(line.slice(0, 3)), text: parts.join("\n") };
    }
  }

  async command(cmd: string, expect: number): Promise<string> {
    this.sock.write(`${cmd}\r\n`, "latin1");
    const r = await this.reply();
    if (Math.floor(r.code / 100) !== Math.floor(expect / 100)) throw new Error(`LMTP ${cmd.split(" ")[0]} failed: ${r.text}`);
    return r.text;
  }

  write(data: string): void {
    this.sock.write(data, "latin1");
  }
}

function toLmtpData(raw: Buffer | string): string {
  // latin1 keeps every byte as one char, so 8-bit bodies pass through unchanged
  let s = typeof raw === "string" ? Buffer.from(raw, "utf8").toString("latin1") : raw.toString("latin1");
  s = s.replace(/\r?\n/g, "\r\n");
  if (!s.endsWith("\r\n")) s += "\r\n";
  return s.replace(/^\./gm, "..") + ".\r\n";
}

export async function startDovecot(options: DovecotOptions = {}): Promise<Dovecot> {
  const dovecotBin = findBinary("dovecot");
  const doveadmBin = findBinary("doveadm");
  if (!dovecotBin || !doveadmBin) {
    throw new Error("dovecot/doveadm not found: apt-get install -y dovecot-imapd dovecot-lmtpd (scripts/preflight.js does it when run as root)");
  }
  atExit(cleanupAllSync);
  const id = identity();
  const dir = await mkdtemp(path.join(os.tmpdir(), "mailbell-dovecot-"));
  const entry: Live = { current: undefined, lingering: new Set(), dir };
  live.add(entry);
  try {
    chmodSync(dir, 0o755);
    if (id.root) checkAncestorsEnterable(dir);
    for (const sub of ["run", "state", "log", "mail", "ssl"]) await mkdir(path.join(dir, sub));
    if (id.root) chownSync(path.join(dir, "mail"), id.mailUid, id.mailGid);
    const caFile = path.join(dir, "ssl", "cert.pem");
    await selfSignedCertificate(path.join(dir, "ssl", "key.pem"), caFile, "DNS:localhost,IP:127.0.0.1,IP:::1");
    const ca = await readFile(caFile, "utf8");
    const users: Record<string, string> = { ...DEFAULT_USERS };
    const usersDir = path.join(dir, "users");
    await mkdir(usersDir);
    for (const [u, p] of Object.entries(users)) await writeFile(path.join(usersDir, u), `${u}:{PLAIN}${p}\n`);
    if (options.oauth2Introspection) {
      const u = new URL(options.oauth2Introspection);
      if (!/^127\./.test(u.hostname)) throw new Error(`oauth2Introspection must be on 127.0.0.0/8, got ${u.hostname}`);
      await writeFile(
        path.join(dir, "oauth2.conf.ext"),
        [
          "introspection_mode = post",
          `introspection_url = ${options.oauth2Introspection}`,
          "force_introspection = yes",
          "username_attribute = username",
          "active_attribute = active",
          "active_value = true",
          "timeout_msecs = 5000",
          "",
        ].join("\n"),
      );
    }
    const confFile = path.join(dir, "dovecot.conf");
    const logFile = path.join(dir, "log", "dovecot.log");
    const stdoutFile = path.join(dir, "log", "stdout.log");
    const ssl = options.ssl ?? "yes";
    const startTimeoutMs = options.startTimeoutMs ?? 10_000;

    let ports = { imapPort: 0, imapsPort: 0, lmtpPort: 0 };
    let master: ChildProcess | undefined;
    let startMs = 0;

    const logTail = (n = 40): string => {
      const read = (f: string): string[] => {
        try {
          return readFileSync(f, "utf8").split("\n").filter(Boolean);
        } catch {
          return [];
        }
      };
      const out = read(stdoutFile);
      return [...read(logFile), ...(out.length ? ["--- master stdout/stderr ---", ...out] : [])].slice(-n).join("\n");
    };

    /** Spawns the master and waits for the greeting; on failure nothing is left running. */
    const launch = async (): Promise<void> => {
      const out = openSync(stdoutFile, "a");
      const t0 = performance.now();
      let child: ChildProcess;
      try {
        // detached = own process group, so a hard stop reaches every child Dovecot forks
        child = spawn(dovecotBin, ["-F", "-c", confFile], { detached: true, stdio: ["ignore", out, out] });
      } finally {
        closeSync(out);
      }
      child.unref();
      let exited: string | undefined;
      child.once("error", (e) => {
        exited = `spawn failed: ${e.message}`;
      });
      child.once("exit", (code, sig) => {
        exited = `master exited (${sig ?? code})`;
      });
      if (child.pid === undefined) {
        await sleep(0);
        throw new Error(`could not start ${dovecotBin}: ${exited ?? "no pid"}`);
      }
      const pid = child.pid;
      const group: Group = { pgid: pid, watchdog: spawnDovecotWatchdog(pid, dir) };
      entry.current = group;
      master = child;
      const deadline = t0 + startTimeoutMs;
      for (;;) {
        if (exited) break;
        const line = await readGreeting(ports.imapPort, Math.min(500, Math.max(50, deadline - performance.now())));
        if (line.startsWith("* OK")) {
          startMs = performance.now() - t0;
          return;
        }
        if (performance.now() >= deadline) break;
        await sleep(10);
      }
      const why = exited ?? `no "* OK" greeting on ${HOST}:${ports.imapPort} within ${startTimeoutMs} ms`;
      await killGroups([group]);
      entry.current = undefined;
      master = undefined;
      throw new Error(`Dovecot did not start: ${why}\n${logTail(20)}`);
    };

    const killGroups = async (groups: Group[]): Promise<void> => {
      for (const g of groups) killGroupSync(g.pgid, "SIGTERM");
      const t = performance.now();
      while (groups.some((g) => groupAlive(g.pgid))) {
        // the 2.3 master sometimes naps for seconds on an unreaped child before it exits
        if (performance.now() - t > 250) for (const g of groups) killGroupSync(g.pgid, "SIGKILL");
        if (performance.now() - t > 10_000) throw new Error(`Dovecot process group(s) ${groups.map((g) => g.pgid).join(", ")} survive SIGKILL`);
        await sleep(5);
      }
      for (const g of groups) g.watchdog.kill("SIGKILL");
    };

    /** The current master's group and any lingering sessions of earlier graceful stops. */
    const killHard = async (): Promise<void> => {
      const groups = [...(entry.current ? [entry.current] : []), ...entry.lingering];
      entry.current = undefined;
      entry.lingering.clear();
      master = undefined;
      await killGroups(groups);
    };

    const stopGraceful = async (): Promise<void> => {
      const m = master;
      const g = entry.current;
      if (!m || !g || m.exitCode !== null || m.signalCode !== null) return killHard();
      const exited = new Promise<void>((r) => m.once("exit", () => r()));
      m.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 15_000))),
      ]);
      clearTimeout(timer);
      if (timedOut) return killHard();
      entry.current = undefined;
      master = undefined;
      // sessions may outlive the master (that is what graceful means): keep their group covered
      // by the watchdog and exit hooks until it is empty
      entry.lingering.add(g);
      void (async () => {
        while (entry.lingering.has(g) && groupAlive(g.pgid)) await new Promise((r) => setTimeout(r, 100).unref());
        if (entry.lingering.delete(g)) g.watchdog.kill("SIGKILL");
      })();
    };

    // Another process may grab a probed port before Dovecot binds it: retry with fresh ports
    for (let attempt = 1; ; attempt++) {
      const [imapPort, imapsPort, lmtpPort] = await freePorts(3);
      ports = { imapPort: imapPort!, imapsPort: ssl === "yes" ? imapsPort! : 0, lmtpPort: lmtpPort! };
      await writeFile(confFile, renderConf({ dir, id, imapPort: ports.imapPort, imapsPort: ports.imapsPort, lmtpPort: ports.lmtpPort, options }));
      try {
        await launch();
        break;
      } catch (err) {
        if (attempt >= 3 || !/Address already in use/.test(logTail(20))) throw err;
      }
    }

    const clientOptions = (user: string, mode: ClientMode = ssl === "yes" ? "tls" : "plain"): ImapFlowOptions => {
      const base: ImapFlowOptions = {
        host: HOST,
        auth: { user, pass: dc.auth(user).pass },
        logger: false,
        disableAutoIdle: true,
        tls: { ca },
      };
      if (mode === "tls") return { ...base, port: ports.imapsPort, secure: true };
      if (mode === "starttls") return { ...base, port: ports.imapPort, secure: false, doSTARTTLS: true };
      return { ...base, port: ports.imapPort, secure: false, doSTARTTLS: false };
    };

    const withClient = <T>(user: string, fn: (client: ImapFlow) => Promise<T>): Promise<T> => withImapClient(clientOptions(user), fn);

    const ensureMailbox = async (client: ImapFlow, mailbox: string): Promise<void> => {
      if (mailbox.toUpperCase() === "INBOX") return;
      await client.mailboxCreate(mailbox);
    };

    const appendOne = async (client: ImapFlow, mailbox: string, raw: Buffer | string, opts: AppendOptions): Promise<number> => {
      const res = await client.append(mailbox, raw, opts.flags, opts.internalDate);
      if (!res || typeof res.uid !== "number") throw new Error(`APPEND to ${mailbox} returned no UID (${JSON.stringify(res)})`);
      return res.uid;
    };

    const dc: Dovecot = {
      host: HOST,
      get imapPort() {
        return ports.imapPort;
      },
      get imapsPort() {
        return ports.imapsPort;
      },
      get lmtpPort() {
        return ports.lmtpPort;
      },
      caFile,
      ca,
      dir,
      confFile,
      users,
      get pid() {
        return master?.pid;
      },
      get startMs() {
        return startMs;
      },

      async addUser(name, pass) {
        if (!/^[A-Za-z0-9._+-]+$/.test(name) || name.startsWith(".") || /[:\r\n]/.test(pass)) {
          throw new Error(`addUser: unusable name or password for ${JSON.stringify(name)}`);
        }
        const file = path.join(usersDir, name);
        const existing = users[name] !== undefined;
        // Dovecot stats a known passwd-file at most once per second and compares mtime (seconds)
        // and size: a changed password is only seen if written in a later second than the last
        // read, and read in a later second than the write
        const nextSecond = (): Promise<void> => sleep(1050 - (Date.now() % 1000));
        if (existing) await nextSecond();
        await writeFile(file, `${name}:{PLAIN}${pass}\n`);
        if (existing) await nextSecond();
        users[name] = pass;
      },

      auth(user) {
        const pass = users[user];
        if (pass === undefined) throw new Error(`unknown test user ${user}; known: ${Object.keys(users).join(", ")}`);
        return { user, pass };
      },

      clientOptions,
      withClient,

      append(user, mailbox, raw, opts = {}) {
        return withClient(user, async (c) => {
          await ensureMailbox(c, mailbox);
          return appendOne(c, mailbox, raw, opts);
        });
      },

      appendMany(user, mailbox, raws, opts = {}) {
        return withClient(user, async (c) => {
          await ensureMailbox(c, mailbox);
          const uids: number[] = [];
          for (const raw of raws) uids.push(await appendOne(c, mailbox, raw, opts));
          return uids;
        });
      },

      async deliverLmtp(user, raw, opts = {}) {
        const rcpts = typeof user === "string" ? [user] : [...user];
        const sock = net.connect({ host: HOST, port: ports.lmtpPort });
        const s = new LmtpSession(sock);
        try {
          const greet = await s.reply();
          if (greet.code !== 220) throw new Error(`LMTP greeting: ${greet.text}`);
          await s.command("LHLO localhost", 250);
          await s.command(`MAIL FROM:<${opts.from ?? "sender@example.com"}>`, 250);
          for (const r of rcpts) await s.command(`RCPT TO:<${r}>`, 250);
          await s.command("DATA", 354);
          s.write(toLmtpData(raw));
          // LMTP answers DATA once per accepted recipient
          const replies: string[] = [];
          for (const r of rcpts) {
            const rep = await s.reply();
            if (Math.floor(rep.code / 100) !== 2) throw new Error(`LMTP delivery to ${r} failed: ${rep.text}`);
            replies.push(rep.text);
          }
          s.write("QUIT\r\n");
          return replies;
        } finally {
          sock.end();
          setTimeout(() => sock.destroy(), 1000).unref();
        }
      },

      async createMailbox(user, name) {
        await withClient(user, async (c) => {
          await c.mailboxCreate(name);
        });
      },

      async readOnlyMailbox(user, name) {
        if (!options.acl) throw new Error("readOnlyMailbox needs startDovecot({ acl: true })");
        await dc.createMailbox(user, name);
        const folder = (await dc.doveadm("mailbox", "path", "-u", user, name)).trim();
        const aclFile = path.join(folder, "dovecot-acl");
        // without an entry for "owner" the owner would keep all rights
        await writeFile(aclFile, "owner lr\n");
        if (id.root) chownSync(aclFile, id.mailUid, id.mailGid);
      },

      async deleteMailbox(user, name) {
        await withClient(user, async (c) => {
          await c.mailboxDelete(name);
        });
      },

      async kick(user) {
        await execFileP(doveadmBin, ["-c", confFile, "kick", user]);
      },

      async doveadm(...args) {
        const { stdout } = await execFileP(doveadmBin, ["-c", confFile, ...args]);
        return stdout;
      },

      async stop(opts = {}) {
        if (opts.hard) await killHard();
        else await stopGraceful();
      },

      async restart(opts = { hard: true }) {
        await dc.stop(opts);
        // after a graceful stop, lingering login processes may still hold the listeners for a moment
        for (let attempt = 1; ; attempt++) {
          try {
            await launch();
            return;
          } catch (err) {
            if (attempt >= 50 || !/Address already in use/.test(logTail(5))) throw err;
            await sleep(200);
          }
        }
      },

      logTail,

      async dispose() {
        await killHard();
        cleanupSync(entry);
      },

      [Symbol.asyncDispose]() {
        return dc.dispose();
      },
    };
    return dc;
  } catch (err) {
    cleanupSync(entry);
    throw err;
  }
}

/** The library's account for `user` on this Dovecot (implicit TLS, trusting only its CA), as watchMailbox takes it. */
export function imapAccountOf(dovecot: Dovecot, user: string): ImapAccount {
  return { name: user, host: dovecot.host, port: dovecot.imapsPort, tls: "implicit", ca: dovecot.ca, user, pass: dovecot.auth(user).pass };
}
