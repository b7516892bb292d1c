/**
 * Rough edges a new user met (issue 17), against a real Dovecot: a state another user made, a
 * first start that cannot log in or connect, transport errors in words, `check --send`, and the
 * catch-up and no-rule-matched log lines.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { ImapError } from "../src/errors.ts";
import { createLogger } from "../src/pino-logger.ts";
import { State } from "../src/store/sqlite/state.ts";
import { runCli } from "./support/cli.ts";
import type { ReloadOutcome } from "../src/daemon/run.ts";
import { startMailbell, writeConfig } from "./support/daemon.ts";
import { CaptureLogger, type LogEntry } from "./support/logger.ts";
import { freePorts, type Dovecot } from "./support/dovecot.ts";
import { scoped, startImapProxy, type ImapRule, type RuleScope } from "./support/imap-proxy.ts";
import { buildMail } from "./support/mail.ts";
import { slackReplies, type Receiver } from "./support/receiver.ts";
import { dovecotAndReceiverForFile } from "./support/servers.ts";

const entry = path.resolve(import.meta.dirname, "../src/cli/entry.ts");
let dovecot: Dovecot;
let receiver: Receiver;
dovecotAndReceiverForFile((started) => ({ dovecot, receiver } = started));

interface Setup {
  account?: string;
  targets?: string;
  rules?: string;
  state?: string;
}

/** A config in a folder of its own (readable by everyone); `account` replaces alice's connection settings. */
function config(o: Setup = {}): { file: string; yaml: string; dir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-edges-"));
  chmodSync(dir, 0o755);
  const yaml = `state: ${o.state ?? `${dir}/state/state.db`}
accounts:
  - { name: alice, host: 127.0.0.1, user: alice, pass: "\${ALICE_PASS}", ${o.account ?? `port: ${dovecot.imapPort}, tls: none`} }
targets:
${o.targets ?? `  - { name: hook, type: webhook, url: "${receiver.url("/edges")}" }`}
rules:
${o.rules ?? "  - { name: all, notify: [hook], template: '{{subject}}' }"}
`;
  return { file: writeConfig(yaml, dir), yaml, dir };
}

const alice = { ALICE_PASS: "alicepw" };

/** `mailbell ARGS` as a process run by another user than the one who made the state (root here: `nobody` via setpriv). */
function asAnotherUser(args: readonly string[]): Promise<{ code: number | null; out: string; err: string }> {
  const asRoot = process.getuid?.() === 0;
  const command = asRoot ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, entry, ...args] : [process.execPath, entry, ...args];
  const child = spawn(command[0]!, command.slice(1), { env: { ...process.env, ...alice }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, out, err })));
}

const setprivMissing = process.getuid?.() === 0 && !["/usr/bin/setpriv", "/bin/setpriv"].some((p) => existsSync(p));

describe("a state database another user made", () => {
  // Made by this user (root under npm test), and run as another: with the folder writable by all
  // and the file not, SQLite opens it read-only without a word and failed at the first write (exit 70).
  it("is a state error (exit 4) naming the path and the chown, for check, run and outbox retry alike; listings only read it", { skip: setprivMissing && "needs setpriv to run as another user" }, async () => {
    const { file, dir } = config();
    const statePath = `${dir}/state/state.db`;
    State.open(statePath).close();
    chmodSync(path.dirname(statePath), 0o777);
    if (process.getuid?.() !== 0) chmodSync(statePath, 0o444);
    const [check, run, outbox, ...listings] = await Promise.all([
      asAnotherUser(["check", "--config", file]),
      asAnotherUser(["run", "--config", file]),
      asAnotherUser(["outbox", "retry", "--all", "--config", file]),
      asAnotherUser(["outbox", "--config", file]),
      asAnotherUser(["totals", "--config", file]),
      asAnotherUser(["unreadable", "--config", file]),
    ]);
    for (const listing of listings) assert.equal(listing.code, 0, listing.out + listing.err);
    assert.equal(check.code, 4, check.out + check.err);
    assert.match(check.out, new RegExp(`✗ state: cannot write the state database ${statePath}: ${statePath} is not writable by \\S+ \\(uid \\d+\\).*Fix: sudo chown \\S+ ${statePath}\\* `));
    assert.match(check.out, /✓ account alice: logged in/, "the other checks still run");
    for (const [name, r] of [["run", run], ["outbox", outbox]] as const) {
      assert.equal(r.code, 4, `${name}: ${r.out}${r.err}`);
      assert.match(r.err, new RegExp(`mailbell: cannot write the state database ${statePath}: .*Fix: sudo chown `), name);
      assert.doesNotMatch(r.err, /internal error|This is a bug/, name);
    }
  });

  it("a state folder another user made: the folder is named in the fix", { skip: setprivMissing && "needs setpriv to run as another user" }, async () => {
    const { file, dir } = config();
    const stateDir = `${dir}/state`;
    State.open(`${stateDir}/state.db`).close();
    if (process.getuid?.() !== 0) {
      chmodSync(`${stateDir}/state.db`, 0o444);
      chmodSync(stateDir, 0o555);
    }
    const run = await asAnotherUser(["run", "--config", file]);
    assert.equal(run.code, 4, run.out + run.err);
    assert.match(run.err, new RegExp(`mailbell: cannot write the state database ${stateDir}/state\\.db: ${stateDir}, .*Fix: sudo chown \\S+ ${stateDir} ${stateDir}/state\\.db\\* `));
  });
});

describe("a first start", () => {
  it("ends with exit 3 when the login is refused on an account never watched, as check does", async () => {
    const { file, yaml } = config();
    const started = Date.now();
    const r = await runCli(["run", "--config", file, "--log-level", "fatal"], { ALICE_PASS: "wrong" });
    assert.equal(r.code, 3, r.out + r.err);
    assert.ok(Date.now() - started < 8000, "at once, not after the 5 minute wait");
    // What it says (the CLI logs it): check's words, after the watcher's own line.
    const mailbell = startMailbell(file, yaml, { ALICE_PASS: "wrong" });
    await assert.rejects(mailbell.done, (err: unknown) => err instanceof ImapError && err.code === "IMAP_AUTH" && /^account "alice": the server refused the login .*Check user and pass/.test(err.message));
    assert.equal(mailbell.logger.find(/^giving up: the login was refused and this mailbox was never opened/, "error").length, 1);
  });

  it("does not apply a reload asked for once a watcher gave up: mailbell is stopping", async () => {
    const { file, yaml } = config();
    let reloaded: Promise<ReloadOutcome> | undefined;
    // The reload is asked for at the very moment the watcher gives up, before the run has wound down.
    const entries: LogEntry[] = [];
    entries.push = (...added: LogEntry[]): number => {
      if (added.some((e) => e.msg?.startsWith("giving up"))) reloaded = mailbell.reload();
      return Array.prototype.push.apply(entries, added);
    };
    const logger = new CaptureLogger(entries);
    const mailbell = startMailbell(file, yaml, { ALICE_PASS: "wrong" }, logger);
    await assert.rejects(mailbell.done, ImapError);
    assert.ok(reloaded, "the watcher gave up");
    assert.deepEqual(await reloaded, { applied: false, reason: "mailbell is stopping" });
    assert.equal(logger.find(/^config reloaded/).length, 0);
  });

  it("keeps retrying a refused login on an account watched before (its password changed under a running service)", async () => {
    const { file, yaml, dir } = config();
    const seeded = State.open(`${dir}/state/state.db`);
    seeded.checkpoints.save("alice", "INBOX", { uidValidity: 1, lastUid: 0 });
    seeded.close();
    const mailbell = startMailbell(file, yaml, { ALICE_PASS: "wrong" });
    let ended = false;
    void mailbell.done.then(() => (ended = true), () => (ended = true));
    try {
      await mailbell.logger.waitFor(/login refused; waiting before trying again/, 8000, "error");
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(ended, false, "still running");
    } finally {
      await mailbell.stop();
    }
  });

  it("retries a login the server turns away for now (NO [UNAVAILABLE]): not a wrong password, not the end of the run", async () => {
    const proxy = await startImapProxy({ port: dovecot.imapPort, rules: [refuseLogin("[UNAVAILABLE] Temporary authentication failure", { times: 1 })] });
    const { file, yaml } = config({ account: `port: ${proxy.port}, tls: none` });
    const mailbell = startMailbell(file, yaml, alice);
    try {
      const refused = await mailbell.logger.waitFor(/^cannot connect; never connected yet; retrying in /, 5000, "error");
      assert.equal(refused.fields.err, 'account "alice": the server turned the login away for now, not for the password ([UNAVAILABLE] Temporary authentication failure); try again later');
      await mailbell.logger.waitFor(/^watching$/, 8000);
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });

  it("retries, not gives up, a refused login of one mailbox when another mailbox of the account has logged in", async () => {
    await dovecot.createMailbox("alice", "Second");
    // The second session's login is refused, once the first has had time to open its mailbox.
    const proxy = await startImapProxy({ port: dovecot.imapPort, rules: [refuseLogin("[AUTHENTICATIONFAILED] Authentication failed.", { sessions: (n) => n === 2, delayMs: 800 })] });
    const { file, yaml } = config({ account: `port: ${proxy.port}, tls: none, readerConnections: false, mailboxes: [INBOX, Second]` });
    const mailbell = startMailbell(file, yaml, alice);
    let ended = false;
    void mailbell.done.then(() => (ended = true), () => (ended = true));
    try {
      await mailbell.logger.waitFor(/^login refused, though another mailbox of this account logged in/, 8000, "error");
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(ended, false, "still running");
      assert.equal(mailbell.logger.find(/^watching$/).length, 1, "the other mailbox watches");
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });

  it("says at each attempt, at error and in words, that it cannot connect and when it tries again; never 'disconnected'", async () => {
    const [closed] = await freePorts(1);
    const { file, yaml } = config({ account: `port: ${closed}, tls: none` });
    const mailbell = startMailbell(file, yaml, alice);
    try {
      await mailbell.logger.waitFor(/^cannot connect; never connected yet; retrying in /, 5000, "error");
      const deadline = Date.now() + 8000;
      while (mailbell.logger.find(/^cannot connect; never connected yet; retrying in [\d.]+ s$/, "error").length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const lines = mailbell.logger.find(/^cannot connect/, "error");
      assert.ok(lines.length >= 2, `each attempt is said: ${lines.length}`);
      for (const line of lines) assert.equal(line.fields.err, `account "alice": nothing listens on 127.0.0.1:${closed} (connection refused): check host and port`);
      assert.equal(mailbell.logger.find(/disconnected/).length, 0);
    } finally {
      await mailbell.stop();
    }
  });
});

describe("transport errors in words", () => {
  it("names the setting: implicit TLS on the plain port, a closed port", async () => {
    const [closed] = await freePorts(1);
    const check = (account: string) => runCli(["check", "--config", config({ account }).file], alice);
    // Plain text on the harness's TLS port is left to the unit tests (transport-errors.test.ts): it
    // is not 993, so mailbell waits imapflow's 16 s for the greeting there.
    const [implicitOnPlain, refused] = await Promise.all([check(`port: ${dovecot.imapPort}, tls: implicit`), check(`port: ${closed}, tls: starttls`)]);
    for (const r of [implicitOnPlain, refused]) assert.equal(r.code, 3, r.out);
    assert.match(implicitOnPlain.out, new RegExp(`✗ account alice: .*port ${dovecot.imapPort} does not speak TLS from the first byte \\(127\\.0\\.0\\.1:${dovecot.imapPort} answered in plain text\\): use tls: starttls, or port 993\\n`));
    assert.doesNotMatch(implicitOnPlain.out, /ERR_SSL|tlsany_meth/);
    assert.match(refused.out, new RegExp(`✗ account alice: .*nothing listens on 127\\.0\\.0\\.1:${closed} \\(connection refused\\): check host and port\\n`));
  });
});

describe("mailbell check --send", () => {
  it("posts one sample to each target and prints each service's answer, secrets masked", async () => {
    receiver.replyOn("/services/T0/B0/s3cret-hook", slackReplies.noService());
    const { file } = config({
      targets: `  - { name: hook, type: webhook, url: "${receiver.url("/send-ok")}" }\n  - { name: chat, type: slack, url: "${receiver.url("/services/T0/B0/s3cret-hook")}" }`,
      rules: "  - { name: all, notify: [hook, chat], template: '{{subject}}' }",
    });
    const before = receiver.requests.length;
    const r = await runCli(["check", "--send", "--config", file], alice);
    assert.equal(r.code, 3, r.out + r.err);
    assert.match(r.out, /✓ target hook: webhook http:\/\/127\.0\.0\.1:\d+\/\*\*\*\*: sent a sample; the service accepted it\n/);
    assert.match(r.out, /✗ target chat: slack http:\/\/127\.0\.0\.1:\d+\/\*\*\*\*: target "chat" \(http:\/\/127\.0\.0\.1:\d+\/\*\*\*\*\) answered 404: no_service\.\n/);
    assert.ok(!`${r.out}${r.err}`.includes("s3cret-hook"), "the webhook's secret path is never printed");
    assert.match(r.err, /1 check\(s\) failed\./);
    const sent = receiver.requests.slice(before);
    assert.deepEqual(sent.map((q) => q.path).sort(), ["/send-ok", "/services/T0/B0/s3cret-hook"]);
    assert.equal((sent.find((q) => q.path === "/send-ok")!.json as { subject: string }).subject, "mailbell test notification");
  });
});

/** The daemon's real JSON log (pino), kept as parsed lines. */
function jsonLog(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[]; waitFor(msg: RegExp, timeoutMs?: number): Promise<Record<string, unknown>> } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return {
    logger: createLogger({ level: "info", destination }),
    lines,
    async waitFor(msg, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = lines.find((l) => msg.test(String(l.msg)));
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`no log line matching ${msg}; last: ${JSON.stringify(lines.slice(-8))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/** pino's number (30) or, with levels as words, "info". */
const isInfo = (level: unknown): boolean => level === 30 || level === "info";

describe("logs", () => {
  it("say when a catch-up starts and how it went, and show mail no rule matched at info, its subject a field", async () => {
    await dovecot.createMailbox("alice", "Edges");
    const { file, yaml } = config({
      account: `port: ${dovecot.imapPort}, tls: none, mailboxes: [Edges]`,
      rules: "  - { name: receipts, match: { subject: /receipt/ }, notify: [hook], template: '{{subject}}' }",
    });
    const first = jsonLog();
    let mailbell = startMailbell(file, yaml, alice, first.logger as never);
    await first.waitFor(/^watching$/);
    await mailbell.stop();
    const hostile = 'lunch "today" \\ {"level":"fatal","msg":"forged"}';
    await dovecot.appendMany("alice", "Edges", [
      buildMail({ from: "shop@example.com", to: "alice@example.com", subject: "your receipt", text: "x" }),
      buildMail({ from: "friend@example.com", to: "alice@example.com", subject: hostile, text: "x" }),
      buildMail({ from: "news@example.com", to: "alice@example.com", subject: "weekly news", text: "x" }),
    ]);
    const log = jsonLog();
    mailbell = startMailbell(file, yaml, alice, log.logger as never);
    try {
      const starts = await log.waitFor(/^catching up/);
      assert.equal(starts.msg, "catching up 3 mails in Edges");
      assert.ok(isInfo(starts.level), String(starts.level));
      const ends = await log.waitFor(/^caught up/);
      assert.equal(ends.msg, "caught up in Edges: 3 mails read, 1 matched a rule, 1 notification queued");
      assert.deepEqual([ends.read, ends.matched, ends.queued], [3, 1, 1]);
      const unmatched = log.lines.filter((l) => l.msg === "no rule matched");
      assert.deepEqual(
        unmatched.map((l) => [isInfo(l.level), l.account, l.mailbox, typeof l.uid, l.from, l.subject]),
        [
          [true, "alice", "Edges", "number", "friend@example.com", hostile],
          [true, "alice", "Edges", "number", "news@example.com", "weekly news"],
        ],
      );
      assert.equal(log.lines.filter((l) => l.msg === "forged").length, 0, "a subject cannot forge a log line");
    } finally {
      await mailbell.stop();
    }
  });
});

/** LOGIN (or AUTHENTICATE) answered NO with `text` instead of the server's OK (optionally late), in the sessions `scope` picks. */
function refuseLogin(text: string, scope: RuleScope & { delayMs?: number }): ImapRule {
  return scoped(scope, {
    name: "refuseLogin",
    onReply: (reply) => ((reply.command?.name === "LOGIN" || reply.command?.name === "AUTHENTICATE") && reply.tag === reply.command.tag ? { replace: `${reply.tag} NO ${text}\r\n`, ...(scope.delayMs ? { delayMs: scope.delayMs } : {}) } : undefined),
  });
}
