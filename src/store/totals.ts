import type { DatabaseSync, StatementSync } from "node:sqlite";
import { addMoney } from "../rules/money.ts";
import type { Money } from "../rules/types.ts";
import { transaction } from "./db.ts";

/** Where a counted mail lives: its place on the server, and its Message-ID when it has one. */
export interface CountedMail {
  /** account/mailbox/UIDVALIDITY/UID */
  key: string;
  /** account/mailbox/UIDVALIDITY */
  mailboxKey: string;
  messageId: string | undefined;
}

/**
 * Running sums per (rule, period, currency). Each message is counted once per rule: the entry row
 * is the proof it was counted, and the sum moves only when that row is new.
 */
export class Totals {
  readonly #db: DatabaseSync;
  readonly #insertEntry: StatementSync;
  readonly #getTotal: StatementSync;
  readonly #putTotal: StatementSync;
  readonly #hasEntry: StatementSync;
  readonly #elsewhere: StatementSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#insertEntry = db.prepare(
      "INSERT OR IGNORE INTO total_entries (rule, message_key, period, currency, units, scale, counted_at, message_id, mailbox_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.#hasEntry = db.prepare("SELECT 1 AS found FROM total_entries WHERE rule = ? AND message_key = ?");
    this.#elsewhere = db.prepare("SELECT 1 AS found FROM total_entries WHERE rule = ? AND message_id = ? AND mailbox_key IS NOT ? LIMIT 1");
    this.#getTotal = db.prepare("SELECT units, scale, entries FROM totals WHERE rule = ? AND period = ? AND currency = ?");
    this.#putTotal = db.prepare(
      `INSERT INTO totals (rule, period, currency, units, scale, entries) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (rule, period, currency) DO UPDATE SET units = excluded.units, scale = excluded.scale, entries = excluded.entries`,
    );
  }

  /**
   * Adds `amount` for this mail unless it was counted before: at the same place (`mail.key`), or,
   * by Message-ID, in another mailbox or under an earlier UIDVALIDITY. Returns the running total
   * either way.
   */
  add(rule: string, mail: CountedMail, period: string, amount: Money): { total: Money; added: boolean } {
    return transaction(this.#db, () => {
      const current = this.get(rule, period, amount.currency);
      if (mail.messageId && this.#elsewhere.get(rule, mail.messageId, mail.mailboxKey) !== undefined) return { total: current ?? zero(amount.currency), added: false };
      const inserted = this.#insertEntry.run(rule, mail.key, period, amount.currency, amount.units.toString(), amount.scale, new Date().toISOString(), mail.messageId ?? null, mail.mailboxKey);
      if (Number(inserted.changes) === 0) return { total: current ?? zero(amount.currency), added: false };
      const entries = current ? this.#entries(rule, period, amount.currency) + 1 : 1;
      const total = current ? addMoney(current, amount) : amount;
      this.#putTotal.run(rule, period, amount.currency, total.units.toString(), total.scale, entries);
      return { total, added: true };
    });
  }

  get(rule: string, period: string, currency: string): Money | undefined {
    const row = this.#getTotal.get(rule, period, currency) as { units: string; scale: number } | undefined;
    return row ? { units: BigInt(row.units), scale: Number(row.scale), currency } : undefined;
  }

  /** Whether this mail was already counted for this rule. */
  isCounted(rule: string, mail: CountedMail): boolean {
    return this.#hasEntry.get(rule, mail.key) !== undefined || (mail.messageId !== undefined && this.#elsewhere.get(rule, mail.messageId, mail.mailboxKey) !== undefined);
  }

  #entries(rule: string, period: string, currency: string): number {
    const row = this.#getTotal.get(rule, period, currency) as { entries: number } | undefined;
    return row ? Number(row.entries) : 0;
  }
}

function zero(currency: string): Money {
  return { units: 0n, scale: 0, currency };
}

