/**
 * Chaos: mail keeps arriving over LMTP while mailbell is killed with SIGKILL and started again,
 * Dovecot is restarted (hard, then gracefully), and the target answers 500s and then a 429 for a
 * while. When the mail stops, every mail in the mailbox must have been posted exactly once, after
 * deduplication by the Idempotency-Key mailbell sends with each post (what a receiving service that
 * honours the key keeps). The brief's "zero lost, zero duplicated across SIGKILL, server restarts
 * and target outages", measured rather than asserted.
 *
 * The sender retries a delivery until it gets Dovecot's answer, as an MTA does; when a restart cuts
 * the connection after the mail was stored, the mailbox then holds two copies with one Message-ID.
 * mailbell posts a mail once per identity (src/mail/identity.ts: the Message-ID with its Date,
 * From, Subject and size), so two copies that only a cut delivery made (same bytes, or a Received
 * line of the same length) need one post, and copies that differ in size one each.
 *
 *   node bench/chaos.ts [--mails 600] [--rate 20] [--json]
 *
 * A post that was accepted but not yet marked done when SIGKILL came is sent again after the
 * restart (with the same key); that is the "resent" column, at most one per kill.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { mailIdentity } from "../src/mail/identity.ts";
import { normalizeMail } from "../src/mail/normalize.ts";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { startDovecot, type Dovecot } from "../test/support/dovecot.ts";
import { buildMail } from "../test/support/mail.ts";
import { accountYaml } from "../test/support/config-yaml.ts";
import { slackReplies, startReceiver, type ReceivedRequest, type Receiver } from "../test/support/receiver.ts";
import { fmtMs, machineInfo, sleep, startMailbellProcess, Table, type MailbellProcess } from "./lib.ts";

export interface ChaosOptions {
  mails: number;
  perSecond: number;
  verbose?: boolean;
}

export interface ChaosResult {
  mails: number;
  perSecond: number;
  /** What was done while the mail arrived, with its time from the first mail. */
  events: { atMs: number; what: string }[];
  /** Requests the target received, failed ones included. */
  requests: number;
  /** Accepted (2xx) posts. */
  accepted: number;
  /** Mails in the mailbox at the end: `mails` plus the copies a cut delivery left. */
  inMailbox: number;
  /** Identities in the mailbox never posted. */
  lost: number;
  /** Posts beyond the identities of their Message-ID in the mailbox, counted by Idempotency-Key: duplicates no receiver could catch. */
  duplicated: number;
  /** Accepted posts that repeat an earlier one's Idempotency-Key. */
  resent: number;
  /** Message-IDs with more distinct keys than copies, and those keys (account/mailbox/UIDVALIDITY/UID/rule/target). */
  duplicates: { messageId: string; keys: string[] }[];
  /** From the last mail's delivery over LMTP to the last Message-ID accepted. */
  drainMs: number;
  /** mailbell processes started (1 + restarts after SIGKILL). */
  starts: number;
}

const USER = "alice";
const PATH = "/chaos";

function configYaml(dc: Dovecot, statePath: string, url: string): string {
  return `state: ${JSON.stringify(statePath)}
log: { level: info }
watch: { reconnectMaxSeconds: 1, backlogLimit: 100000 }
outbox: { retryBaseSeconds: 0.25, retryMaxSeconds: 2, maxAttempts: 100 }
accounts:
${accountYaml({ name: "chaos", host: dc.host, port: dc.imapsPort, caFile: dc.caFile, user: USER, pass: "${BENCH_IMAP_PASS}" })}targets:
  - { name: hook, type: webhook, url: ${JSON.stringify(url)}, rateLimit: { perSecond: 1000, burst: 1000 } }
rules:
  - { name: all, notify: [hook], template: "{{subject}}" }
`;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const say = (line: string): void => void (options.verbose && process.stderr.write(`[chaos] ${line}\n`));
  const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-chaos-"));
  let dovecot: Dovecot | undefined;
  let receiver: Receiver | undefined;
  let mailbell: MailbellProcess | undefined;
  try {
    [dovecot, receiver] = await Promise.all([startDovecot(), startReceiver()]);
    const dc = dovecot;
    const rcv = receiver;
    const yaml = configYaml(dc, path.join(dir, "state.db"), rcv.url(PATH));
    const env = { BENCH_IMAP_PASS: dc.users[USER]! };
    let starts = 0;
    const start = async (): Promise<void> => {
      mailbell = await startMailbellProcess(yaml, env, { timeoutMs: 30_000 });
      starts++;
    };
    await start();

    const ids = Array.from({ length: options.mails }, (_, i) => `chaos-${i}@bench.mailbell`);
    const t0 = performance.now();
    const events: ChaosResult["events"] = [];
    const note = (what: string): void => {
      events.push({ atMs: performance.now() - t0, what });
      say(what);
    };
    const periodMs = 1000 / options.perSecond;
    const totalMs = options.mails * periodMs;
    // What happens when, as fractions of the time the mail takes to arrive; they never overlap.
    const plan: { at: number; run: () => Promise<void> }[] = [
      { at: 0.15, run: () => killAndRestart("SIGKILL mailbell, start it again 1 s later") },
      { at: 0.35, run: async () => (note("Dovecot restarted hard (every session cut)"), await dc.restart({ hard: true })) },
      { at: 0.55, run: () => outage() },
      { at: 0.75, run: () => killAndRestart("SIGKILL mailbell again, start it again 1 s later") },
      { at: 0.9, run: async () => (note("Dovecot restarted gracefully"), await dc.restart({ hard: false })) },
    ];
    async function killAndRestart(what: string): Promise<void> {
      note(what);
      mailbell!.child.kill("SIGKILL");
      await mailbell!.exited;
      await sleep(1000);
      await start();
      note(`mailbell watching again (start ${starts})`);
    }
    async function outage(): Promise<void> {
      note("target answers 500 for 3 s, then one 429 with Retry-After: 2");
      rcv.setDefault(slackReplies.rollupError());
      await sleep(3000);
      rcv.replyOn(PATH, slackReplies.rateLimited(2));
      rcv.setDefault(slackReplies.ok());
    }

    // Mail arrives on schedule whatever the chaos does; while Dovecot is down the sender retries, as an MTA would.
    const chaos = (async () => {
      for (const step of plan) {
        const wait = t0 + step.at * totalMs - performance.now();
        if (wait > 0) await sleep(wait);
        await step.run();
      }
    })();
    let lastSent = 0;
    for (const [i, id] of ids.entries()) {
      const due = t0 + i * periodMs - performance.now();
      if (due > 0) await sleep(due);
      const raw = buildMail({ from: "shop@example.com", to: `${USER}@example.com`, subject: `chaos ${i}`, text: `mail ${i}`, messageId: id });
      for (;;) {
        try {
          await dc.deliverLmtp(USER, raw);
          break;
        } catch {
          await sleep(100);
        }
      }
      lastSent = performance.now();
    }
    await chaos;
    say(`all ${options.mails} mails delivered over LMTP in ${((lastSent - t0) / 1000).toFixed(1)} s; waiting for the posts`);

    const acceptedPosts = (): ReceivedRequest[] => rcv.requests.filter((r) => r.path === PATH && r.reply.status >= 200 && r.reply.status < 300);
    const deadline = performance.now() + 120_000;
    let lastAccepted = lastSent;
    for (;;) {
      const posts = acceptedPosts();
      const seen = new Set(posts.map((r) => (r.json as WebhookBody).messageId));
      if (seen.size >= ids.length) {
        lastAccepted = Math.max(lastSent, ...posts.map((r) => r.at));
        break;
      }
      if (performance.now() > deadline) break;
      await sleep(100);
    }
    await sleep(1000); // a late repeat would show up by now
    const code = await mailbell!.stop(15_000);
    if (code !== 0) note(`mailbell exited with ${code} on SIGTERM, not 0`);

    // Posts each Message-ID needs: one per distinct identity among its copies in the mailbox.
    const identities = new Map<string, Set<string>>();
    const inMailbox = await dc.withClient(USER, async (c) => {
      await c.mailboxOpen("INBOX", { readOnly: true });
      const all = await c.fetchAll("1:*", { uid: true, size: true, internalDate: true, headers: true });
      for (const m of all) {
        const mail = await normalizeMail(m.headers ?? Buffer.alloc(0));
        const id = mail.messageId ?? "";
        const identity = mailIdentity({ mail, size: m.size ?? 0, receivedAt: new Date(m.internalDate ?? 0) });
        identities.set(id, (identities.get(id) ?? new Set()).add(identity));
      }
      return all.length;
    });
    const copies = new Map([...identities].map(([id, set]) => [id, set.size]));
    const posts = acceptedPosts();
    const byId = new Map<string, Set<string>>();
    for (const post of posts) {
      const id = String((post.json as WebhookBody).messageId);
      const keys = byId.get(id) ?? new Set<string>();
      keys.add(String(post.headers["idempotency-key"]));
      byId.set(id, keys);
    }
    const keysOf = (id: string): number => byId.get(id)?.size ?? 0;
    const seenIds = [...new Set([...copies.keys(), ...byId.keys()])];
    return {
      mails: options.mails,
      perSecond: options.perSecond,
      events,
      requests: rcv.requests.filter((r) => r.path === PATH).length,
      accepted: posts.length,
      inMailbox,
      lost: seenIds.reduce((n, id) => n + Math.max(0, (copies.get(id) ?? 0) - keysOf(id)), 0),
      duplicated: seenIds.reduce((n, id) => n + Math.max(0, keysOf(id) - (copies.get(id) ?? 0)), 0),
      resent: posts.length - [...byId.values()].reduce((n, keys) => n + keys.size, 0),
      duplicates: seenIds.filter((id) => keysOf(id) > (copies.get(id) ?? 0)).map((messageId) => ({ messageId, keys: [...byId.get(messageId)!] })),
      drainMs: lastAccepted - lastSent,
      starts,
    };
  } finally {
    await mailbell?.stop(2000).catch(() => undefined);
    await Promise.all([dovecot?.dispose(), receiver?.close()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

export const CHAOS_COLUMNS = ["benchmark", "measure", "value", "bar", "notes"];

export function formatChaos(r: ChaosResult): string[][] {
  const name = `chaos: ${r.mails} mails @ ${r.perSecond}/s`;
  const timeline = r.events.map((e) => `${(e.atMs / 1000).toFixed(1)} s ${e.what}`).join("; ");
  return [
    [name, "lost", String(r.lost), "0", `${r.inMailbox} mails in the mailbox (${r.inMailbox - r.mails} stored twice by a delivery a restart cut), each identity needs a post; ${timeline}`],
    [name, "duplicated (after Idempotency-Key)", String(r.duplicated), "0", "posts beyond the identities of their Message-ID, under different keys: no receiver could tell"],
    [name, "resent with the same key", String(r.resent), "≤ 1 per SIGKILL", `a post accepted but not yet marked done when the process died; ${r.starts - 1} SIGKILLs`],
    [name, "last mail in → last post accepted", fmtMs(r.drainMs), "", `${r.requests} requests for ${r.accepted} accepted posts (500s, the 429 and posts cut by the kills included)`],
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      mails: { type: "string", default: "600" },
      rate: { type: "string", default: "20" },
      json: { type: "boolean", default: false },
    },
  });
  const result = await runChaos({ mails: Number(values.mails), perSecond: Number(values.rate), verbose: true });
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`\n${machineInfo().summary}\nnode bench/chaos.ts --mails ${values.mails} --rate ${values.rate}\n`);
    console.log(new Table(CHAOS_COLUMNS).addRows(formatChaos(result)).toString());
  }
}
