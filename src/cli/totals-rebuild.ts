/**
 * `mailbell totals rebuild --rule NAME [--since DATE]`: counts a rule again from the mail on the
 * server and replaces what was counted for it (src/backfill/rebuild.ts), in whole periods: a
 * month rule rebuilt --since 2026-11-15 recounts November from its first day.
 */
import { rebuildRule } from "../backfill/rebuild.ts";
import { arrivalRange, dayText, parseDay, periodStartDay, startOfDay } from "../backfill/range.ts";
import { MailbellError, UsageError } from "../errors.ts";
import { stateLockOwner } from "../store/sqlite/lock.ts";
import { interruptedExit, searchLines, unreadText, withHistory, type BackfillCommandOptions } from "./backfill.ts";
import type { CliIO } from "./io.ts";

export type RebuildCommandOptions = Pick<BackfillCommandOptions, "config" | "rule" | "since" | "logLevel" | "signal" | "tty" | "search">;

export async function totalsRebuildCommand(options: RebuildCommandOptions, io: CliIO): Promise<number> {
  if (options.rule === undefined) throw new UsageError("mailbell totals rebuild needs --rule NAME, the rule to count again (after fixing its regex), e.g. mailbell totals rebuild --rule google-play.");
  const since = options.since === undefined ? undefined : parseDay(options.since, "--since");
  return withHistory(options, io, "rebuild", async (h) => {
    const rule = h.rules[0]!;
    if (!rule.total) throw new UsageError(`rule ${rule.name} keeps no total (no total: in its config), so there is nothing to rebuild.`);
    // What a daemon counts while the rebuild reads is kept: with the config from before the fix, wrongly.
    const daemon = stateLockOwner(h.loaded.statePath);
    if (daemon !== undefined) io.err(`mailbell totals rebuild: a running mailbell (pid ${daemon}) uses this state file: what it counts while the rebuild reads is kept, so if it still runs the config from before your fix, reload it first (kill -HUP ${daemon}) and rebuild again.`);
    const zone = rule.total.timezone;
    // Whole periods: the first one replaced starts on or before --since.
    const first = since && periodStartDay(rule.total.per, since);
    const range = arrivalRange(first, undefined, zone);
    const summary = await rebuildRule({ ...h, store: h.state.totals, rule, range, sincePeriod: first && dayText(startOfDay(first, zone), zone) });
    h.progress.stop();
    io.out(`totals rebuild ${rule.name}: ${first ? `periods from ${dayText(startOfDay(first, zone), zone)} (${rule.total.per}s in ${zone})` : "every period"}`);
    for (const line of searchLines(summary)) io.out(line);
    io.out(`  read: ${summary.read} (in the range: ${summary.inRange}), matched: ${summary.matched}`);
    io.out(`  refused, sender not verified: ${summary.unverified}; of them, the DKIM key is gone from DNS: ${summary.keyGone} (their earlier count, if any, is kept)`);
    if (!summary.replaced) {
      if (summary.notReplaced === "interrupted") {
        io.out("  interrupted: nothing replaced; the totals are as they were.");
        return interruptedExit;
      }
      throw new MailbellError("IMAP_SERVER", `totals rebuild ${rule.name}: nothing replaced, because ${summary.notReplaced} (${unreadText(summary.unread)}). The totals are as they were; run it again when the server hands the mail over.`);
    }
    io.out(`  replaced: ${summary.replaced.removed} earlier entries removed, ${summary.replaced.added} counted again; notifications are not sent again`);
    return 0;
  });
}
