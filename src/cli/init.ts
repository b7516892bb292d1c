import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";
import { tlsModes } from "../imap/config.ts";
import { initFiles, signInTitles, targetChoices, targetKinds, type InitAnswers, type Server, type TargetKind } from "../init/config-text.ts";
import { loadPresets, signInMethods, type Presets, type SignIn } from "../init/presets.ts";
import { checkCommand } from "./check.ts";
import type { CliIO } from "./io.ts";
import { processTerminal, terminalAsker, type Asker, type Terminal } from "./prompt.ts";

export const initUsage = `Usage: mailbell init [--dir DIR] [--force] [--no-check] [answers as flags]

Asks, one question at a time, for what a first config needs, writes DIR/mailbell.yaml (with a
\${VAR} for every secret) and DIR/.env.example, then runs mailbell check on it. Every question
has a flag, which skips the question:
  --provider gmail|microsoft365|icloud|fastmail|yahoo|other
  --host HOST --port N --tls implicit|starttls|none [--ca PEM-FILE]   (for --provider other)
  --user ADDRESS                 the IMAP user name, usually your address
  --auth app-password|oauth2|password-command   (default: the provider's first)
  --pass-command "pass show mail/me"            (for --auth password-command; run without a shell)
  --folder NAME                  the mailbox to watch (default INBOX)
  --target slack|discord|teams|ntfy|telegram|webhook
  --rule google-play|apple|amazon|from-sender|subject-keyword
  --sender ADDRESS|@DOMAIN       (for --rule from-sender)
  --keyword WORD|/REGEX/         (for --rule subject-keyword)
  --timezone ZONE                where a month starts for totals (default: this machine's)
Without a terminal, --provider, --user, --target and --rule are needed (and --host for other).
--force replaces existing files; --no-check skips the check.`;

type Flags = Record<string, string | boolean | undefined>;

/** `mailbell init`: a first config from a few answers, asked on a terminal or given as flags. */
export async function initCommand(argv: readonly string[], io: CliIO, terminal: Terminal = processTerminal()): Promise<number> {
  const presets = await loadPresets();
  const flags = parseInitArgs(argv, presets);
  if (flags.help) {
    io.out(initUsage);
    return 0;
  }
  const dir = path.resolve(typeof flags.dir === "string" ? flags.dir : ".");
  const configFile = path.join(dir, "mailbell.yaml");
  const exampleFile = path.join(dir, ".env.example");
  // Refused before the first question, so no one answers them all for nothing.
  for (const file of [configFile, exampleFile]) {
    if (existsSync(file) && !flags.force) throw new UsageError(`${file} already exists, and mailbell init does not overwrite it. Pass --force to replace it, or --dir for another folder.`);
  }
  const asker = terminal.interactive ? terminalAsker(terminal) : undefined;
  let answers: InitAnswers;
  try {
    answers = await collectAnswers(presets, flags, asker);
  } finally {
    asker?.close();
  }
  const files = initFiles(answers);
  await mkdir(dir, { recursive: true });
  const mode = flags.force ? "w" : "wx";
  await writeFile(configFile, files.yaml, { flag: mode });
  await writeFile(exampleFile, files.envExample, { flag: mode });
  io.out(`\nWrote ${configFile} and ${exampleFile}.`);
  if (files.env.length > 0) {
    io.out(`Next: set ${files.env.map((v) => v.name).join(", ")}: export them, or copy .env.example to .env beside the config, fill it in, and chmod 600 it.`);
  }
  if (flags["no-check"]) return 0;
  io.out(`Checking it (mailbell check --config ${configFile}):`);
  return checkCommand({ config: configFile }, io);
}

function parseInitArgs(argv: readonly string[], presets: Presets): Flags {
  const text = { type: "string" } as const;
  const params = Object.fromEntries(presets.rules.flatMap((r) => r.params.map((p) => [p.name, text] as const)));
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        ...params,
        dir: text,
        provider: text,
        host: text,
        port: text,
        tls: text,
        ca: text,
        user: text,
        auth: text,
        "pass-command": text,
        folder: text,
        target: text,
        rule: text,
        timezone: text,
        force: { type: "boolean" },
        "no-check": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (positionals.length > 0) throw new UsageError(`mailbell init takes no arguments besides options (got "${positionals.join(" ")}"); the folder goes in --dir.`);
    return values as Flags;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${(err as Error).message} (mailbell init --help lists its options)`);
  }
}

/**
 * One answer per question: the flag when given (checked), else the terminal's answer, else the
 * default. Without a terminal, every question without a default must have its flag; those
 * missing are named together.
 */
async function collectAnswers(presets: Presets, flags: Flags, asker: Asker | undefined): Promise<InitAnswers> {
  const missing: string[] = [];
  // `needed`: without a terminal the flag must be given even though the terminal offers a default.
  const answer: Answer = async <T extends string>(flag: string, valid: readonly { value: T; title: string }[] | undefined, question: string, preset?: T, needed = false): Promise<T> => {
    const given = flags[flag];
    if (typeof given === "string") {
      if (valid && !valid.some((c) => c.value === given)) throw new UsageError(`--${flag} ${given} is not one of: ${valid.map((c) => c.value).join(", ")}.`);
      return given as T;
    }
    if (asker) return valid ? asker.choose(question, valid, preset ?? valid[0]!.value) : ((await asker.text(question, preset)) as T);
    if (preset !== undefined && !needed) return preset;
    missing.push(`--${flag}`);
    return (valid?.[0]?.value ?? "") as T;
  };
  const providerChoices = [...presets.providers.map((p) => ({ value: p.name, title: p.title })), { value: "other", title: "Other (host, port, TLS)" }];
  const providerName = await answer("provider", providerChoices, "Which mail provider?", providerChoices[0]!.value, true);
  const provider = presets.providers.find((p) => p.name === providerName);
  const server: Server = provider ? { host: provider.host, port: provider.port, tls: provider.tls } : await askServer(answer);
  if (typeof flags.ca === "string") server.ca = path.resolve(flags.ca);
  const user = await answer("user", undefined, "Your address (the IMAP user name)");
  const signInChoices = (provider?.signIn ?? signInMethods.filter((m) => m !== "oauth2")).map((m) => ({ value: m, title: signInTitles[m] }));
  const signIn = await answer<SignIn>("auth", signInChoices, "How does mailbell sign in?", signInChoices[0]!.value);
  const passCommand = signIn === "password-command" ? (await answer("pass-command", undefined, "Command that prints the password (run without a shell)", `pass show mail/${user}`)).split(/\s+/) : undefined;
  const folder = await answer("folder", undefined, "Which folder to watch", "INBOX");
  const target = await answer<TargetKind>("target", targetKinds.map((t) => ({ value: t, title: targetChoices[t].title })), "Where should notifications go?", "slack", true);
  const ruleName = await answer("rule", presets.rules.map((r) => ({ value: r.name, title: r.title })), "A first rule to start from:", presets.rules[0]!.name, true);
  const rule = presets.rules.find((r) => r.name === ruleName)!;
  const params: Record<string, string> = {};
  for (const param of rule.params) params[param.name] = await answer(param.name, undefined, param.question);
  if (missing.length > 0) {
    throw new UsageError(`mailbell init has no terminal to ask on, and these answers are missing: ${missing.join(", ")}. Give them as flags (mailbell init --help), or run it in a terminal.`);
  }
  const timezone = typeof flags.timezone === "string" ? flags.timezone : Intl.DateTimeFormat().resolvedOptions().timeZone;
  return { provider, server, user, signIn, passCommand, folder, target, rule, params, timezone };
}

type Answer = <T extends string>(flag: string, valid: readonly { value: T; title: string }[] | undefined, question: string, preset?: T, needed?: boolean) => Promise<T>;

async function askServer(answer: Answer): Promise<Server> {
  const host = await answer("host", undefined, "IMAP server host name");
  const tls = await answer("tls", tlsModes.map((m) => ({ value: m, title: { implicit: "TLS from the first byte (usually port 993)", starttls: "STARTTLS (usually port 143)", none: "No TLS (only on a trusted network)" }[m] })), "How does the server use TLS?", "implicit");
  const portText = await answer("port", undefined, "Port", tls === "implicit" ? "993" : "143");
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--port ${portText} is not a port number; use 1–65535 (993 for TLS, 143 for STARTTLS).`);
  return { host, port, tls };
}
