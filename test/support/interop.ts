/**
 * One story told against every IMAP server we test with (test/interop-*.test.ts): mailbell as a
 * real process, a webhook receiver, and a server that is restarted, stopped, renumbered and
 * flooded under it. Every step counts posts at the receiver and asks /healthz.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { WebhookBody } from "../../src/targets/webhook.ts";
import { startCourier } from "./courier.ts";
import { accountYaml, PLAY_RECEIPT_FIELDS } from "./config-yaml.ts";
import { startCyrus } from "./cyrus.ts";
import { startMailbell, waitUntilWatching, writeConfig, type RunningMailbell } from "./daemon.ts";
import { startDovecot } from "./dovecot.ts";
import { dovecotServer, sleep, type ImapServer, type ServerKind } from "./imap-server.ts";
import { buildMail } from "./mail.ts";
import { spawnMailbell, type MailbellProcess } from "./process.ts";
import { startReceiver, type ReceivedRequest, type Receiver } from "./receiver.ts";

export interface ServerRow {
  name: string;
  start(): Promise<ImapServer>;
  /**
   * watch.keepaliveSeconds for this server. Courier stops pushing to an idle session once other
   * clients have come and gone; the keepalive NOOP is what finds the mail then.
   */
  keepaliveSeconds: number;
  /** Longest wait for one mail from APPEND to post: push delay, or the keepalive where pushes fail. */
  arrivalMs: number;
}

export const servers: Record<ServerKind, ServerRow> = {
  dovecot: { name: "Dovecot 2.3", start: async () => dovecotServer(await startDovecot()), keepaliveSeconds: 120, arrivalMs: 5000 },
  cyrus: { name: "Cyrus IMAP 3.6", start: () => startCyrus(), keepaliveSeconds: 120, arrivalMs: 5000 },
  courier: { name: "Courier IMAP 5.0", start: () => startCourier({ enhancedIdle: true }), keepaliveSeconds: 5, arrivalMs: 8000 },
};

const fixtures = path.resolve(import.meta.dirname, "../fixtures");
const RECONNECT_BUDGET_SECONDS = 1;
/** After the posts a step waits for, how long a late duplicate is given to show up. */
const SETTLE_MS = 300;

/** The ISO-2022-JP Google Play receipt under its own Message-ID. */
function japaneseReceipt(messageId: string): Buffer {
  const raw = readFileSync(path.join(fixtures, "google-play-ja-iso2022jp.eml"), "latin1");
  return Buffer.from(raw.replace(/^Message-ID:.*$/im, `Message-ID: <${messageId}>`), "latin1");
}

function plainMail(tag: string): { raw: string; id: string } {
  const id = `${tag}@interop.test`;
  return { id, raw: buildMail({ from: "shop@example.com", to: "alice@example.com", subject: tag, text: `mail ${tag}`, messageId: id }) };
}

function configYaml(dir: string, server: ImapServer, receiver: Receiver, row: ServerRow): string {
  return `state: ${dir}/state.db
watch: { reconnectMaxSeconds: 1, keepaliveSeconds: ${row.keepaliveSeconds}, keepaliveTimeoutSeconds: 3, backlogLimit: 1000 }
outbox: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2, drainSeconds: 5 }
status: { listen: 0, reconnectBudgetSeconds: ${RECONNECT_BUDGET_SECONDS} }
accounts:
${accountYaml({ name: "acct", host: server.host, port: server.port, caFile: server.caFile, user: server.user, pass: server.pass })}targets:
  - { name: hook, type: webhook, url: "${receiver.url("/hook")}", rateLimit: { perSecond: 1000, burst: 1000 } }
rules:
  - name: receipt
    match: { from: googleplay-noreply@google.com }
${PLAY_RECEIPT_FIELDS}    notify: [hook]
    template: "{{item}}: {{amount}}, {{total}} this month"
  - name: all
    notify: [hook]
    template: "{{subject}}"
`;
}

const body = (r: ReceivedRequest): WebhookBody => r.json as WebhookBody;
const key = (r: ReceivedRequest): string => String(r.headers["idempotency-key"]);

/** mailbell in this process (quick to start) or as a real process (so it can be killed with -9). */
type Running = { kind: "in-process"; daemon: RunningMailbell } | { kind: "process"; proc: MailbellProcess };

/** Everything the steps share: one server, one receiver, one state file, one mailbell at a time. */
class Story {
  server!: ImapServer;
  receiver!: Receiver;
  file = "";
  yaml = "";
  running: Running | undefined;
  statusUrl = "";
  readonly row: ServerRow;

  constructor(row: ServerRow) {
    this.row = row;
  }

  async setUp(): Promise<void> {
    [this.server, this.receiver] = await Promise.all([this.row.start(), startReceiver()]);
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-interop-"));
    this.yaml = configYaml(dir, this.server, this.receiver, this.row);
    this.file = writeConfig(this.yaml, dir);
  }

  async tearDown(): Promise<void> {
    const r = this.running;
    if (r?.kind === "in-process") await r.daemon.stop();
    if (r?.kind === "process" && r.proc.child.exitCode === null && r.proc.child.signalCode === null) {
      r.proc.child.kill("SIGKILL");
      await r.proc.exited;
    }
    await Promise.all([this.server?.dispose(), this.receiver?.close()]);
  }

  /** Starts mailbell in this process and waits until it watches; the status server's address is new each time. */
  async start(): Promise<void> {
    const daemon = startMailbell(this.file, this.yaml);
    this.running = { kind: "in-process", daemon };
    const listening = await daemon.logger.waitFor(/^status server listening$/, 10_000);
    this.statusUrl = String(listening.fields.address);
    await waitUntilWatching(daemon.logger, 1, 15_000);
  }

  /** `mailbell run` as its own process. */
  async startProcess(): Promise<MailbellProcess> {
    const proc = spawnMailbell(this.file);
    this.running = { kind: "process", proc };
    const listening = await proc.waitForLog(/"msg":"status server listening"/, 15_000);
    this.statusUrl = String((JSON.parse(listening) as { address: string }).address);
    await proc.waitForLog(/"msg":"watching"/, 15_000);
    return proc;
  }

  /** Stops mailbell the way SIGTERM does: what is queued is sent first. */
  async stop(): Promise<void> {
    const r = this.running;
    this.running = undefined;
    if (r?.kind === "in-process") await r.daemon.stop();
    if (r?.kind === "process") {
      r.proc.child.kill("SIGTERM");
      assert.equal(await r.proc.exited, 0, r.proc.log.slice(-2000));
    }
  }

  async health(): Promise<{ status: number; reason: string }> {
    const res = await fetch(`${this.statusUrl}/healthz`);
    const snapshot = (await res.json()) as { mailboxes: { reason?: string }[] };
    return { status: res.status, reason: snapshot.mailboxes.map((m) => m.reason ?? "").join("; ") };
  }

  /** Polls /healthz until it answers `status`; fails with the last answer after `withinMs`. */
  async expectHealth(status: 200 | 503, withinMs: number): Promise<string> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const h = await this.health();
      if (h.status === status) return h.reason;
      if (Date.now() > deadline) assert.fail(`/healthz answered ${h.status} (${h.reason}) for ${withinMs} ms, expected ${status}\n${this.tail()}`);
      await sleep(50);
    }
  }

  posts(rule = "all"): ReceivedRequest[] {
    return this.receiver.requests.filter((r) => r.reply.status < 300 && body(r).rule === rule);
  }

  /** Waits until every Message-ID in `ids` was posted under `rule`, then a moment more for late duplicates. */
  async waitForPosts(ids: readonly string[], timeoutMs: number, rule = "all"): Promise<void> {
    const want = new Set(ids);
    const missing = (): string[] => [...want].filter((id) => !this.posts(rule).some((r) => body(r).messageId === id));
    const deadline = Date.now() + timeoutMs;
    while (missing().length > 0) {
      if (Date.now() > deadline) assert.fail(`not posted within ${timeoutMs} ms: ${missing().join(", ")}\n${this.tail()}`);
      await sleep(20);
    }
    await sleep(SETTLE_MS);
  }

  /** Message-IDs posted under `rule`, in order, each as often as posted. */
  postedIds(rule = "all"): string[] {
    return this.posts(rule).map((r) => String(body(r).messageId));
  }

  tail(): string {
    const r = this.running;
    const lines =
      r?.kind === "in-process"
        ? r.daemon.logger.entries.slice(-15).map((e) => `[${e.level}] ${e.msg} ${JSON.stringify(e.fields)}`)
        : (r?.proc.log ?? "").split("\n").slice(-15);
    return `--- mailbell ---\n${lines.join("\n")}\n--- ${this.server.kind} ---\n${this.server.logTail(10)}`;
  }
}

/** The same steps for one server, in order; each step starts from where the last one left off. */
export function interopSuite(kind: ServerKind): void {
  const row = servers[kind];
  const story = new Story(row);

  describe(`mailbell against ${row.name}`, () => {
    before(() => story.setUp());
    after(() => story.tearDown());

    it("first start: watches from the mailbox's end, /healthz 200; a Japanese receipt is posted once, decoded and summed", async () => {
      const old = plainMail(`${kind}-before-first-start`);
      await story.server.append(old.raw);
      await story.start();
      await story.expectHealth(200, 3000);
      await story.server.append(japaneseReceipt(`${kind}-receipt-1@google.com`));
      await story.waitForPosts([`${kind}-receipt-1@google.com`], row.arrivalMs, "receipt");
      const [receipt] = story.posts("receipt").map(body);
      assert.equal(receipt!.subject, "Google Play のご注文明細（2026/11/23）", "ISO-2022-JP subject");
      assert.equal(receipt!.fields.item?.text, "マンスリーパス", "ISO-2022-JP body");
      assert.equal(receipt!.fields.amount?.amount, "480");
      assert.equal(receipt!.fields.amount?.currency, "JPY");
      assert.equal(receipt!.total?.amount, "480");
      assert.equal(receipt!.text, `マンスリーパス: ¥480, ¥480 this month`);
      assert.deepEqual(story.postedIds("receipt"), [`${kind}-receipt-1@google.com`]);
      assert.deepEqual(story.postedIds(), [`${kind}-receipt-1@google.com`], `mail from before the first start is not announced`);
      const r = story.running;
      // The first start opens only the lean IDLE connection (watch.quietConnection: lean); the receipt came while it waited.
      if (r?.kind === "in-process") assert.ok(r.daemon.logger.entries.some((e) => e.msg === "quiet: waiting on a lean connection"), `the mailbox waited on the lean connection\n${story.tail()}`);
    });

    it("catches up after a stop: mail that came meanwhile is posted once, in order", async () => {
      await story.stop();
      const away = [1, 2, 3].map((i) => plainMail(`${kind}-while-stopped-${i}`));
      await story.server.appendMany(away.map((m) => m.raw));
      await story.start();
      await story.waitForPosts(away.map((m) => m.id), 10_000);
      assert.deepEqual(story.postedIds().slice(1), away.map((m) => m.id));
      await story.expectHealth(200, 3000);
    });

    it("the server restarts (its own shutdown): mailbell reconnects and posts what comes next", async () => {
      await story.server.restart({ hard: false });
      const next = plainMail(`${kind}-after-restart`);
      await story.server.append(next.raw);
      await story.waitForPosts([next.id], 10_000);
      assert.equal(story.postedIds().filter((id) => id === next.id).length, 1);
      await story.expectHealth(200, RECONNECT_BUDGET_SECONDS * 1000 + 5000);
    });

    it("/healthz: 503 once the server has been gone longer than reconnectBudgetSeconds, 200 again once watching", async () => {
      await story.server.stop({ hard: true });
      const reason = await story.expectHealth(503, RECONNECT_BUDGET_SECONDS * 1000 + 3000);
      assert.ok(reason.length > 0, "and says why");
      await story.server.start();
      await story.expectHealth(200, RECONNECT_BUDGET_SECONDS * 1000 + 8000);
      const back = plainMail(`${kind}-back`);
      await story.server.append(back.raw);
      await story.waitForPosts([back.id], row.arrivalMs);
    });

    it("kill -9 in the middle of a burst of 60: after a restart every mail is posted, none twice once resends with the same Idempotency-Key are dropped", async () => {
      const burst = Array.from({ length: 60 }, (_, i) => plainMail(`${kind}-burst-${i}`));
      await story.stop();
      const first = await story.startProcess();
      const before = story.posts().length;
      const appended = story.server.appendMany(burst.map((m) => m.raw));
      appended.catch(() => {}); // awaited below
      await story.receiver.waitFor(() => story.posts().length >= before + 15, 20_000);
      first.child.kill("SIGKILL");
      assert.equal(await first.exited, null, "killed by the signal");
      await appended;
      const atKill = story.posts().length - before;
      assert.ok(atKill < burst.length, `the kill landed mid-burst (${atKill} posted)`);

      await story.start();
      await story.waitForPosts(burst.map((m) => m.id), 20_000);
      const posts = story.posts().slice(before);
      const kept = new Map(posts.map((r) => [key(r), String(body(r).messageId)]));
      assert.deepEqual([...kept.values()].sort(), burst.map((m) => m.id).sort(), "each mail exactly once after deduplication by key");
      // A webhook has up to 8 requests in flight (its default concurrency); those may be resent, no more.
      assert.ok(posts.length - burst.length <= 8, `at most the posts in flight at the kill were resent (${posts.length - burst.length} extra)`);
      await story.expectHealth(200, 3000);
    });

    it("UIDVALIDITY changes and the mail is numbered anew: nothing is posted again, new mail is posted, the total counts each receipt once", async () => {
      const postedBefore = story.posts().length;
      // one mail fewer, so a mail's new UID is one that a different mail had before the change
      await story.server.withClient(async (c) => {
        await c.mailboxOpen("INBOX");
        await c.messageDelete("1", { uid: false });
      });
      const oldValidity = await story.server.uidValidity();
      await story.server.changeUidValidity();
      assert.notEqual(await story.server.uidValidity(), oldValidity);
      const fresh = plainMail(`${kind}-after-uidvalidity`);
      await story.server.append(japaneseReceipt(`${kind}-receipt-2@google.com`));
      await story.server.append(fresh.raw);
      await story.waitForPosts([`${kind}-receipt-2@google.com`, fresh.id], 15_000);
      await story.waitForPosts([`${kind}-receipt-2@google.com`], 5000, "receipt");
      await sleep(500); // a repost of the renumbered mail would show up by now
      const since = story.posts().slice(postedBefore).map((r) => String(body(r).messageId));
      assert.deepEqual(since.sort(), [`${kind}-receipt-2@google.com`, fresh.id].sort(), "only the two new mails");
      const receipts = story.posts("receipt").map(body);
      assert.equal(receipts.at(-1)!.total?.amount, "960", "¥480 twice, not the first one again");
      await story.expectHealth(200, RECONNECT_BUDGET_SECONDS * 1000 + 5000);
    });

    it("mailbell check logs in and finds INBOX", async () => {
      const { main } = await import("../../src/cli/main.ts");
      let out = "";
      const io = { out: (t: string) => void (out += `${t}\n`), err: (t: string) => void (out += `${t}\n`), env: {} };
      assert.equal(await main(["check", "--config", story.file], io), 0, out);
      assert.match(out, /✓ account acct: logged in as alice/);
      assert.match(out, /✓ acct\/INBOX: \d+ message\(s\)/);
      await story.expectHealth(200, 1000);
      await story.stop();
    });
  });
}
