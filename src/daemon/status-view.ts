import type { Checkpoint } from "../imap/checkpoints.ts";
import type { OutboxState } from "../outbox/store.ts";
import type { TotalRow, TotalsReport } from "../plan/store.ts";
import type { HealthSnapshot } from "./health.ts";

/**
 * What the status page shows (GET /status.json), gathered from the daemon's parts. The interfaces
 * below are what this page needs; the SQLite store implements them (store/sqlite/outbox.ts,
 * checkpoints.ts, totals.ts).
 */

/** A notification as the page lists it: no payload, no error text (which may name a service's URL). */
export interface NotificationEntry {
  rule: string;
  target: string;
  subject: string;
  state: OutboxState;
  attempts: number;
  /** When it was queued, and when its state last changed (sent, failed, given up); epoch ms. */
  createdAt: number;
  updatedAt: number;
}

export interface RecentNotifications {
  /** The `limit` most recently queued notifications, newest first. */
  recent(limit: number): NotificationEntry[];
}

export interface OutboxCounts {
  counts(): { target: string; state: OutboxState; count: number }[];
  oldestPending(): { target: string; createdAt: number }[];
}

export interface StatusSources {
  health(): HealthSnapshot;
  checkpoints: { load(account: string, mailbox: string): Checkpoint | undefined };
  outbox: OutboxCounts & RecentNotifications;
  totals: TotalsReport;
  /** Configured targets, so one with nothing queued yet is listed too. */
  targets(): readonly string[];
  /** Rules that keep a total, and the period they keep it per. */
  totalRules(): readonly { name: string; per: string }[];
}

export interface StatusView {
  generatedAt: number;
  healthy: boolean;
  mailboxes: (HealthSnapshot["mailboxes"][number] & { checkpoint: { uidValidity: number; lastUid: number; savedAt: number | null } | null })[];
  outbox: { target: string; waiting: number; dead: number; sent: number; oldestWaitingAt: number | null }[];
  notifications: NotificationEntry[];
  totals: { rule: string; per: string; currencies: { currency: string; periods: Omit<TotalRow, "rule" | "currency">[] }[] }[];
}

/** How many notifications and periods the page shows: enough to see a year, small enough to send every few seconds. */
export const statusLimits = { notifications: 20, periods: 12 };

export function collectStatus(sources: StatusSources, now: number): StatusView {
  const health = sources.health();
  return {
    generatedAt: now,
    healthy: health.healthy,
    mailboxes: health.mailboxes.map((m) => {
      const saved = sources.checkpoints.load(m.account, m.mailbox);
      return { ...m, checkpoint: saved ? { uidValidity: saved.uidValidity, lastUid: saved.lastUid, savedAt: saved.savedAt ?? null } : null };
    }),
    outbox: outboxByTarget(sources.outbox, sources.targets()),
    notifications: sources.outbox.recent(statusLimits.notifications),
    totals: totalsByRule(sources.totals.report(), sources.totalRules()),
  };
}

function outboxByTarget(outbox: OutboxCounts, targets: readonly string[]): StatusView["outbox"] {
  const byTarget = new Map<string, StatusView["outbox"][number]>();
  const entry = (target: string) => {
    let e = byTarget.get(target);
    if (!e) byTarget.set(target, (e = { target, waiting: 0, dead: 0, sent: 0, oldestWaitingAt: null }));
    return e;
  };
  for (const target of targets) entry(target);
  for (const c of outbox.counts()) {
    const e = entry(c.target);
    if (c.state === "pending") e.waiting += c.count;
    else if (c.state === "dead") e.dead += c.count;
    else e.sent += c.count;
  }
  for (const o of outbox.oldestPending()) entry(o.target).oldestWaitingAt = o.createdAt;
  return [...byTarget.values()];
}

/**
 * One entry per configured rule with a total (and per rule no longer configured that still has
 * rows, so nothing counted disappears from view); the last `statusLimits.periods` periods of each
 * currency, oldest first (period keys sort as text in time order).
 */
export function totalsByRule(rows: readonly TotalRow[], totalRules: readonly { name: string; per: string }[]): StatusView["totals"] {
  const out = new Map<string, StatusView["totals"][number]>(totalRules.map((r) => [r.name, { rule: r.name, per: r.per, currencies: [] }]));
  for (const row of rows) {
    let rule = out.get(row.rule);
    if (!rule) out.set(row.rule, (rule = { rule: row.rule, per: "", currencies: [] }));
    let currency = rule.currencies.find((c) => c.currency === row.currency);
    if (!currency) rule.currencies.push((currency = { currency: row.currency, periods: [] }));
    currency.periods.push({ period: row.period, amount: row.amount, mails: row.mails });
  }
  for (const rule of out.values()) {
    for (const c of rule.currencies) c.periods = c.periods.sort((a, b) => (a.period < b.period ? -1 : a.period > b.period ? 1 : 0)).slice(-statusLimits.periods);
  }
  return [...out.values()];
}

/**
 * /healthz for anyone who can reach a non-loopback address: up or down and why, in counts only,
 * so it names no account, mailbox or server.
 */
export function minimalHealth(snapshot: HealthSnapshot): { healthy: boolean; why: string } {
  const sick = snapshot.mailboxes.filter((m) => !m.healthy);
  const total = snapshot.mailboxes.length;
  if (sick.length === 0) return { healthy: true, why: total === 0 ? "no mailboxes configured" : `all ${total} mailbox${total === 1 ? "" : "es"} watching` };
  const states = new Map<string, number>();
  for (const m of sick) states.set(m.state, (states.get(m.state) ?? 0) + 1);
  const detail = [...states].map(([state, n]) => `${n} ${state}`).join(", ");
  return { healthy: false, why: `${sick.length} of ${total} mailbox${total === 1 ? "" : "es"} unhealthy (${detail}); the status page or the log says which and why` };
}
