/**
 * `mailbell backfill`: counts the mail already in the watched mailboxes in a range (see
 * src/backfill/backfill.ts for how it works beside a running daemon). Also the setup it shares
 * with `mailbell totals rebuild`: config, rules, accounts, state, signals, progress.
 */
import type { LoadedConfig } from "../config/load.ts";
import { loadConfig } from "../config/load.ts";
import { compileConfigRules } from "../config/validate.ts";
import { UsageError } from "../errors.ts";
import { backfill, type BackfillSummary } from "../backfill/backfill.ts";
import type { NotifyMode } from "../backfill/policy.ts";
import { arrivalRangeIn, parseDay, rangeZones, type Day } from "../backfill/range.ts";
import type { ReadTally } from "../backfill/read.ts";
import { dkimVerifierFor, toImapAccount } from "../daemon/run.ts";
import type { ImapAccount } from "../imap/client.ts";
import type { Logger } from "../log.ts";
import { createLogger } from "../pino-logger.ts";
import type { CompiledRule } from "../rules/rules.ts";
import { State } from "../store/sqlite/state.ts";
import type { CliIO } from "./io.ts";
import { createProgress, type Progress } from "./progress.ts";
import { escapeTerminal } from "../targets/text.ts";

export interface BackfillCommandOptions {
  config: string;
  since: string | undefined;
  until: string | undefined;
  rule: string | undefined;
  notify: string | undefined;
  actions: boolean;
  logLevel?: string | undefined;
  /** Stops between batches; by default SIGINT/SIGTERM. */
  signal?: AbortSignal;
  /** stderr is a terminal: a progress bar. Default: process.stderr.isTTY. */
  tty?: boolean;
  batchSize?: number;
  /** "dates": search by dates only, for a server whose SEARCH does not match substrings; default "conditions". */
  search?: string | undefined;
}

/** Exit code of a run stopped by SIGINT/SIGTERM: what it committed stays; run it again for the rest. */
export const interruptedExit = 130;

export async function backfillCommand(options: BackfillCommandOptions, io: CliIO): Promise<number> {
  if (options.since === undefined) throw new UsageError("mailbell backfill needs --since DATE, the first day to read, e.g. --since 2026-11-01 (and --until DATE for the last, default today).");
  const notify = notifyMode(options.notify);
  const since = parseDay(options.since, "--since");
  const until = options.until === undefined ? undefined : parseDay(options.until, "--until");
  return withHistory(options, io, "backfill", async (h) => {
    const zones = h.rules.flatMap((r) => (r.total ? [r.total.timezone] : []));
    const range = arrivalRangeIn(since, until, zones);
    const zone = rangeZones(zones).join(", ");
    const summary = await backfill({ ...h, range, notify, actions: options.actions, batchSize: options.batchSize });
    h.progress.stop();
    printSummary(io, summary, { since, until, zone, rules: h.rules.map((r) => r.name), notify, actions: options.actions });
    return summary.interrupted ? interruptedExit : 0;
  });
}

function notifyMode(given: string | undefined): NotifyMode {
  if (given === undefined || given === "none" || given === "digest") return given ?? "none";
  throw new UsageError(`--notify ${JSON.stringify(given)} is not one of none, digest: none (default) posts nothing, digest posts one summary per rule and target.`);
}

/** What backfill and rebuild work with, set up from the config. */
export interface History {
  loaded: LoadedConfig;
  state: State;
  accounts: Map<string, ImapAccount>;
  rules: CompiledRule[];
  dkim: ReturnType<typeof dkimVerifierFor>;
  logger: Logger;
  signal: AbortSignal;
  progress: Progress;
  searchDatesOnly: boolean;
}

/**
 * Loads the config (secrets too: it logs in), opens the state database beside a running daemon
 * (created if mailbell never ran: backfill may come first), picks the rules (--rule), and stops
 * between batches on SIGINT/SIGTERM; a second signal ends the process at once.
 */
export async function withHistory(options: Pick<BackfillCommandOptions, "config" | "rule" | "logLevel" | "signal" | "tty" | "search">, io: CliIO, what: string, fn: (h: History) => Promise<number>): Promise<number> {
  const searchDatesOnly = searchMode(options.search) === "dates";
  const loaded = await loadConfig(options.config, io.env);
  const rules = pickRules(compileConfigRules(loaded), options.rule);
  // Per-mail lines (already counted, not verified) are summed up at the end; --log-level shows them.
  const logger = createLogger({ level: options.logLevel ?? "error" });
  const state = State.open(loaded.statePath);
  const stop = options.signal ? undefined : stopOnSignals(io, what);
  const progress = createProgress(what, { tty: options.tty ?? process.stderr.isTTY === true, line: (t) => io.err(t) });
  try {
    const accounts = new Map<string, ImapAccount>();
    for (const [i, account] of loaded.config.accounts.entries()) accounts.set(account.name, await toImapAccount(account, loaded, i, state.targetState.for("oauth2")));
    const dkim = dkimVerifierFor(loaded.config, rules);
    return await fn({ loaded, state, accounts, rules, dkim, logger, signal: options.signal ?? stop!.signal, progress, searchDatesOnly });
  } finally {
    progress.stop();
    stop?.dispose();
    state.close();
  }
}

function searchMode(given: string | undefined): "conditions" | "dates" {
  if (given === undefined || given === "conditions" || given === "dates") return given ?? "conditions";
  throw new UsageError(`--search ${JSON.stringify(given)} is not one of conditions, dates: conditions (default) asks the server for the rules' from/subject too, dates for the dates alone (for a server whose search matches whole words, not substrings).`);
}

function pickRules(rules: CompiledRule[], name: string | undefined): CompiledRule[] {
  if (name === undefined) return rules;
  const rule = rules.find((r) => r.name === name);
  if (!rule) throw new UsageError(`--rule ${JSON.stringify(name)} is not a rule in the config: the rules are ${rules.map((r) => r.name).join(", ") || "(none)"}.`);
  return [rule];
}

function stopOnSignals(io: CliIO, what: string): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      // A second signal: end now, as the signal would have without us. Whole batches are committed.
      dispose();
      process.kill(process.pid, signal);
      return;
    }
    io.err(`mailbell ${what}: ${signal} received, stopping after this batch (send it again to stop at once)`);
    controller.abort();
  };
  const dispose = () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return { signal: controller.signal, dispose };
}

const dayText = (d: Day) => `${d.year}-${String(d.month).padStart(2, "0")}-${String(d.day).padStart(2, "0")}`;

/** How each mailbox was searched: by the rules' plain conditions, or by dates only and why. */
export function searchLines(read: Pick<ReadTally, "searches">): string[] {
  return read.searches.map((s) => {
    const how = s.narrowing.by === "conditions" ? "searched by date and the rules' from/subject" : `searched by date only (${s.narrowing.because})`;
    return `  ${s.account}/${s.mailbox}: ${how}: ${s.uids.length} found`;
  });
}

/** The first few mails not read and why, for the terminal: the reasons carry server and DNS text. */
export function unreadText(unread: ReadTally["unread"]): string {
  return unread
    .slice(0, 3)
    .map((u) => escapeTerminal(`${u.account}/${u.mailbox} UID ${u.uid}: ${u.reason}`))
    .join("; ");
}

function printSummary(io: CliIO, s: BackfillSummary, run: { since: Day; until: Day | undefined; zone: string; rules: string[]; notify: NotifyMode; actions: boolean }): void {
  io.out(`backfill ${dayText(run.since)} to ${run.until ? dayText(run.until) : "now"} (days in ${run.zone}${run.zone.includes(",") ? ": from the earliest start to the latest end" : ""}), rules: ${run.rules.join(", ")}${s.interrupted ? " — INTERRUPTED: what is below was committed; run the same command again to count the rest" : ""}`);
  for (const line of searchLines(s)) io.out(line);
  io.out(`  read: ${s.read} (in the range: ${s.inRange})`);
  io.out(`  matched: ${s.matched}`);
  io.out(`  counted: ${s.counted}`);
  io.out(`  already counted: ${s.alreadyCounted}`);
  io.out(`  refused, sender not verified: ${s.unverified}`);
  io.out(`  of them, not verifiable because the DKIM key is gone from DNS (rotated away): ${s.keyGone}`);
  io.out(`  could not be read: ${s.unread.length}${s.unread.length > 0 ? ` (${unreadText(s.unread)}); run again to try them` : ""}`);
  const sender = s.digests.sentBy === "daemon" ? "the running mailbell sends them" : s.digests.sentBy === "backfill" ? `sent${s.digests.left ? `; ${s.digests.left} still queued for the next mailbell run` : ""}` : "";
  io.out(`  notifications: ${run.notify === "none" ? "none (--notify none)" : `${s.digests.rows} queued as one digest per rule and target${sender ? `; ${sender}` : ""}`}`);
  io.out(`  actions: ${run.actions ? "queued; the mailbox's watcher (the running mailbell, or the next mailbell run) does them" : "none (without --actions)"}`);
}
