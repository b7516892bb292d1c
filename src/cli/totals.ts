import type { LoadedConfig } from "../config/load.ts";
import { MailbellError, UsageError } from "../errors.ts";
import type { TotalRow, TotalsReport } from "../plan/store.ts";
import { escapeTerminal } from "../targets/text.ts";
import type { CliIO } from "./io.ts";
import { withState } from "./state.ts";

export interface TotalsCommandOptions {
  config: string;
  rule: string | undefined;
  since: string | undefined;
  json: boolean;
  csv: boolean;
}

/**
 * `mailbell totals`: what was counted, one row per rule, period and currency, read from the state
 * file (a running daemon may keep writing; this only reads). A rule that is no longer in the config
 * is still listed: renaming a rule keeps its history under the old name.
 */
export async function totalsCommand(options: TotalsCommandOptions, io: CliIO): Promise<number> {
  if (options.json && options.csv) throw new UsageError("mailbell totals prints a table, --json or --csv: choose one of --json and --csv.");
  const since = options.since === undefined ? undefined : checkSince(options.since);
  return withState(options.config, io, (state, loaded) => {
    const rows = state.totals.report({ rule: options.rule, since });
    if (rows.length === 0) return nothingCounted(state.totals, loaded, { rule: options.rule, since }, options, io);
    if (options.json) io.out(JSON.stringify(rows, null, 2));
    else if (options.csv) io.out(totalsCsv(rows));
    else io.out(totalsTable(rows, ruleNames(loaded)));
    return 0;
  }, { readOnly: true });
}

/** A year, month or day, as period keys start: "2026", "2026-11", "2026-11-01". */
export function checkSince(since: string): string {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(since);
  const [month, day] = [Number(m?.[2] ?? 1), Number(m?.[3] ?? 1)];
  const valid = m !== null && month >= 1 && month <= 12 && day >= 1 && day <= daysIn(Number(m[1]), month);
  if (!valid) throw new UsageError(`--since "${since}" is not a date: give a year (--since 2026), a month (--since 2026-11) or a day (--since 2026-11-01).`);
  return since;
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function ruleNames(loaded: LoadedConfig): Set<string> {
  return new Set(loaded.config.rules.map((r) => r.name));
}

/**
 * Nothing to list: say why. A rule name that is neither in the config nor in the state file is
 * most likely misspelt, so that is an error naming the names there are; anything else is exit 0.
 * With --json or --csv stdout still holds a valid (empty) document, and the words go to stderr.
 */
function nothingCounted(report: TotalsReport, loaded: LoadedConfig, filter: { rule?: string; since?: string }, options: TotalsCommandOptions, io: CliIO): number {
  const configured = loaded.config.rules.find((r) => r.name === filter.rule);
  const counted = [...new Set(report.report().map((r) => r.rule))];
  if (filter.rule !== undefined && !configured && !counted.includes(filter.rule)) {
    const known = [...new Set([...ruleNames(loaded), ...counted])];
    throw new MailbellError("INPUT", `no rule "${escapeTerminal(filter.rule)}" in ${loaded.file} or in the state file. Rules: ${known.length > 0 ? known.map(escapeTerminal).join(", ") : "none"}.`);
  }
  const since = filter.since === undefined ? "" : ` since ${filter.since}`;
  let words = filter.rule === undefined ? `nothing counted${since} yet.` : `no totals for rule "${escapeTerminal(filter.rule)}"${since}.`;
  if (configured && !configured.total) words += ` The rule has no total: in the config, so nothing is counted for it; add total: { sum: FIELD, per: month }.`;
  if (options.json) io.out("[]");
  if (options.csv) io.out(totalsCsv([]));
  if (options.json || options.csv) io.err(`mailbell: ${words}`);
  else io.out(words);
  return 0;
}

const columns = ["rule", "period", "currency", "amount", "mails"] as const;

/**
 * Aligned columns, numbers right-aligned. Rule names and currencies come from the state file,
 * which holds what mail put there: escaped so they cannot drive the terminal.
 */
export function totalsTable(rows: readonly TotalRow[], configured: ReadonlySet<string>): string {
  const cells = rows.map((r) => [escapeTerminal(r.rule), r.period, escapeTerminal(r.currency), r.amount, String(r.mails)]);
  const header = columns.map((c) => c.toUpperCase());
  const widths = columns.map((_, i) => Math.max(header[i]!.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]) => c.map((text, i) => (i >= 3 ? text.padStart(widths[i]!) : text.padEnd(widths[i]!))).join("  ").trimEnd();
  const gone = [...new Set(rows.map((r) => r.rule).filter((rule) => !configured.has(rule)))];
  const notes = gone.map((rule) => `rule "${escapeTerminal(rule)}" is not in the config (renamed or removed); its totals are kept.`);
  return [line(header), ...cells.map(line), ...notes].join("\n");
}

/** RFC 4180: a header row, CRLF line ends, a field quoted when it holds a comma, quote or line break. */
export function totalsCsv(rows: readonly TotalRow[]): string {
  const field = (text: string) => (/[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text);
  const lines = [columns.join(","), ...rows.map((r) => [r.rule, r.period, r.currency, r.amount, String(r.mails)].map(field).join(","))];
  return `${lines.join("\r\n")}\r\n`;
}
