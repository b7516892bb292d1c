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

/** The help text; the provider and rule lists come from the presets. */
export const initUsage = (presets: Presets): string => `Usage: mailbell init [--dir DIR] [--force] [--no-check] [answers as flags]

Asks, one question at a time, for what a first config needs, writes DIR/mailbell.yaml (with a
\${VAR} for every secret) and DIR/.env.example, then runs mailbell check on it. Every question
has a flag, which skips the question:
  --provider ${[...presets.providers.map((p) => p.name), "other"].join("|")}
  --host HOST --port N --tls implicit|starttls|none [--ca PEM-FILE]   (for --provider other)
  --user ADDRESS                 the IMAP user name, usually your address
  --auth app-password|oauth2|password-command   (default: the provider's first)
  --pass-command "pass show mail/me"            (for --auth password-command; run without a shell)
  --folder NAME                  the mailbox to watch (default INBOX)
  --target ${targetKinds.join("|")}
  --rule ${presets.rules.map((r) => r.name).join("|")}
${presets.rules.flatMap((r) => r.params.map((p) => `  ${`--${p.name} ANSWER`.padEnd(30)} (for --rule ${r.name}) ${p.question}`)).join("\n")}
  --timezone ZONE                where a month starts for totals (default: this machine's)
Without a terminal, --provider, --user, --target and --rule are needed (and --host for other,
and the rule's own flag above).
--force replaces existing files; --no-check skips the check.`;

type Flags = Record<string, string | boolean | undefined>;

/** `mailbell init`: a first config from a few answers, asked on a terminal or given as flags. */
export async function initCommand(argv: readonly string[], io: CliIO, terminal: Terminal = processTerminal()): Promise<number> {
  const presets = await loadPresets();
  const flags = parseInitArgs(argv, presets);
  if (flags.help) {
    io.out(initUsage(presets));
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

interface Question<T extends string> {
  flag: string;
  question: string;
  /** Numbered choices; without them the answer is free text. */
  choices?: readonly { value: T; title: string }[];
  /** Enter takes it on a terminal (default: the first choice); without a terminal it is used when the flag is left out… */
  preset?: T;
  /** …unless needed: then the flag must be given (the choice is the user's, not ours). */
  needed?: boolean;
  /** What is wrong with a free-text answer, if anything: asked again on a terminal, refused as a flag. */
  problem?: (answer: string) => string | undefined;
}

type Answer = <T extends string>(q: Question<T>) => Promise<T>;

/**
 * One answer per question: the flag when given (checked), else the terminal's answer, else the
 * default. Without a terminal, the flags missing are named together.
 */
async function collectAnswers(presets: Presets, flags: Flags, asker: Asker | undefined): Promise<InitAnswers> {
  const missing: string[] = [];
  const answer: Answer = async <T extends string>(q: Question<T>): Promise<T> => {
    const given = flags[q.flag];
    if (typeof given === "string") {
      if (q.choices && !q.choices.some((c) => c.value === given)) throw new UsageError(`--${q.flag} ${given} is not one of: ${q.choices.map((c) => c.value).join(", ")}.`);
      const problem = q.problem?.(given);
      if (problem) throw new UsageError(`--${q.flag} ${given}: ${problem}`);
      return given as T;
    }
    // A list's first choice is its default.
    const preset = q.preset ?? q.choices?.[0]?.value;
    if (asker && q.choices) return asker.choose(q.question, q.choices, preset!);
    if (asker) return (await asker.text(q.question, preset, q.problem)) as T;
    if (preset !== undefined && !q.needed) return preset;
    missing.push(`--${q.flag}`);
    return (preset ?? "") as T;
  };
  const providerChoices = [...presets.providers.map((p) => ({ value: p.name, title: p.title })), { value: "other", title: "Other (host, port, TLS)" }];
  const providerName = await answer({ flag: "provider", question: "Which mail provider?", choices: providerChoices, needed: true });
  const provider = presets.providers.find((p) => p.name === providerName);
  const server: Server = provider ? { host: provider.host, port: provider.port, tls: provider.tls } : await askServer(answer);
  if (typeof flags.ca === "string") server.ca = path.resolve(flags.ca);
  const user = await answer({ flag: "user", question: "Your address (the IMAP user name)" });
  const signInChoices = (provider?.signIn ?? signInMethods.filter((m) => m !== "oauth2")).map((m) => ({ value: m, title: signInTitles[m] }));
  const signIn = await answer<SignIn>({ flag: "auth", question: "How does mailbell sign in?", choices: signInChoices });
  const passCommand = signIn === "password-command" ? (await answer({ flag: "pass-command", question: "Command that prints the password (run without a shell)", preset: `pass show mail/${user}` })).split(/\s+/) : undefined;
  const folder = await answer({ flag: "folder", question: "Which folder to watch", preset: "INBOX" });
  const target = await answer<TargetKind>({ flag: "target", question: "Where should notifications go?", choices: targetKinds.map((t) => ({ value: t, title: targetChoices[t].title })), needed: true });
  const ruleName = await answer({ flag: "rule", question: "A first rule to start from:", choices: presets.rules.map((r) => ({ value: r.name, title: r.title })), needed: true });
  const rule = presets.rules.find((r) => r.name === ruleName)!;
  const params: Record<string, string> = {};
  for (const param of rule.params) params[param.name] = await answer({ flag: param.name, question: param.question });
  if (missing.length > 0) {
    throw new UsageError(`mailbell init has no terminal to ask on, and these answers are missing: ${missing.join(", ")}. Give them as flags (mailbell init --help), or run it in a terminal.`);
  }
  // Not asked: this machine's zone is right for most, and the flag or the file changes it.
  const timezone = typeof flags.timezone === "string" ? flags.timezone : Intl.DateTimeFormat().resolvedOptions().timeZone;
  const zoneProblem = timeZoneProblem(timezone);
  if (zoneProblem) throw new UsageError(`--timezone ${timezone}: ${zoneProblem}`);
  return { provider, server, user, signIn, passCommand, folder, target, rule, params, timezone };
}

async function askServer(answer: Answer): Promise<Server> {
  const host = await answer({ flag: "host", question: "IMAP server host name", problem: (h) => (/^[A-Za-z0-9.:[\]-]+$/.test(h) ? undefined : "write a host name or IP address, such as imap.example.org") });
  const modes = { implicit: "TLS from the first byte (usually port 993)", starttls: "STARTTLS (usually port 143)", none: "No TLS (only on a trusted network)" };
  const tls = await answer({ flag: "tls", question: "How does the server use TLS?", choices: tlsModes.map((m) => ({ value: m, title: modes[m] })) });
  const port = await answer({ flag: "port", question: "Port", preset: tls === "implicit" ? "993" : "143", problem: portProblem });
  return { host, port: Number(port), tls };
}

function portProblem(text: string): string | undefined {
  const port = Number(text);
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? undefined : "not a port number; use 1–65535 (993 for TLS, 143 for STARTTLS).";
}

function timeZoneProblem(zone: string): string | undefined {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return undefined;
  } catch {
    return "not a time zone; use an IANA name such as Europe/Berlin, Asia/Tokyo or UTC.";
  }
}
