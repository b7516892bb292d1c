import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { TargetError } from "../errors.ts";
import { targetBase, TargetUrlError, type TargetModule } from "./module.ts";
import { ServiceTarget } from "./service.ts";
import { readable, truncatePlain } from "./text.ts";
import type { DigestEntry, Notification, SendOptions, TargetPayload } from "./types.ts";
import { notificationBody, type WebhookBody } from "./webhook.ts";

/*
 * Runs a program of yours for each notification. What it gets:
 *
 * - stdin: the webhook target's JSON (see webhook.ts), the mail's text as it is (JSON-escaped);
 *   a digest is {"digest": {count, listed, items, text}}.
 * - environment: MAILBELL_RULE, MAILBELL_ACCOUNT, MAILBELL_MAILBOX, MAILBELL_UID,
 *   MAILBELL_UIDVALIDITY, MAILBELL_MESSAGE_ID, MAILBELL_SUBJECT, MAILBELL_FROM, MAILBELL_DATE,
 *   MAILBELL_LINK, MAILBELL_TEXT, MAILBELL_TOTAL (+ _AMOUNT, _CURRENCY), MAILBELL_PERIOD, and per
 *   extracted field MAILBELL_FIELD_<NAME> (+ _RAW, _AMOUNT, _CURRENCY), unset when the field is
 *   missing. A digest sets MAILBELL_DIGEST_COUNT and MAILBELL_TEXT. Each value is cut at 32,768
 *   characters (Linux refuses a single one over 128 KiB); stdin always has everything. Values
 *   from the mail follow the convention for text people read (readable() in text.ts: controls
 *   U+FFFD, bidi overrides removed, tab and LF kept), since a script mostly shows them; an
 *   environment string could not hold a NUL anyway.
 * - argv: only the fixed `command` list from the config. Mail text never reaches argv, and there
 *   is no shell, so nothing in a mail can become an option or a command.
 * - Not mailbell's own environment, which typically holds the IMAP password and webhook URLs:
 *   only PATH, HOME, locale, TZ and the desktop-session variables a notifier needs, plus `env`.
 *   `inheritEnv: true` passes everything.
 *
 * Exit 0 = delivered. Exit 75 (EX_TEMPFAIL, sysexits.h) = try again later; any other exit is final
 * (the notification goes to the dead letters with the end of stderr). A run longer than
 * timeoutSeconds is stopped (SIGTERM to its process group, SIGKILL after a grace period) and
 * retried.
 */

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;
const envNameMessage = "environment variable names are letters, digits and '_', not starting with a digit";

export const commandSchema = z.strictObject({
  ...targetBase,
  type: z.literal("command"),
  /** [program, ...fixed arguments]; never run through a shell. */
  command: z
    .array(z.string().min(1, "an empty string is not a program or argument"), { error: 'write the command as a list: [program, arg, …], e.g. ["/usr/local/bin/notify", "--quiet"]' })
    .min(1, 'give at least the program: ["/usr/local/bin/notify"]'),
  timeoutSeconds: z.number().positive().max(3600).default(30),
  env: z.record(z.string().regex(envName), z.string(), { error: (issue) => (issue.code === "invalid_key" ? envNameMessage : undefined) }).optional(),
  cwd: z.string().min(1).optional(),
  inheritEnv: z.boolean().default(false),
});
export type CommandTargetConfig = z.infer<typeof commandSchema>;

const stderrKeepBytes = 8192;
const stderrShowLines = 5;
const stderrShowChars = 500;
const exTempfail = 75;
/** Resource shortages at spawn time pass; anything else (ENOENT, EACCES) needs a config fix. */
const transientSpawnErrors = new Set(["EAGAIN", "EMFILE", "ENFILE", "ENOMEM"]);

const passedEnv = /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|TERM|DISPLAY|WAYLAND_DISPLAY|XDG_RUNTIME_DIR|DBUS_SESSION_BUS_ADDRESS|SYSTEMROOT|SystemRoot|COMSPEC|PATHEXT|TEMP|TMP)$/;

/** What a digest carries on stdin. */
export interface CommandDigest {
  digest: { count: number; listed: number; items: unknown[]; text: string };
}

/** Field and variable names → MAILBELL_FIELD_AMOUNT style. */
function envKey(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

export function notificationEnv(body: WebhookBody): Record<string, string> {
  const env: Record<string, string> = {
    MAILBELL_RULE: body.rule,
    MAILBELL_ACCOUNT: body.account,
    MAILBELL_MAILBOX: body.mailbox,
    MAILBELL_UID: String(body.uid),
    MAILBELL_UIDVALIDITY: String(body.uidValidity),
    MAILBELL_SUBJECT: body.subject,
    MAILBELL_FROM: body.from,
    MAILBELL_TEXT: body.text,
  };
  if (body.messageId !== null) env.MAILBELL_MESSAGE_ID = body.messageId;
  if (body.date !== null) env.MAILBELL_DATE = body.date;
  if (body.link !== null) env.MAILBELL_LINK = body.link;
  if (body.total) {
    env.MAILBELL_TOTAL = body.total.text;
    env.MAILBELL_TOTAL_AMOUNT = body.total.amount;
    env.MAILBELL_TOTAL_CURRENCY = body.total.currency;
    env.MAILBELL_PERIOD = body.total.period;
  }
  for (const [name, field] of Object.entries(body.fields)) {
    if (!field) continue;
    const key = `MAILBELL_FIELD_${envKey(name)}`;
    env[key] = field.text;
    env[`${key}_RAW`] = field.raw;
    if (field.amount !== undefined) env[`${key}_AMOUNT`] = field.amount;
    if (field.currency !== undefined) env[`${key}_CURRENCY`] = field.currency;
  }
  return env;
}

export class CommandTarget extends ServiceTarget<CommandTargetConfig> {
  constructor(config: CommandTargetConfig) {
    super(commandModule, config);
  }

  render(n: Notification): TargetPayload {
    return { contentType: "application/json; charset=utf-8", body: JSON.stringify(notificationBody(n)) };
  }

  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const items = entries.map((e) => {
      try {
        return JSON.parse(e.body) as unknown;
      } catch {
        return { rule: e.rule, subject: e.subject, text: e.summary };
      }
    });
    const more = total - entries.length;
    const lines = [`${total} mails:`, ...entries.map((e) => `- ${e.summary}`), ...(more > 0 ? [`…and ${more} more`] : [])];
    const digest: CommandDigest = { digest: { count: total, listed: items.length, items, text: lines.join("\n") } };
    return { contentType: "application/json; charset=utf-8", body: JSON.stringify(digest) };
  }

  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    const c = this.config;
    const [program, ...args] = c.command as [string, ...string[]];
    const env = this.#environment(payload);
    const what = `target "${this.name}" (${program})`;
    const timeoutMs = c.timeoutSeconds * 1000;

    const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean; aborted: boolean; stderr: string; spawnError?: NodeJS.ErrnoException }>((resolve) => {
      let stderr = Buffer.alloc(0);
      let timedOut = false;
      let aborted = false;
      let settled = false;
      let killTimer: NodeJS.Timeout | undefined;
      let closeTimer: NodeJS.Timeout | undefined;
      const child = spawn(program, args, {
        shell: false,
        cwd: c.cwd,
        env,
        // Its own process group, so a timeout stops what it started too (a shell script's children).
        detached: process.platform !== "win32",
        stdio: ["pipe", "ignore", "pipe"],
        windowsHide: true,
      });
      const killGroup = (signal: NodeJS.Signals): void => {
        if (child.pid === undefined) return;
        try {
          if (process.platform === "win32") child.kill(signal);
          else process.kill(-child.pid, signal);
        } catch {
          // Already gone.
        }
      };
      const stop = (): void => {
        killGroup("SIGTERM");
        // A program that ignores SIGTERM gets as long again as its timeout, at most 5 s.
        killTimer = setTimeout(() => killGroup("SIGKILL"), Math.min(5000, timeoutMs));
      };
      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: NodeJS.ErrnoException): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(closeTimer);
        // The group may still hold processes that ignored SIGTERM.
        if (timedOut || aborted) killGroup("SIGKILL");
        clearTimeout(killTimer);
        options.signal?.removeEventListener("abort", onAbort);
        resolve({ code, signal, timedOut, aborted, stderr: stderr.toString("utf8"), spawnError });
      };
      const timer = setTimeout(() => {
        timedOut = true;
        stop();
      }, timeoutMs);
      const onAbort = (): void => {
        aborted = true;
        stop();
      };
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener("abort", onAbort, { once: true });

      child.on("error", (err: NodeJS.ErrnoException) => finish(null, null, err));
      child.stderr?.on("data", (chunk: Buffer) => {
        stderr = Buffer.concat([stderr, chunk]);
        if (stderr.length > stderrKeepBytes) stderr = stderr.subarray(stderr.length - stderrKeepBytes);
      });
      child.on("exit", (code, signal) => {
        // A grandchild that left the group can keep stderr open forever; do not wait on it.
        closeTimer = setTimeout(() => {
          child.stderr?.destroy();
          finish(code, signal);
        }, 1000);
      });
      child.on("close", (code: number | null, signal: NodeJS.Signals | null) => finish(code, signal));
      // A program that exits without reading stdin closes the pipe (EPIPE): not our failure.
      child.stdin?.on("error", () => {});
      child.stdin?.end(payload.body);
    });

    if (outcome.spawnError) throw this.#spawnError(outcome.spawnError, program);
    const tail = stderrTail(outcome.stderr);
    const detail = tail ? `; stderr: ${tail}` : "";
    if (outcome.aborted) throw new TargetError(this.name, `${what} stopped: mailbell is shutting down; will retry.`, { retryable: true });
    if (outcome.timedOut) {
      throw new TargetError(this.name, `${what} ran longer than timeoutSeconds (${c.timeoutSeconds}) and was stopped${detail}; will retry. Raise timeoutSeconds if it needs longer.`, { retryable: true });
    }
    if (outcome.code === 0) return;
    if (outcome.code === exTempfail) throw new TargetError(this.name, `${what} exited with 75 (EX_TEMPFAIL: try again later)${detail}; will retry.`, { retryable: true });
    const how = outcome.code !== null ? `exited with ${outcome.code}` : `was killed by ${outcome.signal ?? "a signal"}`;
    throw new TargetError(this.name, `${what} ${how}${detail}. Exit 0 means delivered and 75 means try again later; any other exit is final.`, { retryable: false });
  }

  #environment(payload: TargetPayload): Record<string, string> {
    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && (this.config.inheritEnv || passedEnv.test(k))) base[k] = v;
    let mail: Record<string, string>;
    try {
      const parsed = JSON.parse(payload.body) as WebhookBody | CommandDigest;
      mail = "digest" in parsed ? { MAILBELL_DIGEST_COUNT: String(parsed.digest.count), MAILBELL_TEXT: parsed.digest.text } : notificationEnv(parsed);
    } catch {
      // A row queued by an older mailbell in another shape: stdin still has it.
      mail = {};
    }
    const env = { ...base, ...this.config.env };
    for (const [k, v] of Object.entries(mail)) env[k] = this.fit("envValue", readable(v));
    return env;
  }

  #spawnError(err: NodeJS.ErrnoException, program: string): TargetError {
    const c = this.config;
    const code = err.code ?? "error";
    if (transientSpawnErrors.has(code)) {
      return new TargetError(this.name, `target "${this.name}": cannot start ${program} right now (${code}: ${err.message}); will retry.`, { retryable: true, cause: err });
    }
    if (code === "ENOENT" && c.cwd && !existsSync(c.cwd)) {
      return new TargetError(this.name, `target "${this.name}": cwd "${c.cwd}" does not exist. Set cwd to an existing directory, or leave it out.`, { retryable: false, cause: err });
    }
    if (code === "ENOENT") {
      const where = path.isAbsolute(program) || program.includes("/") ? "no such file" : `not found on PATH (${process.env.PATH ?? "unset"})`;
      return new TargetError(this.name, `target "${this.name}": command[0] "${program}": ${where}. Give the program's absolute path, e.g. command: ["/usr/local/bin/notify"].`, { retryable: false, cause: err });
    }
    if (code === "EACCES") {
      return new TargetError(this.name, `target "${this.name}": command[0] "${program}" is not executable (EACCES). Make it executable (chmod +x) or name the interpreter first: ["/bin/sh", "${program}"].`, { retryable: false, cause: err });
    }
    return new TargetError(this.name, `target "${this.name}": cannot run command[0] "${program}" (${code}: ${err.message}). Check command: in the config.`, { retryable: false, cause: err });
  }
}

/** The last lines of stderr, one line, without terminal control sequences. */
export function stderrTail(stderr: string): string {
  const lines = stderr
    // eslint-disable-next-line no-control-regex -- stripping terminal escapes is the point
    .replace(/\u001b\[[0-9;?]*[A-Za-z]|[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g, "")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .slice(-stderrShowLines)
    .join(" | ");
  return lines.length > stderrShowChars ? `…${lines.slice(lines.length - stderrShowChars + 1)}` : lines;
}

const urlHelp = 'a command URL is command:///absolute/path/to/program (three slashes) with optional ?arg=…&arg=…&timeout=SECONDS; for anything more write the long form: { name, type: command, command: ["/path/to/program", "arg"] }';

/**
 * `command:///usr/local/bin/notify?arg=--quiet&timeout=10`: an absolute path only (no lookup, no
 * shell), fixed arguments as repeated `arg`. Apprise has no equivalent; the long form is clearer.
 */
export const commandModule: TargetModule<CommandTargetConfig> = {
  type: "command",
  schemes: ["command"],
  schema: commandSchema,
  secrets: ["env"],
  // No service limit: this only keeps a burst of mail from forking dozens of processes at once.
  pacing: { perSecond: 5, burst: 5 },
  concurrency: 1,
  // Linux caps one environment string at 128 KiB (MAX_ARG_STRLEN); 32,768 UTF-16 units is at most
  // 96 KiB of UTF-8, leaving room for the name.
  limits: { summary: 300, envValue: 32_768 },
  cut: truncatePlain,
  // stdin is JSON and each MAILBELL_* value is one value: nothing in them is markup.
  escape: (text) => text,
  describe(c) {
    const args = c.command.length > 1 ? ` (+${c.command.length - 1} arg(s))` : "";
    const env = c.env ? `, ${Object.keys(c.env).length} env var(s), values hidden` : "";
    return `command ${c.command[0]}${args}, timeout ${c.timeoutSeconds}s${env}`;
  },
  fromUrl(url) {
    if (url.host) throw new TargetUrlError(`"${url.host}" looks like a host: ${urlHelp}`);
    const program = decodeURIComponent(url.pathname);
    if (!program.startsWith("/") || program === "/") throw new TargetUrlError(`no program path: ${urlHelp}`);
    const args = url.searchParams.getAll("arg");
    const timeout = url.searchParams.get("timeout");
    for (const key of url.searchParams.keys()) if (key !== "arg" && key !== "timeout") throw new TargetUrlError(`unknown option "${key}": ${urlHelp}`);
    if (timeout !== null && !/^\d+(\.\d+)?$/.test(timeout)) throw new TargetUrlError(`timeout=${timeout}: give seconds, e.g. timeout=30`);
    return { command: [program, ...args], ...(timeout !== null ? { timeoutSeconds: Number(timeout) } : {}) };
  },
  create: (config) => new CommandTarget(config),
};
