import type { DatabaseSync, StatementSync } from "node:sqlite";
import { addMoney, moneyToDecimalString } from "../../rules/money.ts";
import type { Money } from "../../rules/types.ts";
import { transaction } from "./db.ts";
import type { Counted, SeenMail, TotalRow, TotalsReport, TotalsStore } from "../../plan/store.ts";
import type { RecountEntry, RecountScope, TotalsRecount } from "../../backfill/rebuild.ts";

/**
 * Running sums per (rule, period, currency) in SQLite. The entry row is the proof a mail was
 * counted, and the sum moves only when that row is new.
 */
export class Totals implements TotalsStore, TotalsReport, TotalsRecount {
  readonly #db: DatabaseSync;
  readonly #insertEntry: StatementSync;
  readonly #getTotal: StatementSync;
  readonly #putTotal: StatementSync;
  readonly #byIdentity: StatementSync;
  readonly #byPlace: StatementSync;
  readonly #byMessageIdBefore: StatementSync;
  readonly #report: StatementSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#insertEntry = db.prepare(
      "INSERT OR IGNORE INTO total_entries (rule, message_key, period, currency, units, scale, counted_at, message_id, mailbox_key, identity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.#byIdentity = db.prepare("SELECT message_key AS place FROM total_entries WHERE rule = ? AND identity = ?");
    this.#byPlace = db.prepare("SELECT message_key AS place FROM total_entries WHERE rule = ? AND message_key = ?");
    // Entries from before identities (see SeenMail): the ISO strings of counted_at compare as times.
    this.#byMessageIdBefore = db.prepare(
      "SELECT message_key AS place FROM total_entries WHERE rule = ? AND message_id = ? AND identity IS NULL AND (mailbox_key IS NOT ? OR counted_at >= ?) LIMIT 1",
    );
    this.#report = db.prepare("SELECT rule, period, currency, units, scale, entries FROM totals WHERE (? IS NULL OR rule = ?) ORDER BY rule, period, currency");
    this.#getTotal = db.prepare("SELECT units, scale, entries FROM totals WHERE rule = ? AND period = ? AND currency = ?");
    this.#putTotal = db.prepare(
      `INSERT INTO totals (rule, period, currency, units, scale, entries) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (rule, period, currency) DO UPDATE SET units = excluded.units, scale = excluded.scale, entries = excluded.entries`,
    );
  }

  report(filter: { rule?: string; since?: string } = {}): TotalRow[] {
    const rows = this.#report.all(filter.rule ?? null, filter.rule ?? null) as { rule: string; period: string; currency: string; units: string; scale: number; entries: number }[];
    return rows
      .filter((row) => filter.since === undefined || !periodBefore(row.period, filter.since))
      .map((row) => ({
        rule: row.rule,
        period: row.period,
        currency: row.currency,
        amount: moneyToDecimalString({ units: BigInt(row.units), scale: Number(row.scale), currency: row.currency }),
        mails: Number(row.entries),
      }));
  }

  add(rule: string, mail: SeenMail, period: string, amount: Money): Counted {
    return transaction(this.#db, () => {
      const earlier = this.countedAt(rule, mail);
      const total = earlier === undefined ? this.record(rule, mail, period, amount) : undefined;
      if (total) return { total, added: true };
      return { total: this.get(rule, period, amount.currency) ?? zero(amount.currency), added: false, earlier: earlier ?? mail.place };
    });
  }

  record(rule: string, mail: SeenMail, period: string, amount: Money): Money | undefined {
    return transaction(this.#db, () => {
      const inserted = this.#insertEntry.run(rule, mail.place, period, amount.currency, amount.units.toString(), amount.scale, new Date().toISOString(), mail.messageId ?? null, mail.mailboxKey, mail.identity);
      if (Number(inserted.changes) === 0) return undefined;
      const row = this.#getTotal.get(rule, period, amount.currency) as { units: string; scale: number; entries: number } | undefined;
      const total = row ? addMoney({ units: BigInt(row.units), scale: Number(row.scale), currency: amount.currency }, amount) : amount;
      this.#putTotal.run(rule, period, amount.currency, total.units.toString(), total.scale, row ? Number(row.entries) + 1 : 1);
      return total;
    });
  }

  replaceRule(rule: string, scope: RecountScope, entries: readonly RecountEntry[]): { removed: number; added: number } {
    const inScope = (period: string) => scope.since === undefined || !periodBefore(period, scope.since);
    const keepIdentities = new Set(scope.keep.map((m) => m.identity));
    const keepPlaces = new Set(scope.keep.map((m) => m.place));
    const before = scope.countedBefore.toISOString();
    return transaction(this.#db, () => {
      const old = this.#db.prepare("SELECT message_key AS place, period, counted_at AS countedAt, identity FROM total_entries WHERE rule = ?").all(rule) as { place: string; period: string; countedAt: string; identity: string | null }[];
      const remove = this.#db.prepare("DELETE FROM total_entries WHERE rule = ? AND message_key = ?");
      let removed = 0;
      for (const e of old) {
        if (!inScope(e.period) || e.countedAt >= before || keepPlaces.has(e.place) || (e.identity !== null && keepIdentities.has(e.identity))) continue;
        removed += Number(remove.run(rule, e.place).changes);
      }
      let added = 0;
      const now = new Date().toISOString();
      for (const { mail, period, amount } of entries) {
        if (!inScope(period)) continue;
        added += Number(this.#insertEntry.run(rule, mail.place, period, amount.currency, amount.units.toString(), amount.scale, now, mail.messageId ?? null, mail.mailboxKey, mail.identity).changes);
      }
      this.#resum(rule, inScope);
      return { removed, added };
    });
  }

  /** Sets the rule's sums in the periods `inScope` to the sum of its entries there. */
  #resum(rule: string, inScope: (period: string) => boolean): void {
    const sums = new Map<string, { period: string; money: Money; entries: number }>();
    const rows = this.#db.prepare("SELECT period, currency, units, scale FROM total_entries WHERE rule = ?").all(rule) as { period: string; currency: string; units: string; scale: number }[];
    for (const r of rows) {
      if (!inScope(r.period)) continue;
      const key = `${r.period}\u0000${r.currency}`;
      const amount = { units: BigInt(r.units), scale: Number(r.scale), currency: r.currency };
      const sum = sums.get(key);
      sums.set(key, sum ? { ...sum, money: addMoney(sum.money, amount), entries: sum.entries + 1 } : { period: r.period, money: amount, entries: 1 });
    }
    const periods = this.#db.prepare("SELECT period, currency FROM totals WHERE rule = ?").all(rule) as { period: string; currency: string }[];
    const drop = this.#db.prepare("DELETE FROM totals WHERE rule = ? AND period = ? AND currency = ?");
    for (const p of periods) if (inScope(p.period)) drop.run(rule, p.period, p.currency);
    for (const s of sums.values()) this.#putTotal.run(rule, s.period, s.money.currency, s.money.units.toString(), s.money.scale, s.entries);
  }

  get(rule: string, period: string, currency: string): Money | undefined {
    const row = this.#getTotal.get(rule, period, currency) as { units: string; scale: number } | undefined;
    return row ? { units: BigInt(row.units), scale: Number(row.scale), currency } : undefined;
  }

  isCounted(rule: string, mail: SeenMail): boolean {
    return this.countedAt(rule, mail) !== undefined;
  }

  countedAt(rule: string, mail: SeenMail): string | undefined {
    const row = (this.#byIdentity.get(rule, mail.identity) ??
      this.#byPlace.get(rule, mail.place) ??
      (mail.messageId === undefined ? undefined : this.#byMessageIdBefore.get(rule, mail.messageId, mail.mailboxKey, mail.receivedAt.toISOString()))) as { place: string } | undefined;
    return row?.place;
  }
}

/**
 * Whether a period ends before the day `since` ("2026-11-01", or a shorter prefix). Day, month and
 * year keys compare as text cut to the shorter length; a week "2026-W48" by its Sunday.
 */
export function periodBefore(period: string, since: string): boolean {
  const week = /^(\d{4})-W(\d{2})$/.exec(period);
  const end = week ? isoWeekSunday(Number(week[1]), Number(week[2])) : period;
  const length = Math.min(end.length, since.length);
  return end.slice(0, length) < since.slice(0, length);
}

function isoWeekSunday(year: number, week: number): string {
  // ISO week 1 holds January 4th; its Monday is found from that day's weekday.
  const jan4 = Date.UTC(year, 0, 4);
  const monday = jan4 - ((new Date(jan4).getUTCDay() + 6) % 7) * 86_400_000;
  return new Date(monday + ((week - 1) * 7 + 6) * 86_400_000).toISOString().slice(0, 10);
}

function zero(currency: string): Money {
  return { units: 0n, scale: 0, currency };
}

