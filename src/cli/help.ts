import { UsageError } from "../errors.ts";

/**
 * Every command's help as data, in one place: `mailbell help`, `mailbell help COMMAND`,
 * `mailbell COMMAND --help` and the unknown-command error are all printed from this table.
 */
export interface CommandHelp {
  name: string;
  /** One line for the overview. */
  summary: string;
  /** Synopsis lines, without the leading "mailbell ". */
  usage: readonly string[];
  /** [flag, meaning]; the global options (--config, --log-level…) are listed once, in the overview. */
  options: readonly (readonly [string, string])[];
  examples: readonly string[];
  /** Paragraphs after the options: what the command does that a user must know. */
  notes?: readonly string[];
}

export const commandHelp: readonly CommandHelp[] = [
  {
    name: "run",
    summary: "watch the mailboxes and notify, until SIGINT/SIGTERM",
    usage: ["run --config FILE [--log-level LVL] [--log-format json|pretty]"],
    options: [
      ["--log-level LVL", "fatal|error|warn|info|debug|trace (overrides log.level)"],
      ["--log-format FMT", "json: one JSON object per line; pretty: readable lines; default auto: pretty on a terminal, else json (overrides log.format)"],
    ],
    examples: ["mailbell run --config mailbell.yaml", "mailbell run -c /etc/mailbell/mailbell.yaml --log-format json"],
    notes: [
      "Logs go to stderr. SIGTERM or SIGINT stops: it finishes the mail in hand and sends what is queued for up to outbox.drainSeconds; a second signal exits at once (code 130).",
    ],
  },
  {
    name: "check",
    summary: "validate the config, log in to every account, check every mailbox",
    usage: ["check --config FILE [--send]"],
    options: [["--send", "also post one sample notification to each target and show each service's answer"]],
    examples: ["mailbell check --config mailbell.yaml", "mailbell check --config mailbell.yaml --send"],
    notes: ["Exit 0 when everything answered, 2 for a config problem (an empty config included), 3 when a login, mailbox or (with --send) a target failed, 4 when the state file cannot be written. Without --send, targets are not contacted."],
  },
  {
    name: "test",
    summary: "run the rules on a saved message and show what would be sent (sends nothing)",
    usage: ["test --config FILE MAIL.eml [--json] [--received-at ISO-DATE] [--account NAME] [--mailbox NAME]"],
    options: [
      ["--json", "one JSON object per rule"],
      ["--received-at ISO-DATE", "when the mail arrived, for its counting period (default: its Date: header)"],
      ["--account NAME, --mailbox NAME", "where the mail is, for rules that match on them"],
    ],
    examples: ["mailbell test --config mailbell.yaml receipt.eml", "mailbell test -c mailbell.yaml receipt.eml --json"],
    notes: ["Needs no password: unset ${VAR}s are replaced by placeholders, as nothing is sent."],
  },
  {
    name: "outbox",
    summary: "list notifications waiting to be sent and those that gave up; retry dead ones",
    usage: ["outbox --config FILE [--json]", "outbox retry ID|--all --config FILE"],
    options: [
      ["--json", "one JSON object per row"],
      ["--all", "with retry: every dead row"],
    ],
    examples: ["mailbell outbox --config mailbell.yaml", "mailbell outbox retry --all --config mailbell.yaml"],
    notes: ["A running mailbell picks re-queued rows up by itself."],
  },
  {
    name: "unreadable",
    summary: "list mail set aside because it could not be read; have it read again",
    usage: ["unreadable --config FILE [--json]", "unreadable retry UID|--all --config FILE [--account NAME] [--mailbox NAME]"],
    options: [
      ["--json", "one JSON object per mail"],
      ["--all", "with retry: every mail set aside"],
      ["--account NAME, --mailbox NAME", "which mailbox the UID is in"],
    ],
    examples: ["mailbell unreadable --config mailbell.yaml", "mailbell unreadable retry 4711 --account personal --mailbox INBOX"],
  },
  {
    name: "auth",
    summary: "sign in once with OAuth2 and print the refresh token",
    usage: [
      "auth google|microsoft|custom --client-id ID [--client-secret S] [--tenant T] [--flow device|redirect]",
      "     [--token-url U] [--authorize-url U] [--device-url U] [--scope S]",
    ],
    options: [
      ["--client-id ID", "the OAuth2 app's client id"],
      ["--client-secret S", "or the environment variable MAILBELL_OAUTH_CLIENT_SECRET (not shown in ps)"],
      ["--tenant T", "Microsoft: the tenant (default common)"],
      ["--flow device|redirect", "device code, or a browser redirect to 127.0.0.1"],
      ["--token-url, --authorize-url, --device-url, --scope", "for custom providers"],
    ],
    examples: ["MAILBELL_OAUTH_CLIENT_SECRET=… mailbell auth google --client-id 1234.apps.googleusercontent.com", "mailbell auth microsoft --client-id 00000000-0000-0000-0000-000000000000"],
  },
  {
    name: "init",
    summary: "write a first mailbell.yaml by answering a few questions",
    usage: ["init [--dir DIR] [--force] [--no-check] [a flag for every question, to run without a terminal]"],
    options: [
      ["--dir DIR", "where to write mailbell.yaml and .env.example (default: here)"],
      ["--force", "overwrite files that exist"],
      ["--no-check", "do not run check afterwards"],
    ],
    examples: ["mailbell init", "mailbell init --provider gmail --user me@gmail.com --target slack --rule google-play"],
    notes: ["Writes a commented config with ${VAR}s for every secret and a .env.example, then runs check."],
  },
  {
    name: "backfill",
    summary: "read mail already in the mailboxes and add it to the totals",
    usage: ["backfill --config FILE --since DATE [--until DATE] [--rule NAME] [--notify none|digest] [--actions] [--search conditions|dates]"],
    options: [
      ["--since DATE, --until DATE", "the range of arrival days (YYYY-MM-DD)"],
      ["--rule NAME", "only this rule"],
      ["--notify none|digest", "default none: count without posting"],
      ["--actions", "also do the rules' then: actions"],
      ["--search conditions|dates", "default conditions: ask the server for the rules' from/subject too; dates: by date alone"],
    ],
    examples: ["mailbell backfill --config mailbell.yaml --since 2026-11-01"],
    notes: ["A mail is counted once however often it is read: backfill can be interrupted and run again."],
  },
  {
    name: "totals",
    summary: "list what was counted, per rule, period and currency; recount a rule",
    usage: ["totals --config FILE [--rule NAME] [--since DATE] [--json|--csv]", "totals rebuild --config FILE --rule NAME [--since DATE] [--search conditions|dates]"],
    options: [
      ["--rule NAME", "only this rule (a rule no longer in the config keeps its totals under its old name)"],
      ["--since DATE", "periods that end on or after a year (2026), month (2026-11) or day (2026-11-01)"],
      ["--json", "one JSON array of {rule, period, currency, amount, mails}"],
      ["--csv", "RFC 4180 with a header row"],
    ],
    examples: ["mailbell totals --config mailbell.yaml", "mailbell totals --rule play-receipts --since 2026-01 --csv > totals.csv", "mailbell totals rebuild --rule play-receipts --since 2026-11"],
    notes: ["Amounts are exact decimal strings (\"3200\", \"15.14\"); mails is how many mails were counted into the row. rebuild recounts the rule from the mail on the server, replacing its totals in one transaction."],
  },
];

export const commandNames: readonly string[] = commandHelp.map((c) => c.name);

const globalOptions: readonly (readonly [string, string])[] = [
  ["-c, --config FILE", "the YAML config (default: mailbell.yaml)"],
  ["    --log-level LVL", "run's log: fatal|error|warn|info|debug|trace (overrides log.level)"],
  ["    --log-format FMT", "run's log: json|pretty|auto (overrides log.format)"],
  ["-h, --help", "this text; mailbell COMMAND --help for one command"],
  ["-v, --version", "print the version"],
];

const exitCodesText = "Exit codes: 0 ok, 2 bad command line or config, 3 a check failed (login, mailbox),\n4 state database problem, 70 internal error.";

/** `mailbell help`: every command in a line, the global options, the exit codes. */
export function overviewHelp(): string {
  const width = Math.max(...commandNames.map((n) => n.length));
  return [
    "Usage: mailbell <command> [options]",
    "",
    "Commands:",
    ...commandHelp.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Options:",
    ...table(globalOptions),
    "",
    "Run `mailbell help COMMAND` (or `mailbell COMMAND --help`) for a command's options and examples.",
    "",
    exitCodesText,
  ].join("\n");
}

/** `mailbell help COMMAND`; an unknown command is a UsageError that lists the commands there are. */
export function helpFor(name: string): string {
  if (name === "help") return overviewHelp();
  const help = commandHelp.find((c) => c.name === name);
  if (!help) throw new UsageError(unknownCommand(name));
  return [
    `mailbell ${help.name}: ${help.summary}`,
    "",
    "Usage:",
    ...help.usage.map((u) => `  mailbell ${u}`),
    ...(help.options.length > 0 ? ["", "Options:", ...table(help.options)] : []),
    ...(help.notes ?? []).flatMap((n) => ["", ...wrap(n, 100)]),
    "",
    "Examples:",
    ...help.examples.map((e) => `  ${e}`),
    "",
    "Global options: -c/--config FILE, --log-level, --log-format, -h/--help (see mailbell help).",
  ].join("\n");
}

export function unknownCommand(name: string): string {
  return `unknown command "${name}". Commands: ${commandNames.join(", ")}. Run \`mailbell help COMMAND\` for one.`;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const word of text.split(" ")) {
    const last = lines.at(-1);
    if (last !== undefined && last.length + 1 + word.length <= width) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines;
}

function table(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`);
}
