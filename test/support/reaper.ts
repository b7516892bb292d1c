/**
 * No process the tests or benchmarks start may outlive them. Exit hooks cover a normal exit and
 * SIGINT/SIGTERM/SIGHUP; a watchdog shell covers the rest (SIGKILL, a crash of the runner). Used by
 * the server harnesses (dovecot.ts, imap-server.ts) and by bench/lib.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const cleanups = new Set<() => void>();
let hooksInstalled = false;

function runCleanups(): void {
  for (const cleanup of cleanups) cleanup();
}

/** Runs `cleanup` (synchronous, so it also runs on "exit") when this process ends; once per function. */
export function atExit(cleanup: () => void): void {
  cleanups.add(cleanup);
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", runCleanups);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      runCleanups();
      process.off(sig, onSignal);
      // keep the default "die by this signal" unless someone else handles it
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/**
 * Exit hooks do not run on SIGKILL or a crash of the runner: a tiny shell reads a pipe only we
 * hold and runs `command` when it reaches EOF, i.e. when this process is gone for any reason.
 * `args` are `$0`, `$1`… in `command`. Kill the watchdog once what it guards has ended.
 */
export function spawnWatchdog(command: string, args: readonly string[]): ChildProcess {
  const w = spawn("/bin/sh", ["-c", `read _x; ${command}`, ...args], { detached: true, stdio: ["pipe", "ignore", "ignore"] });
  w.unref();
  (w.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  w.on("error", () => {});
  w.stdin?.on("error", () => {});
  return w;
}

/** dash's kill takes neither "--" nor "-s KILL" before a negative pid; "-9 -PGID" works everywhere. */
export const KILL_GROUP = 'kill -9 -"$0" 2>/dev/null';

export function killGroupSync(pgid: number | undefined, signal: NodeJS.Signals): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

export interface GroupProcess {
  pid: number;
  /** The command name, as in /proc/PID/stat. */
  comm: string;
  /** R, S, D, Z (zombie), X (dead)… */
  state: string;
}

/** The processes in a process group, from /proc (Linux); throws where there is no /proc. */
export function* groupProcesses(pgid: number): Generator<GroupProcess> {
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, "latin1");
    } catch {
      continue;
    }
    // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(f[2]) === pgid) yield { pid: Number(e), comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), state: f[0]! };
  }
}

/**
 * Whether any live (non-zombie) process is in the group. Orphans of a dead master are reparented
 * to PID 1, and container inits may reap them late or never: a zombie holds no port and no file,
 * so it must not count, yet kill(-pgid, 0) would still succeed on it.
 */
export function groupAlive(pgid: number): boolean {
  try {
    for (const p of groupProcesses(pgid)) if (p.state !== "Z" && p.state !== "X") return true;
    return false;
  } catch {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
}
