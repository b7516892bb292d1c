/**
 * One shape for the IMAP servers the interop tests run (Dovecot, Cyrus, Courier): where to
 * connect, how to put mail in, and how to break things (restart, stop, a new UIDVALIDITY). Also
 * the process bookkeeping the Cyrus and Courier harnesses share: no server outlives the tests.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import tls from "node:tls";
import type { ImapFlow, ImapFlowOptions } from "imapflow";
import { freePorts, HOST, withImapClient, type Dovecot, type StopOptions } from "./dovecot.ts";
import { readFirstLine } from "./loopback.ts";
import { atExit, groupAlive, KILL_GROUP, killGroupSync, spawnWatchdog } from "./reaper.ts";

export type ServerKind = "dovecot" | "cyrus" | "courier";

export interface ImapServer {
  readonly kind: ServerKind;
  readonly host: string;
  /** Implicit TLS, the way mailbell connects by default. */
  readonly port: number;
  /** The server's self-signed certificate (SAN 127.0.0.1): trust it as the only CA. */
  readonly caFile: string;
  readonly ca: string;
  /** The one test user whose INBOX the tests watch. */
  readonly user: string;
  readonly pass: string;
  /** ImapFlow options for `user`: trusts only `ca`, logger off, auto-IDLE off. */
  clientOptions(): ImapFlowOptions;
  /** Runs `fn` on a fresh logged-in connection and logs out afterwards. */
  withClient<T>(fn: (client: ImapFlow) => Promise<T>): Promise<T>;
  /** IMAP APPEND to INBOX; returns the new UID. */
  append(raw: Buffer | string): Promise<number>;
  /** A burst: many APPENDs over one connection, as fast as the server takes them; UIDs in order. */
  appendMany(raws: readonly (Buffer | string)[]): Promise<number[]>;
  uidValidity(): Promise<bigint>;
  /**
   * The server forgets INBOX's UIDs the way it does in real life: a new UIDVALIDITY, and the mail
   * that is there numbered again from 1. Resolves once a fresh session sees the new UIDVALIDITY.
   */
  changeUidValidity(): Promise<void>;
  /** Hard: every process at once (clients see the close within ms). Default: the server's own shutdown. */
  stop(opts?: StopOptions): Promise<void>;
  /** Starts again on the same port with the same mail, after stop(). */
  start(): Promise<void>;
  /** stop (hard by default) + start. */
  restart(opts?: StopOptions): Promise<void>;
  /** The server's own log and stdout/stderr, last `n` lines. */
  logTail(n?: number): string;
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export type ImapOperations = Pick<ImapServer, "withClient" | "append" | "appendMany" | "uidValidity">;

/** The IMAP-side operations every server shares, given how to log in. */
export function imapOperations(clientOptions: () => ImapFlowOptions): ImapOperations {
  const withClient = <T>(fn: (client: ImapFlow) => Promise<T>): Promise<T> => withImapClient(clientOptions(), fn);
  const appendOne = async (client: ImapFlow, raw: Buffer | string): Promise<number> => {
    const res = await client.append("INBOX", raw);
    if (!res || typeof res.uid !== "number") throw new Error(`APPEND to INBOX returned no UID (${JSON.stringify(res)})`);
    return res.uid;
  };
  return {
    withClient,
    append: (raw) => withClient((c) => appendOne(c, raw)),
    appendMany: (raws) =>
      withClient(async (c) => {
        const uids: number[] = [];
        for (const raw of raws) uids.push(await appendOne(c, raw));
        return uids;
      }),
    uidValidity: () =>
      withClient(async (c) => {
        const status = await c.status("INBOX", { uidValidity: true });
        if (!status || status.uidValidity === undefined) throw new Error("STATUS INBOX returned no UIDVALIDITY");
        return status.uidValidity;
      }),
  };
}

/** Courier and Dovecot draw a new UIDVALIDITY from the clock: a change within the same second could repeat the old one. */
export async function untilNextSecond(): Promise<void> {
  await sleep(1050 - (Date.now() % 1000));
}

// --- Dovecot: a thin adapter over the existing harness ---

export function dovecotServer(dovecot: Dovecot, user = "alice"): ImapServer {
  const clientOptions = (): ImapFlowOptions => dovecot.clientOptions(user);
  const ops = imapOperations(clientOptions);
  // Maildir LAYOUT=fs: INBOX is the Maildir itself, Dovecot's UID list and indexes sit beside cur/ and new/
  const inbox = path.join(dovecot.dir, "mail", user, "Maildir");
  const server: ImapServer = {
    kind: "dovecot",
    host: dovecot.host,
    get port() {
      return dovecot.imapsPort;
    },
    caFile: dovecot.caFile,
    ca: dovecot.ca,
    user,
    pass: dovecot.auth(user).pass,
    clientOptions,
    ...ops,
    async changeUidValidity() {
      const before = await ops.uidValidity();
      await dovecot.stop({ hard: true });
      for (const f of readdirSync(inbox)) if (f.startsWith("dovecot")) rmSync(path.join(inbox, f), { force: true });
      await untilNextSecond();
      await dovecot.restart();
      const after = await ops.uidValidity();
      if (after === before) throw new Error(`Dovecot kept UIDVALIDITY ${before} after its UID list was removed`);
    },
    stop: (opts) => dovecot.stop(opts),
    // restart() does not stop a stopped Dovecot twice: it only kills what is left
    start: () => dovecot.restart({ hard: true }),
    restart: (opts = { hard: true }) => dovecot.restart(opts),
    logTail: (n) => dovecot.logTail(n),
    dispose: () => dovecot.dispose(),
    [Symbol.asyncDispose]: () => dovecot.dispose(),
  };
  return server;
}

// --- process bookkeeping for the servers started here ---

/** A server's process group and the watchdog that kills it should this process die. */
export interface ServerGroup {
  readonly pgid: number;
  readonly child: ChildProcess;
  /** Set when the group leader exited, with how. */
  exited: string | undefined;
}

interface Tracked {
  group: ServerGroup;
  watchdog: ChildProcess;
}

const tracked = new Set<Tracked>();

function killAllSync(): void {
  for (const t of [...tracked]) {
    killGroupSync(t.group.pgid, "SIGKILL");
    t.watchdog.kill("SIGKILL");
    tracked.delete(t);
  }
}

export interface SpawnOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** stdout and stderr go here, never to a pipe: a daemon's grandchildren would hold a pipe open. */
  logFile: string;
}

/** Starts `cmd` as the leader of its own process group, so stopGroup reaches every child it forks. */
export function spawnGroup(cmd: string, args: readonly string[], opts: SpawnOptions): ServerGroup {
  atExit(killAllSync);
  const out = openSync(opts.logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { detached: true, stdio: ["ignore", out, out], env: opts.env, cwd: opts.cwd });
  } finally {
    closeSync(out);
  }
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  const group: ServerGroup = { pgid: child.pid, child, exited: undefined };
  child.once("error", (e) => (group.exited = `spawn failed: ${e.message}`));
  child.once("exit", (code, sig) => (group.exited = `exited (${sig ?? code})`));
  tracked.add({ group, watchdog: spawnWatchdog(KILL_GROUP, [String(child.pid)]) });
  return group;
}

/**
 * Ends the group. Hard: SIGKILL to every process at once. Otherwise SIGTERM to the leader only,
 * the server's own shutdown, and SIGKILL for whatever is left after `graceMs`.
 */
export async function stopGroup(group: ServerGroup, opts: StopOptions & { graceMs?: number } = {}): Promise<void> {
  const t = [...tracked].find((x) => x.group === group);
  if (opts.hard) killGroupSync(group.pgid, "SIGKILL");
  else if (group.exited === undefined) group.child.kill("SIGTERM");
  const start = performance.now();
  while (groupAlive(group.pgid)) {
    if (performance.now() - start > (opts.graceMs ?? 5000)) killGroupSync(group.pgid, "SIGKILL");
    if (performance.now() - start > 15_000) throw new Error(`process group ${group.pgid} survives SIGKILL`);
    await sleep(5);
  }
  if (t) {
    t.watchdog.kill("SIGKILL");
    tracked.delete(t);
  }
}

/**
 * One server process group over its life: started, stopped, started again. `spawnServer` starts
 * the group; `ready` waits until it serves (when that fails, the group is killed).
 */
export interface GroupLifecycle {
  /** The server's own shutdown unless `hard` (see StopOptions); nothing to do while stopped. */
  stop(opts?: StopOptions): Promise<void>;
  /** After a stop, the port may still be held for a moment by sessions on their way out: up to 5 tries. */
  start(): Promise<void>;
  /**
   * The first start: another process may take a probed port before the server binds it, so each
   * of up to 3 tries probes a fresh one and hands it to `configure` before the launch.
   */
  firstStart(configure: (port: number) => Promise<void> | void): Promise<void>;
}

export function groupLifecycle(spawnServer: () => ServerGroup, ready: (group: ServerGroup) => Promise<void>): GroupLifecycle {
  let group: ServerGroup | undefined;
  const launch = async (): Promise<void> => {
    const g = spawnServer();
    group = g;
    try {
      await ready(g);
    } catch (err) {
      await stopGroup(g, { hard: true });
      group = undefined;
      throw err;
    }
  };
  return {
    async stop(opts = {}) {
      if (!group) return;
      const g = group;
      group = undefined;
      await stopGroup(g, opts);
    },
    async start() {
      for (let attempt = 1; ; attempt++) {
        try {
          return await launch();
        } catch (err) {
          if (attempt >= 5) throw err;
          await sleep(200);
        }
      }
    },
    async firstStart(configure) {
      for (let attempt = 1; ; attempt++) {
        const [port] = (await freePorts(1)) as [number];
        await configure(port);
        try {
          return await launch();
        } catch (err) {
          if (attempt >= 3) throw err;
        }
      }
    },
  };
}

/** What a server the harness runs itself (Cyrus, Courier) tells serverOf. */
export interface HarnessServerSpec {
  kind: ServerKind;
  /** The server's temp dir, removed by dispose(). */
  dir: string;
  port(): number;
  caFile: string;
  ca: string;
  user: string;
  pass: string;
  life: GroupLifecycle;
  logFile: string;
  changeUidValidity(ops: ImapOperations): Promise<void>;
}

/** The ImapServer of a server the harness started: implicit TLS on `port`, one user. */
export function serverOf(spec: HarnessServerSpec): ImapServer {
  const { life } = spec;
  const clientOptions = (): ImapFlowOptions => ({
    host: HOST,
    port: spec.port(),
    secure: true,
    auth: { user: spec.user, pass: spec.pass },
    logger: false,
    disableAutoIdle: true,
    tls: { ca: spec.ca, servername: "localhost" },
  });
  const ops = imapOperations(clientOptions);
  const server: ImapServer = {
    kind: spec.kind,
    host: HOST,
    get port() {
      return spec.port();
    },
    caFile: spec.caFile,
    ca: spec.ca,
    user: spec.user,
    pass: spec.pass,
    clientOptions,
    ...ops,
    changeUidValidity: () => spec.changeUidValidity(ops),
    stop: (opts) => life.stop(opts),
    start: () => life.start(),
    async restart(opts = { hard: true }) {
      await life.stop(opts);
      await life.start();
    },
    logTail: (n = 40) => tailOf([spec.logFile], n),
    async dispose() {
      await life.stop({ hard: true });
      rmSync(spec.dir, { recursive: true, force: true });
    },
    [Symbol.asyncDispose]() {
      return server.dispose();
    },
  };
  return server;
}

/** Waits for an IMAP greeting over implicit TLS, trusting `ca`; returns its first line. */
export async function waitForGreeting(port: number, ca: string, isDead: () => string | undefined, timeoutMs = 10_000): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const dead = isDead();
    if (dead) throw new Error(`the server ${dead} before it greeted on ${HOST}:${port}`);
    const line = await readTlsGreeting(port, ca, Math.max(100, Math.min(1000, deadline - performance.now())));
    if (/^\* (OK|PREAUTH)/.test(line)) return line;
    if (performance.now() > deadline) throw new Error(`no IMAP greeting on ${HOST}:${port} within ${timeoutMs} ms (last: ${JSON.stringify(line)})`);
    await sleep(20);
  }
}

function readTlsGreeting(port: number, ca: string, timeoutMs: number): Promise<string> {
  return readFirstLine(() => tls.connect({ host: HOST, port, ca, servername: "localhost" }), timeoutMs);
}

/**
 * Runs tagged IMAP commands one after another over implicit TLS, for what ImapFlow has no call
 * for (SETACL as an admin). Rejects on the first tagged answer that is not OK.
 */
export async function imapScript(port: number, ca: string, commands: readonly string[], timeoutMs = 10_000): Promise<string> {
  const sock = tls.connect({ host: HOST, port, ca, servername: "localhost" });
  sock.setEncoding("utf8");
  let transcript = "";
  let waiter: (() => void) | undefined;
  let failure: Error | undefined;
  sock.on("data", (d: string) => {
    transcript += d;
    waiter?.();
  });
  sock.on("error", (e) => {
    failure = e;
    waiter?.();
  });
  sock.on("close", () => {
    failure ??= new Error("connection closed");
    waiter?.();
  });
  const deadline = Date.now() + timeoutMs;
  const until = async (re: RegExp): Promise<RegExpExecArray> => {
    for (;;) {
      const m = re.exec(transcript);
      if (m) return m;
      if (failure || Date.now() > deadline) throw new Error(`IMAP script: ${failure?.message ?? "timed out"} waiting for ${re}; transcript:\n${transcript}`);
      await new Promise<void>((r) => {
        waiter = r;
        setTimeout(r, 50);
      });
    }
  };
  try {
    await until(/^\* (OK|PREAUTH)[^\n]*\n/m);
    for (const [i, command] of commands.entries()) {
      sock.write(`s${i} ${command}\r\n`);
      const answer = await until(new RegExp(`^s${i} (OK|NO|BAD)[^\\n]*\\n`, "m"));
      if (answer[1] !== "OK") throw new Error(`IMAP script: ${command.split(" ")[0]} failed: ${answer[0].trim()}`);
    }
    return transcript;
  } finally {
    sock.destroy();
  }
}

/** The last `n` lines of these files together (missing files are skipped). */
export function tailOf(files: readonly string[], n: number): string {
  const lines: string[] = [];
  for (const f of files) {
    try {
      lines.push(`--- ${path.basename(f)} ---`, ...readFileSync(f, "utf8").split("\n").filter(Boolean));
    } catch {
      // not written yet
    }
  }
  return lines.slice(-n).join("\n");
}

/** Where scripts/preflight.js unpacks the server packages that cannot be installed beside Dovecot. */
export function unpackedPackage(pkg: "cyrus-imapd" | "courier-imap"): string {
  return path.resolve(import.meta.dirname, "../../node_modules/.cache/mailbell-interop", pkg);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
