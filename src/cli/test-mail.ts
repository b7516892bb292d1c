import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { loadConfig } from "../config/load.ts";
import { compileConfigRules } from "../config/validate.ts";
import { formatConfigIssue, MailbellError } from "../errors.ts";
import { rfc822Size } from "../mail/identity.ts";
import { normalizeMail } from "../mail/normalize.ts";
import { nothingSeen, planMail, type ActionPlan, type MailAt, type MatchPlan } from "../plan/plan.ts";
import { describeActions } from "../rules/actions.ts";
import { formatMoney, moneyToDecimalString } from "../rules/money.ts";
import { needsWhole, type CompiledRule } from "../rules/rules.ts";
import type { DkimSignature } from "../rules/types.ts";
import { ReadAgainLater } from "../imap/fetch.ts";
import { cachedResolver } from "../verify/dns.ts";
import { dkimVerifier } from "../verify/dkim.ts";
import { State } from "../store/sqlite/state.ts";
import { createTargets } from "../targets/index.ts";
import type { Target, TargetPayload } from "../targets/types.ts";
import { escapeTerminal, renderMessage } from "../targets/text.ts";
import type { CliIO } from "./io.ts";

export interface TestCommandOptions {
  config: string;
  file: string;
  json: boolean;
  /** Arrival time to assume (decides the total's period); default: the mail's Date header, else now. */
  receivedAt?: string;
  account?: string;
  mailbox?: string;
}

/**
 * `mailbell test`: runs the rules on a saved message and shows what would be sent where, without
 * sending, counting, or touching a mailbox (a rule's `then:` is shown, not done). Totals, posts and
 * actions done before are read from the state file when it exists.
 */
export async function testCommand(options: TestCommandOptions, io: CliIO): Promise<number> {
  const loaded = await loadConfig(options.config, io.env, { missingEnv: "placeholder" });
  if (loaded.placeholders.length > 0 && !options.json) io.err(`note: ${loaded.placeholders.join(", ")} not set; using placeholders (mailbell test sends nothing).`);
  // On stderr even with --json: stdout stays the JSON lines, and a rule that matches nothing says why.
  for (const warning of loaded.warnings) io.err(`warning: ${formatConfigIssue(loaded.file, warning)}`);
  const rules = compileConfigRules(loaded);
  const targets = createTargets(loaded.config.targets);
  let raw: Buffer;
  try {
    raw = await readFile(options.file);
  } catch (err) {
    throw new MailbellError("INPUT", `cannot read ${options.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Pass a saved message (.eml), e.g. exported with "Show original" → "Download".`);
  }
  const mail = await normalizeMail(raw);
  const receivedAt = options.receivedAt ? new Date(options.receivedAt) : (mail.date ?? new Date());
  if (Number.isNaN(receivedAt.getTime())) throw new MailbellError("USAGE", `--received-at "${options.receivedAt}" is not a date; use ISO 8601, e.g. 2026-11-23T10:00:00+09:00.`);
  const firstAccount = loaded.config.accounts[0];
  const account = options.account ?? firstAccount?.name ?? "test";
  const mailbox = options.mailbox ?? firstAccount?.mailboxes[0] ?? "INBOX";
  const accounts = new Map(loaded.config.accounts.map((a) => [a.name, a]));
  const state = existsSync(loaded.statePath) ? State.open(loaded.statePath, { readOnly: true }) : undefined;
  try {
    // UID 0: the mail is in no mailbox; its identity finds what the daemon did with the same mail.
    const dkim = await verifyDkim(raw, loaded.config.dns, rules, { mail, account, mailbox, receivedAt }, io, options.json);
    const at: MailAt = { account, mailbox, uidValidity: 0, uid: 0, mail, size: rfc822Size(raw), receivedAt, dkim };
    const plan = planMail(at, { rules, targets, accounts, backlogLimit: Infinity, now: Date.now() }, state ?? nothingSeen);
    if (!options.json) {
      io.out(`${options.file}: from ${escapeTerminal(mail.from.map((a) => a.address).join(", ")) || "(none)"}, subject "${escapeTerminal(mail.subject)}", received ${receivedAt.toISOString()}`);
      for (const warning of mail.warnings) io.out(`  warning: ${escapeTerminal(warning)}`);
      // What an attachment: condition is tested against, so a rule can be written from it.
      for (const file of mail.attachments) io.out(`  attachment: ${escapeTerminal(file.filename || "(no name)")} (${escapeTerminal(file.contentType)}, ${file.size} bytes)`);
    }
    for (const rulePlan of plan.rules) {
      const rule = rules.find((r) => r.name === rulePlan.rule)!;
      if (options.json) io.out(JSON.stringify(rulePlan.matched ? planJson(rulePlan, targets) : { rule: rule.name, matched: false, ...(rulePlan.unverified ? { unverified: rulePlan.unverified.code, reason: rulePlan.unverified.reason } : {}) }));
      else if (!rulePlan.matched && rulePlan.unverified) io.out(`rule ${rule.name}: no match: sender not verified: ${escapeTerminal(rulePlan.unverified.reason)}`);
      else if (!rulePlan.matched) io.out(`rule ${rule.name}: no match`);
      else printPlan(rulePlan, rule, targets, state !== undefined, io);
    }
    if (!options.json && plan.matches.length === 0) io.out("No rule matched.");
    // The actions are the mail's, merged over every matched rule (one move wins), not any one rule's:
    // so --json gives them a line of their own after the rule lines, { "then": … }, told apart from
    // those by its key; it is left out, like the text line, when no matched rule has `then:`.
    if (plan.actions && options.json) io.out(JSON.stringify({ then: actionsJson(plan.actions) }));
    else if (plan.actions) printActions(plan.actions, io);
  } finally {
    state?.close();
  }
  return 0;
}

/**
 * The mail's DKIM signatures, when a rule that verifies DKIM matches its header: looked up in DNS
 * as the daemon would (dns: in the config). A failed lookup is said, and the rule then shows as
 * not verified (the daemon would try again later).
 */
async function verifyDkim(raw: Buffer, dns: { servers?: string[] | undefined; cacheSeconds: number; timeoutSeconds: number }, rules: readonly CompiledRule[], input: Parameters<typeof needsWhole>[1], io: CliIO, json: boolean): Promise<DkimSignature[] | undefined> {
  if (!needsWhole(rules, input, true)) return undefined;
  const verifier = dkimVerifier(cachedResolver({ servers: dns.servers, cacheMs: 0, timeoutMs: dns.timeoutSeconds * 1000 }).resolve, rules.flatMap((r) => r.verify?.dkim ?? []));
  try {
    return await verifier.verify(raw);
  } catch (err) {
    if (!(err instanceof ReadAgainLater)) throw err;
    if (!json) io.err(`note: ${err.message.replace(/; checked again shortly$/, "")}; the daemon would read the mail again later.`);
    return undefined;
  }
}

interface RenderedDelivery {
  target: string;
  type: string;
  payload: TargetPayload;
  /** Where the same mail was queued from for this rule and target before: the daemon would not post it again. */
  earlier: string | undefined;
}

/** Each planned delivery as its target renders it. */
function rendered(plan: MatchPlan, targets: ReadonlyMap<string, Target>): RenderedDelivery[] {
  return plan.deliveries.map((d) => {
    const target = targets.get(d.target)!;
    return { target: d.target, type: target.type, payload: target.render(plan.notification), earlier: "earlier" in d ? d.earlier : undefined };
  });
}

function planJson(plan: MatchPlan, targets: ReadonlyMap<string, Target>): object {
  const { match, notification, total } = plan;
  return {
    rule: plan.rule,
    matched: true,
    ...(match.verified ? { verified: match.verified.by } : {}),
    fields: notification.fields,
    missing: match.missing,
    total: match.total
      ? {
          add: match.total.amount ? moneyToDecimalString(match.total.amount) : null,
          currency: match.total.amount?.currency ?? null,
          period: match.total.period.key,
          periodLabel: match.total.period.label,
          runningTotal: notification.total,
          ...(total?.kind === "counted" ? { alreadyCounted: total.earlier } : {}),
        }
      : null,
    message: renderMessage(notification.message, (s) => s),
    targets: rendered(plan, targets).map((r) => ({
      target: r.target,
      type: r.type,
      payload: parseBody(r.payload.body),
      ...(r.payload.thread !== undefined ? { thread: r.payload.thread } : {}),
      ...(r.earlier !== undefined ? { alreadyNotified: r.earlier } : {}),
    })),
  };
}

function printPlan(plan: MatchPlan, rule: CompiledRule, targets: ReadonlyMap<string, Target>, hasState: boolean, io: CliIO): void {
  const { match, notification, total } = plan;
  io.out(`rule ${rule.name}: matched${match.verified ? `, sender verified (${match.verified.by})` : ""}`);
  for (const [name, field] of Object.entries(notification.fields)) {
    io.out(
      field
        ? `  ${name}: ${escapeTerminal(field.text)}${field.raw !== field.text ? `  (captured "${escapeTerminal(field.raw)}")` : ""}`
        : `  ${name}: MISSING — ${escapeTerminal(match.missing.find((m) => m.field === name)?.reason ?? "")}`,
    );
  }
  if (total?.kind === "add") {
    io.out(`  total: would add ${formatMoney(total.amount, rule.locale)} to ${total.period.key} (${total.period.label}) → ${formatMoney(total.after, rule.locale)}${hasState ? "" : " (no state file yet)"}`);
  } else if (total?.kind === "counted") {
    io.out(`  total: already counted (from ${escapeTerminal(total.earlier)}); ${total.period.key} (${total.period.label}) stays ${formatMoney(total.after, rule.locale)}`);
  } else if (total) io.out(`  total: nothing to add (${total.field} is missing)`);
  // A rule with only then: posts nothing; its message would only suggest that it does.
  if (rule.notify.length === 0) io.out("  notifies nobody; it only acts on the mail (then:, below)");
  else io.out(`  message: ${renderMessage(notification.message, escapeTerminal)}`);
  for (const r of rendered(plan, targets)) {
    io.out(`  → ${r.target} (${r.type})${r.payload.thread !== undefined ? ` thread ${escapeTerminal(r.payload.thread)}` : ""}: ${escapeTerminal(r.payload.body)}`);
    if (r.earlier !== undefined) io.out(`    already notified (from ${escapeTerminal(r.earlier)}); not posted again`);
  }
}

/** "then: would mark read, move to Receipts/2026 (rules: play; …)", then what was left out and why. */
function printActions(plan: ActionPlan, io: CliIO): void {
  const what = escapeTerminal(describeActions(plan.actions));
  const rules = `rules: ${plan.rules.join(", ")}`;
  if (plan.kind === "act") io.out(`then: would ${what} (${rules}; mailbell test changes nothing)`);
  else if (plan.kind === "acted") io.out(`then: already acted on (from ${escapeTerminal(plan.earlier)}); not done again: ${what} (${rules})`);
  else io.out(`then: nothing (${plan.notes.map(escapeTerminal).join("; ")})`);
  if (plan.kind !== "nothing") for (const note of plan.notes) io.out(`  ${escapeTerminal(note)}`);
}

/** Stable: every key always present (move is null when there is none); alreadyActed only when acted on before. */
function actionsJson(plan: ActionPlan): object {
  const { seen, flags, labels, move } = plan.actions;
  return {
    kind: plan.kind,
    actions: { seen, flags, labels, move: move ?? null },
    rules: plan.rules,
    notes: plan.notes,
    ...(plan.kind === "acted" ? { alreadyActed: plan.earlier } : {}),
  };
}

function parseBody(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}
