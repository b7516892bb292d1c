/**
 * `mailbell backfill` and `mailbell totals rebuild` against the real Dovecot: the range and the
 * server-side narrowing (seen on the wire through the IMAP proxy), a mail counted once however it
 * is run (twice, beside a running daemon, after the daemon counted it, interrupted and run again),
 * --notify digest posted once by one sender, --actions, DKIM keys rotated away, the plain progress
 * line, and a rebuild after a fixed regex replacing the sums.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { backfillCommand } from "../src/cli/backfill.ts";
import type { CliIO } from "../src/cli/io.ts";
import { totalsRebuildCommand } from "../src/cli/totals-rebuild.ts";
import { State } from "../src/store/sqlite/state.ts";
import { runCli } from "./support/cli.ts";
import { accountYaml } from "./support/config-yaml.ts";
import { startMailbell, waitUntilWatching, writeConfig } from "./support/daemon.ts";
import { dkimRecordName, makeDkimKey, signMail } from "./support/dkim.ts";
import { startDnsServer, type DnsServer } from "./support/dns.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { startImapProxy, type ImapProxy, type ImapRule } from "./support/imap-proxy.ts";
import { buildMail } from "./support/mail.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";

const root = path.resolve(import.meta.dirname, "..");
let dovecot: Dovecot;
let receiver: Receiver;
let users = 0;

before(async () => {
  [dovecot, receiver] = await Promise.all([startDovecot(), startReceiver()]);
});
after(async () => {
  await Promise.all([dovecot?.dispose(), receiver?.close()]);
});

async function newUser(): Promise<string> {
  const user = `bf${++users}`;
  await dovecot.addUser(user, `${user}pw`);
  return user;
}

interface Setup {
  user: string;
  dir: string;
  file: string;
  yaml: string;
  hook: string;
}

/** A config for a new user: rule shop (receipts from shop.example, summed per month in Tokyo), posting to its own hook. */
function setup(user: string, opts: { port?: number; tls?: "none"; amountRegex?: string; then?: string; extra?: string; rules?: string; dir?: string; subject?: string } = {}): Setup {
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), "mailbell-backfill-"));
  const hook = `/${user}`;
  const regex = opts.amountRegex ?? "^Total:\\\\s*(?<value>[^\\\\r\\\\n]+)";
  const yaml = `state: ${dir}/state.db
watch: { reconnectMaxSeconds: 1, keepaliveSeconds: 1 }
outbox: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2, drainSeconds: 5 }
${opts.extra ?? ""}accounts:
${accountYaml({ name: user, port: opts.port ?? dovecot.imapsPort, tls: opts.tls, caFile: opts.tls === "none" ? undefined : dovecot.caFile, user, pass: `${user}pw` })}targets:
  - { name: hook, type: webhook, url: "${receiver.url(hook)}", rateLimit: { perSecond: 1000, burst: 1000 } }
rules:
${
  opts.rules ??
  `  - name: shop
    match: { from: "@shop.example", subject: "${opts.subject ?? "Receipt"}" }
    extract:
      amount: { regex: "${regex}", flags: m, as: money }
    total: { sum: amount, per: month, timezone: Asia/Tokyo }
    notify: [hook]
    template: "{{subject}}"
${opts.then ? `    then: ${opts.then}\n` : ""}`
}`;
  return { user, dir, yaml, hook, file: writeConfig(yaml, dir) };
}

const receipt = (subject: string, yen: number, from = "billing@shop.example") => buildMail({ from, to: "me@example.com", subject, text: `Thank you.\r\nTotal: ¥${yen}\r\n` });
const append = (user: string, raw: string | Buffer, at: string) => dovecot.append(user, "INBOX", raw, { internalDate: new Date(at) });
const cli = (args: string[]) => runCli(args);

/** The rule's totals as `mailbell totals` would list them: [period, amount, mails]. */
function totals(s: Setup, rule = "shop"): [string, string, number][] {
  const state = State.open(path.join(s.dir, "state.db"), { readOnly: true });
  try {
    return state.totals.report({ rule }).map((r) => [r.period, `${r.amount} ${r.currency}`, r.mails]);
  } finally {
    state.close();
  }
}

const posts = (hook: string) => receiver.requests.filter((r) => r.path === hook && r.reply.status < 300);
const line = (out: string, label: string) => Number(new RegExp(`^  ${label}: (\\d+)`, "m").exec(out)?.[1] ?? NaN);

describe("mailbell backfill", () => {
  it("reads the range by arrival time in the rules' zone, searching the server by date, From and Subject", async () => {
    const user = await newUser();
    await append(user, receipt("Your receipt 1", 100), "2026-10-20T10:00:00Z"); // before
    await append(user, receipt("Your receipt 2", 200), "2026-10-31T15:30:00Z"); // 2026-11-01 00:30 in Tokyo: in
    await append(user, receipt("Your receipt 5", 500), "2026-10-31T14:00:00Z"); // 10-31 23:00 in Tokyo: found by the wider SINCE, left out
    await append(user, receipt("Your receipt 3", 300), "2026-11-15T12:00:00Z"); // in
    await append(user, receipt("Your receipt 6", 600, "news@other.example"), "2026-11-10T12:00:00Z"); // another sender
    await append(user, receipt("Newsletter", 700), "2026-11-12T12:00:00Z"); // another subject
    await append(user, receipt("Your receipt 4", 400), "2026-12-05T12:00:00Z"); // after
    // mailbell squeezes whitespace in a subject before matching: "Your receipt" matches these too.
    await append(user, receipt("Your  receipt 7", 7), "2026-11-16T12:00:00Z");
    await append(user, receipt("Your\u00a0receipt 8", 8), "2026-11-17T12:00:00Z");
    // The server logs the first session out right after the search (an autologout while other
    // accounts are searched or read): the reading has a session of its own.
    const proxy: ImapProxy = await startImapProxy({ port: dovecot.imapPort, rules: [{ name: "closeAfterSearch", onReply: (reply, session) => (session.id === 1 && reply.tag !== "*" && reply.command?.name === "UID SEARCH" ? { then: "close" } : undefined) }] });
    try {
      const s = setup(user, { port: proxy.port, tls: "none", subject: "Your receipt" });
      const r = await cli(["backfill", "--config", s.file, "--since", "2026-11-01", "--until", "2026-11-30"]);
      assert.equal(r.code, 0, r.out + r.err);
      assert.deepEqual(totals(s), [["2026-11", "515 JPY", 4]]);
      assert.match(r.out, /days in Asia\/Tokyo/);
      assert.match(r.out, /searched by date and the rules' from\/subject: 5 found/);
      assert.equal(line(r.out, "read"), 5);
      assert.match(r.out, /in the range: 4/);
      assert.equal(line(r.out, "counted"), 4);
      const searches = proxy.commands.filter((c) => c.name === "UID SEARCH");
      assert.equal(searches.length, 1);
      // A day wider each side: SINCE 30-Oct-2026 and BEFORE 2-Dec-2026, which imapflow sends as
      // YOUNGER/OLDER seconds from now where the server has WITHIN (Dovecot does).
      const [younger, older] = [/YOUNGER (\d+)/.exec(searches[0]!.args)?.[1], /OLDER (\d+)/.exec(searches[0]!.args)?.[1]];
      if (younger && older) {
        assert.ok(Math.abs(Date.now() - Number(younger) * 1000 - Date.parse("2026-10-30T00:00:00Z")) < 60_000, searches[0]!.args);
        assert.ok(Math.abs(Date.now() - Number(older) * 1000 - Date.parse("2026-12-02T00:00:00Z")) < 60_000, searches[0]!.args);
      } else {
        assert.match(searches[0]!.args, /SINCE 30-Oct-2026/);
        assert.match(searches[0]!.args, /BEFORE 0?2-Dec-2026/);
      }
      assert.match(searches[0]!.args, /FROM "?shop\.example"?/);
      // The pattern's longest word: the server compares the subject as it is, whitespace unsqueezed.
      assert.match(searches[0]!.args, /SUBJECT "?receipt"?/);
      // Only what the search found is ever fetched: UIDs 2, 3, 4, 8 and 9.
      const fetched = new Set(proxy.commands.filter((c) => c.name === "UID FETCH").flatMap((c) => uidsOf(c.args)));
      assert.deepEqual([...fetched].sort((a, b) => a - b), [2, 3, 4, 8, 9]);
      assert.ok(!proxy.commands.some((c) => c.name === "SELECT"), "mailboxes are opened read-only (EXAMINE)");
      assert.ok(proxy.applied.some((a) => a.rule === "closeAfterSearch" && a.did === "close"), "the search's session was closed under it");
      // --search dates, for a server whose search matches whole words: the dates alone.
      const dates = await cli(["backfill", "--config", s.file, "--since", "2026-11-01", "--until", "2026-11-30", "--search", "dates"]);
      assert.equal(dates.code, 0, dates.out + dates.err);
      assert.match(dates.out, /searched by date only \(--search dates\): 7 found/);
      assert.equal(line(dates.out, "already counted"), 4);
      assert.doesNotMatch(proxy.commands.filter((c) => c.name === "UID SEARCH").at(-1)!.args, /FROM|SUBJECT/);
      const state = State.open(path.join(s.dir, "state.db"), { readOnly: true });
      assert.equal(state.checkpoints.load(user, "INBOX"), undefined, "no checkpoint is written");
      state.close();
    } finally {
      await proxy.close();
    }
  });

  it("counts each mail once: twice in a row, beside a running daemon, and mail the daemon counted", async () => {
    const user = await newUser();
    const s = setup(user);
    const since = new Date(Date.now() - 40 * 86_400_000).toISOString().slice(0, 10);
    await append(user, receipt("Receipt old 1", 10), new Date(Date.now() - 20 * 86_400_000).toISOString());
    await append(user, receipt("Receipt old 2", 20), new Date(Date.now() - 10 * 86_400_000).toISOString());
    const daemon = startMailbell(s.file, s.yaml);
    try {
      await waitUntilWatching(daemon.logger);
      await dovecot.append(user, "INBOX", receipt("Receipt new", 40));
      await receiver.waitFor((r) => r.path === s.hook, 10_000);
      // Mail arriving while backfill reads: the daemon and backfill race for it; one counts it.
      const racing = Promise.all([1, 2, 3].map((i) => dovecot.append(user, "INBOX", receipt(`Receipt racing ${i}`, 100 * i))));
      const first = await cli(["backfill", "--config", s.file, "--since", since]);
      await racing;
      assert.equal(first.code, 0, first.out + first.err);
      assert.ok(line(first.out, "counted") >= 2, first.out);
      assert.ok(line(first.out, "already counted") >= 1, `the daemon's mail is already counted:\n${first.out}`);
      await waitFor(() => sumOf(totals(s)) === 670 || undefined, 10_000);
      const second = await cli(["backfill", "--config", s.file, "--since", since]);
      assert.equal(second.code, 0, second.out + second.err);
      assert.equal(line(second.out, "counted"), 0, second.out);
      assert.equal(line(second.out, "already counted"), 6, second.out);
      // Counted by backfill or not, the daemon still posts the new mail once it reads it.
      await waitFor(() => posts(s.hook).length >= 4 || undefined, 10_000);
    } finally {
      await daemon.stop();
    }
    assert.equal(sumOf(totals(s)), 670, "10 + 20 + 40 + 100 + 200 + 300, each once");
    assert.equal(totals(s).reduce((n, t) => n + t[2], 0), 6);
    assert.equal(posts(s.hook).length, 4, "the daemon posted its four new mails; backfill posted nothing (--notify none)");
  });

  it("stopped by SIGINT, commits whole batches and exits 130; run again, counts the rest once", async () => {
    const user = await newUser();
    const at = new Date(Date.now() - 86_400_000);
    await dovecot.appendMany(user, "INBOX", Array.from({ length: 20 }, (_, i) => receipt(`Receipt ${i}`, i + 1)), { internalDate: at });
    const proxy = await startImapProxy({ port: dovecot.imapPort, rules: [slowFetch(200)] });
    const s = setup(user, { port: proxy.port, tls: "none" });
    const since = new Date(at.getTime() - 86_400_000).toISOString().slice(0, 10);
    const { io, printed } = collector();
    let harness = new Set<unknown>();
    try {
      harness = new Set(process.listeners("SIGINT"));
      const running = backfillCommand({ config: s.file, since, until: undefined, rule: undefined, notify: undefined, actions: false, tty: false, batchSize: 5 }, io);
      await waitFor(() => (counted(s) > 0 ? true : undefined), 20_000);
      // As a terminal's Ctrl-C, but to backfill's listener only: the harness's own would stop Dovecot.
      const ours = process.listeners("SIGINT").filter((l) => !harness.has(l));
      assert.equal(ours.length, 1);
      ours[0]!("SIGINT");
      assert.equal(await running, 130, printed.out + printed.err);
    } finally {
      await proxy.close();
    }
    assert.match(printed.err, /SIGINT received, stopping after this batch/);
    assert.match(printed.out, /INTERRUPTED: what is below was committed/);
    const part = counted(s);
    assert.ok(part > 0 && part < 20 && part % 5 === 0, `whole batches of 5: ${part}`);
    assert.equal(line(printed.out, "counted"), part);
    const again = await cli(["backfill", "--config", setup(user, { dir: s.dir }).file, "--since", since]);
    assert.equal(again.code, 0, again.out + again.err);
    assert.equal(line(again.out, "counted"), 20 - part);
    assert.equal(line(again.out, "already counted"), part);
    assert.equal(sumOf(totals(s)), 210);
    assert.ok(process.listeners("SIGINT").every((l) => harness.has(l)), "its signal handler is gone");
  });

  it("killed with SIGKILL mid-run and run again, counts every mail once", async () => {
    const user = await newUser();
    const at = new Date(Date.now() - 86_400_000);
    await dovecot.appendMany(user, "INBOX", Array.from({ length: 150 }, (_, i) => receipt(`Receipt ${i}`, 1)), { internalDate: at });
    // Each FETCH's completion a little late, so the process is still reading after its first commit.
    const proxy = await startImapProxy({ port: dovecot.imapPort, rules: [slowFetch(300)] });
    const s = setup(user, { port: proxy.port, tls: "none" });
    const since = new Date(at.getTime() - 86_400_000).toISOString().slice(0, 10);
    const child = spawn(process.execPath, [path.join(root, "src/cli/entry.ts"), "backfill", "--config", s.file, "--since", since], { stdio: ["ignore", "pipe", "pipe"] });
    // Read as it comes: a pipe nobody reads would stop the child once it is full.
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    let exitCode: number | null | undefined;
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve((exitCode = code))));
    try {
      // Generous: a fresh process loading the TypeScript sources is slow while other test files run.
      await waitFor(() => {
        if (counted(s) > 0) return true;
        if (exitCode !== undefined) throw new Error(`backfill exited (${exitCode}) before counting anything:\n${output}`);
        return undefined;
      }, 45_000).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; backfill's output so far:\n${output}`);
      });
      child.kill("SIGKILL");
      assert.equal(await exited, null);
      const part = counted(s);
      assert.ok(part > 0 && part < 150, `killed part way: ${part} of 150 counted`);
    } finally {
      child.kill("SIGKILL");
      await proxy.close();
    }
    // The same state, straight to Dovecot this time.
    const again = await cli(["backfill", "--config", setup(user, { dir: s.dir }).file, "--since", since]);
    assert.equal(again.code, 0, again.out + again.err);
    assert.equal(line(again.out, "counted") + line(again.out, "already counted"), 150);
    assert.equal(counted(s), 150);
    assert.deepEqual(totals(s).map((t) => t[1]), ["150 JPY"]);
  });

  it("--notify digest: one summary per rule and target, sent once by backfill itself when no daemon runs", async () => {
    const user = await newUser();
    const s = setup(user);
    for (const yen of [1, 2, 3]) await append(user, receipt(`Receipt ${yen}`, yen), new Date(Date.now() - yen * 86_400_000).toISOString());
    const since = new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 10);
    const r = await cli(["backfill", "--config", s.file, "--since", since, "--notify", "digest"]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /notifications: 3 queued as one digest per rule and target; sent/);
    assert.equal(posts(s.hook).length, 1, "one digest for the three mails");
    const again = await cli(["backfill", "--config", s.file, "--since", since, "--notify", "digest"]);
    assert.equal(again.code, 0, again.out + again.err);
    assert.match(again.out, /notifications: 0 queued/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(posts(s.hook).length, 1, "nothing is posted twice");
  });

  it("--notify digest beside a running daemon: queued by backfill, sent by the daemon, once", async () => {
    const user = await newUser();
    const s = setup(user);
    for (const yen of [1, 2]) await append(user, receipt(`Receipt ${yen}`, yen), new Date(Date.now() - yen * 86_400_000).toISOString());
    const since = new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 10);
    const daemon = startMailbell(s.file, s.yaml);
    try {
      await waitUntilWatching(daemon.logger);
      // Its own process, as a user runs it: the lock is the daemon's.
      const r = await runProcess(["backfill", "--config", s.file, "--since", since, "--notify", "digest"]);
      assert.equal(r.code, 0, r.out + r.err);
      assert.match(r.out, /notifications: 2 queued as one digest per rule and target; the running mailbell sends them/);
      // A rebuild beside it: the daemon's counts meanwhile are kept, so it is told to reload first.
      const rebuilt = await runProcess(["totals", "rebuild", "--config", s.file, "--rule", "shop"]);
      assert.equal(rebuilt.code, 0, rebuilt.out + rebuilt.err);
      assert.match(rebuilt.err, /a running mailbell \(pid \d+\) uses this state file: .*reload it first \(kill -HUP \d+\)/);
      await receiver.waitFor((q) => q.path === s.hook, 15_000);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await daemon.stop();
    }
    assert.equal(posts(s.hook).length, 1);
  });

  it("--actions queues the rules' then:, done by the mailbox's watcher; without it, none", async () => {
    const user = await newUser();
    const s = setup(user, { then: '{ flag: "$Backfilled" }' });
    const uid = await append(user, receipt("Receipt 1", 5), new Date(Date.now() - 86_400_000).toISOString());
    const since = new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 10);
    const without = await cli(["backfill", "--config", s.file, "--since", since, "--rule", "shop"]);
    assert.equal(without.code, 0, without.out + without.err);
    assert.equal(queuedActions(s), 0);
    // Counted by the first run; the actions are recorded apart, so they are queued now.
    const withActions = await cli(["backfill", "--config", s.file, "--since", since, "--actions"]);
    assert.equal(withActions.code, 0, withActions.out + withActions.err);
    assert.equal(queuedActions(s), 1);
    assert.deepEqual(await flagsOf(user, uid), [], "backfill itself changes nothing on the server");
    const daemon = startMailbell(s.file, s.yaml);
    try {
      await waitUntilWatching(daemon.logger);
      await waitFor(async () => ((await flagsOf(user, uid)).includes("$Backfilled") ? true : undefined), 10_000);
    } finally {
      await daemon.stop();
    }
  });

  it("reports mail whose DKIM key was rotated away, refused as unverified", async () => {
    const user = await newUser();
    const current = makeDkimKey("ed25519");
    const rotated = makeDkimKey("ed25519");
    const dns: DnsServer = await startDnsServer({ txt: { [dkimRecordName("now", "shop.example")]: current.txt } });
    try {
      const day = new Date(Date.now() - 86_400_000).toISOString();
      await append(user, await signMail(receipt("Receipt signed now", 7), { domain: "shop.example", selector: "now", privateKey: current.privateKey }), day);
      await append(user, await signMail(receipt("Receipt signed 2024", 9), { domain: "shop.example", selector: "old2024", privateKey: rotated.privateKey }), day);
      const s = setup(user, {
        extra: `dns: { servers: ["${dns.server}"], timeoutSeconds: 1 }\n`,
        rules: `  - name: shop
    match: { from: "@shop.example", subject: "Receipt" }
    verify: { dkim: shop.example }
    extract:
      amount: { regex: "^Total:\\\\s*(?<value>[^\\\\r\\\\n]+)", flags: m, as: money }
    total: { sum: amount, per: month, timezone: UTC }
    notify: [hook]
    template: "{{subject}}"
`,
      });
      const r = await cli(["backfill", "--config", s.file, "--since", new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 10)]);
      assert.equal(r.code, 0, r.out + r.err);
      assert.equal(line(r.out, "counted"), 1, r.out);
      assert.equal(line(r.out, "refused, sender not verified"), 1, r.out);
      assert.equal(line(r.out, "of them, not verifiable because the DKIM key is gone from DNS \\(rotated away\\)"), 1, r.out);
      assert.equal(sumOf(totals(s)), 7);
      // DNS refusing: each pass leaves one mail unread (its key lookup failed) and the rest of its
      // batch for the next; after the last pass, what is left is reported too, not dropped.
      for (const i of [1, 2, 3, 4, 5]) await append(user, await signMail(receipt(`Receipt signed later ${i}`, i), { domain: "shop.example", selector: "now", privateKey: current.privateKey }), day);
      await dns.fail("refused");
      const down = await cli(["backfill", "--config", s.file, "--since", new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 10)]);
      assert.equal(down.code, 0, down.out + down.err);
      assert.equal(line(down.out, "could not be read"), 7, down.out);
    } finally {
      await dns.stop();
    }
  });

  it("says how far it got in plain lines on stderr when it is not a terminal", async () => {
    const user = await newUser();
    const s = setup(user);
    await append(user, receipt("Receipt 1", 1), new Date(Date.now() - 86_400_000).toISOString());
    const r = await cli(["backfill", "--config", s.file, "--since", new Date(Date.now() - 5 * 86_400_000).toISOString().slice(0, 10)]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.err, /^backfill: 0\/1 mails read \(0 mails\/s\)$/m, "at the start");
    assert.match(r.err, /^backfill: 1\/1 mails read \(\d+ mails\/s\)$/m, "at the end");
    assert.ok(!r.err.includes("\u001b["), "no terminal control codes");
  });

  it("refuses a missing --since, a bad date, an unknown rule and a bad --notify, saying what is valid", async () => {
    const s = setup("nobody");
    assert.match((await cli(["backfill", "--config", s.file])).err, /needs --since DATE/);
    assert.match((await cli(["backfill", "--config", s.file, "--since", "1.11.2026"])).err, /--since "1\.11\.2026" is not a date: write the day as YYYY-MM-DD/);
    assert.match((await cli(["backfill", "--config", s.file, "--since", "2026-11-01", "--rule", "nope"])).err, /--rule "nope" is not a rule in the config: the rules are shop/);
    const bad = await cli(["backfill", "--config", s.file, "--since", "2026-11-01", "--notify", "all"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--notify "all" is not one of none, digest/);
    assert.match((await cli(["backfill", "--config", s.file, "--since", "2026-11-01", "--search", "words"])).err, /--search "words" is not one of conditions, dates/);
  });
});

describe("mailbell totals rebuild", () => {
  it("after a fixed regex, replaces the rule's sums in whole periods from --since, and posts nothing", async () => {
    const user = await newUser();
    await append(user, receipt("Receipt oct", 150), "2026-10-10T03:00:00Z");
    await append(user, receipt("Receipt nov a", 250), "2026-11-02T03:00:00Z");
    await append(user, receipt("Receipt nov b", 350), "2026-11-20T03:00:00Z");
    // The first regex reads only the first digit.
    const wrong = setup(user, { amountRegex: "^Total:\\\\s*(?<value>¥\\\\d)" });
    const first = await cli(["backfill", "--config", wrong.file, "--since", "2026-10-01", "--notify", "digest"]);
    assert.equal(first.code, 0, first.out + first.err);
    assert.deepEqual(totals(wrong), [["2026-10", "1 JPY", 1], ["2026-11", "5 JPY", 2]]);
    const postsBefore = posts(wrong.hook).length;
    // Interrupted, a rebuild changes nothing.
    const stopped = new AbortController();
    stopped.abort();
    const { io } = collector();
    assert.equal(await totalsRebuildCommand({ config: wrong.file, rule: "shop", since: undefined, signal: stopped.signal, tty: false }, io), 130);
    assert.deepEqual(totals(wrong), [["2026-10", "1 JPY", 1], ["2026-11", "5 JPY", 2]]);
    // Fixed; November rebuilt from the 15th: the whole month is counted again, October left as it was.
    writeFileSync(wrong.file, wrong.yaml.replace("(?<value>¥\\\\d)", "(?<value>[^\\\\r\\\\n]+)"));
    const rebuilt = await cli(["totals", "rebuild", "--config", wrong.file, "--rule", "shop", "--since", "2026-11-15"]);
    assert.equal(rebuilt.code, 0, rebuilt.out + rebuilt.err);
    assert.match(rebuilt.out, /periods from 2026-11-01 \(months in Asia\/Tokyo\)/);
    assert.match(rebuilt.out, /replaced: 2 earlier entries removed, 2 counted again/);
    assert.deepEqual(totals(wrong), [["2026-10", "1 JPY", 1], ["2026-11", "600 JPY", 2]]);
    const all = await cli(["totals", "rebuild", "--config", wrong.file, "--rule", "shop"]);
    assert.equal(all.code, 0, all.out + all.err);
    assert.deepEqual(totals(wrong), [["2026-10", "150 JPY", 1], ["2026-11", "600 JPY", 2]]);
    // Run again: the same sums, not doubled.
    assert.equal((await cli(["totals", "rebuild", "--config", wrong.file, "--rule", "shop"])).code, 0);
    assert.deepEqual(totals(wrong), [["2026-10", "150 JPY", 1], ["2026-11", "600 JPY", 2]]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(posts(wrong.hook).length, postsBefore, "notifications are not sent again");
    // The rule moves its mail to a folder that is not watched: the mail there still counts. Before
    // the folder exists, there is nothing there to read.
    const moving = setup(user, { dir: wrong.dir, then: '{ move: "Receipts" }' });
    const none = await cli(["totals", "rebuild", "--config", moving.file, "--rule", "shop"]);
    assert.equal(none.code, 0, none.out + none.err);
    assert.deepEqual(totals(wrong), [["2026-10", "150 JPY", 1], ["2026-11", "600 JPY", 2]]);
    await dovecot.createMailbox(user, "Receipts");
    await dovecot.withClient(user, async (client) => {
      await client.mailboxOpen("INBOX");
      await client.messageMove("3", "Receipts", { uid: true });
    });
    const moved = await cli(["totals", "rebuild", "--config", moving.file, "--rule", "shop"]);
    assert.equal(moved.code, 0, moved.out + moved.err);
    assert.match(moved.out, /\/Receipts: searched by/);
    assert.deepEqual(totals(wrong), [["2026-10", "150 JPY", 1], ["2026-11", "600 JPY", 2]]);
  });

  it("refuses without --rule", async () => {
    const s = setup("nobody");
    assert.match((await cli(["totals", "rebuild", "--config", s.file])).err, /needs --rule NAME/);
  });
});

/** Each FETCH's completion `ms` late: a run is still reading after its first commit. */
function slowFetch(ms: number): ImapRule {
  return { name: "slowFetch", onReply: (reply) => (reply.tag !== "*" && reply.tag !== "+" && reply.command?.name === "UID FETCH" ? { delayMs: ms } : undefined) };
}

/** A CliIO that keeps what a command printed. */
function collector(): { io: CliIO; printed: { out: string; err: string } } {
  const printed = { out: "", err: "" };
  return { io: { out: (t) => void (printed.out += `${t}\n`), err: (t) => void (printed.err += `${t}\n`), env: {} }, printed };
}

function uidsOf(args: string): number[] {
  const set = /^(\S+)/.exec(args)?.[1] ?? "";
  return set.split(",").flatMap((part) => {
    const [a, b] = part.split(":").map(Number);
    if (b === undefined) return [a!];
    return Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
  });
}

function sumOf(rows: [string, string, number][]): number {
  return rows.reduce((n, [, amount]) => n + Number(amount.split(" ")[0]), 0);
}

function counted(s: Setup): number {
  try {
    return totals(s).reduce((n, t) => n + t[2], 0);
  } catch {
    return 0;
  }
}

function queuedActions(s: Setup): number {
  const state = State.open(path.join(s.dir, "state.db"), { readOnly: true });
  try {
    return state.actions.list().length;
  } finally {
    state.close();
  }
}

async function flagsOf(user: string, uid: number): Promise<string[]> {
  return dovecot.withClient(user, async (client) => {
    await client.mailboxOpen("INBOX", { readOnly: true });
    const msg = await client.fetchOne(String(uid), { flags: true }, { uid: true });
    return msg ? [...(msg.flags ?? [])].filter((f) => !f.startsWith("\\")) : [];
  });
}

async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe();
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runProcess(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [path.join(root, "src/cli/entry.ts"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { code, out, err };
}
