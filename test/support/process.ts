import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

const entry = path.resolve(import.meta.dirname, "../../src/cli/entry.ts");

export interface MailbellProcess {
  child: ChildProcess;
  /** Everything written to stderr (JSON log lines) and stdout so far. */
  readonly log: string;
  /** What was written to stdout alone (mailbell run writes nothing there). */
  readonly stdout: string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Waits until a log line matches; rejects with the log tail after timeoutMs. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Waits until `count` log entries have exactly this message (e.g. "mail read" at debug level). */
  waitForCount(msg: string, count: number, timeoutMs?: number): Promise<void>;
  /** Parsed log lines. */
  entries(): Record<string, unknown>[];
}

/** `mailbell run --config FILE [ARGS]` as a real process, so tests can SIGKILL or SIGTERM it. */
export function spawnMailbell(configFile: string, env: NodeJS.ProcessEnv = {}, args: readonly string[] = []): MailbellProcess {
  const child = spawn(process.execPath, [entry, "run", "--config", configFile, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  let stdout = "";
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  child.stdout!.on("data", (d: Buffer) => {
    log += d.toString();
    stdout += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    child,
    get log() {
      return log;
    },
    get stdout() {
      return stdout;
    },
    exited,
    async waitForLog(pattern, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = log.split("\n").find((l) => pattern.test(l));
        if (line) return line;
        if (Date.now() > deadline) throw new Error(`no log line matching ${pattern} within ${timeoutMs} ms; log tail:\n${log.split("\n").slice(-20).join("\n")}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async waitForCount(msg, count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (this.entries().filter((e) => e.msg === msg).length < count) {
        if (Date.now() > deadline) throw new Error(`fewer than ${count} "${msg}" log entries within ${timeoutMs} ms; log tail:\n${log.split("\n").slice(-20).join("\n")}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    entries() {
      return log
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}
