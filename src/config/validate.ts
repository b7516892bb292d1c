import { ConfigError, type ConfigIssue } from "../errors.ts";
import { appliesIn, compileRules, type CompiledRule } from "../rules/rules.ts";
import { connectionLimit, gmailConnectionLimit, isGmail, isMicrosoft365 } from "../imap/config.ts";
import type { Config } from "./schema.ts";

/**
 * `run` and `check` need something to watch: a config without accounts is valid for `mailbell
 * test` (rules on a saved mail), but a daemon with nothing to watch would only sit there.
 */
export function refuseNothingToWatch(file: string, config: Pick<Config, "accounts">): void {
  if (config.accounts.length > 0) return;
  throw new ConfigError(file, [
    {
      path: "accounts",
      message: "no accounts: there is nothing to watch. Add one under accounts: (name, host, user, pass, mailboxes: [INBOX]); the README's example config shows one.",
    },
  ]);
}

/**
 * Checks that need the whole file: unique names, rules naming real targets, rules that compile.
 * `issues` refuse the file; `warnings` are valid settings that are surely not what was meant.
 */
export function validateConfig(config: Config): { issues: ConfigIssue[]; warnings: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  uniqueNames(config.accounts, "accounts", "account", issues);
  uniqueNames(config.targets, "targets", "target", issues);
  uniqueNames(config.rules, "rules", "rule", issues);

  config.accounts.forEach((account, i) => {
    const given = (["pass", "passFile", "passCommand", "oauth2"] as const).filter((k) => account[k] !== undefined);
    if (given.length === 0) issues.push({ path: `accounts[${i}]`, message: `account "${account.name}" has no credentials: add pass (e.g. pass: \${IMAP_PASSWORD}), passFile, passCommand, or oauth2.` });
    if (given.length > 1) issues.push({ path: `accounts[${i}].${given[1]}`, message: `give only one of pass, passFile, passCommand, oauth2 (this account has ${given.join(" and ")}).` });
    if (account.oauth2?.provider === "custom" && !account.oauth2.tokenUrl) {
      issues.push({ path: `accounts[${i}].oauth2.tokenUrl`, message: "provider: custom needs tokenUrl, the OAuth2 token endpoint (https://…/token)." });
    }
    const limit = account.maxConnections ?? (isGmail(account.host) ? gmailConnectionLimit : undefined);
    // Where NOTIFY is used (watch.notify auto or on), it watches them all over one connection and reads within the limit. Gmail has no NOTIFY.
    if (limit !== undefined && account.mailboxes.length > limit && (config.watch.notify === "off" || isGmail(account.host))) {
      issues.push({
        path: `accounts[${i}].mailboxes`,
        message: `watching ${account.mailboxes.length} mailboxes needs ${account.mailboxes.length} connections, more than the ${limit} this account allows${account.maxConnections ? " (maxConnections)" : " (Gmail allows about 15 per account)"}. Watch fewer folders (Gmail: "[Gmail]/All Mail" sees every label), raise maxConnections if your server allows more${isGmail(account.host) ? " (Gmail offers no IMAP NOTIFY)" : ", or remove watch.notify: off if it offers IMAP NOTIFY"}.`,
      });
    }
    // NOTIFY needs a connection to be told on and one to read on.
    if (limit === 1 && account.mailboxes.length > 1 && config.watch.notify !== "off" && !isGmail(account.host)) {
      issues.push({
        path: `accounts[${i}].maxConnections`,
        message: `watching ${account.mailboxes.length} mailboxes with maxConnections: 1 cannot work: one connection per folder needs ${account.mailboxes.length}, and IMAP NOTIFY needs 2 (one to be told of new mail, one to read it). Raise maxConnections to 2 or more, or watch one folder.`,
      });
    }
    if (account.readerConnections && account.mailboxes.length * 2 > connectionLimit(account)) {
      issues.push({
        path: `accounts[${i}].readerConnections`,
        message: `readerConnections needs two connections per mailbox (${account.mailboxes.length * 2}), more than the ${connectionLimit(account)} this account allows; remove readerConnections or raise maxConnections if your server allows more.`,
      });
    }
    const seen = new Set<string>();
    account.mailboxes.forEach((mailbox, j) => {
      if (seen.has(mailbox)) issues.push({ path: `accounts[${i}].mailboxes[${j}]`, message: `mailbox "${mailbox}" is listed twice; remove one.` });
      seen.add(mailbox);
    });
  });

  const targetNames = config.targets.map((t) => t.name);
  const checkTarget = (target: string, path: string) => {
    if (targetNames.includes(target)) return;
    const known = targetNames.length > 0 ? `Known targets: ${targetNames.join(", ")}.` : "No targets are defined; add one under targets:.";
    issues.push({ path, message: `unknown target "${target}". ${known}` });
  };
  config.rules.forEach((rule, i) => rule.notify.forEach((target, j) => checkTarget(target, `rules[${i}].notify[${j}]`)));
  config.watch.announceUnreadable.forEach((target, j) => checkTarget(target, `watch.announceUnreadable[${j}]`));

  const compiled = compileRules(config.rules, { locale: config.locale });
  if (!compiled.ok) issues.push(...compiled.issues);
  else compiled.rules.forEach((rule, i) => issues.push(...labelsOutsideGmail(rule, i, config), ...presetOutsideProvider(rule, i, config)));
  return { issues, warnings: compiled.warnings };
}

/**
 * `authResults: gmail` / `microsoft` trust a header that provider's servers write: on another
 * server, the topmost such header may be the sender's own, so the preset is refused there.
 */
function presetOutsideProvider(rule: CompiledRule, index: number, config: Config): ConfigIssue[] {
  const source = rule.verify?.authResults;
  if (!source || (source.kind === "authserv" && source.preset === undefined)) return [];
  const [name, onProvider] = source.kind === "microsoft" ? ["microsoft", isMicrosoft365] : ["gmail", isGmail];
  const elsewhere = config.accounts.filter((a) => !onProvider(a.host) && a.mailboxes.some((mailbox) => appliesIn(rule, { account: a.name, mailbox })));
  if (elsewhere.length === 0) return [];
  return [
    {
      path: `rules[${index}].verify.authResults`,
      message: `authResults: ${name} trusts the Authentication-Results header ${name === "gmail" ? "Gmail (imap.gmail.com)" : "Microsoft 365 (outlook.office365.com)"} writes, and this rule also reaches ${elsewhere.map((a) => `"${a.name}" (${a.host})`).join(", ")}, where the topmost such header may be the sender's. Name your own server's authserv-id there (authResults: mx.example.org), use verify.dkim, or limit the rule with match.account.`,
    },
  ];
}

/**
 * Labels are Gmail's (X-GM-LABELS, offered with X-GM-EXT-1): a rule that labels mail may only
 * reach Gmail accounts. Checked by host here; the watcher checks the server's capability too.
 */
function labelsOutsideGmail(rule: CompiledRule, index: number, config: Config): ConfigIssue[] {
  if (!rule.then || rule.then.labels.length === 0) return [];
  const elsewhere = config.accounts.filter((a) => !isGmail(a.host) && a.mailboxes.some((mailbox) => appliesIn(rule, { account: a.name, mailbox })));
  if (elsewhere.length === 0) return [];
  const which = elsewhere.map((a) => `"${a.name}" (${a.host})`).join(", ");
  return [
    {
      path: `rules[${index}].then.label`,
      message: `labels exist only on Gmail (its IMAP extension X-GM-EXT-1), and this rule also reaches ${which}. Use flag: (a keyword such as $Receipts) or move: there instead, or limit the rule to Gmail accounts with match.account.`,
    },
  ];
}

/** The config's rules, compiled. The config was validated when loaded, so this cannot fail then. */
export function compileConfigRules(loaded: { file: string; config: Config }): CompiledRule[] {
  const compiled = compileRules(loaded.config.rules, { locale: loaded.config.locale });
  if (!compiled.ok) throw new ConfigError(loaded.file, compiled.issues);
  return compiled.rules;
}

function uniqueNames(items: readonly { name: string }[], key: string, what: string, issues: ConfigIssue[]): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const first = seen.get(item.name);
    if (first !== undefined) {
      issues.push({ path: `${key}[${i}].name`, message: `${what} name "${item.name}" is already used by ${key}[${first}]; names must be unique.` });
    } else seen.set(item.name, i);
  });
}

