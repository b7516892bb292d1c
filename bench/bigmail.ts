/**
 * Big mail: a mail with a short text body ("Total: $15.14") and a 50 MB attachment is APPENDed to
 * a mailbox mailbell watches. Measures mailbell's RSS growth (peak RSS during the mail minus RSS
 * before it), the time to notify, and the bytes mailbell read from the server for that mail, counted
 * by a TCP forwarder between mailbell and Dovecot: far below 50 MB means the attachment was never
 * downloaded. Each big mail follows a small mail with the same text part, the control; three small
 * warm-up mails go first, so that loading and compiling the parsing path (a one-time cost of up to
 * ~20 MB for a moment, whichever mail happens to trigger it) is reported apart.
 *
 *   node bench/bigmail.ts [--mb 50] [--repeats 3] [--warm-ups 3] [--node-flags="--max-semi-space-size=1"] [--json]
 *   node bench/bigmail.ts --verify    every mail is DKIM-signed (RSA-2048) and the rule has verify: { dkim: … }, so
 *                                     each is downloaded whole and streamed through the verifier (issue 15): the
 *                                     bar is then that RSS stays small although all 50 MB pass through
 *
 * RSS growth: /proc/<pid>/clear_refs is written with 5 just before the APPEND, which resets VmHWM
 * to the current RSS; VmHWM after the notification minus VmRSS before is the growth. (Where
 * clear_refs cannot be written, the peak of VmRSS sampled every 10 ms is used instead.)
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { parseArgs } from "node:util";
import { ImapFlow } from "imapflow";
import { dkimRecordName, makeDkimKey, signMail, type DkimKey } from "../test/support/dkim.ts";
import { startDnsServer, type DnsServer } from "../test/support/dns.ts";
import { startDovecot, type Dovecot } from "../test/support/dovecot.ts";
import { buildMail } from "../test/support/mail.ts";
import { accountYaml } from "../test/support/config-yaml.ts";
import { listenOnLoopback } from "../test/support/loopback.ts";
import { startReceiver, type Receiver } from "../test/support/receiver.ts";
import { fmtMs, freePort, giveUpAfter, machineInfo, percentile, sleep, Table } from "./lib.ts";
import { dovecotProblems, logProblems, procStatus, resetPeakRss, startProbedMailbell, type ProbedMailbell } from "./mailboxes.ts";
import { startRawIdleClient } from "./raw-idle-client.ts";

// ---------------------------------------------------------------------------------------------
// A byte-counting TCP forwarder (TLS passes through it untouched: the counts include TLS framing)
// ---------------------------------------------------------------------------------------------

export interface CountingProxy {
  readonly port: number;
  /** Bytes from the server to the client (what the client downloaded), over all connections so far. */
  readonly serverToClient: number;
  readonly clientToServer: number;
  readonly connections: number;
  close(): Promise<void>;
}

export async function startCountingProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<CountingProxy> {
  let s2c = 0;
  let c2s = 0;
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect({ host: targetHost, port: targetPort });
    // Without this, Nagle's algorithm on the forwarder's sockets meets the peers' delayed ACKs and
    // adds ~25 ms to each small request/answer exchange: a 68 MiB mail downloaded in 64 KiB partial
    // fetches took 30 s through the forwarder against 1.7 s without it (0.5 s in 1 MiB chunks).
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on("data", (d: Buffer) => (c2s += d.length));
    upstream.on("data", (d: Buffer) => (s2c += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    get serverToClient() {
      return s2c;
    },
    get clientToServer() {
      return c2s;
    },
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------------

export interface MailRun {
  /** Size of the raw message as APPENDed. */
  mailBytes: number;
  /** How long the APPEND took (this process → Dovecot directly, not through the forwarder). */
  appendMs: number;
  rssBeforeKb: number;
  /** Peak RSS from the APPEND until 2 s after the notification. */
  peakKb: number;
  /** "VmHWM after clear_refs" or "VmRSS sampled every 10 ms". */
  peakMethod: string;
  /** peakKb − rssBeforeKb. */
  growthKb: number;
  /** RSS 2 s after the notification. */
  rssAfterKb: number;
  /** When the sampled RSS peaked, ms after the APPEND was answered (negative: during the APPEND). */
  peakAtMs: number;
  /** process.memoryUsage() inside mailbell right after the window (before the probe's GC), in kB. */
  heapTotalKb: number;
  heapUsedKb: number;
  externalKb: number;
  /** APPEND answered OK → the receiver has the webhook POST (includes Dovecot's ~500 ms). */
  appendToReceivedMs: number;
  /** APPEND answered OK → the raw IDLE client's `* N EXISTS`. */
  appendToExistsMs: number;
  /** The raw client's EXISTS → the receiver: mailbell's own time for this mail. */
  existsToReceivedMs: number;
  /** Bytes Dovecot sent to mailbell (TLS included) from before the APPEND to 2 s after the notification. */
  serverToClientBytes: number;
  clientToServerBytes: number;
  /** The notification's body as the receiver got it. */
  notification: string;
  /** The extracted amount is in the notification: the text part was read. */
  amountSeen: boolean;
  /** The notification says the sender was verified (BigMailOptions.verify). */
  verifiedSeen: boolean;
}

export interface BigMailResult {
  attachmentBytes: number;
  /** Every mail signed, the rule verifies DKIM: mail is downloaded whole (BigMailOptions.verify). */
  verify: boolean;
  /** With verify: the queries the DNS server saw over the whole run. */
  dnsQueries?: number;
  /** The big mail, `repeats` times, each after a small one. */
  big: MailRun[];
  /** The control: the same text part without the attachment. */
  small: MailRun[];
  /** The small mails sent first (module loading, JIT tier-up). */
  warmUp: MailRun[];
  /** Bytes mailbell downloaded over its whole life (login, SELECT, IDLE, every mail). */
  totalServerToClientBytes: number;
  mailbellProblems: string[];
  dovecotProblems: string[];
  totalSeconds: number;
}

export interface BigMailOptions {
  /** Attachment size in MiB; default 50. */
  attachmentMb?: number;
  /** Rounds of (small mail, big mail); default 3. */
  repeats?: number;
  /** Small mails before the measured rounds; default 3. */
  warmUps?: number;
  /** Idle time between mailbell reaching IDLE and the first mail; default 3 s. */
  settleSeconds?: number;
  /** Extra node flags for mailbell (e.g. --max-semi-space-size=1). */
  nodeFlags?: readonly string[];
  progress?: (line: string) => void;
  /**
   * Every mail is DKIM-signed (RSA-2048, d=shop.example.com) and the rule has
   * `verify: { dkim: shop.example.com }`: each mail is downloaded whole, streamed through the verifier.
   */
  verify?: boolean;
}

const SHOP = "shop.example.com";
const SELECTOR = "bench";
const VERIFIED = `DKIM ${SHOP}`;

function receipt(subject: string, attachment?: Buffer): string {
  return buildMail({
    from: `Shop <receipts@${SHOP}>`,
    to: "alice@example.com",
    subject,
    text: "Thank you for your order.\r\nTotal: $15.14\r\n",
    ...(attachment ? { attachments: [{ filename: "invoice-scan.bin", contentType: "application/octet-stream", content: attachment }] } : {}),
  });
}

/** The mail as APPENDed: signed by the shop when `key` is given (after its last change: the subject is signed). */
async function signed(raw: string, key: DkimKey | undefined): Promise<string | Buffer> {
  return key ? signMail(raw, { domain: SHOP, selector: SELECTOR, privateKey: key.privateKey }) : raw;
}

async function oneMail(o: { dc: Dovecot; receiver: Receiver; mb: ProbedMailbell; proxy: CountingProxy; raw: string | Buffer; subject: string }): Promise<MailRun> {
  const { dc, receiver, mb, proxy } = o;
  const pid = mb.proc.pid;
  const idle = await startRawIdleClient({ host: dc.host, port: dc.imapsPort, ca: dc.ca, user: "alice", pass: dc.auth("alice").pass, mailbox: "INBOX" });
  const appender = new ImapFlow(dc.clientOptions("alice"));
  appender.on("error", () => {});
  try {
    await appender.connect();
    await sleep(1000);
    const rssBeforeKb = procStatus(pid, "VmRSS");
    const cleared = resetPeakRss(pid);
    let sampledPeak = rssBeforeKb;
    let sampledPeakAt = performance.now();
    const sampler = setInterval(() => {
      const now = procStatus(pid, "VmRSS") || 0;
      if (now > sampledPeak) {
        sampledPeak = now;
        sampledPeakAt = performance.now();
      }
    }, 10);
    const s2c0 = proxy.serverToClient;
    const c2s0 = proxy.clientToServer;
    const existsP = idle.waitFor(idle.initialCount + 1, 120_000);
    const receivedP = receiver.waitFor((r) => r.text.includes(o.subject), 180_000);
    const t0 = performance.now();
    await appender.append("INBOX", o.raw);
    const appended = performance.now();
    const [received] = await receivedP;
    const exists = await existsP;
    await sleep(2000);
    clearInterval(sampler);
    const hwm = procStatus(pid, "VmHWM");
    const peakKb = cleared ? Math.max(hwm, sampledPeak) : sampledPeak;
    const rssAfterKb = procStatus(pid, "VmRSS");
    const mem = (await mb.probe()).before;
    const text = received!.text;
    return {
      mailBytes: Buffer.byteLength(o.raw),
      appendMs: appended - t0,
      rssBeforeKb,
      peakKb,
      peakMethod: cleared ? "VmHWM after clear_refs" : "VmRSS sampled every 10 ms",
      growthKb: peakKb - rssBeforeKb,
      rssAfterKb,
      peakAtMs: sampledPeakAt - appended,
      heapTotalKb: Math.round(mem.heapTotal / 1024),
      heapUsedKb: Math.round(mem.heapUsed / 1024),
      externalKb: Math.round(mem.external / 1024),
      appendToReceivedMs: received!.at - appended,
      appendToExistsMs: exists.at - appended,
      existsToReceivedMs: received!.at - exists.at,
      serverToClientBytes: proxy.serverToClient - s2c0,
      clientToServerBytes: proxy.clientToServer - c2s0,
      notification: text.length > 400 ? `${text.slice(0, 400)}…` : text,
      amountSeen: text.includes("15.14"),
      verifiedSeen: text.includes(VERIFIED),
    };
  } finally {
    await idle.close();
    await appender.logout().catch(() => appender.close());
  }
}

export async function runBigMail(options: BigMailOptions = {}): Promise<BigMailResult> {
  const t0 = performance.now();
  const say = options.progress ?? ((l: string) => process.stderr.write(`[bigmail] ${l}\n`));
  const attachmentBytes = Math.round((options.attachmentMb ?? 50) * 1024 * 1024);
  const dc = await startDovecot();
  const key = options.verify ? makeDkimKey("rsa", 2048) : undefined;
  let receiver: Receiver | undefined;
  let proxy: CountingProxy | undefined;
  let mb: ProbedMailbell | undefined;
  let dns: DnsServer | undefined;
  try {
    [receiver, proxy] = await Promise.all([startReceiver(), startCountingProxy(dc.imapsPort)]);
    if (key) dns = await startDnsServer({ txt: { [dkimRecordName(SELECTOR, SHOP)]: key.txt } });
    const statusPort = await freePort();
    const yaml = `log: { level: warn }
status: { listen: "127.0.0.1:${statusPort}" }${dns ? `\ndns: { servers: ["${dns.server}"] }` : ""}
outbox: { drainSeconds: 2 }
accounts:
${accountYaml({ name: "alice", port: proxy.port, caFile: dc.caFile, user: "alice", pass: "${ALICE_PASS}" })}targets:
  - { name: hook, type: webhook, url: ${JSON.stringify(receiver.url("/hook"))} }
rules:
  - name: receipts
    match: {}${key ? `\n    verify: { dkim: ${SHOP} }` : ""}
    extract:
      amount: { regex: "Total: (?<value>\\\\S+)", as: money }
    notify: [hook]
    template: "{{subject}}: {{amount}}${key ? " ({{verified}})" : ""}"
`;
    mb = await startProbedMailbell(yaml, { ALICE_PASS: dc.auth("alice").pass }, options.nodeFlags);
    for (;;) {
      try {
        const h = (await (await fetch(`http://127.0.0.1:${statusPort}/healthz`)).json()) as { mailboxes: { state: string }[] };
        if (h.mailboxes[0]?.state === "idle") break;
      } catch {
        // not listening yet
      }
      const state = await Promise.race([mb.proc.exited, sleep(20).then(() => "running" as const)]);
      if (state !== "running") throw new Error(`mailbell exited (${state}):\n${mb.proc.log}`);
      if (performance.now() - t0 > 60_000) throw new Error(`mailbell did not reach IDLE:\n${mb.proc.log}`);
    }
    const settle = options.settleSeconds ?? 3;
    say(`mailbell is idling on alice/INBOX behind the byte-counting forwarder; settling ${settle} s`);
    await sleep(settle * 1000);

    // The first mails load and compile the parsing path (and V8 tiers up hot functions, which can
    // take ~20 MB for a moment): measured, but kept apart from the small/big comparison.
    const warmUp: MailRun[] = [];
    for (let i = 1; i <= (options.warmUps ?? 3); i++) {
      const w = await oneMail({ dc, receiver, mb, proxy, raw: await signed(receipt(`warm-up receipt #${i}`), key), subject: `warm-up receipt #${i}` });
      warmUp.push(w);
      say(`warm-up #${i}: notified after ${fmtMs(w.appendToReceivedMs)}, RSS +${w.growthKb} kB (peak ${fmtMs(w.peakAtMs)} after the APPEND; at ${Math.round(performance.now() - mb.spawnedAt)} ms since mailbell's spawn)`);
    }
    say(`building a mail with a ${(attachmentBytes / 1048576).toFixed(0)} MiB attachment`);
    // built once; each round gets its own subject of the same length
    const bigRaw = receipt("big receipt #000", randomBytes(attachmentBytes));
    const small: MailRun[] = [];
    const big: MailRun[] = [];
    for (let i = 1; i <= (options.repeats ?? 3); i++) {
      const n = String(i).padStart(3, "0");
      const s = await oneMail({ dc, receiver, mb, proxy, raw: await signed(receipt(`small receipt #${n}`), key), subject: `small receipt #${n}` });
      small.push(s);
      say(`small #${i} (${s.mailBytes} B): notified after ${fmtMs(s.appendToReceivedMs)}, ${s.serverToClientBytes} B downloaded, RSS +${s.growthKb} kB`);
      const b = await oneMail({ dc, receiver, mb, proxy, raw: await signed(bigRaw.replace("big receipt #000", `big receipt #${n}`), key), subject: `big receipt #${n}` });
      big.push(b);
      say(
        `big #${i} (${(b.mailBytes / 1048576).toFixed(1)} MiB, APPEND ${fmtMs(b.appendMs)}): notified after ${fmtMs(b.appendToReceivedMs)}, ${b.serverToClientBytes} B downloaded, RSS +${b.growthKb} kB (peak ${fmtMs(b.peakAtMs)} after the APPEND; heapTotal ${b.heapTotalKb} kB)`,
      );
    }

    const totalServerToClientBytes = proxy.serverToClient;
    const log = mb.proc.log;
    // diagnosis: with --node-flags=--trace-gc, mailbell's GC lines (ms since its start) next to the "at" times above
    if (process.env.BIGMAIL_DUMP_LOG) process.stderr.write(`--- mailbell output ---\n${log}\n`);
    await mb.stop();
    mb = undefined;
    return {
      attachmentBytes,
      verify: key !== undefined,
      ...(dns ? { dnsQueries: dns.queries().length } : {}),
      warmUp,
      small,
      big,
      totalServerToClientBytes,
      mailbellProblems: logProblems(log),
      dovecotProblems: dovecotProblems(dc),
      totalSeconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await mb?.stop().catch(() => {});
    await proxy?.close();
    await receiver?.close();
    await dns?.stop();
    await dc.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Output and standalone
// ---------------------------------------------------------------------------------------------

export const BIGMAIL_COLUMNS = ["benchmark", "measure", "value", "bar", "notes"] as const;

const kib = (b: number): string => (b < 10 * 1024 ? `${b} B` : `${(b / 1024).toFixed(1)} KiB`);

/** Rows for BIGMAIL_COLUMNS. */
export function formatBigMail(r: BigMailResult): string[][] {
  const name = `big mail: ${(r.attachmentBytes / 1048576).toFixed(0)} MiB attachment${r.verify ? ", verify: dkim (read whole)" : ""}`;
  const { big, small } = r;
  const med = (runs: MailRun[], k: keyof MailRun) => percentile(runs.map((x) => x[k] as number), 50);
  const max = (runs: MailRun[], k: keyof MailRun) => Math.max(...runs.map((x) => x[k] as number));
  const each = (runs: MailRun[], f: (x: MailRun) => string) => runs.map(f).join(", ");
  const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;
  return [
    [
      name,
      "RSS growth (peak − before), worst of runs",
      mib(max(big, "growthKb")),
      "≤ 20 MB",
      `each: ${each(big, (x) => `+${mib(x.growthKb)}`)} (${big[0]?.peakMethod}); small mail: ${each(small, (x) => `+${mib(x.growthKb)}`)}; warm-up mails before: ${each(r.warmUp, (x) => `+${mib(x.growthKb)}`)}`,
    ],
    [name, "bytes downloaded for the mail", kib(max(big, "serverToClientBytes")), r.verify ? "the whole mail, streamed" : "≪ 50 MB", `server→mailbell through a byte-counting forwarder, TLS included; the mail is ${(big[0]!.mailBytes / 1048576).toFixed(1)} MiB; the same text without the attachment: ${kib(max(small, "serverToClientBytes"))}`],
    [name, "time to notify (APPEND done → receiver)", fmtMs(med(big, "appendToReceivedMs")), "", `median of ${big.length} (${each(big, (x) => fmtMs(x.appendToReceivedMs))}); small mail: ${fmtMs(med(small, "appendToReceivedMs"))}; the APPEND itself took ${fmtMs(med(big, "appendMs"))}`],
    [name, "  Dovecot: APPEND done → raw client's EXISTS", fmtMs(med(big, "appendToExistsMs")), "", `small mail: ${fmtMs(med(small, "appendToExistsMs"))}`],
    [name, "  mailbell: raw EXISTS → receiver", fmtMs(med(big, "existsToReceivedMs")), "", `each: ${each(big, (x) => fmtMs(x.existsToReceivedMs))}; small mail: ${fmtMs(med(small, "existsToReceivedMs"))}; amount read from the text part: ${big.every((x) => x.amountSeen) ? "yes" : "NO"}${r.verify ? `; sender verified in every notification: ${[...r.warmUp, ...small, ...big].every((x) => x.verifiedSeen) ? "yes" : "NO"}; ${r.dnsQueries} DNS queries in the whole run` : ""}`],
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      mb: { type: "string", default: "50" },
      repeats: { type: "string", default: "3" },
      "warm-ups": { type: "string", default: "3" },
      settle: { type: "string", default: "3" },
      "node-flags": { type: "string", default: "" },
      json: { type: "boolean", default: false },
      verify: { type: "boolean", default: false },
    },
  });
  const guard = giveUpAfter("bigmail", 300_000);
  const r = await runBigMail({
    attachmentMb: Number(values.mb),
    repeats: Number(values.repeats),
    warmUps: Number(values["warm-ups"]),
    settleSeconds: Number(values.settle),
    nodeFlags: values["node-flags"].split(/\s+/).filter(Boolean),
    verify: values.verify,
  });
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else {
    console.log(`\n${machineInfo().summary}`);
    console.log(`node bench/bigmail.ts ${process.argv.slice(2).join(" ")}\n`);
    console.log(new Table(BIGMAIL_COLUMNS).addRows(formatBigMail(r)).toString());
    console.log(`\nnotification (big #1): ${r.big[0]?.notification}`);
    const t = new Table(["mail", "RSS before", "peak", "growth", "peak at (after APPEND)", "RSS 2 s after", "heapTotal after", "downloaded"]);
    for (const [label, runs] of [["warm-up", r.warmUp], ["small", r.small], ["big", r.big]] as const) {
      runs.forEach((x, i) => t.add(`${label} #${i + 1}`, `${x.rssBeforeKb} kB`, `${x.peakKb} kB`, `${x.growthKb} kB`, fmtMs(x.peakAtMs), `${x.rssAfterKb} kB`, `${x.heapTotalKb} kB`, kib(x.serverToClientBytes)));
    }
    console.log(t.toString());
    console.log(`mailbell downloaded ${kib(r.totalServerToClientBytes)} over its whole run (login, SELECT, IDLE, every mail)`);
    if (r.mailbellProblems.length) console.log(`mailbell warnings:\n  ${r.mailbellProblems.join("\n  ")}`);
    if (r.dovecotProblems.length) console.log(`dovecot warnings:\n  ${r.dovecotProblems.join("\n  ")}`);
  }
  clearTimeout(guard);
}
