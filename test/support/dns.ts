/**
 * A real DNS server on 127.0.0.1 for the DKIM tests: Debian's dnsmasq in the foreground on a free
 * port, answering TXT records (DKIM keys at `<selector>._domainkey.<domain>`) from its command
 * line and NXDOMAIN for every other name; it never asks a server outside. scripts/preflight.js
 * installs it (package dnsmasq-base). dnsmasq reads --txt-record only at start, so a change of the
 * records restarts it on the same port (a few milliseconds).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePorts, findBinary, HOST } from "./dovecot.ts";
import { atExit, spawnWatchdog } from "./reaper.ts";

/**
 * How the server fails when asked to: "refused" answers REFUSED to every query (a server that
 * is up but serves nothing), "timeout" answers nothing (the process is stopped with SIGSTOP, its
 * socket stays bound), "down" closes the port (the client gets ECONNREFUSED at once).
 */
export type DnsFailure = "refused" | "timeout" | "down";

export interface DnsServerOptions {
  /** name → TXT value. A string is one record, split into character-strings of ≤255 bytes; an array gives the character-strings as they are. */
  txt?: Record<string, string | string[]>;
  /** TTL of the answers in seconds (dnsmasq --local-ttl); 300 unless told. */
  ttl?: number;
}

export interface DnsServer {
  host: typeof HOST;
  port: number;
  /** "127.0.0.1:<port>", as `dns: { servers: [...] }` and Resolver#setServers take it. */
  server: string;
  setTxt(name: string, value: string | string[]): Promise<void>;
  remove(name: string): Promise<void>;
  /** Makes the server fail in the given way until called with false. */
  fail(mode: DnsFailure | false): Promise<void>;
  /**
   * The names asked for (any type), in order, since start or the last resetQueries(): proves a
   * cache. A record too long for a plain UDP answer is asked twice (truncated, then over TCP).
   */
  queries(): string[];
  resetQueries(): void;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const MAX_STRING = 255;

/** A TXT value as character-strings of at most 255 bytes each (RFC 1035 3.3.14). */
export function txtStrings(value: string | string[]): string[] {
  if (Array.isArray(value)) {
    for (const s of value) {
      if (Buffer.byteLength(s) > MAX_STRING) throw new Error(`TXT character-string of ${Buffer.byteLength(s)} bytes: at most ${MAX_STRING}; pass one string to have it split`);
    }
    return value;
  }
  const out: string[] = [];
  for (let i = 0; i < value.length; i += MAX_STRING) out.push(value.slice(i, i + MAX_STRING));
  return out.length > 0 ? out : [""];
}

/**
 * `txt-record=name,"a","b"` for dnsmasq's configuration file: only there does it read quotes (a
 * comma inside them stays); on its command line every comma would split the value.
 */
function txtLine(name: string, value: string | string[]): string {
  const strings = txtStrings(value);
  for (const s of strings) {
    // only what DKIM and SPF records use; dnsmasq's escapes are not worth getting wrong here
    if (!/^[\x20-\x7e]*$/.test(s) || /["\\]/.test(s)) throw new Error(`TXT value for ${name} has a quote, a backslash or a non-printable/non-ASCII character: the test DNS server takes printable ASCII without " and \\`);
  }
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`TXT name ${JSON.stringify(name)}: letters, digits, "-", "_" and "." only`);
  return `txt-record=${name},${strings.map((s) => `"${s}"`).join(",")}`;
}

interface Running {
  child: ChildProcess;
  watchdog: ChildProcess;
  exited: Promise<void>;
}

function dnsmasqBinary(): string {
  const bin = findBinary("dnsmasq");
  if (!bin) throw new Error("dnsmasq not found: the DKIM tests serve their keys with it; `node scripts/preflight.js` as root installs it (apt-get install dnsmasq-base)");
  return bin;
}

export async function startDnsServer(options: DnsServerOptions = {}): Promise<DnsServer> {
  const bin = dnsmasqBinary();
  const records = new Map<string, string | string[]>(Object.entries(options.txt ?? {}));
  const ttl = options.ttl ?? 300;
  let failure: DnsFailure | false = false;
  let running: Running | undefined;
  let queries: string[] = [];
  let stopped = false;
  const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-dns-"));
  const confFile = path.join(dir, "records.conf");

  const args = (port: number): string[] => {
    const common = [
      "--keep-in-foreground",
      `--port=${port}`,
      `--listen-address=${HOST}`,
      "--bind-interfaces",
      "--no-resolv", // never forward to the machine's resolvers
      "--no-hosts",
      "--conf-file=/dev/null", // not /etc/dnsmasq.conf (a later --conf-file adds ours)
      "--pid-file=",
      "--log-facility=-",
      "--log-queries",
      "--cache-size=0",
    ];
    // no --local: without data and without upstream servers dnsmasq answers REFUSED
    if (failure === "refused") return common;
    writeFileSync(confFile, [...records].map(([name, value]) => `${txtLine(name, value)}\n`).join(""));
    return [...common, "--local=/#/", `--local-ttl=${ttl}`, `--conf-file=${confFile}`];
  };

  const launch = async (port: number): Promise<Running | "port taken"> => {
    const child = spawn(bin, args(port), { stdio: ["ignore", "ignore", "pipe"] });
    const watchdog = spawnWatchdog('kill -9 "$0" 2>/dev/null', [String(child.pid)]);
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    void exited.then(() => watchdog.kill());
    let log = "";
    let counted = 0; // log up to here is read for queries: only whole lines
    const started = new Promise<boolean>((resolve) => {
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (d: string) => {
        log += d;
        const end = log.lastIndexOf("\n") + 1;
        for (const m of log.slice(counted, end).matchAll(/query\[\w+\] (\S+) from/g)) queries.push(m[1]!);
        counted = Math.max(counted, end);
        if (/started, version/.test(log)) resolve(true);
      });
      void exited.then(() => resolve(false));
      child.once("error", () => resolve(false));
    });
    if (await started) return { child, watchdog, exited };
    if (/Address already in use/.test(log)) return "port taken";
    throw new Error(`dnsmasq did not start on ${HOST}:${port}: ${log.trim() || "no output"}`);
  };

  const halt = async (): Promise<void> => {
    const r = running;
    running = undefined;
    if (!r) return;
    r.child.kill("SIGKILL"); // also ends a SIGSTOPped one
    await r.exited;
  };

  /** The same port across restarts: clients were given it. Another process may grab it meanwhile; then try again. */
  const restart = async (port: number): Promise<void> => {
    await halt();
    if (failure === "down") return;
    for (let attempt = 0; ; attempt++) {
      const r = await launch(port);
      if (r !== "port taken") {
        running = r;
        if (failure === "timeout") r.child.kill("SIGSTOP");
        return;
      }
      if (attempt >= 20) throw new Error(`dnsmasq could not bind ${HOST}:${port} again: something else holds it`);
      await new Promise((res) => setTimeout(res, 50));
    }
  };

  let port = 0;
  for (let attempt = 0; port === 0; attempt++) {
    const [candidate] = await freePorts(1);
    const r = await launch(candidate!);
    if (r !== "port taken") {
      running = r;
      port = candidate!;
    } else if (attempt >= 5) {
      throw new Error("dnsmasq found no free port on 127.0.0.1");
    }
  }
  const killNow = (): void => {
    running?.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  atExit(killNow);

  const stop = async (): Promise<void> => {
    stopped = true;
    await halt();
    rmSync(dir, { recursive: true, force: true });
  };
  const guard = (): void => {
    if (stopped) throw new Error("the test DNS server was stopped");
  };

  return {
    host: HOST,
    port,
    server: `${HOST}:${port}`,
    async setTxt(name, value) {
      guard();
      txtLine(name, value); // refuse before the running server goes away
      records.set(name, value);
      await restart(port);
    },
    async remove(name) {
      guard();
      records.delete(name);
      await restart(port);
    },
    async fail(mode) {
      guard();
      failure = mode;
      await restart(port);
    },
    queries: () => [...queries],
    resetQueries() {
      queries = [];
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
