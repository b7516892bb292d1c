import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ConfigError, MailbellError, UsageError } from "../errors.ts";
import { helpFor, overviewHelp, unknownCommand } from "./help.ts";
import { processIO, type CliIO } from "./io.ts";
// Every other command is imported when it is asked for: `mailbell run` (a daemon, for months)
// then never loads the others (48 modules, cli-progress among them).
import { runCommand } from "./run.ts";
import type { Logger } from "../log.ts";
import { createLogger, logFormats, type LogFormat } from "../pino-logger.ts";

/** Exit code for each error kind; the only place that decides how mailbell ends. */
const exitCodes: Record<MailbellError["code"], number> = {
  USAGE: 2,
  CONFIG: 2,
  INPUT: 2,
  IMAP_AUTH: 3,
  IMAP_CONNECT: 3,
  IMAP_MAILBOX: 3,
  IMAP_SERVER: 3,
  TARGET: 3,
  STATE: 4,
  INTERNAL: 70,
};

export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (err) {
    io.err(failureMessage(err));
    if (err instanceof UsageError) io.err("Run `mailbell help` for usage.");
    return exitCodeOf(err);
  }
}

/** How a failure is put to the user, on stderr or (while `run` logs) as a log record. */
function failureMessage(err: unknown): string {
  if (err instanceof ConfigError) return `mailbell: config error: ${err.message}`;
  if (err instanceof MailbellError) return `mailbell: ${err.message}`;
  return `mailbell: internal error: ${(err as Error).stack ?? String(err)}\nThis is a bug; please report it with the lines above.`;
}

function exitCodeOf(err: unknown): number {
  return err instanceof MailbellError ? exitCodes[err.code] : 70;
}

async function dispatch(argv: readonly string[], io: CliIO): Promise<number> {
  // init has a flag for each of its questions, so it reads its own options.
  if (argv[0] === "init") return (await import("./init.ts")).initCommand(argv.slice(1), io);
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: "string", short: "c", default: "mailbell.yaml" },
        json: { type: "boolean", default: false },
        send: { type: "boolean", default: false },
        "received-at": { type: "string" },
        account: { type: "string" },
        mailbox: { type: "string" },
        "log-level": { type: "string" },
        "log-format": { type: "string" },
        rule: { type: "string" },
        since: { type: "string" },
        csv: { type: "boolean", default: false },
        all: { type: "boolean", default: false },
        "client-id": { type: "string" },
        "client-secret": { type: "string" },
        tenant: { type: "string" },
        flow: { type: "string" },
        "token-url": { type: "string" },
        "authorize-url": { type: "string" },
        "device-url": { type: "string" },
        scope: { type: "string" },
        until: { type: "string" },
        notify: { type: "string" },
        actions: { type: "boolean", default: false },
        search: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", short: "v", default: false },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.version) {
    io.out(version());
    return 0;
  }
  if (command === "help" || values.help || command === undefined) {
    const topic = command === "help" ? rest[0] : command;
    // init's flags come from its presets; it prints them itself.
    if (topic === "init") return (await import("./init.ts")).initCommand(["--help"], io);
    io.out(topic === undefined ? overviewHelp() : helpFor(topic));
    return command === undefined && !values.help ? 2 : 0;
  }
  switch (command) {
    case "run":
      expectNoMore(command, rest);
      return runWithSignals({ config: values.config, logLevel: logLevelOf(values["log-level"]), logFormat: logFormatOf(values["log-format"]), env: io.env });
    case "check":
      expectNoMore(command, rest);
      return (await import("./check.ts")).checkCommand({ config: values.config, send: values.send }, io);
    case "test": {
      if (rest.length !== 1) throw new UsageError(`mailbell test needs exactly one message file, e.g. mailbell test --config mailbell.yaml receipt.eml (got ${rest.length}).`);
      return (await import("./test-mail.ts")).testCommand(
        { config: values.config, file: rest[0]!, json: values.json, receivedAt: values["received-at"], account: values.account, mailbox: values.mailbox },
        io,
      );
    }
    case "auth":
      if (rest.length > 1) throw new UsageError(`mailbell auth takes one provider (got "${rest.join(" ")}").`);
      return (await import("./auth.ts")).authCommand(
        {
          provider: rest[0],
          clientId: values["client-id"],
          // From the environment too, so the secret need not show in `ps`.
          clientSecret: values["client-secret"] ?? io.env.MAILBELL_OAUTH_CLIENT_SECRET,
          tenant: values.tenant,
          flow: values.flow,
          tokenUrl: values["token-url"],
          authorizeUrl: values["authorize-url"],
          deviceUrl: values["device-url"],
          scope: values.scope,
        },
        io,
      );
    case "outbox":
      return (await import("./outbox.ts")).outboxCommand({ config: values.config, args: rest, all: values.all, json: values.json }, io);
    case "unreadable":
      return (await import("./unreadable.ts")).unreadableCommand({ config: values.config, args: rest, all: values.all, json: values.json, account: values.account, mailbox: values.mailbox }, io);
    case "backfill":
      expectNoMore(command, rest);
      return (await import("./backfill.ts")).backfillCommand({ config: values.config, since: values.since, until: values.until, rule: values.rule, notify: values.notify, actions: values.actions, logLevel: values["log-level"], search: values.search }, io);
    case "totals":
      // `mailbell totals` (the listing) is another command's; `totals rebuild` is handled here.
      if (rest[0] === "rebuild") {
        expectNoMore("totals rebuild", rest.slice(1));
        return (await import("./totals-rebuild.ts")).totalsRebuildCommand({ config: values.config, rule: values.rule, since: values.since, logLevel: values["log-level"], search: values.search }, io);
      }
      expectNoMore(command, rest);
      return (await import("./totals.ts")).totalsCommand({ config: values.config, rule: values.rule, since: values.since, json: values.json, csv: values.csv }, io);
    default:
      throw new UsageError(unknownCommand(command));
  }
}

function expectNoMore(command: string, rest: readonly string[]): void {
  if (rest.length > 0) throw new UsageError(`mailbell ${command} takes no arguments besides options (got "${rest.join(" ")}").`);
}

const logLevels = ["fatal", "error", "warn", "info", "debug", "trace"];

function logLevelOf(value: string | undefined): string | undefined {
  if (value === undefined || logLevels.includes(value)) return value;
  throw new UsageError(`--log-level "${value}" is not a log level: use one of ${logLevels.join(", ")} (info is the default).`);
}

function logFormatOf(value: string | undefined): LogFormat | undefined {
  if (value === undefined || (logFormats as readonly string[]).includes(value)) return value as LogFormat | undefined;
  throw new UsageError(`--log-format "${value}" is not a log format: use json (one JSON object per line), pretty (readable lines) or auto (pretty on a terminal, else json).`);
}

/**
 * SIGINT/SIGTERM stop gracefully; a second signal ends the process at once. While it runs, what
 * mailbell says about signals and a failure is a log record, so a JSON log stays JSON only.
 */
async function runWithSignals(options: { config: string; logLevel?: string; logFormat?: LogFormat; env: NodeJS.ProcessEnv }): Promise<number> {
  let logger: Logger | undefined;
  // Until the config is read, the command line alone says how to log (a config error needs a logger too).
  const log = (): Logger => (logger ??= createLogger({ level: options.logLevel ?? "info", format: options.logFormat }));
  const controller = new AbortController();
  const reloads = new EventTarget();
  const onHangup = () => reloads.dispatchEvent(new Event("reload"));
  process.on("SIGHUP", onHangup);
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      log().warn({ signal }, `${signal} again, exiting now`);
      process.exit(130);
    }
    log().info({ signal }, `${signal} received, stopping (send it again to exit at once)`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const restoreWarnings = warningsAsLogRecords(log);
  try {
    return await runCommand({ ...options, signal: controller.signal, onLogger: (l) => (logger = l), reloads });
  } catch (err) {
    log().error({ code: err instanceof MailbellError ? err.code : "INTERNAL", exitCode: exitCodeOf(err) }, failureMessage(err));
    return exitCodeOf(err);
  } finally {
    process.off("SIGHUP", onHangup);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    restoreWarnings();
  }
}

/**
 * Node prints a process warning (a deprecation in a dependency, MaxListenersExceeded, insecure TLS
 * settings) as a plain "(node:PID) Warning: …" line on stderr through its own 'warning' listener.
 * While run runs, that listener is replaced by a log record, so the log stays one format.
 */
function warningsAsLogRecords(log: () => Logger): () => void {
  const printers = process.listeners("warning");
  process.removeAllListeners("warning");
  const onWarning = (warning: Error & { code?: string }) => log().warn({ warning: warning.name, code: warning.code }, warning.message);
  process.on("warning", onWarning);
  return () => {
    process.off("warning", onWarning);
    for (const printer of printers) process.on("warning", printer);
  };
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return `mailbell ${pkg.version}`;
}
