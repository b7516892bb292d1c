import { MailbellError, UsageError } from "../errors.ts";
import type { State } from "../store/sqlite/state.ts";
import { escapeTerminal } from "../targets/text.ts";
import type { CliIO } from "./io.ts";
import { withState } from "./state.ts";

export interface UnreadableCommandOptions {
  config: string;
  /** []: list. ["retry", UID] or ["retry"] with all: ask the daemon to read it again. */
  args: readonly string[];
  all: boolean;
  json: boolean;
  account: string | undefined;
  mailbox: string | undefined;
}

/**
 * `mailbell unreadable`: mail the watcher could not read and set aside. `mailbell unreadable retry
 * UID|--all` asks a running daemon to read it again (at its next keepalive, or on the next start);
 * mail read then is handled as any other, mail that fails again stays listed.
 */
export async function unreadableCommand(options: UnreadableCommandOptions, io: CliIO): Promise<number> {
  return withState(options.config, io, (state) => {
    const [verb, uidText, ...extra] = options.args;
    if (verb === undefined) return list(state, options.json, io);
    if (verb !== "retry") throw new UsageError(`unknown unreadable command "${verb}". Use: mailbell unreadable, or mailbell unreadable retry UID|--all.`);
    if (extra.length > 0 || (uidText !== undefined && options.all) || (uidText === undefined && !options.all)) {
      throw new UsageError("mailbell unreadable retry takes one UID (as listed by mailbell unreadable, with --account and --mailbox when several mailboxes have it) or --all.");
    }
    if (options.all) {
      io.out(`asked to read ${state.setAside.requestRetry("all")} set-aside mail(s) again; a running mailbell does so within watch.keepaliveSeconds.`);
      return 0;
    }
    const uid = Number(uidText);
    if (!Number.isInteger(uid) || uid < 1) throw new UsageError(`"${uidText}" is not a UID; mailbell unreadable lists them.`);
    const matches = state.setAside.list().filter((r) => r.current && r.uid === uid && (options.account ?? r.account) === r.account && (options.mailbox ?? r.mailbox) === r.mailbox);
    if (matches.length === 0) throw new MailbellError("INPUT", `no set-aside mail with UID ${uid}${options.account ? ` in account "${options.account}"` : ""}${options.mailbox ? ` mailbox "${options.mailbox}"` : ""}. List them with: mailbell unreadable --config ${options.config}`);
    if (matches.length > 1) {
      throw new UsageError(`UID ${uid} is set aside in ${matches.length} mailboxes (${matches.map((m) => `${m.account}/${m.mailbox}`).join(", ")}); say which with --account and --mailbox.`);
    }
    const { account, mailbox } = matches[0]!;
    state.setAside.requestRetry({ account, mailbox, uid });
    io.out(`asked to read UID ${uid} of ${account}/${mailbox} again; a running mailbell does so within watch.keepaliveSeconds.`);
    return 0;
  }, { readOnly: options.args.length === 0 });
}

function list(state: State, json: boolean, io: CliIO): number {
  const rows = state.setAside.list();
  if (json) {
    for (const r of rows) io.out(JSON.stringify({ ...r, setAsideAt: new Date(r.setAsideAt).toISOString() }));
    return 0;
  }
  io.out(`${rows.length} mail(s) set aside because they could not be read`);
  for (const r of rows) {
    const note = !r.current ? " (the mailbox was renumbered since: this UID cannot be read again)" : r.retryRequested ? ", retry asked for" : "";
    io.out(`${escapeTerminal(r.account)}/${escapeTerminal(r.mailbox)} UID ${r.uid} (UIDVALIDITY ${r.uidValidity}): ${r.attempts} failed read(s), set aside ${new Date(r.setAsideAt).toISOString()}${note}`);
    io.out(`        last error: ${escapeTerminal(r.reason)}`);
  }
  if (rows.length > 0) io.out("Read again with: mailbell unreadable retry UID, or mailbell unreadable retry --all");
  return 0;
}
