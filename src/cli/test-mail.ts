import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { loadConfig } from "../config/load.ts";
import { compileConfigRules } from "../config/validate.ts";
import { messageLink, seenMail } from "../daemon/pipeline.ts";
import { MailbellError } from "../errors.ts";
import { rfc822Size } from "../mail/identity.ts";
import { normalizeMail } from "../mail/normalize.ts";
import { buildNotification } from "../outbox/notification.ts";
import { addMoney, formatMoney, moneyToDecimalString } from "../rules/money.ts";
import { evaluateRules } from "../rules/rules.ts";
import type { RuleInput, RunningTotal } from "../rules/types.ts";
import { State } from "../store/state.ts";
import { createTargets } from "../targets/index.ts";
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
 * sending or counting anything. Totals are read from the state file when it exists.
 */
export async function testCommand(options: TestCommandOptions, io: CliIO): Promise<number> {
  const loaded = await loadConfig(options.config, io.env, { missingEnv: "placeholder" });
  if (loaded.placeholders.length > 0 && !options.json) io.err(`note: ${loaded.placeholders.join(", ")} not set; using placeholders (mailbell test sends nothing).`);
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
  const input: RuleInput = { mail, account, mailbox, receivedAt };
  const matches = evaluateRules(rules, input);
  const state = existsSync(loaded.statePath) ? State.open(loaded.statePath, { readOnly: true }) : undefined;
  try {
    if (!options.json) {
      io.out(`${options.file}: from ${escapeTerminal(mail.from.map((a) => a.address).join(", ")) || "(none)"}, subject "${escapeTerminal(mail.subject)}", received ${receivedAt.toISOString()}`);
      for (const warning of mail.warnings) io.out(`  warning: ${escapeTerminal(warning)}`);
    }
    const ref = { uidValidity: 0, uid: 0 };
    const counted = seenMail({ account, mailbox, uidValidity: 0, uid: 0, mail, size: rfc822Size(raw), receivedAt });
    const accountConfig = loaded.config.accounts.find((a) => a.name === account);
    const link = messageLink(accountConfig, { account, mailbox, uid: 0, mail });
    for (const rule of rules) {
      const match = matches.find((m) => m.rule === rule.name);
      if (!match) {
        if (options.json) io.out(JSON.stringify({ rule: rule.name, matched: false }));
        else io.out(`rule ${rule.name}: no match`);
        continue;
      }
      let total: RunningTotal | undefined;
      if (match.total?.amount) {
        const current = state?.totals.get(rule.name, match.total.period.key, match.total.amount.currency);
        const alreadyCounted = state?.totals.isCounted(rule.name, counted) ?? false;
        const money = current ? (alreadyCounted ? current : addMoney(current, match.total.amount)) : match.total.amount;
        total = { money, period: match.total.period };
      }
      const notification = buildNotification(rule, match, input, ref, { total, link });
      const rendered = match.notify.flatMap((name) => {
        const target = targets.get(name);
        return target ? [{ target: name, type: target.type, payload: target.render(notification) }] : [];
      });
      if (options.json) {
        io.out(
          JSON.stringify({
            rule: rule.name,
            matched: true,
            fields: notification.fields,
            missing: match.missing,
            total: match.total
              ? { add: match.total.amount ? moneyToDecimalString(match.total.amount) : null, currency: match.total.amount?.currency ?? null, period: match.total.period.key, periodLabel: match.total.period.label, runningTotal: notification.total }
              : null,
            message: renderMessage(notification.message, (s) => s),
            targets: rendered.map((r) => ({ target: r.target, type: r.type, payload: parseBody(r.payload.body), ...(r.payload.thread !== undefined ? { thread: r.payload.thread } : {}) })),
          }),
        );
        continue;
      }
      io.out(`rule ${rule.name}: matched`);
      for (const [name, field] of Object.entries(notification.fields)) {
        io.out(
          field
            ? `  ${name}: ${escapeTerminal(field.text)}${field.raw !== field.text ? `  (captured "${escapeTerminal(field.raw)}")` : ""}`
            : `  ${name}: MISSING — ${escapeTerminal(match.missing.find((m) => m.field === name)?.reason ?? "")}`,
        );
      }
      if (match.total) {
        if (match.total.amount && total) {
          io.out(`  total: would add ${formatMoney(match.total.amount, rule.locale)} to ${match.total.period.key} (${match.total.period.label}) → ${formatMoney(total.money, rule.locale)}${state ? "" : " (no state file yet)"}`);
        } else io.out(`  total: nothing to add (${match.total.field} is missing)`);
      }
      io.out(`  message: ${renderMessage(notification.message, escapeTerminal)}`);
      for (const r of rendered) io.out(`  → ${r.target} (${r.type})${r.payload.thread !== undefined ? ` thread ${escapeTerminal(r.payload.thread)}` : ""}: ${escapeTerminal(r.payload.body)}`);
    }
    if (!options.json && matches.length === 0) io.out("No rule matched.");
  } finally {
    state?.close();
  }
  return 0;
}

function parseBody(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}
