import { Document, isMap, isScalar, isSeq, visit } from "yaml";
import type { ProviderPreset, RulePreset, SignIn } from "./presets.ts";

/**
 * What `mailbell init` writes, from the answers: a commented mailbell.yaml with a `${VAR}` for
 * every secret, and the .env.example that lists them. Pure: the command does the asking and writing.
 */

export const targetKinds = ["slack", "discord", "teams", "ntfy", "telegram", "webhook"] as const;
export type TargetKind = (typeof targetKinds)[number];

/** A variable the config needs, with where to get its value (the comment in .env.example). */
export interface EnvVariable {
  name: string;
  help: string;
}

interface TargetChoice {
  title: string;
  /** The target's keys (after name and type), as YAML lines. */
  keys: string[];
  env: EnvVariable[];
}

export const targetChoices: Record<TargetKind, TargetChoice> = {
  slack: {
    title: "Slack (incoming webhook)",
    keys: ['url: "${SLACK_WEBHOOK_URL}"'],
    env: [{ name: "SLACK_WEBHOOK_URL", help: "Slack incoming-webhook URL (api.slack.com/apps → your app → Incoming Webhooks → Add New Webhook): https://hooks.slack.com/services/…" }],
  },
  discord: {
    title: "Discord (channel webhook)",
    keys: ['url: "${DISCORD_WEBHOOK_URL}"'],
    env: [{ name: "DISCORD_WEBHOOK_URL", help: "Discord webhook URL (channel settings → Integrations → Webhooks): https://discord.com/api/webhooks/…" }],
  },
  teams: {
    title: "Microsoft Teams (Workflows webhook)",
    keys: ['url: "${TEAMS_WEBHOOK_URL}"'],
    env: [{ name: "TEAMS_WEBHOOK_URL", help: 'Teams Workflows webhook URL (channel … → Workflows → "Post to a channel when a webhook request is received")' }],
  },
  ntfy: {
    title: "ntfy (push to your phone)",
    keys: ["server: https://ntfy.sh       # or your own ntfy server", 'topic: "${NTFY_TOPIC}"'],
    env: [{ name: "NTFY_TOPIC", help: "ntfy topic: 1–64 letters, digits, _ or -; on ntfy.sh anyone who knows it can read it, so make it long and random" }],
  },
  telegram: {
    title: "Telegram (bot)",
    keys: ['token: "${TELEGRAM_BOT_TOKEN}"', 'chatId: "${TELEGRAM_CHAT_ID}"'],
    env: [
      { name: "TELEGRAM_BOT_TOKEN", help: "the bot token @BotFather gave you (123456789:AA…)" },
      { name: "TELEGRAM_CHAT_ID", help: "the chat to post in: its numeric id (groups and channels: -100…) or @channelname" },
    ],
  },
  webhook: {
    title: "Generic webhook (JSON POST)",
    keys: ['url: "${WEBHOOK_URL}"'],
    env: [{ name: "WEBHOOK_URL", help: "the http(s) URL that receives each notification as a JSON POST" }],
  },
};

export const signInTitles: Record<SignIn, string> = {
  "app-password": "App password (or the account's password, where the server allows it)",
  oauth2: "OAuth2 (sign in once with `mailbell auth`)",
  "password-command": "A command that prints the password (pass, secret-tool, …)",
};

export interface Server {
  host: string;
  port: number;
  tls: "implicit" | "starttls" | "none";
  /** PEM file of the CA that signed a private server's certificate. */
  ca?: string | undefined;
}

export interface InitAnswers {
  /** undefined: another server, described by `server`. */
  provider: ProviderPreset | undefined;
  server: Server;
  user: string;
  signIn: SignIn;
  /** For password-command: the program and its arguments (run without a shell). */
  passCommand?: string[] | undefined;
  folder: string;
  target: TargetKind;
  rule: RulePreset;
  /** Answers to the rule preset's own questions (sender, keyword), by param name. */
  params: Record<string, string>;
  /** IANA zone that decides where a month starts for totals. */
  timezone: string;
}

export interface InitFiles {
  yaml: string;
  envExample: string;
  env: EnvVariable[];
}

export function initFiles(answers: InitAnswers, configName = "mailbell.yaml"): InitFiles {
  const account = accountLines(answers);
  const target = targetChoices[answers.target];
  const env = [...account.env, ...target.env];
  const rule = presetRule(answers.rule, { authResults: answers.provider?.authResults, params: answers.params, timezone: answers.timezone, notify: [answers.target] });
  const yaml = [
    `# mailbell config written by \`mailbell init\`. Every key is explained in the README ("A complete config").`,
    "# Secrets are ${VAR}s, read from the environment or from .env beside this file (chmod 600);",
    "# .env.example lists them. After a change: mailbell check --config " + configName,
    "state: ./mailbell.db            # checkpoints and totals, beside this file",
    "accounts:",
    `  - name: ${answers.provider?.name ?? "mail"}`,
    ...account.lines.map((l) => `    ${l}`),
    "targets:",
    `  # ${target.title}`,
    `  - name: ${answers.target}`,
    `    type: ${answers.target}`,
    ...target.keys.map((l) => `    ${l}`),
    "rules:",
    `  # ${answers.rule.title}.${verifyComment(rule)}`,
    indent(ruleYaml(rule), "  "),
  ].join("\n");
  return { yaml: `${yaml.trimEnd()}\n`, envExample: envExampleText(env, configName), env };
}

function accountLines(a: InitAnswers): { lines: string[]; env: EnvVariable[] } {
  const server = [`host: ${a.server.host}`, `port: ${a.server.port}`, `tls: ${a.server.tls}`, ...(a.server.ca ? [`ca: ${JSON.stringify(a.server.ca)}`] : [])];
  const user = `user: ${JSON.stringify(a.user)}`;
  const mailboxes = `mailboxes: [${JSON.stringify(a.folder)}]`;
  if (a.signIn === "password-command") {
    return { lines: [...server, user, "# Run at each login without a shell; the first line it prints is the password.", `passCommand: ${JSON.stringify(a.passCommand ?? [])}`, mailboxes], env: [] };
  }
  if (a.signIn === "oauth2") {
    const provider = a.provider?.oauth2 ?? "google";
    const secret = provider === "google";
    const auth = `mailbell auth ${provider} --client-id "$OAUTH_CLIENT_ID"${secret ? ' --client-secret "$OAUTH_CLIENT_SECRET"' : ""}`;
    return {
      lines: [
        ...server,
        user,
        `# OAuth2: register an app of your own, then \`${auth}\` prints the refresh token.`,
        "oauth2:",
        `  provider: ${provider}`,
        "  clientId: ${OAUTH_CLIENT_ID}",
        ...(secret ? ["  clientSecret: ${OAUTH_CLIENT_SECRET}"] : []),
        "  refreshToken: ${MAILBELL_REFRESH_TOKEN}",
        mailboxes,
      ],
      env: [
        { name: "OAUTH_CLIENT_ID", help: provider === "google" ? 'client id of your Google Cloud OAuth client ("Desktop app")' : 'application (client) id of your Microsoft Entra app registration ("Allow public client flows" on)' },
        ...(secret ? [{ name: "OAUTH_CLIENT_SECRET", help: "that OAuth client's secret" }] : []),
        { name: "MAILBELL_REFRESH_TOKEN", help: `the refresh token \`${auth}\` prints` },
      ],
    };
  }
  const where = a.provider?.appPasswordUrl ? `An app password: ${a.provider.appPasswordUrl}` : "The account's password (an app password, where the server offers them)";
  return {
    lines: [...server, user, `# ${where}`, "pass: ${IMAP_PASSWORD}", mailboxes],
    env: [{ name: "IMAP_PASSWORD", help: `${where.replace(/^An/, "an").replace(/^The/, "the")}, for ${a.user}` }],
  };
}

/**
 * The preset's rule as the config has it: named, notifying, with the answers to its questions, and
 * with verify: when the preset names a sender's domain — the provider's own verdict where it is
 * trustworthy (Gmail, Microsoft 365), else mailbell's DKIM check of that domain.
 */
export function presetRule(preset: RulePreset, o: { authResults: "gmail" | "microsoft" | undefined; params: Record<string, string>; timezone: string; notify: string[] }): PresetRule {
  const rule = structuredClone(preset.rule) as Record<string, unknown>;
  for (const param of preset.params) setAt(rule, param.set, o.params[param.name] ?? "");
  const verify = preset.dkim === undefined ? undefined : o.authResults ? { authResults: o.authResults } : { dkim: preset.dkim };
  const total = rule.total === undefined ? undefined : { ...(rule.total as object), timezone: o.timezone };
  const { match, extract, template, ...rest } = rule;
  const ordered = { name: preset.name, match, ...(verify ? { verify } : {}), extract, ...rest, ...(total ? { total } : {}), notify: o.notify, template };
  return Object.fromEntries(Object.entries(ordered).filter(([, v]) => v !== undefined)) as PresetRule;
}

function setAt(target: Record<string, unknown>, keys: readonly (string | number)[], value: string): void {
  let node: Record<string | number, unknown> = target;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string | number, unknown>;
  }
  node[keys.at(-1)!] = value;
}

/** A rule as written in the config (before the schema fills in defaults). */
export type PresetRule = Record<string, unknown> & { name: string; verify?: { authResults?: string; dkim?: string | string[] } };

function verifyComment(rule: PresetRule): string {
  const verify = rule.verify;
  if (!verify) return "";
  if (verify.authResults) return ` Only mail your provider found to really come from the sender is counted (verify).`;
  return ` Only mail with a valid DKIM signature of ${[verify.dkim].flat().join(", ")} is counted (verify).`;
}

/** Block style for the rule, flow style ({ … }, [ … ]) for its innermost maps and lists, as the README writes rules. */
function ruleYaml(rule: PresetRule): string {
  const doc = new Document([rule]);
  visit(doc, {
    Collection(_key, node) {
      const items: unknown[] = isMap(node) ? node.items.map((pair) => pair.value) : isSeq(node) ? node.items : [];
      if (items.every((item) => isScalar(item))) node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0 });
}

function indent(text: string, by: string): string {
  return text
    .trimEnd()
    .split("\n")
    .map((line) => `${by}${line}`)
    .join("\n");
}

function envExampleText(env: readonly EnvVariable[], configName: string): string {
  return [
    `# The secrets ${configName} needs. Copy this file to .env beside it, fill in the values, and`,
    "# make it private: chmod 600 .env (mailbell refuses a .env others can read). Variables already",
    "# set in the environment win over the file.",
    "# Keep the quotes: write each value between them as it is. Outside quotes a # starts a comment",
    "# and cuts the value there; a value holding ' goes in double quotes instead.",
    ...env.flatMap((v) => ["", `# ${v.help}`, `${v.name}=''`]),
    "",
  ].join("\n");
}
