/**
 * Catch-up: N mails (bench/corpus-gen.ts: 4–200 KB, mixed charsets, ~10% attachments, some
 * receipts) arrive while mailbell is down; how long until every one is processed and queued, and
 * until every one is delivered? Then the same backlog for the user script (bench/user-script.ts).
 *
 *   node bench/catchup.ts                  10,000 mails (issue 5)
 *   node bench/catchup.ts --mails 1000
 *   node bench/catchup.ts --profile        also run mailbell with --cpu-prof and print where its time goes
 *   node bench/catchup.ts --json           the CatchUpResult as JSON instead of a table
 *   node bench/catchup.ts --no-script      mailbell only
 *   node bench/catchup.ts --read-every-body   a rule reads every mail's body, so every text is fetched and decoded
 *   node bench/catchup.ts --then           the every-mail rule also has then: { seen: true, flag: $Notified }: every
 *                                          mail is marked read and flagged; also times until the last action is done
 *   node bench/catchup.ts --verify         every mail is DKIM-signed (RSA-2048, d= its From domain) and the rules have
 *                                          verify: { dkim: … }: every mail is read whole and its signature checked, keys
 *                                          from a dnsmasq on 127.0.0.1 (dns: servers); counts verified posts and DNS queries
 *   node bench/catchup.ts --outbox-thread own   mailbell sends on a thread of its own (outbox.thread; default auto:
 *                                          the main thread, and a thread of its own during a catch-up of 1,000 or more)
 *   node bench/catchup.ts --concurrency 1   the webhook target sends one request at a time (default: its own, 8)
 *   node bench/catchup.ts --no-script --delivery-rate 0.1   diagnostic: the target paced to 0.1/s, as a slow
 *                                          target would be (delivery not waited for, no drain on stop)
 *   node bench/catchup.ts --node-arg=--trace-gc --keep-log /tmp/mb.log   experiments on the timed mailbell run
 *
 * The machine is shared: "other load" is the CPU the rest of the machine used meanwhile (whole
 * machine's busy time from /proc/stat minus ours), in cores. Above ~0.3 on 2 cores, treat the
 * times as noisy and run again.
 *
 * How the backlog is made: mailbell runs once on the empty INBOX (alice) so it records its
 * checkpoint at the mailbox's end, and is stopped. Then the corpus is written as Maildir files
 * straight into Dovecot's maildirs of alice (for mailbell) and bob (for the script), owned by the
 * mail user, and `doveadm force-resync` gives them UIDs and index records — the state LMTP delivery
 * would have left, without 10,000 round trips (APPEND over one connection takes minutes). The
 * UIDVALIDITY is checked to be unchanged, so mailbell sees mail that arrived while it was down.
 * Dovecot's cache is cold (nobody fetched BODYSTRUCTURE yet), as after real delivery.
 *
 * mailbell: webhook target to a local receiver with `rateLimit: off` (pacing off; before issue 18
 * the most there was, 1000/s with bursts of 1000, which held delivery to ~1000/s),
 * watch.backlogLimit 100000 (every mail is its own notification), a rule matching every mail and a
 * Google Play receipt rule with a money extraction and a monthly total. "Queued" is read from the
 * state file: the checkpoint's updated_at when it reaches the last UID (it is written in the same
 * transaction as the mail's outbox rows). "Delivered": the last of the N + receipts notifications at
 * the receiver. The commit window under this load: per row, the row's updated_at (taken as its
 * "done" commit starts) minus when the receiver wrote the 2xx status line (both wall clock, ms). Checks: every Message-ID exactly once per rule, outbox row counts, the receipt total
 * equals the sum of the generated amounts.
 *
 * The user script (bench/user-script.ts --all) fetches `1:*` with the whole source, parses each
 * message with mailparser and POSTs it, one after the other. It only fetches on an EXISTS, so once
 * it is idling one more mail is appended to wake it; its time is spawn → last POST minus the wait
 * before that trigger (the ~0.5 s Dovecot holds that push back is left in: it is noise at these times).
 */
import { readdirSync, readFileSync, statSync, writeFileSync, chownSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { startDovecot, type Dovecot } from "../test/support/dovecot.ts";
import { buildMail } from "../test/support/mail.ts";
import { accountYaml, PLAY_RECEIPT_FIELDS } from "../test/support/config-yaml.ts";
import { groupProcesses } from "../test/support/reaper.ts";
import { startReceiver, type ReceivedRequest, type Receiver } from "../test/support/receiver.ts";
import { dkimRecordName, makeDkimKey, signMail, type DkimKey } from "../test/support/dkim.ts";
import { startDnsServer, type DnsServer } from "../test/support/dns.ts";
import { corpus, SENDER_DOMAINS } from "./corpus-gen.ts";
import { machineInfo, processUsage, sleep, startMailbellProcess, startUserScript, summarize, Table, type MailbellProcess, type TrackedProcess } from "./lib.ts";

export interface CatchUpOptions {
  mails: number;
  /** Corpus seed (default 1). */
  seed?: number;
  /** Also time the user script (default true). */
  script?: boolean;
  /** Run mailbell under --cpu-prof and summarise the profile (default false). */
  profile?: boolean;
  /** Progress lines on stderr (default false). */
  verbose?: boolean;
  /** Node flags for the timed mailbell run, for experiments (["--trace-gc"], ["--max-old-space-size=128"]). */
  nodeArgs?: string[];
  /**
   * Diagnostic: the webhook target's rateLimit.perSecond (default 1000, pacing off). Below 1000,
   * delivery is not waited for: a low rate shows what the catch-up costs without delivery competing.
   */
  deliveryRate?: number;
  /** The webhook target's concurrency (default: the target's own). */
  concurrency?: number;
  /** outbox.thread in mailbell's config (default: the config's default, main). */
  outboxThread?: "main" | "own" | "auto";
  /** Write the timed mailbell run's output (JSON log lines, anything NODE_OPTIONS adds) to this file. */
  keepLog?: string;
  /**
   * The every-mail rule also extracts a word from the body, so every mail's text is fetched and
   * decoded (the worst case). By default only the receipt rule reads bodies, of Google Play mail.
   */
  readEveryBody?: boolean;
  /**
   * The every-mail rule also has `then: { seen: true, flag: $Notified }`, so every mail is marked
   * read and flagged on the server (mailbox opened read-write). Also times until the last action is
   * done and checks with Dovecot that every mail has \Seen and $Notified.
   */
  then?: boolean;
  /**
   * Every mail is DKIM-signed as its sender would sign it (RSA-2048, d= the From address's domain,
   * the corpus's fake signature replaced) and the rules have `verify: { dkim: … }`: every mail is
   * downloaded whole and streamed through the verifier; the keys come from a dnsmasq on 127.0.0.1.
   */
  verify?: boolean;
}

export interface VerifyResult {
  /** Distinct sender domains, each signing with its own published key (one key pair, one record per domain). */
  domains: number;
  keyType: string;
  /** Time to sign the backlog (part of generate+write). */
  signSeconds: number;
  /** every-mail posts (distinct mails) that carried `verified`, and receipt posts that did. */
  verifiedPosts: number;
  verifiedReceipts: number;
  /** Queries the DNS server saw during the timed run, in all and for the most-asked name. */
  dnsQueries: number;
  dnsNames: number;
  dnsMaxPerName: number;
}

export interface ProfileSummary {
  file: string;
  /** Which thread, and which part of the run. */
  title: string;
  totalMs: number;
  /** Self time by activity, decided per sample from the leaf upwards. */
  buckets: { name: string; selfMs: number; percent: number }[];
  /** Top functions by self time. */
  functions: { name: string; where: string; selfMs: number; percent: number }[];
  /** Self time by file / package. */
  files: { where: string; selfMs: number; percent: number }[];
}

export interface CatchUpResult {
  mails: number;
  /** The rules read every mail's body (CatchUpOptions.readEveryBody). */
  readEveryBody: boolean;
  /** The every-mail rule marks and flags every mail (CatchUpOptions.then). */
  then: boolean;
  /** Every mail signed and verified (CatchUpOptions.verify). */
  verify: boolean;
  seed: number;
  corpusMb: number;
  attachments: number;
  receipts: number;
  fill: { method: string; generateWriteSeconds: number; resyncSeconds: number };
  mailbell: {
    /** Spawn → "watching" log line (connected, checkpoint loaded). */
    startToWatchingMs: number;
    /** Spawn → the checkpoint reached the last UID: every mail processed and queued. */
    startToQueuedMs: number;
    watchingToQueuedMs: number;
    /** Spawn → the last notification arrived at the receiver. */
    startToDeliveredMs: number;
    /** mails / startToQueued. */
    queuedPerSecond: number;
    /** mails / watchingToQueued. */
    queuedPerSecondFromWatching: number;
    deliveredPerSecond: number;
    /** Time to queue 10%, 50%, 90% of the mails, from spawn. */
    queuedAtMs: { p10: number; p50: number; p90: number };
    /** VmHWM of the mailbell process. */
    peakRssKb: number;
    /** CPU of the mailbell process until everything was queued / delivered. */
    cpuSecondsQueued: number;
    cpuSecondsDelivered: number;
    /** CPU of Dovecot's imap process serving mailbell until everything was queued. */
    dovecotCpuSeconds: number;
    outboxRows: number;
    outboxReceiptRows: number;
    deliveredDistinct: number;
    receiptsDeliveredDistinct: number;
    duplicates: number;
    missing: number;
    receiptAmountsMissing: number;
    totalYen: number;
    expectedTotalYen: number;
    warnings: number;
    errors: string[];
    /** CPU other processes on the machine used while mailbell caught up, in cores (noise). */
    otherCores: number;
    /** Most outbox rows waiting to be sent at once while catching up (how far delivery lagged). */
    maxPending: number;
    /** The webhook target's concurrency setting ("default": its own). */
    concurrency: number | "default";
    /**
     * Per delivered row, the receiver's 2xx status line → the row's "done" commit (ms, 1 ms
     * resolution): the window in which a kill would post the row again.
     */
    commitWindowMs: { p50: number; p99: number; max: number; rows: number };
    /** With CatchUpOptions.then: the rules' actions on the mail. */
    actions?: ActionsResult;
    /** With CatchUpOptions.verify: what the verification saw. */
    verification?: VerifyResult;
    /** Main thread and decoding thread while the backlog was being queued, then the main thread's whole run. */
    profiles?: ProfileSummary[];
  };
  script?: {
    command: string;
    /** Spawn → last POST, less the wait before the trigger mail. */
    startToDoneMs: number;
    perSecond: number;
    peakRssKb: number;
    cpuSeconds: number;
    distinct: number;
    duplicates: number;
    missing: number;
    triggered: boolean;
    /** CPU other processes on the machine used meanwhile, in cores (noise). */
    otherCores: number;
  };
  /** mailbell's queued rate / the script's rate. */
  ratio: number | undefined;
  /** mailbell's delivered rate / the script's rate. */
  ratioDelivered: number | undefined;
  bar: { within20s: boolean; atLeast5x: boolean | undefined };
  machine: string;
}

export interface ActionsResult {
  /** Spawn → the last action recorded done in the state file (actions.finished_at). */
  startToDoneMs: number;
  /** All queued → the last action done. */
  queuedToDoneMs: number;
  /** Spawn → Dovecot first reported no unseen mail in INBOX (polled every ACTIONS_POLL_MS, so a little late). */
  startToUnseenZeroMs: number;
  /** CPU of the mailbell process until Dovecot reported no unseen mail. */
  cpuSeconds: number;
  /** Action rows in the state file by state. */
  rowsDone: number;
  rowsPending: number;
  rowsDropped: number;
  /** Dovecot at the end: mails in INBOX with \Seen, with the $Notified keyword, without \Seen. */
  seen: number;
  flagged: number;
  unseen: number;
}

const ACCOUNT = "bench";
const ACTIONS_FLAG = "$Notified";
const ACTIONS_POLL_MS = 100;
const MAILBELL_USER = "alice";
const SCRIPT_USER = "bob";

function log(verbose: boolean | undefined, msg: string): void {
  if (verbose) process.stderr.write(`[catchup] ${msg}\n`);
}

const DKIM_SELECTOR = "bench";

function configYaml(dc: Dovecot, statePath: string, url: string, perSecond: number, readEveryBody: boolean, then: boolean, dnsServer?: string, concurrency?: number, outboxThread?: "main" | "own" | "auto"): string {
  const verify = (domains: readonly string[]): string => (dnsServer ? `\n    verify: { dkim: [${domains.join(", ")}] }` : "");
  return `state: ${JSON.stringify(statePath)}
locale: en-US
log: { level: info }${dnsServer ? `\ndns: { servers: ["${dnsServer}"] }` : ""}
watch: { backlogLimit: 100000 }
outbox: { drainSeconds: ${perSecond < 1000 ? 0 : 30}${outboxThread ? `, thread: ${outboxThread}` : ""} }
accounts:
${accountYaml({ name: ACCOUNT, host: dc.host, port: dc.imapsPort, caFile: dc.caFile, user: MAILBELL_USER, pass: "${BENCH_IMAP_PASS}" })}targets:
  - name: hook
    type: webhook
    url: ${JSON.stringify(url)}
    rateLimit: ${perSecond >= 1000 ? "off" : `{ perSecond: ${perSecond}, burst: ${Math.max(1, Math.min(1000, Math.floor(perSecond)))} }`}${concurrency ? `\n    concurrency: ${concurrency}` : ""}
rules:
  - name: every-mail
    notify: [hook]${verify(SENDER_DOMAINS)}${readEveryBody ? '\n    extract: { word: { regex: "(?<value>\\\\S+)" } }' : ""}${then ? `\n    then: { seen: true, flag: "${ACTIONS_FLAG}" }` : ""}
    template: "{{from}}: {{subject}}"
  - name: play-receipts
    match: { from: googleplay-noreply@google.com, subject: "/Google Play/i" }${verify(["google.com"])}
${PLAY_RECEIPT_FIELDS}    notify: [hook]
    template: "Google Play: {{amount}} ({{item}}) — {{total}} so far in {{period}}"
`;
}

// --- the backlog --------------------------------------------------------------------------------

/** The folder holding INBOX's cur/new/tmp for `user` (Maildir, LAYOUT=fs: the Maildir root). */
function inboxMaildir(dc: Dovecot, user: string): string {
  const root = path.join(dc.dir, "mail", user, "Maildir");
  if (!statSync(path.join(root, "cur"), { throwIfNoEntry: false })?.isDirectory()) throw new Error(`no INBOX maildir at ${root}`);
  return root;
}

async function mailboxStatus(dc: Dovecot, user: string): Promise<{ messages: number; uidnext: number; uidvalidity: number }> {
  const out = await dc.doveadm("-f", "flow", "mailbox", "status", "-u", user, "messages uidnext uidvalidity", "INBOX");
  const num = (k: string): number => Number(new RegExp(`${k}=(\\d+)`).exec(out)?.[1] ?? NaN);
  return { messages: num("messages"), uidnext: num("uidnext"), uidvalidity: num("uidvalidity") };
}

async function unseenCount(dc: Dovecot, user: string): Promise<number> {
  const out = await dc.doveadm("-f", "flow", "mailbox", "status", "-u", user, "unseen", "INBOX");
  return Number(/unseen=(\d+)/.exec(out)?.[1] ?? NaN);
}

/** How many mails of `user`'s INBOX match a doveadm search query (one line per mail). */
async function searchCount(dc: Dovecot, user: string, ...query: string[]): Promise<number> {
  const out = await dc.doveadm("search", "-u", user, "mailbox", "INBOX", ...query);
  return out.split("\n").filter((l) => l.trim() !== "").length;
}

/**
 * Polls Dovecot until no mail of `user`'s INBOX is unseen (every action done: each mail's actions
 * include \Seen), or the deadline. Resolves with when that was seen and the CPU mailbell had used.
 */
async function untilAllSeen(dc: Dovecot, user: string, mailbellCpu: () => number, deadline: number): Promise<{ at: number; cpuSeconds: number } | undefined> {
  for (;;) {
    if ((await unseenCount(dc, user)) === 0) return { at: performance.now(), cpuSeconds: mailbellCpu() };
    if (performance.now() > deadline) return undefined;
    await sleep(ACTIONS_POLL_MS);
  }
}

interface Backlog {
  /** Message-IDs without angle brackets, in corpus order. */
  ids: string[];
  bytes: number;
  attachments: number;
  receipts: number;
  receiptYen: number;
  generateWriteSeconds: number;
  /** Of generateWriteSeconds, signing (CatchUpOptions.verify). */
  signSeconds: number;
}

/** The corpus's own DKIM-Signature header (random bytes that look like one), replaced when the mail is really signed. */
const FAKE_SIGNATURE = /^DKIM-Signature:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n/m;

/** Signs `raw` as its sender would: d= the From address's domain, the corpus's fake signature dropped. */
async function signAsSender(raw: Buffer, key: DkimKey): Promise<Buffer> {
  const head = raw.subarray(0, raw.indexOf("\r\n\r\n")).toString("latin1");
  const domain = /^From:[^\r\n]*@([^>\s]+)>?\s*$/m.exec(head)?.[1];
  if (!domain) throw new Error("a corpus mail without a From address");
  const unsigned = Buffer.from(raw.toString("latin1").replace(FAKE_SIGNATURE, ""), "latin1");
  return signMail(unsigned, { domain, selector: DKIM_SELECTOR, privateKey: key.privateKey });
}

/**
 * Writes the corpus as Maildir files into each folder's cur/ (flags ":2,"), owned like the folder.
 * Names carry increasing timestamps so Dovecot numbers them in corpus order, and S=/W= sizes so
 * it need not stat them (the files have CRLF line ends, so both sizes are the file size).
 */
async function writeBacklog(maildirs: readonly string[], count: number, seed: number, signWith?: DkimKey): Promise<Backlog> {
  const t0 = performance.now();
  const owners = maildirs.map((d) => statSync(d));
  const asRoot = process.getuid?.() === 0;
  const backlog: Backlog = { ids: [], bytes: 0, attachments: 0, receipts: 0, receiptYen: 0, generateWriteSeconds: 0, signSeconds: 0 };
  const base = Math.floor(Date.now() / 1000) - count - 60;
  for (const m of corpus(count, { seed, to: "alice@bench.test" })) {
    const tSign = performance.now();
    const raw = signWith ? await signAsSender(m.raw, signWith) : m.raw;
    backlog.signSeconds += (performance.now() - tSign) / 1000;
    const size = raw.length;
    const name = `${base + m.index}.M${m.index}P${process.pid}.bench,S=${size},W=${size}:2,`;
    maildirs.forEach((dir, i) => {
      const file = path.join(dir, "cur", name);
      writeFileSync(file, raw, { mode: 0o600 });
      if (asRoot) chownSync(file, owners[i]!.uid, owners[i]!.gid);
    });
    backlog.ids.push(stripBrackets(m.messageId));
    backlog.bytes += size;
    if (m.attachment) backlog.attachments++;
    if (m.receiptYen !== undefined) {
      backlog.receipts++;
      backlog.receiptYen += m.receiptYen;
    }
  }
  backlog.generateWriteSeconds = (performance.now() - t0) / 1000;
  return backlog;
}

function stripBrackets(id: string | undefined | null): string {
  return (id ?? "").trim().replace(/^<|>$/g, "");
}

// --- /proc --------------------------------------------------------------------------------------

/** CPU seconds of Dovecot's `imap` processes in the master's process group. */
function dovecotImapCpu(pgid: number | undefined): number {
  if (pgid === undefined) return NaN;
  let sum = 0;
  for (const p of groupProcesses(pgid)) if (p.comm === "imap") sum += processUsage(p.pid)?.cpuSeconds ?? 0;
  return sum;
}

/** Busy and total CPU time of the whole machine (seconds, all cores), from /proc/stat. */
function systemCpu(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "latin1").split("\n")[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: (total - idle) / 100, total: total / 100 };
}

/**
 * Watches how much CPU the rest of the machine takes while we measure: the whole machine's busy
 * time minus ours (this process, the measured process, Dovecot's imap processes), in cores.
 */
class Noise {
  readonly #sys = systemCpu();
  readonly #self = process.cpuUsage();
  readonly #t = performance.now();
  readonly #ours: () => number;
  readonly #ours0: number;
  constructor(ours: () => number) {
    this.#ours = ours;
    this.#ours0 = ours();
  }
  /** Average cores used by other processes since construction. */
  otherCores(): number {
    const sys = systemCpu();
    const self = process.cpuUsage(this.#self);
    const wall = (performance.now() - this.#t) / 1000;
    const ours = this.#ours() - this.#ours0 + (self.user + self.system) / 1e6;
    return Math.max(0, (sys.busy - this.#sys.busy - ours) / wall);
  }
}

// --- CPU profile --------------------------------------------------------------------------------

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/**
 * Where a sample's time goes, decided from the leaf upwards by the first frame that says: the
 * store is split by who called it (the pipeline queueing a mail, or the dispatcher marking rows).
 */
const BUCKETS: readonly { name: string; test: RegExp }[] = [
  { name: "logging (pino)", test: /node_modules\/(pino|sonic-boom)|(src|dist)\/log\.[jt]s/ },
  { name: "decode (readFetchedParts: libmime, iconv, html-to-text; mailparser for whole files)", test: /(src|dist)\/mail\/|node_modules\/(mailparser|libmime|@zone-eu|encoding-japanese|iconv-lite|html-to-text|htmlparser2|nodemailer|libqp|libbase64|@selderee|selderee|domhandler|domutils|parseley|leac|he|punycode|entities|deepmerge)/ },
  { name: "rules + render", test: /(src|dist)\/rules\/|(src|dist)\/outbox\/notification\.[jt]s|(src|dist)\/targets\/(?!http\.[jt]s)/ },
  { name: "SQLite", test: /(src|dist)\/store\// },
  { name: "delivery (dispatcher, node:http)", test: /(src|dist)\/outbox\/dispatcher\.[jt]s|(src|dist)\/targets\/http\.[jt]s|undici|node:_http|node:http/ },
  { name: "IMAP (imapflow, TLS, fetch planning)", test: /node_modules\/imapflow|(src|dist)\/imap\/|_tls_wrap|node:tls/ },
  { name: "pipeline / daemon", test: /(src|dist)\/daemon\// },
];

/**
 * Self time per function, per file and per activity (BUCKETS) from a .cpuprofile (Chrome DevTools
 * format); with since and until (profile timestamps, µs), only the samples between them. The threads of one
 * process share the clock, so one `until` cuts each thread's profile at the same moment.
 */
export function summarizeProfile(file: string, title: string, options: { top?: number; since?: number; until?: number } = {}): ProfileSummary {
  const top = options.top ?? 25;
  const p = JSON.parse(readFileSync(file, "utf8")) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number };
  const selfById = new Map<number, number>();
  const since = options.since ?? -Infinity;
  const until = options.until ?? Infinity;
  let at = p.startTime;
  p.samples.forEach((id, i) => {
    at += p.timeDeltas[i] ?? 0;
    if (at > since && at <= until) selfById.set(id, (selfById.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  });
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const repo = path.resolve(import.meta.dirname, "..");
  const urlOf = (n: ProfileNode): string => n.callFrame.url.replace(/^file:\/\//, "").replace(`${repo}/`, "");

  const byFn = new Map<string, { name: string; where: string; selfMs: number }>();
  const byFile = new Map<string, number>();
  const byBucket = new Map<string, number>();
  let totalMs = 0;
  for (const n of p.nodes) {
    const ms = selfById.get(n.id) ?? 0;
    if (ms === 0) continue;
    totalMs += ms;
    const url = urlOf(n);
    const name = n.callFrame.functionName || (url ? "(anonymous)" : "(native)");
    const where = url ? `${url}:${n.callFrame.lineNumber + 1}` : "";
    const fn = byFn.get(`${name} ${where}`) ?? { name, where, selfMs: 0 };
    fn.selfMs += ms;
    byFn.set(`${name} ${where}`, fn);
    const group = url ? (/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? url) : `(${n.callFrame.functionName || "native"})`;
    byFile.set(group, (byFile.get(group) ?? 0) + ms);

    let bucket: string | undefined;
    if (!url && /^\((idle|garbage collector|program)\)$/.test(n.callFrame.functionName)) bucket = n.callFrame.functionName;
    for (let id: number | undefined = n.id; id !== undefined && bucket === undefined; id = parent.get(id)) {
      const u = urlOf(byId.get(id)!);
      const hit = BUCKETS.find((b) => b.test.test(u));
      if (!hit) continue;
      bucket = hit.name;
      if (hit.name === "SQLite") {
        // who asked: the pipeline queueing mail, or the dispatcher marking rows sent
        for (let up = parent.get(id); up !== undefined; up = parent.get(up)) {
          const uu = urlOf(byId.get(up)!);
          if (/(src|dist)\/outbox\/dispatcher\.[jt]s/.test(uu)) {
            bucket = "SQLite (dispatcher: ready, markDone)";
            break;
          }
          if (/(src|dist)\/daemon\/pipeline\.[jt]s|(src|dist)\/imap\//.test(uu)) {
            bucket = "SQLite (pipeline: queue a round, one transaction each)";
            break;
          }
        }
      }
    }
    bucket ??= "other (node internals: streams, events, buffers)";
    byBucket.set(bucket, (byBucket.get(bucket) ?? 0) + ms);
  }
  const pct = (ms: number): number => Math.round((1000 * ms) / totalMs) / 10;
  return {
    file,
    title,
    totalMs: Math.round(totalMs),
    buckets: [...byBucket].sort((a, b) => b[1] - a[1]).map(([name, ms]) => ({ name, selfMs: Math.round(ms), percent: pct(ms) })),
    functions: [...byFn.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, top).map((f) => ({ ...f, selfMs: Math.round(f.selfMs), percent: pct(f.selfMs) })),
    files: [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top).map(([where, ms]) => ({ where, selfMs: Math.round(ms), percent: pct(ms) })),
  };
}

// --- the runs -----------------------------------------------------------------------------------

/** Notifications at the receiver, read incrementally. */
class Tally {
  readonly perRule = new Map<string, Map<string, number>>();
  /** Per rule, the mails whose post carried `verified`. */
  readonly verified = new Map<string, Set<string>>();
  duplicates = 0;
  amountsMissing = 0;
  lastAt = 0;
  #seen = 0;
  readonly receiver: Receiver;

  constructor(receiver: Receiver) {
    this.receiver = receiver;
  }

  update(): void {
    const reqs: readonly ReceivedRequest[] = this.receiver.requests;
    for (; this.#seen < reqs.length; this.#seen++) {
      const r = reqs[this.#seen]!;
      const body = r.json as { rule?: string; messageId?: string; fields?: Record<string, unknown>; verified?: string | null } | undefined;
      const rule = body?.rule ?? "script";
      const id = stripBrackets(body?.messageId);
      if (body?.verified) this.verified.set(rule, (this.verified.get(rule) ?? new Set()).add(id));
      const ids = this.perRule.get(rule) ?? new Map<string, number>();
      const n = (ids.get(id) ?? 0) + 1;
      ids.set(id, n);
      this.perRule.set(rule, ids);
      if (n === 2) this.duplicates++;
      if (rule === "play-receipts" && !body?.fields?.amount) this.amountsMissing++;
      this.lastAt = r.at;
    }
  }

  distinct(rule: string, among?: ReadonlySet<string>): number {
    const ids = this.perRule.get(rule);
    if (!ids) return 0;
    if (!among) return ids.size;
    let n = 0;
    for (const id of ids.keys()) if (among.has(id)) n++;
    return n;
  }
}

async function runMailbell(dc: Dovecot, options: CatchUpOptions, seed: number, work: string): Promise<{ backlog: Backlog; fill: CatchUpResult["fill"]; mailbell: CatchUpResult["mailbell"] }> {
  const { mails, verbose } = options;
  const receiver = await startReceiver();
  const statePath = path.join(work, "mailbell.db");
  const perSecond = options.deliveryRate ?? 1000;
  const then = options.then ?? false;
  // --verify: one key pair, published for every sender domain, as each sender publishes its own
  const key = options.verify ? makeDkimKey("rsa", 2048) : undefined;
  let dns: DnsServer | undefined;
  if (key) dns = await startDnsServer({ txt: Object.fromEntries(SENDER_DOMAINS.map((d) => [dkimRecordName(DKIM_SELECTOR, d), key.txt])) });
  const yaml = configYaml(dc, statePath, receiver.url("/mailbell"), perSecond, options.readEveryBody ?? false, then, dns?.server, options.concurrency, options.outboxThread);
  const env = { BENCH_IMAP_PASS: dc.auth(MAILBELL_USER).pass };
  let mb: MailbellProcess | undefined;
  try {
    // 1. once on the empty mailbox: it records its checkpoint at the end, then goes down
    log(verbose, "first start on the empty mailbox");
    mb = await startMailbellProcess(yaml, env);
    await mb.stop();
    mb = undefined;
    const before = await mailboxStatus(dc, MAILBELL_USER);
    if (before.messages !== 0) throw new Error(`alice's INBOX should be empty, has ${before.messages}`);

    // 2. the backlog, for mailbell (alice) and the script (bob)
    await mailboxStatus(dc, SCRIPT_USER); // creates bob's maildir
    log(verbose, `writing ${mails} mails into both maildirs`);
    const backlog = await writeBacklog([inboxMaildir(dc, MAILBELL_USER), inboxMaildir(dc, SCRIPT_USER)], mails, seed, key);
    const tResync = performance.now();
    for (const user of [MAILBELL_USER, SCRIPT_USER]) await dc.doveadm("force-resync", "-u", user, "INBOX");
    const resyncSeconds = (performance.now() - tResync) / 1000;
    const after = await mailboxStatus(dc, MAILBELL_USER);
    if (after.messages !== mails || after.uidvalidity !== before.uidvalidity) {
      throw new Error(`after filling: ${JSON.stringify(after)} (expected ${mails} messages, uidvalidity ${before.uidvalidity})`);
    }
    const lastUid = after.uidnext - 1;
    log(verbose, `backlog ready: ${mails} mails, ${(backlog.bytes / 2 ** 20).toFixed(0)} MB, UIDs up to ${lastUid}; generate+write ${backlog.generateWriteSeconds.toFixed(1)} s${key ? ` (of which signing ${backlog.signSeconds.toFixed(1)} s)` : ""}, resync ${resyncSeconds.toFixed(1)} s`);
    dns?.resetQueries();

    // 3. the timed run
    const tally = new Tally(receiver);
    const expected = new Set(backlog.ids);
    const profileDir = options.profile ? mkdtempSync(path.join(os.tmpdir(), "mailbell-catchup-prof-")) : undefined;
    const noise = new Noise(() => (mb?.cpuSeconds() ?? 0) + dovecotImapCpu(dc.pid));
    const spawnEpoch = Date.now();
    const spawnPerf = performance.now();
    let startFailure: unknown;
    const nodeArgs = [...(options.nodeArgs ?? []), ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [])];
    const started = startMailbellProcess(yaml, env, { timeoutMs: 120_000, nodeArgs });
    started.catch((err: unknown) => (startFailure = err));

    // Poll the state file (read-only) until the checkpoint reaches the last UID.
    let db: DatabaseSync | undefined;
    const progress: { uid: number; epoch: number }[] = [];
    let queuedEpoch: number | undefined;
    let cpuSecondsQueued = NaN;
    let dovecotCpuSeconds = NaN;
    let otherCores = NaN;
    let maxPending = 0;
    const deadline = performance.now() + Math.max(180_000, mails * 30);
    while (queuedEpoch === undefined) {
      if (startFailure) throw startFailure;
      if (performance.now() > deadline) throw new Error(`mailbell did not queue ${mails} mails within ${Math.round((deadline - spawnPerf) / 1000)} s (checkpoint at ${progress.at(-1)?.uid ?? "?"})`);
      await sleep(20);
      tally.update();
      try {
        db ??= new DatabaseSync(statePath, { readOnly: true });
        const row = db.prepare("SELECT last_uid AS lastUid, updated_at AS updatedAt FROM checkpoints WHERE account = ? AND mailbox = ?").get(ACCOUNT, "INBOX") as { lastUid: number; updatedAt: string } | undefined;
        if (!row) continue;
        const uid = Number(row.lastUid);
        if (uid !== progress.at(-1)?.uid) progress.push({ uid, epoch: Date.parse(row.updatedAt) });
        // how far delivery lags behind: pending rows (a covering-index count, cheap)
        const pending = db.prepare("SELECT count(*) AS n FROM outbox WHERE target = 'hook' AND state = 'pending'").get() as { n: number };
        maxPending = Math.max(maxPending, Number(pending.n));
        if (uid >= lastUid) {
          queuedEpoch = Date.parse(row.updatedAt);
          mb = await started;
          cpuSecondsQueued = mb.cpuSeconds();
          dovecotCpuSeconds = dovecotImapCpu(dc.pid);
          otherCores = noise.otherCores();
        }
      } catch (err) {
        // the daemon may still be opening the file
        db?.close();
        db = undefined;
        if (performance.now() - spawnPerf > 30_000) throw err;
      }
    }
    mb ??= await started;
    log(verbose, `queued all ${mails} after ${((queuedEpoch - spawnEpoch) / 1000).toFixed(2)} s; waiting for delivery${then ? " and the actions" : ""}`);
    // The actions follow each committed round, so they end after the last round is queued: watched
    // from here, beside the delivery.
    const running = mb;
    const allSeen = then ? untilAllSeen(dc, MAILBELL_USER, () => running.cpuSeconds(), performance.now() + Math.max(120_000, mails * 20)) : undefined;

    // 4. delivery of every notification
    const wantReceipts = backlog.receipts;
    // Diagnostic runs with slow delivery (--delivery-rate) do not wait for it.
    const deliverDeadline = perSecond < 1000 ? 0 : performance.now() + Math.max(120_000, mails * 20);
    for (;;) {
      tally.update();
      if (tally.distinct("every-mail", expected) >= mails && tally.distinct("play-receipts") >= wantReceipts) break;
      if (performance.now() > deliverDeadline) break;
      await sleep(20);
    }
    const deliveredAt = tally.lastAt;
    const cpuSecondsDelivered = mb.cpuSeconds();
    const seenAll = await allSeen;
    if (then) log(verbose, seenAll ? `no unseen mail after ${((seenAll.at - spawnPerf) / 1000).toFixed(2)} s` : "some mail still unseen at the deadline");
    await sleep(500); // anything sent twice would arrive now
    tally.update();
    const peakRssKb = mb.peakRssKb();
    const logText = mb.log;
    await mb.stop();
    if (options.keepLog) writeFileSync(options.keepLog, mb.log);
    mb = undefined;
    db?.close();

    // 5. what the state file says
    const state = new DatabaseSync(statePath, { readOnly: true });
    const rows = state.prepare("SELECT rule, count(*) AS n FROM outbox GROUP BY rule").all() as { rule: string; n: number }[];
    const commitWindowMs = commitWindow(receiver, state);
    const totals = state.prepare("SELECT units, scale FROM totals WHERE rule = 'play-receipts' AND currency = 'JPY'").all() as { units: string; scale: number }[];
    const actionRows = then ? (state.prepare("SELECT state, count(*) AS n, max(finished_at) AS lastAt FROM actions GROUP BY state").all() as { state: string; n: number; lastAt: number | null }[]) : [];
    state.close();
    let actions: ActionsResult | undefined;
    if (then) {
      const rowOf = (st: string): { n: number; lastAt: number | null } | undefined => actionRows.find((r) => r.state === st);
      const lastDoneEpoch = Number(rowOf("done")?.lastAt ?? NaN);
      actions = {
        startToDoneMs: lastDoneEpoch - spawnEpoch,
        queuedToDoneMs: lastDoneEpoch - queuedEpoch,
        startToUnseenZeroMs: seenAll ? seenAll.at - spawnPerf : NaN,
        cpuSeconds: seenAll?.cpuSeconds ?? NaN,
        rowsDone: Number(rowOf("done")?.n ?? 0),
        rowsPending: Number(rowOf("pending")?.n ?? 0),
        rowsDropped: Number(rowOf("dropped")?.n ?? 0),
        seen: await searchCount(dc, MAILBELL_USER, "SEEN"),
        flagged: await searchCount(dc, MAILBELL_USER, "KEYWORD", ACTIONS_FLAG),
        unseen: await unseenCount(dc, MAILBELL_USER),
      };
    }
    const totalYen = totals.reduce((s, t) => s + Number(t.units) / 10 ** Number(t.scale), 0);
    const rowsOf = (rule: string): number => Number(rows.find((r) => r.rule === rule)?.n ?? 0);

    const entries = logText.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg?: string; level?: string; time?: string; err?: string });
    const watching = entries.find((e) => e.msg === "watching");
    const watchingEpoch = watching?.time ? Date.parse(watching.time) : NaN;
    const errors = entries.filter((e) => e.level === "error" || e.level === "fatal").map((e) => `${e.msg}${e.err ? `: ${e.err}` : ""}`);
    const warnings = entries.filter((e) => e.level === "warn").length;

    const at = (fraction: number): number => {
      const target = Math.ceil(lastUid - mails + fraction * mails);
      const hit = progress.find((p) => p.uid >= target);
      return hit ? hit.epoch - spawnEpoch : NaN;
    };
    const startToQueuedMs = queuedEpoch - spawnEpoch;
    const watchingToQueuedMs = queuedEpoch - watchingEpoch;
    const startToDeliveredMs = deliveredAt - spawnPerf;
    const deliveredDistinct = tally.distinct("every-mail", expected);
    const receiptsDeliveredDistinct = tally.distinct("play-receipts", expected);

    let profiles: ProfileSummary[] | undefined;
    if (profileDir) {
      // One profile per thread, named CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile: the main
      // thread's is thread 0, the delivery thread's 1 (started before the watchers), the decoding
      // thread's the next one, if it started. Each profile starts with its thread, a few tens of ms
      // after the spawn, so the queued window is a little generous.
      const files = readdirSync(profileDir).filter((n) => n.endsWith(".cpuprofile"));
      const mainFile = files.find((n) => /\.0\.\d+\.cpuprofile$/.test(n)) ?? files[0];
      const keep = (name: string, thread: string): string => {
        const kept = path.join(os.tmpdir(), `mailbell-catchup-${mails}-${thread}-${Date.now()}.cpuprofile`);
        writeFileSync(kept, readFileSync(path.join(profileDir, name)));
        return kept;
      };
      if (mainFile) {
        const main = keep(mainFile, "main");
        const until = (JSON.parse(readFileSync(main, "utf8")) as { startTime: number }).startTime + startToQueuedMs * 1000;
        profiles = [summarizeProfile(main, `main thread, spawn → all queued (${(startToQueuedMs / 1000).toFixed(2)} s)`, { until })];
        for (const other of files.filter((n) => n !== mainFile)) {
          if (!/\.1\.\d+\.cpuprofile$/.test(other)) {
            profiles.push(summarizeProfile(keep(other, "decoder"), "decoding thread, its start → all queued", { until }));
            continue;
          }
          const delivery = keep(other, "delivery");
          profiles.push(summarizeProfile(delivery, "delivery thread, its start → all queued", { until }), summarizeProfile(delivery, "delivery thread, whole run"));
        }
        profiles.push(summarizeProfile(main, "main thread, whole run (queueing and delivery)"));
      }
      rmSync(profileDir, { recursive: true, force: true });
    }

    return {
      backlog,
      fill: { method: "Maildir files written into cur/ + doveadm force-resync", generateWriteSeconds: backlog.generateWriteSeconds, resyncSeconds },
      mailbell: {
        startToWatchingMs: watchingEpoch - spawnEpoch,
        startToQueuedMs,
        watchingToQueuedMs,
        startToDeliveredMs,
        queuedPerSecond: mails / (startToQueuedMs / 1000),
        queuedPerSecondFromWatching: mails / (watchingToQueuedMs / 1000),
        deliveredPerSecond: mails / (startToDeliveredMs / 1000),
        queuedAtMs: { p10: at(0.1), p50: at(0.5), p90: at(0.9) },
        peakRssKb,
        cpuSecondsQueued,
        cpuSecondsDelivered,
        dovecotCpuSeconds,
        outboxRows: rowsOf("every-mail"),
        outboxReceiptRows: rowsOf("play-receipts"),
        deliveredDistinct,
        receiptsDeliveredDistinct,
        duplicates: tally.duplicates,
        missing: mails - deliveredDistinct + (backlog.receipts - receiptsDeliveredDistinct),
        receiptAmountsMissing: tally.amountsMissing,
        totalYen,
        expectedTotalYen: backlog.receiptYen,
        warnings,
        errors,
        otherCores,
        maxPending,
        concurrency: options.concurrency ?? "default",
        commitWindowMs,
        ...(actions ? { actions } : {}),
        ...(key && dns ? { verification: verification(tally, dns, backlog, key) } : {}),
        ...(profiles ? { profiles } : {}),
      },
    };
  } finally {
    await mb?.stop();
    await receiver.close();
    await dns?.stop();
  }
}

/** Per delivered row: its "done" commit (updated_at) − the receiver's status line, both as wall-clock ms. */
function commitWindow(receiver: Receiver, state: DatabaseSync): CatchUpResult["mailbell"]["commitWindowMs"] {
  // The receiver stamps the status line with hrtime; one reading of both clocks relates them.
  const epochMinusHr = Date.now() - Number(process.hrtime.bigint()) / 1e6;
  const doneAt = state.prepare("SELECT updated_at AS at FROM outbox WHERE id = ? AND state = 'done'");
  const windows: number[] = [];
  for (const r of receiver.requests) {
    const id = r.headers["idempotency-key"];
    if (typeof id !== "string" || r.answeredAt === undefined || r.reply.status >= 300) continue;
    const row = doneAt.get(id) as { at: number } | undefined;
    if (row) windows.push(Number(row.at) - (Number(r.answeredAt) / 1e6 + epochMinusHr));
  }
  const s = summarize(windows);
  return { p50: s.p50, p99: s.p99, max: s.max, rows: windows.length };
}

function verification(tally: Tally, dns: DnsServer, backlog: Backlog, key: DkimKey): VerifyResult {
  const queries = dns.queries();
  const perName = new Map<string, number>();
  for (const q of queries) perName.set(q, (perName.get(q) ?? 0) + 1);
  const ids = new Set(backlog.ids);
  const among = (rule: string): number => [...(tally.verified.get(rule) ?? [])].filter((id) => ids.has(id)).length;
  return {
    domains: SENDER_DOMAINS.length,
    keyType: `${key.type === "rsa" ? "RSA-2048" : key.type}, rsa-sha256, relaxed/relaxed`,
    signSeconds: backlog.signSeconds,
    verifiedPosts: among("every-mail"),
    verifiedReceipts: among("play-receipts"),
    dnsQueries: queries.length,
    dnsNames: perName.size,
    dnsMaxPerName: Math.max(0, ...perName.values()),
  };
}

async function runScript(dc: Dovecot, backlog: Backlog, options: CatchUpOptions): Promise<NonNullable<CatchUpResult["script"]>> {
  const { mails, verbose } = options;
  const receiver = await startReceiver();
  const tally = new Tally(receiver);
  const expected = new Set(backlog.ids);
  let proc: TrackedProcess | undefined;
  try {
    const status = await mailboxStatus(dc, SCRIPT_USER);
    if (status.messages !== mails) throw new Error(`bob's INBOX has ${status.messages} mails, expected ${mails}`);
    log(verbose, "starting bench/user-script.ts --all");
    let spawned: TrackedProcess | undefined;
    const noise = new Noise(() => (spawned?.cpuSeconds() ?? 0) + dovecotImapCpu(dc.pid));
    const t0 = performance.now();
    proc = spawned = await startUserScript({ host: dc.host, port: dc.imapsPort, caFile: dc.caFile, user: SCRIPT_USER, pass: dc.auth(SCRIPT_USER).pass, url: receiver.url("/script"), all: true, timeoutMs: 60_000 });
    const idling = performance.now();
    // It fetches on EXISTS only: if nothing comes within a second, one more mail wakes it.
    await sleep(1000);
    tally.update();
    let waited = 0;
    let triggered = false;
    if (tally.distinct("script") === 0) {
      waited = performance.now() - idling;
      triggered = true;
      log(verbose, "no POST yet: appending one mail to wake the script");
      await dc.append(SCRIPT_USER, "INBOX", buildMail({ from: "Trigger <trigger@bench.test>", to: "bob@bench.test", subject: "wake up", text: "catch-up trigger" }));
    }
    const deadline = performance.now() + Math.max(300_000, mails * 100);
    for (;;) {
      tally.update();
      if (tally.distinct("script", expected) >= mails) break;
      if (performance.now() > deadline) break;
      const code = await Promise.race([proc.exited, sleep(50).then(() => "running" as const)]);
      if (code !== "running") throw new Error(`the user script exited (${code}); output:\n${proc.log.split("\n").slice(-20).join("\n")}`);
    }
    const doneAt = tally.lastAt;
    const cpuSeconds = proc.cpuSeconds();
    const otherCores = noise.otherCores();
    await sleep(300);
    tally.update();
    const peakRssKb = proc.peakRssKb();
    const startToDoneMs = doneAt - t0 - waited;
    const distinct = tally.distinct("script", expected);
    return {
      command: "node bench/user-script.ts --all (fetchAll 1:* with source, simpleParser, POST each)",
      startToDoneMs,
      perSecond: mails / (startToDoneMs / 1000),
      peakRssKb,
      cpuSeconds,
      distinct,
      duplicates: tally.duplicates,
      missing: mails - distinct,
      triggered,
      otherCores,
    };
  } finally {
    await proc?.stop();
    await receiver.close();
  }
}

export async function runCatchUp(options: CatchUpOptions): Promise<CatchUpResult> {
  const { mails } = options;
  if (!Number.isInteger(mails) || mails < 1 || mails > 100_000) throw new Error(`--mails must be 1 … 100000 (watch.backlogLimit's maximum), got ${mails}`);
  const seed = options.seed ?? 1;
  const work = mkdtempSync(path.join(os.tmpdir(), "mailbell-catchup-"));
  const dc = await startDovecot({
    // the script's single fetch of 1:* and mailbell's parsing of cold BODYSTRUCTUREs both need room
    extraConfig: ["default_vsz_limit = 4G", "imap_max_line_length = 1M"],
  });
  try {
    const { backlog, fill, mailbell } = await runMailbell(dc, options, seed, work);
    const script = options.script === false ? undefined : await runScript(dc, backlog, options);
    const ratio = script ? mailbell.queuedPerSecond / script.perSecond : undefined;
    const ratioDelivered = script ? mailbell.deliveredPerSecond / script.perSecond : undefined;
    return {
      mails,
      readEveryBody: options.readEveryBody ?? false,
      then: options.then ?? false,
      verify: options.verify ?? false,
      seed,
      corpusMb: backlog.bytes / 2 ** 20,
      attachments: backlog.attachments,
      receipts: backlog.receipts,
      fill,
      mailbell,
      ...(script ? { script } : {}),
      ratio,
      ratioDelivered,
      bar: { within20s: mailbell.startToQueuedMs <= 20_000, atLeast5x: ratio === undefined ? undefined : ratio >= 5 },
      machine: machineInfo().summary,
    };
  } finally {
    await dc.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}

// --- output -------------------------------------------------------------------------------------

export const CATCHUP_COLUMNS = ["benchmark", "client", "time", "mails/s", "peak RSS", "CPU", "received", "notes"] as const;

const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
// MiB, as ps and top count it (VmHWM is in KiB); one decimal, so a figure next to the 200 MB bar is not rounded past it.
const mb = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;

/** Rows for CATCHUP_COLUMNS. */
export function formatCatchUp(r: CatchUpResult, scriptOfAnotherRun?: CatchUpResult["script"]): string[][] {
  const m = r.mailbell;
  const name = `catch-up ${r.mails.toLocaleString("en-US")}`;
  const who = ["mailbell", ...(r.readEveryBody ? ["rules read every body"] : []), ...(r.then ? [`then: seen + ${ACTIONS_FLAG}`] : []), ...(r.verify ? ["verify: dkim"] : [])].join(", ");
  const versus = scriptOfAnotherRun ? `; ${(m.queuedPerSecond / scriptOfAnotherRun.perSecond).toFixed(1)}× the user script's rate above` : "";
  const rows: string[][] = [
    [
      name,
      `${who} (queued)`,
      sec(m.startToQueuedMs),
      m.queuedPerSecond.toFixed(0),
      mb(m.peakRssKb),
      `${m.cpuSecondsQueued.toFixed(1)} s (+ Dovecot ${m.dovecotCpuSeconds.toFixed(1)} s)`,
      `${m.outboxRows} + ${m.outboxReceiptRows} receipts queued`,
      `other load ${m.otherCores.toFixed(2)} cores; spawn→watching ${sec(m.startToWatchingMs)}, watching→queued ${sec(m.watchingToQueuedMs)} (${m.queuedPerSecondFromWatching.toFixed(0)}/s); 10/50/90% at ${sec(m.queuedAtMs.p10)}/${sec(m.queuedAtMs.p50)}/${sec(m.queuedAtMs.p90)}${versus}`,
    ],
    [
      name,
      `${who} (delivered)`,
      sec(m.startToDeliveredMs),
      m.deliveredPerSecond.toFixed(0),
      "",
      `${m.cpuSecondsDelivered.toFixed(1)} s`,
      `${m.deliveredDistinct}/${r.mails} + ${m.receiptsDeliveredDistinct}/${r.receipts} receipts, ${m.duplicates} dup`,
      `${m.concurrency === "default" ? "" : `concurrency ${m.concurrency}; `}up to ${m.maxPending} rows waiting; answered→done ${m.commitWindowMs.p50.toFixed(0)}/${m.commitWindowMs.p99.toFixed(0)}/${m.commitWindowMs.max.toFixed(0)} ms p50/p99/max; total ¥${m.totalYen} (expected ¥${m.expectedTotalYen}); ${m.receiptAmountsMissing} amounts missing; ${m.warnings} warnings, ${m.errors.length} errors`,
    ],
  ];
  if (m.actions) {
    const a = m.actions;
    rows.push([
      name,
      `${who} (actions done)`,
      sec(a.startToDoneMs),
      (r.mails / (a.startToDoneMs / 1000)).toFixed(0),
      "",
      `${a.cpuSeconds.toFixed(1)} s`,
      `${a.flagged}/${r.mails} ${ACTIONS_FLAG}, ${a.seen}/${r.mails} seen, ${a.unseen} unseen`,
      `queued→last action ${sec(a.queuedToDoneMs)} (state file); Dovecot unseen=0 seen at ${sec(a.startToUnseenZeroMs)} (polled every ${ACTIONS_POLL_MS} ms); action rows ${a.rowsDone} done, ${a.rowsPending} pending, ${a.rowsDropped} dropped`,
    ]);
  }
  if (m.verification) {
    const v = m.verification;
    rows.push([
      name,
      `${who} (verified)`,
      "",
      "",
      "",
      "",
      `${v.verifiedPosts}/${r.mails} + ${v.verifiedReceipts}/${r.receipts} receipts verified`,
      `${v.dnsQueries} DNS queries for ${v.dnsNames} names (at most ${v.dnsMaxPerName} for one): ${v.domains} sender domains, each its own key record; ${v.keyType}; signing the backlog took ${v.signSeconds.toFixed(1)} s`,
    ]);
  }
  if (r.script) {
    const s = r.script;
    rows.push([
      name,
      "user script",
      sec(s.startToDoneMs),
      s.perSecond.toFixed(0),
      mb(s.peakRssKb),
      `${s.cpuSeconds.toFixed(1)} s`,
      `${s.distinct}/${r.mails}, ${s.duplicates} dup`,
      `other load ${s.otherCores.toFixed(2)} cores; mailbell ${r.ratio!.toFixed(1)}× its rate (queued), ${r.ratioDelivered!.toFixed(1)}× (delivered)${s.triggered ? "; woken by one extra mail" : ""}`,
    ]);
  }
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mails: { type: "string", default: "10000" },
      seed: { type: "string", default: "1" },
      profile: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      "no-script": { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      "node-arg": { type: "string", multiple: true },
      "keep-log": { type: "string" },
      "delivery-rate": { type: "string" },
      concurrency: { type: "string" },
      "read-every-body": { type: "boolean", default: false },
      then: { type: "boolean", default: false },
      verify: { type: "boolean", default: false },
      "outbox-thread": { type: "string" },
    },
  });
  const result = await runCatchUp({ mails: Number(values.mails), seed: Number(values.seed), script: !values["no-script"], profile: values.profile, verbose: !values.quiet, ...(values["node-arg"] ? { nodeArgs: values["node-arg"] } : {}), ...(values["keep-log"] ? { keepLog: values["keep-log"] } : {}), ...(values["delivery-rate"] ? { deliveryRate: Number(values["delivery-rate"]) } : {}), ...(values.concurrency ? { concurrency: Number(values.concurrency) } : {}), readEveryBody: values["read-every-body"], then: values.then, verify: values.verify, ...(values["outbox-thread"] ? { outboxThread: outboxThreadArg(values["outbox-thread"]) } : {}) });
  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`Catch-up: ${result.mails} mails (${result.corpusMb.toFixed(0)} MB, ${result.attachments} with attachments, ${result.receipts} receipts, seed ${result.seed})`);
  console.log(`Backlog: ${result.fill.method}: ${result.fill.generateWriteSeconds.toFixed(1)} s generate+write, ${result.fill.resyncSeconds.toFixed(1)} s resync`);
  console.log(`Machine: ${result.machine}\n`);
  console.log(new Table(CATCHUP_COLUMNS).addRows(formatCatchUp(result)).toString());
  const b = result.bar;
  console.log(`\nBar: ≤ 20 s for the catch-up: ${b.within20s ? "met" : "NOT met"}; ≥ 5× the user script's rate: ${b.atLeast5x === undefined ? "not measured" : b.atLeast5x ? "met" : "NOT met"}`);
  if (result.mailbell.errors.length) console.log(`mailbell errors:\n  ${result.mailbell.errors.slice(0, 10).join("\n  ")}`);
  for (const p of result.mailbell.profiles ?? []) {
    console.log(`\nCPU profile, ${p.title}: ${p.file}, ${p.totalMs} ms sampled. By activity:`);
    const tb = new Table(["ms", "%", "activity"]);
    for (const b of p.buckets) tb.add(b.selfMs, b.percent, b.name);
    console.log(tb.toString());
    console.log("\nSelf time by function:");
    const t = new Table(["self ms", "%", "function", "where"]);
    for (const f of p.functions) t.add(f.selfMs, f.percent, f.name, f.where);
    console.log(t.toString());
  }
}

function outboxThreadArg(value: string): "main" | "own" | "auto" {
  if (value !== "main" && value !== "own" && value !== "auto") throw new Error(`--outbox-thread ${value}: main, own or auto`);
  return value;
}

if (import.meta.main) await main();
