/**
 * The whole pipeline against a real Dovecot and a local Slack/webhook receiver: watch → read →
 * rules → totals → post, across restarts, bad accounts and refusing targets.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { State } from "../src/store/sqlite/state.ts";
import { startMailbell, waitUntilWatching, writeConfig, type RunningMailbell } from "./support/daemon.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { buildMail } from "./support/mail.ts";
import { slackReplies, startReceiver, type ReceivedRequest, type Receiver } from "./support/receiver.ts";

const fixtures = path.resolve(import.meta.dirname, "fixtures");

/** A fixture with its Message-ID replaced, so the same receipt can arrive as a new mail. */
function receipt(file: string, messageId: string): Buffer {
  const raw = readFileSync(path.join(fixtures, file), "latin1");
  return Buffer.from(raw.replace(/^Message-ID:.*$/im, `Message-ID: <${messageId}>`), "latin1");
}

// 2026-11-20 10:00 in Tokyo; the total's period follows the server's arrival time.
const novemberInTokyo = new Date("2026-11-20T01:00:00Z");
// 2025-11-30T16:00Z is already December 1st in Tokyo. (Dovecot ignores an INTERNALDATE in the
// future and records the time of arrival instead, so test dates lie in the past.)
const decemberInTokyo = new Date("2025-11-30T16:00:00Z");

let dovecot: Dovecot;
let receiver: Receiver;
let dir: string;
let yaml: string;
let configFile: string;
const env = { ALICE_PASS: "alicepw" };

before(async () => {
  [dovecot, receiver] = await Promise.all([startDovecot(), startReceiver()]);
  await dovecot.createMailbox("alice", "Shop");
  dir = mkdtempSync(path.join(tmpdir(), "mailbell-daemon-"));
  yaml = `
state: ${dir}/state.db
accounts:
  - name: alice
    host: 127.0.0.1
    port: ${dovecot.imapsPort}
    tls: implicit
    ca: ${dovecot.caFile}
    user: alice
    pass: \${ALICE_PASS}
    mailboxes: [INBOX, Shop]
  - name: broken
    host: 127.0.0.1
    port: ${dovecot.imapsPort}
    ca: ${dovecot.caFile}
    user: bob
    pass: not-bobs-password
targets:
  - { name: team, type: slack, url: "${receiver.url("/slack")}", username: mailbell, icon_emoji: ":bell:" }
  - { name: hook, type: webhook, url: "${receiver.url("/hook")}" }
rules:
  - name: google-play
    match: { from: googleplay-noreply@google.com, subject: "/Google Play/i" }
    extract:
      amount: { regex: "^(?:合計|Total):?\\\\s*(?<value>[^\\\\r\\\\n]+)", flags: m, as: money }
      item: { regex: "^(?:商品名|Item):\\\\s*(?<value>[^\\\\r\\\\n(]+?)\\\\s*(?:\\\\(|$)", flags: m }
    total: { sum: amount, per: month, timezone: Asia/Tokyo }
    notify: [team, hook]
    template: "Google Play: {{amount}} ({{item}}) — {{total}} so far in {{period}}"
  - name: shop
    match: { mailbox: Shop }
    extract:
      amount: { regex: "Amount: (?<value>.+)", as: money }
    notify: [team]
    template: "*{{subject}}* from {{from}}: {{amount}}"
`;
  configFile = writeConfig(yaml, dir);
  // The broken account was watched before (its password changed since): a refused login is
  // retried, not the end of the run as on an account's first start (test/edges.test.ts).
  const seeded = State.open(`${dir}/state.db`);
  seeded.checkpoints.save("broken", "INBOX", { uidValidity: 1, lastUid: 0 });
  seeded.close();
});

after(async () => {
  await Promise.all([dovecot?.dispose(), receiver?.close()]);
});

const slackPosts = (): ReceivedRequest[] => receiver.requests.filter((r) => r.path === "/slack");
const hookPosts = (): ReceivedRequest[] => receiver.requests.filter((r) => r.path === "/hook");
const slackText = (r: ReceivedRequest): string => (r.json as { text: string }).text;

async function waitForSlack(count: number, timeoutMs = 8000): Promise<ReceivedRequest[]> {
  await receiver.waitFor(() => slackPosts().length >= count, timeoutMs);
  return slackPosts();
}

describe("mailbell run, end to end", () => {
  let mailbell: RunningMailbell;

  it("posts a Japanese Google Play receipt to Slack with its amount and running total, and the webhook gets the JSON", async () => {
    mailbell = startMailbell(configFile, yaml, env);
    await waitUntilWatching(mailbell.logger, 2);
    await dovecot.append("alice", "INBOX", receipt("google-play-ja-iso2022jp.eml", "play-1@google.com"), { internalDate: novemberInTokyo });
    const [slack] = await waitForSlack(1);
    assert.equal(slackText(slack!), "Google Play: ¥480 (マンスリーパス) — ¥480 so far in November");
    const payload = slack!.json as { username: string; icon_emoji: string; blocks: { type: string; text?: { text: string }; elements?: { text: string }[] }[] };
    assert.equal(payload.username, "mailbell");
    assert.equal(payload.icon_emoji, ":bell:");
    assert.equal(payload.blocks[0]!.text!.text, "Google Play: ¥480 (マンスリーパス) — ¥480 so far in November");
    assert.match(payload.blocks[1]!.elements![0]!.text, /Google Play のご注文明細/);

    await receiver.waitFor(() => hookPosts().length >= 1);
    const hook = hookPosts()[0]!.json as WebhookBody;
    assert.equal(hook.rule, "google-play");
    assert.equal(hook.account, "alice");
    assert.equal(hook.mailbox, "INBOX");
    assert.equal(hook.messageId, "play-1@google.com");
    assert.equal(hook.from, "Google Play <googleplay-noreply@google.com>");
    assert.equal(hook.subject, "Google Play のご注文明細（2026/11/23）");
    assert.deepEqual(hook.fields.amount, { text: "¥480", raw: "￥480（税込）", amount: "480", currency: "JPY" });
    assert.equal(hook.fields.item?.text, "マンスリーパス");
    assert.deepEqual(hook.total, { amount: "480", currency: "JPY", text: "¥480", period: "2026-11", periodLabel: "November" });
    assert.equal(hook.text, "Google Play: ¥480 (マンスリーパス) — ¥480 so far in November");
    assert.ok(typeof hook.uid === "number" && hook.uid > 0);
  });

  it("adds the next receipt to the month's total, keeps currencies apart, and starts a new period in the rule's time zone", async () => {
    await dovecot.append("alice", "INBOX", receipt("google-play-ja-iso2022jp.eml", "play-2@google.com"), { internalDate: novemberInTokyo });
    await waitForSlack(2);
    assert.equal(slackText(slackPosts()[1]!), "Google Play: ¥480 (マンスリーパス) — ¥960 so far in November");
    await dovecot.append("alice", "INBOX", receipt("google-play-en-utf8.eml", "play-usd@google.com"), { internalDate: novemberInTokyo });
    await waitForSlack(3);
    assert.equal(slackText(slackPosts()[2]!), "Google Play: $4.99 (Monthly pass – Dragon Tactics) — $4.99 so far in November");
    await dovecot.append("alice", "INBOX", receipt("google-play-ja-iso2022jp.eml", "play-dec@google.com"), { internalDate: decemberInTokyo });
    await waitForSlack(4);
    assert.equal(slackText(slackPosts()[3]!), "Google Play: ¥480 (マンスリーパス) — ¥480 so far in December");
  });

  it("escapes mail content for Slack so it cannot ping, mention or forge links, while the template's own markup stays", async () => {
    const raw = readFileSync(path.join(fixtures, "hostile-slack.eml"), "latin1").replace(/^(Subject:.*)$/im, "$1").replace("Amount due:", "Amount:");
    await dovecot.append("alice", "Shop", Buffer.from(raw, "latin1"));
    const posts = await waitForSlack(5);
    const text = slackText(posts[4]!);
    assert.ok(text.startsWith("*&lt;!channel&gt; @here Invoice &amp;amp; refund ✓ &lt;@U012ABCDEF&gt; &lt;https://evil.example|click me&gt;* from "), text);
    assert.match(text, /: \$9\.99$/);
    for (const live of ["<!channel>", "<!here>", "<@U012ABCDEF>", "<https://evil.example|click me>", "<mailto:"]) {
      assert.ok(!posts[4]!.text.includes(live.replace(/"/g, '\\"')), `${live} reached Slack unescaped`);
    }
    assert.equal(hookPosts().length, 4, "the shop rule notifies Slack only");
  });

  it("logs a refusing target's status and error text, and goes on with the next mail", async () => {
    receiver.replyOn("/slack", slackReplies.noService());
    await dovecot.append("alice", "Shop", buildMail({ from: "shop@example.com", to: "alice@example.com", subject: "refused", text: "Amount: $1.00" }));
    const failure = await mailbell.logger.waitFor(/^delivery failed for good/, 8000, "error");
    assert.equal(failure.fields.status, 404);
    assert.match(failure.fields.err as string, /answered 404: no_service/);
    assert.ok(!JSON.stringify(failure.fields).includes(receiver.url("/slack")), "the webhook URL is not logged");
    await dovecot.append("alice", "Shop", buildMail({ from: "shop@example.com", to: "alice@example.com", subject: "accepted", text: "Amount: $2.00" }));
    await receiver.waitFor((r) => r.path === "/slack" && slackText(r).includes("accepted"));
  });

  it("still notifies when a field cannot be extracted, marks it missing, and logs why", async () => {
    await dovecot.append("alice", "Shop", buildMail({ from: "shop@example.com", to: "alice@example.com", subject: "no amount here", text: "Thanks for shopping" }));
    const [post] = await receiver.waitFor((r) => r.path === "/slack" && slackText(r).startsWith("*no amount here*"));
    assert.equal(slackText(post!), "*no amount here* from shop@example.com: [amount missing]");
    const why = await mailbell.logger.waitFor(/field not found/, 2000, "warn");
    assert.equal(why.fields.rule, "shop");
    assert.equal(why.fields.field, "amount");
    assert.match(why.fields.reason as string, /found nothing in the body/);
  });

  it("reads a mail's body only when a rule whose header conditions hold reads it", async () => {
    // INBOX: only google-play reads bodies, and only of mail from Google Play; Shop: every mail's.
    await dovecot.append("alice", "INBOX", buildMail({ from: "friend@example.com", to: "alice@example.com", subject: "lunch?", text: "合計: ￥480" }));
    await dovecot.append("alice", "INBOX", receipt("google-play-en-utf8.eml", "play-lazy@google.com"), { internalDate: novemberInTokyo });
    await receiver.waitFor((r) => r.path === "/hook" && (r.json as WebhookBody).messageId === "play-lazy@google.com");
    const read = (subject: RegExp) => mailbell.logger.find(/^mail read$/, "debug").filter((e) => subject.test(String(e.fields.subject)));
    assert.deepEqual(read(/^lunch\?$/).map((e) => [e.fields.bodyRead, e.fields.matched]), [[false, []]]);
    assert.deepEqual(read(/^Google Play/).map((e) => e.fields.bodyRead).slice(-1), [true]);
    const shop = read(/^(no amount here|accepted)$/);
    assert.ok(shop.length >= 2 && shop.every((e) => e.fields.bodyRead === true), `the shop rule reads every Shop mail's body: ${JSON.stringify(shop.map((e) => e.fields))}`);
  });

  it("keeps watching the good account while the other one's login is refused", async () => {
    const refused = mailbell.logger.find(/login refused/, "error");
    assert.equal(refused.length, 1, "one refusal, then a long wait rather than a tight retry loop");
    assert.equal(refused[0]!.fields.account, "broken");
    assert.match(refused[0]!.fields.err as string, /refused the login/);
  });

  it("after a restart, notifies the mail that arrived while it was down exactly once, and counts it once", async () => {
    await mailbell.stop();
    const before = slackPosts().length;
    const ids = [1, 2, 3].map((i) => `while-down-${i}@google.com`);
    for (const id of ids) await dovecot.append("alice", "INBOX", receipt("google-play-ja-iso2022jp.eml", id), { internalDate: novemberInTokyo });
    mailbell = startMailbell(configFile, yaml, env);
    await waitForSlack(before + 3);
    await new Promise((r) => setTimeout(r, 700)); // anything doubled would show up by now
    const after = slackPosts().slice(before);
    assert.deepEqual(
      after.map((p) => slackText(p)),
      ["¥1,440", "¥1,920", "¥2,400"].map((t) => `Google Play: ¥480 (マンスリーパス) — ${t} so far in November`),
    );
    const hookIds = hookPosts().map((h) => (h.json as WebhookBody).messageId);
    // The webhook has several posts in flight (concurrency 8): each once, in any order.
    assert.deepEqual(hookIds.slice(-3).toSorted(), ids.toSorted());
    assert.equal(new Set(hookIds).size, hookIds.length, "no Message-ID was posted twice");
  });

  it("stops cleanly", async () => {
    await mailbell.stop();
    assert.ok(mailbell.logger.find(/^mailbell stopped$/).length === 1);
    const logged = JSON.stringify(mailbell.logger.entries);
    assert.ok(!logged.includes("alicepw") && !logged.includes("not-bobs-password"), "no password in the log");
  });
});
