/**
 * Latency: mails appended at a steady rate while three clients watch the same mailbox —
 *   1. the raw IDLE client (bench/raw-idle-client.ts): the server's own limit,
 *   2. mailbell (`node src/cli/entry.ts run`, a real process) posting to the receiver's /mailbell,
 *   3. the user script (bench/user-script.ts, its own process) posting to /script.
 * Overhead of 2 and 3 = receiver arrival time − the raw client's EXISTS time for the same mail. The
 * receiver and the raw client live in this process, so both read the same performance.now() clock.
 *
 *   node bench/latency.ts                     1000 mails at 20/s (issue 5)
 *   node bench/latency.ts --mails 100 --rate 20
 *   node bench/latency.ts --quick             60 mails at 20/s, for development
 *   node bench/latency.ts --warmup N          mails delivered before measuring (default 20; 0: none)
 *   node bench/latency.ts --only mailbell     run one client (mailbell|script) without the other competing for the CPU
 *   node bench/latency.ts --entry FILE        run mailbell from FILE (a patched copy) instead of bin/mailbell.js over the compiled sources
 *   node bench/latency.ts --json              the LatencyResult as JSON instead of a table
 *   node bench/latency.ts --tap               diagnostic: also split each client's latency into
 *                                             Dovecot's push timing and its own processing
 *
 * Reading the numbers: Dovecot 2.3 sends an IDLE push 500 ms after the first change it notices
 * (NOTIFY_DELAY_MSECS in mailbox-watch.c, one timer per session, started by the first change to
 * the Maildir's new/ or cur/ after the session's previous push: a new mail, or a read-write session
 * such as the user script moving one from new/ to cur/). At 20 mails/s each push covers ~10 mails.
 * When a mail lands within the few ms in which two sessions handle their pushes (each in its own
 * Dovecot process), it starts one session's next timer and not the other's; from then on their
 * pushes are an append interval or more apart, and every mail appended between the two pushes
 * reaches one session ~500 ms after the other, until a quiet moment brings them back in step. The
 * "2nd raw IDLE client" row (an identical hand-written client) shows that noise floor; a client
 * that leaves IDLE to fetch (the user script) falls out of step more often. The p99/max
 * of "overhead over raw" at 20/s are that phase, not the client's work; `--tap` separates the two
 * ("own" = arrival − the client's own EXISTS). The fixed append period can also resonate with the
 * 500 ms timer (at 1/s especially).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { parseArgs } from "node:util";
import { ImapFlow } from "imapflow";
import { startDovecot, type Dovecot } from "../test/support/dovecot.ts";
import { buildMail, type MailInput } from "../test/support/mail.ts";
import { accountYaml } from "../test/support/config-yaml.ts";
import { listenOnLoopback } from "../test/support/loopback.ts";
import { startReceiver, type ReceivedRequest, type Receiver } from "../test/support/receiver.ts";
import { fmtMs, freePort, giveUpAfter, machineInfo, sleep, startMailbellProcess, startUserScript, summarize, Table, type MailbellProcess, type Summary, type TrackedProcess } from "./lib.ts";
import { ImapLineScanner, startRawIdleClient, type RawIdleClient } from "./raw-idle-client.ts";

export interface LatencyOptions {
  mails: number;
  perSecond: number;
  /** Progress lines on stderr (default false). */
  verbose?: boolean;
  /**
   * Mails appended (at the same rate) and delivered before measuring, so lazy module loading and
   * JIT warm-up in the clients are not counted against the first batch. Default 20.
   */
  warmup?: number;
  /** Also return the per-mail times (LatencyResult.samples). */
  samples?: boolean;
  /**
   * Diagnostic (default off): put mailbell and the user script behind a TLS-terminating tap in this
   * process that stamps every `* N EXISTS` on their own connections, so their latency splits into
   * `pushLag` (their own EXISTS − the raw client's) and `own` (arrival − their own EXISTS). Adds one
   * local TLS hop to both clients (not to the raw client).
   */
  tap?: boolean;
  /**
   * mailbell's rule also extracts a word from the body, so each mail's text is fetched too (by
   * default the rule reads only the header, and mailbell fetches nothing more).
   */
  readBody?: boolean;
  /**
   * A second raw IDLE client (default on): its EXISTS time − the first one's, per mail, is the noise
   * floor of "overhead over raw" — Dovecot times each session's pushes on its own.
   */
  calibrate?: boolean;
  /** Which clients to run next to the raw one (default both). One alone shows it without the other competing for the CPU. */
  clients?: readonly ("mailbell" | "script")[];
  /** Run mailbell from another entry point (a patched scratch copy, dist/cli/entry.js) instead of src/cli/entry.ts. */
  mailbellEntry?: string;
  /** mailbell's account `readerConnections` (default: left out, so mailbell's default applies). */
  readerConnections?: boolean;
}

/** One mail's times, all performance.now() of this process; undefined when it never came. */
export interface LatencySample {
  /** Sequence number in the mailbox. */
  seq: number;
  appendStart: number;
  appendDone: number;
  rawAt: number | undefined;
  mailbellAt: number | undefined;
  scriptAt: number | undefined;
  /** With options.tap: the first EXISTS covering the mail on mailbell's / the script's own connection. */
  mailbellExistsAt?: number | undefined;
  scriptExistsAt?: number | undefined;
}

export interface ClientLatency extends Summary {
  /** The same mail received more than once. */
  duplicates: number;
  /** Over the append phase (from just before the first APPEND until the last mail arrived or the wait ended). */
  cpuSeconds: number;
  /** VmHWM of the process at the end. */
  peakRssKb: number;
  /** With options.tap: the client's own first EXISTS covering the mail − the raw client's (Dovecot's per-session push timing). */
  pushLag?: Summary;
  /** With options.tap: arrival − the client's own first EXISTS covering the mail (the client's own processing). */
  own?: Summary;
}

export interface LatencyResult {
  mails: number;
  /** Requested rate. */
  perSecond: number;
  /** Rate actually achieved by the appender (mails / seconds from first APPEND start to last APPEND end). */
  appendedPerSecond: number;
  /** Average size of the appended mails, bytes. */
  mailBytes: number;
  /** Mails in the mailbox before the measured run (3 seeded before any client started + the warm-up): mail i has sequence number seed + i + 1. */
  seed: number;
  /** Warm-up mails appended and delivered before measuring (not counted). */
  warmup: number;
  /** Raw client: its EXISTS time − the end of the APPEND (Dovecot holds pushes ~500 ms). */
  raw: Summary;
  /** With options.calibrate: a second, identical raw IDLE client's EXISTS − the first one's. */
  rawSecond?: Summary;
  /** How many `* N EXISTS` the raw client got for the run's mails (fewer than mails: coalesced pushes). */
  existsEvents: number;
  /** mailbell: receiver arrival − raw EXISTS time, per mail (absent when options.clients left it out). */
  mailbell?: ClientLatency;
  /** The imapflow user script: receiver arrival − raw EXISTS time, per mail (absent when options.clients left it out). */
  script?: ClientLatency;
  /** Wall time of the whole run, setup and teardown included. */
  durationMs: number;
  /** 1-minute load average before the run and right after the measured part: other work on the machine skews the tail. */
  loadBefore: number;
  loadAfter: number;
  /** Per mail, in append order (only with options.samples). */
  samples?: LatencySample[];
}

const user = "alice";
const mailbox = "INBOX";
/** Mails in the mailbox before anyone watches, so sequence numbers do not start at 1. */
const seedMails = 3;
const targetBytes = 4096;

const japanese = [
  "いつもご利用いただきありがとうございます。ご注文の商品を発送いたしました。",
  "お届け予定日は十一月二十五日です。配送状況は下記のリンクからご確認いただけます。",
  "商品名: マンスリーパス (Monthly pass)　数量: 1　合計: ￥480（税込）",
  "本メールは送信専用のアドレスからお送りしています。ご返信いただいてもお答えできませんのでご了承ください。",
];
const english = [
  "Thanks for your order. The items below have shipped and should arrive within three business days.",
  "Order number 114-2207345-9981234, placed on November 23. Total: $15.14 including tax.",
  "You can track the parcel from your account page at any time; the carrier updates it twice a day.",
  "This message was sent from an address that cannot accept replies. Please use the help pages instead.",
];

/** ~4 KB mails in four kinds: plain ASCII, Japanese UTF-8 (base64), multipart/alternative, multipart/mixed with an attachment. */
export function makeMail(i: number, runId: string): { raw: string; messageId: string } {
  const messageId = `bench-${runId}-${i}@mailbell.test`;
  const kind = i % 4;
  const base: MailInput = {
    from: kind % 2 ? "Google Play <googleplay-noreply@google.com>" : "Shop <orders@shop.example>",
    to: "alice@example.com",
    subject: kind % 2 ? `ご注文の確認 #${i}（Google Play）` : `Your order #${i} has shipped`,
    text: "",
    messageId,
    charset: "utf-8",
    encoding: kind === 1 ? "base64" : "quoted-printable",
  };
  const lines = kind % 2 ? japanese : english;
  let raw = "";
  for (let n = 0; raw.length < targetBytes; n++) {
    base.text += `${lines[n % lines.length]}\n`;
    const input: MailInput = { ...base };
    if (kind === 2) input.html = `<html><body><p>${base.text.replace(/\n/g, "<br>\n")}</p></body></html>`;
    if (kind === 3) input.attachments = [{ filename: "receipt.csv", contentType: "text/csv", content: "item,qty,price\nMonthly pass,1,480\n".repeat(8) }];
    raw = buildMail(input);
  }
  return { raw, messageId };
}

const bare = (id: unknown): string => String(id ?? "").replace(/^<|>$/g, "");

function mailbellYaml(dovecot: Dovecot, receiver: Receiver, statusPort: number, imapPort: number, readBody: boolean, readerConnections?: boolean): string {
  const reader = readerConnections === undefined ? "" : `    readerConnections: ${readerConnections}\n`;
  return `log: { level: warn }
status: { listen: "127.0.0.1:${statusPort}" }
accounts:
${accountYaml({ name: "bench", port: imapPort, caFile: dovecot.caFile, user, pass: "${BENCH_IMAP_PASS}", mailboxes: [mailbox] })}${reader}targets:
  - { name: hook, type: webhook, url: "${receiver.url("/mailbell")}", rateLimit: { perSecond: 1000, burst: 1000 } }
rules:
  - name: every-mail
    match: {}
    notify: [hook]${readBody ? '\n    extract: { word: { regex: "(?<value>\\\\S+)" } }' : ""}
    template: "{{subject}}"
`;
}

interface Tap {
  port: number;
  /** `* N EXISTS` seen on any connection through the tap, in arrival order. */
  events: { count: number; at: number }[];
  close(): Promise<void>;
}

/** TLS in (Dovecot's own cert, so the client's `ca:` still verifies), TLS out to Dovecot; stamps EXISTS on the way down. */
async function startTap(dc: Dovecot): Promise<Tap> {
  const key = readFileSync(path.join(dc.dir, "ssl", "key.pem"));
  const events: Tap["events"] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key, cert: dc.ca }, (client) => {
    const up = tls.connect({ host: dc.host, port: dc.imapsPort, ca: dc.ca });
    for (const sock of [client, up]) {
      sockets.add(sock);
      sock.setNoDelay(true);
      sock.on("error", () => {});
      sock.on("close", () => {
        sockets.delete(sock);
        client.destroy();
        up.destroy();
      });
    }
    const scanner = new ImapLineScanner((line, at) => {
      const m = /^\* (\d+) EXISTS$/i.exec(line);
      if (m) events.push({ count: Number(m[1]), at });
    });
    up.on("data", (chunk: Buffer) => {
      scanner.push(chunk);
      client.write(chunk);
    });
    client.on("data", (chunk: Buffer) => up.write(chunk));
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    events,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function arrivals(reqs: readonly ReceivedRequest[], path: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const r of reqs) {
    if (r.path !== path) continue;
    const id = bare((r.json as { messageId?: unknown } | undefined)?.messageId);
    out.set(id, [...(out.get(id) ?? []), r.at]);
  }
  return out;
}

export async function runLatency(options: LatencyOptions): Promise<LatencyResult> {
  const { mails, perSecond } = options;
  if (!(mails > 0) || !(perSecond > 0)) throw new Error("runLatency: mails and perSecond must be positive");
  const say = (msg: string): void => {
    if (options.verbose) process.stderr.write(`[latency] ${msg}\n`);
  };
  const started = performance.now();
  const loadBefore = os.loadavg()[0]!;
  if (loadBefore > 0.7) say(`the machine is busy (load ${loadBefore.toFixed(2)}): the tail will show it`);
  const runId = randomBytes(4).toString("hex");
  const generated = Array.from({ length: mails }, (_, i) => makeMail(i, runId));
  const mailBytes = Math.round(generated.reduce((n, m) => n + m.raw.length, 0) / mails);

  let dovecot: Dovecot | undefined;
  let receiver: Receiver | undefined;
  let raw: RawIdleClient | undefined;
  let raw2: RawIdleClient | undefined;
  let mailbell: MailbellProcess | undefined;
  let script: TrackedProcess | undefined;
  let appender: ImapFlow | undefined;
  const taps: Tap[] = [];
  let result: LatencyResult;
  try {
    [dovecot, receiver] = await Promise.all([startDovecot(), startReceiver()]);
    const dc = dovecot;
    const pass = dc.auth(user).pass;
    await dc.appendMany(user, mailbox, Array.from({ length: seedMails }, (_, i) => buildMail({ from: "seed@example.com", to: "alice@example.com", subject: `seed ${i}`, text: "already here" })));
    say(`Dovecot on ${dc.imapsPort}, receiver on ${receiver.port}; starting the three watchers`);

    raw = await startRawIdleClient({ host: dc.host, port: dc.imapsPort, ca: dc.ca, user, pass, mailbox });
    if (options.calibrate ?? true) raw2 = await startRawIdleClient({ host: dc.host, port: dc.imapsPort, ca: dc.ca, user, pass, mailbox });
    const statusPort = await freePort();
    if (options.tap) taps.push(await startTap(dc), await startTap(dc));
    const [mailbellPort, scriptPort] = options.tap ? [taps[0]!.port, taps[1]!.port] : [dc.imapsPort, dc.imapsPort];
    const clients = options.clients ?? ["mailbell", "script"];
    const paths = clients.map((c) => `/${c}`);
    [mailbell, script] = await Promise.all([
      clients.includes("mailbell")
        ? startMailbellProcess(mailbellYaml(dc, receiver, statusPort, mailbellPort, options.readBody ?? false, options.readerConnections), { BENCH_IMAP_PASS: pass }, options.mailbellEntry ? { entry: options.mailbellEntry } : {})
        : undefined,
      clients.includes("script") ? startUserScript({ host: dc.host, port: scriptPort, caFile: dc.caFile, user, pass, mailbox, url: receiver.url("/script") }) : undefined,
    ]);
    if (raw.initialCount !== seedMails) throw new Error(`expected ${seedMails} seed mails in ${mailbox}, the raw client saw ${raw.initialCount}`);

    appender = new ImapFlow(dc.clientOptions(user));
    appender.on("error", () => {});
    await appender.connect();
    // let every IDLE settle, and a quiet moment before the first mail
    await sleep(500);

    const warmup = options.warmup ?? 20;
    if (warmup > 0) {
      say(`warm-up: ${warmup} mails`);
      const warm = Array.from({ length: warmup }, (_, i) => makeMail(i, `${runId}-warmup`));
      const t = performance.now();
      for (let i = 0; i < warmup; i++) {
        const wait = t + (i * 1000) / perSecond - performance.now();
        if (wait > 0) await sleep(wait);
        await appender.append(mailbox, warm[i]!.raw);
      }
      const warmIds = new Set(warm.map((m) => m.messageId));
      const got = (path: string): number => [...arrivals(receiver!.requests, path).keys()].filter((id) => warmIds.has(id)).length;
      await raw.waitFor(seedMails + warmup, 30_000);
      const until = performance.now() + 30_000;
      while (paths.some((p) => got(p) < warmup)) {
        if (performance.now() > until) throw new Error(`warm-up: ${paths.map((p) => `${p} got ${got(p)}`).join(", ")} of ${warmup} mails within 30 s`);
        await sleep(50);
      }
      // quiet, so every session's push timer has fired and been reset before the measured run
      await sleep(1000);
    }
    const seed = seedMails + warmup;

    const cpu0 = { mailbell: mailbell?.cpuSeconds() ?? NaN, script: script?.cpuSeconds() ?? NaN };
    const appendStart: number[] = [];
    const appendDone: number[] = [];
    const t0 = performance.now();
    say(`appending ${mails} mails (~${mailBytes} B) at ${perSecond}/s`);
    for (let i = 0; i < mails; i++) {
      const due = t0 + (i * 1000) / perSecond;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      appendStart.push(performance.now());
      await appender.append(mailbox, generated[i]!.raw);
      appendDone.push(performance.now());
      if (options.verbose && (i + 1) % 200 === 0) say(`${i + 1} appended`);
    }
    const appendSeconds = (appendDone.at(-1)! - appendStart[0]!) / 1000;

    // Everything should be in within a few seconds of the last APPEND; give it 30 s.
    const waitMs = 30_000;
    const ids = new Set(generated.map((m) => m.messageId));
    const received = (path: string): number => [...arrivals(receiver!.requests, path).keys()].filter((id) => ids.has(id)).length;
    await raw.waitFor(seed + mails, waitMs).catch((err: Error) => say(err.message));
    const until = performance.now() + waitMs;
    while (performance.now() < until && paths.some((p) => received(p) < mails)) await sleep(50);
    const cpu1 = { mailbell: mailbell?.cpuSeconds() ?? NaN, script: script?.cpuSeconds() ?? NaN };

    // rawAt for mail i: appends are serial on one connection, so mail i is sequence number
    // seed + i + 1. Dovecot coalesces pushes (it waits ~500 ms, and at 20/s several mails land in
    // that window), so one `* N EXISTS` may announce several mails at once: rawAt is the time of
    // the FIRST EXISTS whose count is >= that mail's sequence number, i.e. the first moment any
    // client could have known the mail was there.
    const rawAt: (number | undefined)[] = generated.map((_, i) => raw!.events.find((e) => e.count >= seed + i + 1)?.at);
    const existsEvents = raw.events.filter((e) => e.count > seed).length;
    const second = raw2;
    const rawSecond = second
      ? summarize(
          rawAt.flatMap((at, i) => {
            const at2 = second.events.find((e) => e.count >= seed + i + 1)?.at;
            return at === undefined || at2 === undefined ? [] : [at2 - at];
          }),
          mails,
        )
      : undefined;
    const rawDelays = rawAt.flatMap((at, i) => (at === undefined ? [] : [at - appendDone[i]!]));

    const ownExists = (tap: Tap | undefined): (number | undefined)[] | undefined =>
      tap && generated.map((_, i) => tap.events.find((e) => e.count >= seed + i + 1)?.at);
    const mailbellExists = ownExists(taps[0]);
    const scriptExists = ownExists(taps[1]);

    const overhead = (path: string, proc: TrackedProcess, cpuBefore: number, cpuAfter: number, own: (number | undefined)[] | undefined): ClientLatency => {
      const byId = arrivals(receiver!.requests, path);
      const values: number[] = [];
      const lag: number[] = [];
      const ownValues: number[] = [];
      let duplicates = 0;
      generated.forEach((m, i) => {
        const got = byId.get(m.messageId);
        const at = rawAt[i];
        if (own?.[i] !== undefined && at !== undefined) lag.push(own[i]! - at);
        if (!got) return;
        duplicates += got.length - 1;
        if (own?.[i] !== undefined) ownValues.push(Math.min(...got) - own[i]!);
        if (at !== undefined) values.push(Math.min(...got) - at);
      });
      return {
        ...summarize(values, mails),
        duplicates,
        cpuSeconds: cpuAfter - cpuBefore,
        peakRssKb: proc.peakRssKb(),
        ...(own ? { pushLag: summarize(lag, mails), own: summarize(ownValues, mails) } : {}),
      };
    };

    result = {
      mails,
      perSecond,
      appendedPerSecond: appendSeconds > 0 ? mails / appendSeconds : NaN,
      mailBytes,
      seed,
      warmup,
      raw: summarize(rawDelays, mails),
      existsEvents,
      ...(rawSecond ? { rawSecond } : {}),
      ...(mailbell ? { mailbell: overhead("/mailbell", mailbell, cpu0.mailbell, cpu1.mailbell, mailbellExists) } : {}),
      ...(script ? { script: overhead("/script", script, cpu0.script, cpu1.script, scriptExists) } : {}),
      durationMs: 0,
      loadBefore,
      loadAfter: os.loadavg()[0]!,
    };
    if (options.samples) {
      const mb = arrivals(receiver.requests, "/mailbell");
      const sc = arrivals(receiver.requests, "/script");
      const first = (v: number[] | undefined): number | undefined => (v ? Math.min(...v) : undefined);
      result.samples = generated.map((m, i) => ({
        seq: seed + i + 1,
        appendStart: appendStart[i]!,
        appendDone: appendDone[i]!,
        rawAt: rawAt[i],
        mailbellAt: first(mb.get(m.messageId)),
        scriptAt: first(sc.get(m.messageId)),
        ...(options.tap ? { mailbellExistsAt: mailbellExists?.[i], scriptExistsAt: scriptExists?.[i] } : {}),
      }));
    }
    const unexpected = mailbell?.log.split("\n").filter((l) => l.startsWith("{")) ?? [];
    if (unexpected.length) say(`mailbell logged ${unexpected.length} warning(s); first: ${unexpected[0]}`);
    if (script && script.log.trim() !== "idling") say(`user script said: ${script.log.trim().slice(0, 500)}`);
  } finally {
    await Promise.allSettled([
      appender?.logout().catch(() => appender?.close()),
      mailbell?.stop(10_000),
      script?.stop(2000),
      raw?.close(),
      raw2?.close(),
    ]);
    await Promise.allSettled(taps.map((t) => t.close()));
    await receiver?.close();
    await dovecot?.dispose();
  }
  result.durationMs = performance.now() - started;
  say(`done in ${(result.durationMs / 1000).toFixed(1)} s`);
  return result;
}

/** Column names of the rows formatLatency returns. */
export const LATENCY_COLUMNS = ["benchmark", "client", "p50", "p99", "max", "received", "notes"] as const;

/** Table rows in LATENCY_COLUMNS order: the raw client, then mailbell and the user script (when run), then the --tap split. */
export function formatLatency(r: LatencyResult): string[][] {
  const got = (s: Summary): string => `${s.count}/${s.count + s.missing}`;
  const res = (c: ClientLatency): string =>
    `CPU ${c.cpuSeconds.toFixed(2)} s, peak RSS ${(c.peakRssKb / 1024).toFixed(0)} MB${c.duplicates ? `, ${c.duplicates} duplicate(s)` : ""}`;
  const name = `latency: ${r.mails} mails @ ${r.perSecond}/s`;
  const row = (client: string, s: Summary, notes: string): string[] => [name, client, fmtMs(s.p50), fmtMs(s.p99), fmtMs(s.max), got(s), notes];
  const clients = [
    ["mailbell", r.mailbell],
    ["user script", r.script],
  ] as const;
  return [
    row("raw IDLE client: EXISTS after APPEND done", r.raw, `${r.existsEvents} EXISTS for ${r.mails} mails (after ${r.warmup} warm-up); appended at ${r.appendedPerSecond.toFixed(1)}/s, ~${(r.mailBytes / 1024).toFixed(1)} KB each; load ${r.loadBefore.toFixed(2)}→${r.loadAfter.toFixed(2)}`),
    ...(r.rawSecond ? [row("2nd raw IDLE client: overhead over raw", r.rawSecond, "the same hand-written client again: the metric's noise floor")] : []),
    ...clients.flatMap(([who, c]) => (c ? [row(`${who}: overhead over raw`, c, res(c))] : [])),
    ...clients.flatMap(([who, c]) =>
      c?.pushLag && c.own
        ? [
            row(`${who}: own EXISTS − raw EXISTS (tap)`, c.pushLag, "Dovecot's per-session push timer, not the client"),
            row(`${who}: arrival − own EXISTS (tap)`, c.own, "the client's own work"),
          ]
        : [],
    ),
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      mails: { type: "string", default: "1000" },
      rate: { type: "string", default: "20" },
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      tap: { type: "boolean", default: false },
      warmup: { type: "string", default: "20" },
      entry: { type: "string" },
      only: { type: "string" },
      "read-body": { type: "boolean", default: false },
    },
  });
  if (values.only !== undefined && values.only !== "mailbell" && values.only !== "script") throw new Error(`--only takes mailbell or script, not ${values.only}`);
  const mails = values.quick ? 60 : Number(values.mails);
  const perSecond = Number(values.rate);
  // Bound the run: appending takes mails/rate seconds; setup, the final wait and teardown fit in 3 min.
  const limitMs = (mails / perSecond) * 1000 * 1.5 + 180_000;
  const guard = giveUpAfter("latency", limitMs);
  const result = await runLatency({ mails, perSecond, verbose: !values.json, tap: values.tap, readBody: values["read-body"], warmup: Number(values.warmup), ...(values.entry ? { mailbellEntry: values.entry } : {}),
    ...(values.only ? { clients: [values.only as "mailbell" | "script"] } : {}),
  });
  clearTimeout(guard);
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`\n${machineInfo().summary}`);
    console.log(`node bench/latency.ts --mails ${mails} --rate ${perSecond}${values.tap ? " --tap" : ""}${values["read-body"] ? " --read-body" : ""}${values.entry ? ` --entry ${values.entry}` : ""}${values.only ? ` --only ${values.only}` : ""}\n`);
    console.log(new Table(LATENCY_COLUMNS).addRows(formatLatency(result)).toString());
  }
}
