import { readFile } from "node:fs/promises";
import path from "node:path";
import type { LoadedConfig } from "../config/load.ts";
import type { AccountConfig } from "../config/schema.ts";
import { ConfigError } from "../errors.ts";
import type { ImapAccount } from "../imap/client.ts";
import { sleep } from "../imap/backoff.ts";
import { watchMailbox } from "../imap/watcher.ts";
import type { Logger } from "../log.ts";
import { DirectDelivery, type Delivery } from "../outbox/delivery.ts";
import { compileConfigRules } from "../config/validate.ts";
import { State } from "../store/state.ts";
import { createTargets } from "../targets/index.ts";
import { handleMail, type PipelineDeps } from "./pipeline.ts";

export interface RunOptions {
  logger: Logger;
  signal: AbortSignal;
  /** For tests: replaces direct sending. */
  delivery?: Delivery;
}

/**
 * Watches every configured (account, mailbox) until `signal` aborts. Each mailbox runs on its own;
 * one that cannot connect is retried without holding up the others.
 */
export async function runDaemon(loaded: LoadedConfig, options: RunOptions): Promise<void> {
  const { config } = loaded;
  const log = options.logger;
  const rules = compileConfigRules(loaded);
  const targets = createTargets(config.targets);
  const accounts = await resolveAccounts(loaded, log);
  const state = State.open(loaded.statePath);
  try {
    const deps: PipelineDeps = {
      rules,
      targets,
      state,
      delivery: options.delivery ?? new DirectDelivery(log),
      logger: log,
      accounts: new Map(config.accounts.map((a) => [a.name, a])),
    };
    const watches = config.accounts.flatMap((account) =>
      account.mailboxes.map((mailbox) => superviseMailbox(accounts.get(account.name)!, account, mailbox, deps, options.signal)),
    );
    log.info({ mailboxes: watches.length, rules: rules.length, targets: targets.size, state: loaded.statePath }, "mailbell started");
    if (watches.length === 0) log.warn({}, "no accounts configured: nothing to watch. Add one under accounts:.");
    await Promise.all(watches);
  } finally {
    state.close();
    log.info({}, "mailbell stopped");
  }
}

/**
 * Restarts a mailbox's watch loop if handling a mail failed (a full disk, a bug): the mail was not
 * checkpointed, so the next round reads it again rather than skipping it.
 */
async function superviseMailbox(imap: ImapAccount, account: AccountConfig, mailbox: string, deps: PipelineDeps, signal: AbortSignal): Promise<void> {
  const log = deps.logger.child({ account: account.name, mailbox });
  while (!signal.aborted) {
    try {
      for await (const watched of watchMailbox({
        account: imap,
        mailbox,
        checkpoints: deps.state.checkpoints,
        commit: "manual",
        maxTextBytes: account.maxTextBytes,
        signal,
        logger: deps.logger,
      })) {
        await handleMail(watched, deps);
      }
      return;
    } catch (err) {
      log.error({ err: (err as Error).message, stack: (err as Error).stack }, "handling a mail failed; restarting this mailbox's watcher in 5 s");
      await sleep(5000, signal);
    }
  }
}

async function resolveAccounts(loaded: LoadedConfig, log: Logger): Promise<Map<string, ImapAccount>> {
  const out = new Map<string, ImapAccount>();
  for (const [i, account] of loaded.config.accounts.entries()) {
    if (account.tls === "none") log.warn({ account: account.name }, "tls: none — the password and all mail cross the network unencrypted");
    if (!account.tlsVerify) log.warn({ account: account.name }, "tlsVerify: false — the server's certificate is not checked; anyone on the path can read the password");
    out.set(account.name, await toImapAccount(account, loaded, i));
  }
  return out;
}

export async function toImapAccount(account: AccountConfig, loaded: Pick<LoadedConfig, "dir" | "file">, index: number): Promise<ImapAccount> {
  let ca: Buffer | undefined;
  if (account.ca) {
    const caPath = path.resolve(loaded.dir, account.ca);
    try {
      ca = await readFile(caPath);
    } catch (err) {
      throw new ConfigError(loaded.file, [{ path: `accounts[${index}].ca`, message: `cannot read CA file ${caPath} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Give the path to a PEM file, relative to the config file.` }]);
    }
  }
  return { name: account.name, host: account.host, port: account.port, tls: account.tls, ca, tlsVerify: account.tlsVerify, user: account.user, pass: account.pass };
}
