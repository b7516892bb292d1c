import { MailbellError, UsageError } from "../errors.ts";
import type { OutboxRow } from "../outbox/store.ts";
import type { State } from "../store/sqlite/state.ts";
import { escapeTerminal } from "../targets/text.ts";
import type { CliIO } from "./io.ts";
import { withState } from "./state.ts";

export interface OutboxCommandOptions {
  config: string;
  /** undefined: list. ["retry", ID] or ["retry"] with all: re-queue. */
  args: readonly string[];
  all: boolean;
  json: boolean;
}

/**
 * `mailbell outbox`: what is waiting and what gave up. `mailbell outbox retry ID|--all` puts dead
 * rows back in the queue; a running daemon picks them up (it polls the table between sends).
 */
export async function outboxCommand(options: OutboxCommandOptions, io: CliIO): Promise<number> {
  return withState(options.config, io, (state) => {
    const [verb, id, ...extra] = options.args;
    if (verb === undefined) return list(state, options.json, io);
    if (verb !== "retry") throw new UsageError(`unknown outbox command "${verb}". Use: mailbell outbox, or mailbell outbox retry ID|--all.`);
    if (extra.length > 0 || (id !== undefined && options.all) || (id === undefined && !options.all)) {
      throw new UsageError("mailbell outbox retry takes one row ID (as listed by mailbell outbox) or --all for every dead row.");
    }
    if (options.all) {
      const n = state.outbox.requeue({ allDead: true });
      io.out(`re-queued ${n} dead notification(s).`);
      return 0;
    }
    const row = state.outbox.get(id!);
    if (!row) throw new MailbellError("INPUT", `no outbox row "${id}". List them with: mailbell outbox --config ${options.config}`);
    if (row.state === "done") throw new MailbellError("INPUT", `row "${id}" was delivered already; sending it again would post it twice.`);
    state.outbox.requeue({ id: id! });
    io.out(`re-queued ${id}.`);
    return 0;
  }, { readOnly: options.args.length === 0 });
}

function list(state: State, json: boolean, io: CliIO): number {
  const rows = state.outbox.list(["pending", "dead"]);
  if (json) {
    for (const r of rows) io.out(JSON.stringify(view(r)));
    return 0;
  }
  const counts = state.outbox.counts();
  const summary = ["pending", "dead", "done"].map((s) => `${counts.filter((c) => c.state === s).reduce((n, c) => n + c.count, 0)} ${s}`).join(", ");
  io.out(`outbox: ${summary}`);
  for (const r of rows) {
    const when = r.state === "pending" ? `next try ${new Date(r.nextAttemptAt).toISOString()}` : "gave up";
    io.out(`${r.state.padEnd(7)} ${r.id}`);
    io.out(`        target ${r.target}, rule ${r.rule}, ${r.attempts} attempt(s), ${when}; "${escapeTerminal(r.subject)}"`);
    if (r.lastError) io.out(`        last error: ${escapeTerminal(r.lastError)}`);
  }
  if (rows.some((r) => r.state === "dead")) io.out("Re-queue with: mailbell outbox retry ID, or mailbell outbox retry --all");
  return 0;
}

function view(r: OutboxRow): Record<string, unknown> {
  return {
    id: r.id,
    state: r.state,
    target: r.target,
    rule: r.rule,
    account: r.account,
    mailbox: r.mailbox,
    uid: r.uid,
    messageId: r.messageId ?? null,
    subject: r.subject,
    attempts: r.attempts,
    nextAttemptAt: new Date(r.nextAttemptAt).toISOString(),
    lastError: r.lastError ?? null,
  };
}
