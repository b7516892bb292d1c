import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ConfigError, MailbellError, UsageError } from "../errors.ts";
import { authCommand } from "./auth.ts";
import { checkCommand } from "./check.ts";
import { processIO, type CliIO } from "./io.ts";
import { outboxCommand } from "./outbox.ts";
import { unreadableCommand } from "./unreadable.ts";
import { runCommand } from "./run.ts";
import { testCommand } from "./test-mail.ts";

const usage = `Usage: mailbell <command> [options]

Commands:
  run   --config FILE              watch the mailboxes and notify (until SIGINT/SIGTERM)
  check --config FILE              validate the config, log in to every account, check every mailbox
        [--send]                   and post one sample notification to each target
  test  --config FILE MAIL.eml     run the rules on a saved message and show what would be sent
        [--json] [--received-at ISO-DATE] [--account NAME] [--mailbox NAME]
  outbox --config FILE [--json]   list notifications waiting to be sent and those that gave up
  outbox retry ID|--all           put dead notifications back in the queue
  unreadable --config FILE [--json]
                                   list mail set aside because it could not be read
  unreadable retry UID|--all      ask the running mailbell to read it again
        [--account NAME] [--mailbox NAME]
  auth google|microsoft|custom    sign in once with OAuth2 and print the refresh token
        --client-id ID [--client-secret S] [--tenant T] [--flow device|redirect]
        [--token-url U] [--authorize-url U] [--device-url U] [--scope S]

Options:
  -c, --config FILE     the YAML config (default: mailbell.yaml)
      --log-level LVL   fatal|error|warn|info|debug|trace (overrides log.level)
  -h, --help            this text
  -v, --version         print the version

Exit codes: 0 ok, 2 bad command line or config, 3 a check failed (login, mailbox),
4 state database problem, 70 internal error.`;

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
    if (err instanceof MailbellError) {
      io.err(err instanceof ConfigError ? `mailbell: config error: ${err.message}` : `mailbell: ${err.message}`);
      if (err instanceof UsageError) io.err("Run `mailbell --help` for usage.");
      return exitCodes[err.code];
    }
    io.err(`mailbell: internal error: ${(err as Error).stack ?? String(err)}\nThis is a bug; please report it with the lines above.`);
    return 70;
  }
}

async function dispatch(argv: readonly string[], io: CliIO): Promise<number> {
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
        all: { type: "boolean", default: false },
        "client-id": { type: "string" },
        "client-secret": { type: "string" },
        tenant: { type: "string" },
        flow: { type: "string" },
        "token-url": { type: "string" },
        "authorize-url": { type: "string" },
        "device-url": { type: "string" },
        scope: { type: "string" },
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
  if (values.help || command === undefined || command === "help") {
    io.out(usage);
    return command === undefined && !values.help ? 2 : 0;
  }
  switch (command) {
    case "run":
      expectNoMore(command, rest);
      return runWithSignals(values.config, values["log-level"], io);
    case "check":
      expectNoMore(command, rest);
      return checkCommand({ config: values.config, send: values.send }, io);
    case "test": {
      if (rest.length !== 1) throw new UsageError(`mailbell test needs exactly one message file, e.g. mailbell test --config mailbell.yaml receipt.eml (got ${rest.length}).`);
      return testCommand(
        { config: values.config, file: rest[0]!, json: values.json, receivedAt: values["received-at"], account: values.account, mailbox: values.mailbox },
        io,
      );
    }
    case "auth":
      if (rest.length > 1) throw new UsageError(`mailbell auth takes one provider (got "${rest.join(" ")}").`);
      return authCommand(
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
      return outboxCommand({ config: values.config, args: rest, all: values.all, json: values.json }, io);
    case "unreadable":
      return unreadableCommand({ config: values.config, args: rest, all: values.all, json: values.json, account: values.account, mailbox: values.mailbox }, io);
    default:
      throw new UsageError(`unknown command "${command}". Commands: run, check, test, outbox, unreadable, auth.`);
  }
}

function expectNoMore(command: string, rest: readonly string[]): void {
  if (rest.length > 0) throw new UsageError(`mailbell ${command} takes no arguments besides options (got "${rest.join(" ")}").`);
}

/** SIGINT/SIGTERM stop gracefully; a second signal ends the process at once. */
async function runWithSignals(config: string, logLevel: string | undefined, io: CliIO): Promise<number> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      io.err(`mailbell: ${signal} again, exiting now`);
      process.exit(130);
    }
    io.err(`mailbell: ${signal} received, stopping (send it again to exit at once)`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await runCommand({ config, logLevel, signal: controller.signal, env: io.env });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return `mailbell ${pkg.version}`;
}
