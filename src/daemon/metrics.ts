import type { HealthSnapshot } from "./health.ts";

/** Label name → value. Every declared label must be present; no others may be. */
export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  labels: Labels;
  value: number;
}

export interface Counter {
  /** Adds `by` (default 1, never negative); `inc(labels, 0)` creates the series at zero. */
  inc(labels?: Labels, by?: number): void;
}

export interface Gauge {
  set(labels: Labels, value: number): void;
  inc(labels?: Labels, by?: number): void;
}

type MetricType = "counter" | "gauge";

interface Family {
  name: string;
  help: string;
  type: MetricType;
  labelNames: readonly string[];
  collect(): readonly Sample[];
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * A minimal Prometheus registry rendering text exposition format 0.0.4. Families come out sorted by
 * name and series by label values, so the output is the same whatever order things happened in.
 */
export class Metrics {
  readonly #families = new Map<string, Family>();

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    const series = this.#static(name, help, "counter", labelNames);
    return {
      inc: (labels = {}, by = 1) => {
        if (!(by >= 0)) throw new RangeError(`metric ${name}: a counter only goes up, but inc was given ${by}; use a gauge for values that can fall`);
        series.add(labels, by);
      },
    };
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    const series = this.#static(name, help, "gauge", labelNames);
    return {
      set: (labels, value) => series.set(labels, value),
      inc: (labels = {}, by = 1) => series.add(labels, by),
    };
  }

  /** A gauge read at scrape time, for values that live elsewhere (the outbox table). */
  gaugeFn(name: string, help: string, labelNames: readonly string[], collect: () => readonly Sample[]): void {
    this.#declare({ name, help, type: "gauge", labelNames, collect });
  }

  /** A counter read at scrape time; `collect` must only ever report rising values. */
  counterFn(name: string, help: string, labelNames: readonly string[], collect: () => readonly Sample[]): void {
    this.#declare({ name, help, type: "counter", labelNames, collect });
  }

  /** Throws when a callback throws or reports bad labels: a scrape must fail loudly, not lie. */
  render(): string {
    const out: string[] = [];
    for (const family of [...this.#families.values()].sort((a, b) => compare(a.name, b.name))) {
      out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
      const rows = family.collect().map((sample) => ({ values: labelValues(family, sample.labels), value: sample.value }));
      rows.sort((a, b) => compareValues(a.values, b.values));
      for (let i = 1; i < rows.length; i++) {
        if (compareValues(rows[i - 1]!.values, rows[i]!.values) === 0) {
          throw new Error(`metric ${family.name}: two samples have the same labels ${formatLabels(family.labelNames, rows[i]!.values)}; each label combination may appear once`);
        }
      }
      for (const row of rows) out.push(`${family.name}${formatLabels(family.labelNames, row.values)} ${formatValue(row.value)}`);
    }
    return out.length === 0 ? "" : `${out.join("\n")}\n`;
  }

  #static(name: string, help: string, type: MetricType, labelNames: readonly string[]) {
    const series = new Map<string, { values: string[]; value: number }>();
    const family: Family = { name, help, type, labelNames, collect: () => [...series.values()].map((s) => ({ labels: toLabels(labelNames, s.values), value: s.value })) };
    this.#declare(family);
    const slot = (labels: Labels) => {
      const values = labelValues(family, labels);
      const key = JSON.stringify(values);
      let entry = series.get(key);
      if (!entry) series.set(key, (entry = { values, value: 0 }));
      return entry;
    };
    return {
      add: (labels: Labels, by: number) => {
        checkNumber(name, by);
        slot(labels).value += by;
      },
      set: (labels: Labels, value: number) => {
        checkNumber(name, value);
        slot(labels).value = value;
      },
    };
  }

  #declare(family: Family): void {
    if (!metricName.test(family.name)) throw new Error(`metric name ${JSON.stringify(family.name)} is not valid: use letters, digits, '_' and ':', not starting with a digit`);
    if (this.#families.has(family.name)) throw new Error(`metric ${family.name} is declared twice; declare it once and share the returned object`);
    const seen = new Set<string>();
    for (const label of family.labelNames) {
      if (!labelName.test(label) || label.startsWith("__")) throw new Error(`metric ${family.name}: label name ${JSON.stringify(label)} is not valid: use letters, digits and '_', not starting with a digit or '__'`);
      if (seen.has(label)) throw new Error(`metric ${family.name}: label ${label} is listed twice`);
      seen.add(label);
    }
    this.#families.set(family.name, family);
  }
}

function labelValues(family: Family, labels: Labels): string[] {
  const given = Object.keys(labels);
  const fits = given.length === family.labelNames.length && family.labelNames.every((l) => typeof labels[l] === "string");
  if (!fits) {
    throw new Error(`metric ${family.name}: got labels {${given.join(", ")}} but it takes exactly {${family.labelNames.join(", ")}}, each a string`);
  }
  return family.labelNames.map((l) => labels[l]!);
}

function toLabels(names: readonly string[], values: readonly string[]): Labels {
  return Object.fromEntries(names.map((n, i) => [n, values[i]!]));
}

function checkNumber(name: string, value: number): void {
  if (typeof value !== "number") throw new TypeError(`metric ${name}: values must be numbers, got ${typeof value}`);
}

function formatLabels(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return "";
  return `{${names.map((n, i) => `${n}="${escapeLabelValue(values[i]!)}"`).join(",")}}`;
}

function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

function escapeHelp(help: string): string {
  return help.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

// Code-unit order, not localeCompare: the output must not depend on the machine's locale.
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareValues(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    const c = compare(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return 0;
}

export type DeliveryOutcome = "delivered" | "retry" | "dead";

export const deliveryOutcomes: readonly DeliveryOutcome[] = ["delivered", "retry", "dead"];

/** States an outbox row can be in; each known target reports all of them, zero included. */
export const outboxStates: readonly string[] = ["pending", "done", "dead"];

export interface MailbellMetricSources {
  /** The current health; read at every scrape. */
  health: () => HealthSnapshot;
  /** Outbox row counts (State.outbox.counts()); read at every scrape. */
  outboxRows: () => readonly { target: string; state: string; count: number }[];
  /** When each target's oldest waiting row was queued (State.outbox.oldestPending()); read at every scrape. */
  outboxOldestPending?: () => readonly { target: string; createdAt: number }[];
  /** Clock for ages; defaults to Date.now. */
  now?: () => number;
  /**
   * Series to report at zero before anything happens, so that rate() and alerts on "never
   * delivered" work from the first scrape instead of from the first event.
   */
  known?: {
    mailboxes?: readonly { account: string; mailbox: string }[];
    rules?: readonly string[];
    targets?: readonly string[];
  };
}

/** What the daemon calls as mail moves through the pipeline. */
export interface MailbellMetrics {
  mailProcessed(account: string, mailbox: string): void;
  /** A mail could not be read and was set aside. */
  mailSetAside(account: string, mailbox: string): void;
  /** A watching session ended in failure; `error` undefined when the server simply closed it. */
  sessionFailed(account: string, mailbox: string, error: { code: string } | undefined): void;
  ruleMatched(rule: string): void;
  /** A rule's conditions held but the mail's sender was not verified (verify:); `reason` is a short code. */
  mailUnverified(rule: string, reason: string): void;
  /**
   * Rules' actions on `count` mails: done, refused by the server (tried again later; `action` says
   * which one) or given up (the mail is gone or renumbered).
   */
  mailActions(account: string, mailbox: string, result: "done" | "refused" | "given_up", count: number, action?: string): void;
  /** `rows` > 1 when one send carried a digest of several outbox rows; each row is counted. */
  delivery(target: string, outcome: DeliveryOutcome, rows?: number): void;
}

/**
 * Declares mailbell's metrics on `registry`. State (connections, outbox depth) is read from its
 * source at scrape time, so it can never drift from what /healthz says; only events are counted here.
 */
export function createMailbellMetrics(registry: Metrics, sources: MailbellMetricSources): MailbellMetrics {
  const now = sources.now ?? Date.now;
  const known = sources.known ?? {};

  registry.gaugeFn("mailbell_up", "1 when every watched mailbox is healthy (as /healthz reports), 0 otherwise.", [], () => [{ labels: {}, value: sources.health().healthy ? 1 : 0 }]);
  registry.gaugeFn("mailbell_mailbox_up", "1 when the mailbox is really watched (checkpoint settled, in IDLE or polling), 0 otherwise.", ["account", "mailbox"], () =>
    sources.health().mailboxes.map((m) => ({ labels: { account: m.account, mailbox: m.mailbox }, value: m.connected ? 1 : 0 })),
  );
  registry.gaugeFn("mailbell_mailbox_last_event_age_seconds", "Seconds since the watcher last reported anything for the mailbox; absent before its first event.", ["account", "mailbox"], () => {
    const at = now();
    return sources.health().mailboxes.flatMap((m) => (m.lastEventAt === null ? [] : [{ labels: { account: m.account, mailbox: m.mailbox }, value: Math.max(0, at - m.lastEventAt) / 1000 }]));
  });
  registry.counterFn("mailbell_reconnects_total", "Times the IMAP connection of the mailbox was lost or could not be opened.", ["account", "mailbox"], () =>
    sources.health().mailboxes.map((m) => ({ labels: { account: m.account, mailbox: m.mailbox }, value: m.reconnects })),
  );
  registry.gaugeFn("mailbell_outbox_rows", "Rows in the outbox by target and state.", ["target", "state"], () => {
    const counts = new Map<string, Sample>();
    for (const target of known.targets ?? []) for (const state of outboxStates) counts.set(JSON.stringify([target, state]), { labels: { target, state }, value: 0 });
    for (const row of sources.outboxRows()) counts.set(JSON.stringify([row.target, row.state]), { labels: { target: row.target, state: row.state }, value: row.count });
    return [...counts.values()];
  });
  // The row counts say how much waits, not for how long: a target that has refused every post since
  // last night shows a few pending rows, the same as a busy one. This is the number to alert on.
  registry.gaugeFn(
    "mailbell_outbox_oldest_pending_age_seconds",
    "Seconds the oldest notification still waiting for the target has waited (0 when none waits); it grows while the target takes no posts, while pacing spreads out a flood, or while a catch-up's digest is gathered.",
    ["target"],
    () => {
      const at = now();
      const ages = new Map<string, number>((known.targets ?? []).map((target) => [target, 0]));
      for (const row of sources.outboxOldestPending?.() ?? []) ages.set(row.target, Math.max(0, at - row.createdAt) / 1000);
      return [...ages].map(([target, value]) => ({ labels: { target }, value }));
    },
  );

  const sessionFailures = registry.counter(
    "mailbell_session_failures_total",
    "Watching sessions of the mailbox that ended in failure, by reason: connect (network, TLS, timeouts), auth, mailbox, server (an answer mailbell cannot use), closed (the server hung up), state (the state database), internal (a bug).",
    ["account", "mailbox", "reason"],
  );
  const setAside = registry.counter("mailbell_mails_set_aside_total", "Mails that could not be read after watch.maxReadAttempts tries and were set aside (see mailbell unreadable).", ["account", "mailbox"]);
  const processed = registry.counter("mailbell_mails_processed_total", "Mails read from the mailbox and run through the rules.", ["account", "mailbox"]);
  const matches = registry.counter("mailbell_rule_matches_total", "Mails that matched the rule.", ["rule"]);
  const unverified = registry.counter(
    "mailbell_mails_unverified_total",
    "Mails a rule with verify: did not count or notify because the sender was not verified, by reason: not_signed, dkim_fail, other_domain, not_aligned, not_checked, no_auth_results, auth_results_fail.",
    ["rule", "reason"],
  );
  const actions = registry.counter(
    "mailbell_mail_actions_total",
    "Mails the rules' actions (then:) were done to, by result: done, refused (the server said no; tried again later, and each refused try counts) or given_up (the mail left the mailbox before it could be done).",
    ["account", "mailbox", "result"],
  );
  const refusals = registry.counter("mailbell_mail_action_refusals_total", "Mails an action of the rules (then:) was refused for, by action: seen, flag, label or move; each refusal is logged at warn with the server's reason.", ["account", "mailbox", "action"]);
  const deliveries = registry.counter("mailbell_deliveries_total", "Outbox rows sent by target and outcome: delivered, retry (failed, will be tried again) or dead (given up).", ["target", "outcome"]);

  for (const { account, mailbox } of known.mailboxes ?? []) {
    processed.inc({ account, mailbox }, 0);
    setAside.inc({ account, mailbox }, 0);
  }
  for (const rule of known.rules ?? []) matches.inc({ rule }, 0);
  for (const target of known.targets ?? []) for (const outcome of deliveryOutcomes) deliveries.inc({ target, outcome }, 0);

  return {
    mailProcessed: (account, mailbox) => processed.inc({ account, mailbox }),
    mailSetAside: (account, mailbox) => setAside.inc({ account, mailbox }),
    sessionFailed: (account, mailbox, error) => sessionFailures.inc({ account, mailbox, reason: failureReason(error) }),
    ruleMatched: (rule) => matches.inc({ rule }),
    mailUnverified: (rule, reason) => unverified.inc({ rule, reason }),
    mailActions: (account, mailbox, result, count, action) => {
      actions.inc({ account, mailbox, result }, count);
      if (result === "refused") refusals.inc({ account, mailbox, action: action ?? "unknown" }, count);
    },
    delivery: (target, outcome, rows = 1) => {
      if (!deliveryOutcomes.includes(outcome)) throw new Error(`mailbell_deliveries_total: outcome ${JSON.stringify(outcome)} is not one of ${deliveryOutcomes.join(", ")}`);
      deliveries.inc({ target, outcome }, rows);
    },
  };
}

const failureReasons: Readonly<Record<string, string>> = {
  IMAP_CONNECT: "connect",
  IMAP_AUTH: "auth",
  IMAP_MAILBOX: "mailbox",
  IMAP_SERVER: "server",
  STATE: "state",
  INTERNAL: "internal",
};

/** The reason label of a failed session: a few fixed values, so the series stay few. */
export function failureReason(error: { code: string } | undefined): string {
  return error === undefined ? "closed" : (failureReasons[error.code] ?? "internal");
}
