import type { ImapFlow } from "imapflow";
import { loadConfig, type LoadedConfig } from "../config/load.ts";
import { compileConfigRules, refuseNothingToWatch } from "../config/validate.ts";
import { formatConfigIssue } from "../errors.ts";
import { appliesIn, type CompiledRule } from "../rules/rules.ts";
import { toImapAccount } from "../daemon/run.ts";
import type { AccountConfig } from "../imap/config.ts";
import { classifyImapError, createImapClient, defaultPort, endpointOf } from "../imap/client.ts";
import { silentLogger } from "../log.ts";
import { notWritable, stateWriteProblem } from "../store/sqlite/db.ts";
import { createTargets } from "../targets/index.ts";
import { sendSamples } from "./check-send.ts";
import type { CliIO } from "./io.ts";

/**
 * `mailbell check`: the config is valid and has something to watch, the state database can be
 * written, every account logs in, every mailbox exists. Without --send it sends nothing to
 * targets (a test post would be noise in a real channel) and prints them masked; with --send it
 * posts one sample to each and prints each service's answer.
 */
export async function checkCommand(options: { config: string; send?: boolean }, io: CliIO): Promise<number> {
  const loaded = await loadConfig(options.config, io.env);
  const { config } = loaded;
  refuseNothingToWatch(loaded.file, config);
  io.out(`✓ ${loaded.file}: valid (${config.accounts.length} account(s), ${config.rules.length} rule(s), ${config.targets.length} target(s))`);
  // Warnings do not fail the check: the config is valid, only probably not what was meant.
  for (const warning of loaded.warnings) io.out(`! warning: ${formatConfigIssue(loaded.file, warning)}`);
  const stateWritable = checkState(loaded.statePath, io);
  const rules = compileConfigRules(loaded);
  let failures = stateWritable ? 0 : 1;
  for (const [i, account] of config.accounts.entries()) failures += await checkAccount(loaded, account, i, rules, io);
  if (options.send) failures += await sendSamples(config.targets, io);
  else for (const target of createTargets(config.targets).values()) io.out(`· target ${target.name}: ${target.describe()} (not contacted)`);
  if (failures > 0) {
    io.err(`${failures} check(s) failed.`);
    // A state mailbell cannot write is exit 4, as `mailbell run` would end with it.
    return stateWritable ? 3 : 4;
  }
  io.out("All checks passed.");
  return 0;
}

/** Whether the state database (or the folder it would be made in) can be written; creates nothing. */
function checkState(statePath: string, io: CliIO): boolean {
  const problem = stateWriteProblem(statePath);
  if (problem) io.out(`✗ state: ${notWritable(statePath, problem).message}`);
  else io.out(`✓ state ${statePath}: writable`);
  return problem === undefined;
}

/** Logs in, then looks at each mailbox and each folder a rule moves mail to; returns the failures. */
async function checkAccount(loaded: LoadedConfig, account: AccountConfig, index: number, rules: readonly CompiledRule[], io: CliIO): Promise<number> {
  const where = `${account.host}:${account.port ?? defaultPort(account.tls)} (${account.tls})`;
  let client: ImapFlow | undefined;
  try {
    const imap = await toImapAccount(account, loaded, index);
    const credentials = imap.credentials ? await imap.credentials(false) : { pass: imap.pass ?? "" };
    client = createImapClient(imap, { logger: silentLogger }, credentials);
    client.on("error", () => {});
    await client.connect();
    io.out(`✓ account ${account.name}: logged in as ${account.user} at ${where}${account.oauth2 ? ` (OAuth2, ${account.oauth2.provider})` : ""}`);
  } catch (err) {
    io.out(`✗ account ${account.name}: ${where}: ${classifyImapError(err, account.name, undefined, endpointOf(account)).message}`);
    client?.close();
    return 1;
  }
  let failures = 0;
  for (const mailbox of account.mailboxes) {
    try {
      const status = await client.status(mailbox, { messages: true, uidNext: true, uidValidity: true });
      if (!status) throw Object.assign(new Error(`mailbox "${mailbox}" does not exist`), { serverResponseCode: "NONEXISTENT" });
      io.out(`✓ ${account.name}/${mailbox}: ${status.messages ?? "?"} message(s)`);
    } catch (err) {
      failures++;
      io.out(`✗ ${account.name}/${mailbox}: ${classifyImapError(err, account.name, mailbox).message}`);
    }
  }
  for (const [folder, rule] of moveTargets(rules, account.name, account.mailboxes)) {
    const status = await client.status(folder, { messages: true }).catch(() => undefined);
    if (status) io.out(`✓ ${account.name}/${folder}: exists (rule ${rule} moves mail there)`);
    else {
      failures++;
      io.out(`✗ ${account.name}/${folder}: rule ${rule} moves mail there (then.move), but the folder does not exist: create it, or fix the name`);
    }
  }
  await client.logout().catch(() => client?.close());
  return failures;
}

/** The folders rules move this account's mail to, each with the first rule that does. */
function moveTargets(rules: readonly CompiledRule[], account: string, mailboxes: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const rule of rules) {
    const move = rule.then?.move;
    if (move !== undefined && !out.has(move) && mailboxes.some((mailbox) => appliesIn(rule, { account, mailbox }))) out.set(move, rule.name);
  }
  return out;
}
