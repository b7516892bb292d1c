/**
 * The same mail counts once, however it comes back: moved out and back (IMAP MOVE), appended
 * again, or renumbered by the server, against a real Dovecot; while two different mails that share
 * a Message-ID are both posted. Each test ends with a mail appended after the one in question, so
 * a post that should not happen would have arrived before its own.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { startMailbell, waitUntilWatching, writeConfig, type RunningMailbell } from "./support/daemon.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { buildMail } from "./support/mail.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";

let dovecot: Dovecot;
let receiver: Receiver;

before(async () => {
  [dovecot, receiver] = await Promise.all([startDovecot(), startReceiver()]);
});
after(async () => {
  await Promise.all([dovecot?.dispose(), receiver?.close()]);
});

/** mailbell watching `mailboxes` of `user`, posting every mail with its running total to the receiver under `hookPath`. */
async function watch(user: string, mailboxes: string[], hookPath: string): Promise<RunningMailbell & { configFile: string; yaml: string }> {
  for (const mailbox of mailboxes) if (mailbox !== "INBOX") await dovecot.createMailbox(user, mailbox);
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-identity-"));
  const yaml = `state: ${dir}/state.db
watch: { reconnectMaxSeconds: 1 }
outbox: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2 }
accounts:
  - name: ${user}
    host: 127.0.0.1
    port: ${dovecot.imapsPort}
    ca: ${dovecot.caFile}
    user: ${user}
    pass: ${dovecot.users[user]}
    mailboxes: [${mailboxes.map((m) => JSON.stringify(m)).join(", ")}]
targets:
  - { name: hook, type: webhook, url: "${receiver.url(hookPath)}", rateLimit: { perSecond: 1000, burst: 1000 } }
rules:
  - name: receipts
    match: { from: shop@example.com }
    extract:
      amount: { regex: "Total: (?<value>.+)", as: money }
    total: { sum: amount, per: month, timezone: UTC }
    notify: [hook]
    template: "{{subject}}: {{amount}}, {{total}} so far"
`;
  const configFile = writeConfig(yaml, dir);
  const mailbell = startMailbell(configFile, yaml);
  await waitUntilWatching(mailbell.logger, mailboxes.length);
  return { ...mailbell, configFile, yaml };
}

const posts = (hookPath: string): WebhookBody[] => receiver.requests.filter((r) => r.path === hookPath).map((r) => r.json as WebhookBody);

/** Waits for the post of the mail with this subject, then a moment for anything out of order. */
async function postOf(hookPath: string, subject: string): Promise<WebhookBody> {
  await receiver.waitFor((r) => r.path === hookPath && (r.json as WebhookBody).subject === subject, 10_000);
  return posts(hookPath).find((p) => p.subject === subject)!;
}

/** What the receiver got, as "subject total". */
const seen = (hookPath: string): string[] => posts(hookPath).map((p) => `${p.subject} ${p.total?.text ?? "-"}`);

const receiptDate = new Date("2026-11-20T01:00:00Z");
function receipt(subject: string, total: string, extra: { messageId?: string; noMessageId?: boolean; date?: Date } = {}): string {
  const raw = buildMail({ from: "shop@example.com", to: "x@example.com", subject, text: `Thank you.\r\nTotal: ${total}\r\n`, date: extra.date ?? receiptDate, ...(extra.messageId ? { messageId: extra.messageId } : {}) });
  return extra.noMessageId ? raw.replace(/^Message-ID: .*\r\n/m, "") : raw;
}

async function move(user: string, from: string, uid: number, to: string): Promise<number> {
  return dovecot.withClient(user, async (c) => {
    await c.mailboxOpen(from);
    const moved = await c.messageMove(String(uid), to, { uid: true });
    const newUid = moved && moved.uidMap ? moved.uidMap.get(uid) : undefined;
    assert.ok(newUid, `MOVE of ${from} UID ${uid} to ${to} gave no new UID`);
    return newUid;
  });
}

describe("a mail that comes back counts once", () => {
  it("a receipt moved to a watched Archive and back to INBOX: one post, counted once", async () => {
    await dovecot.addUser("moveboth", "moveboth-pw");
    const mailbell = await watch("moveboth", ["INBOX", "Archive"], "/move-both");
    try {
      const uid = await dovecot.append("moveboth", "INBOX", receipt("play receipt", "¥480"));
      assert.equal((await postOf("/move-both", "play receipt")).total?.text, "¥480");
      const archived = await move("moveboth", "INBOX", uid, "Archive");
      await dovecot.append("moveboth", "Archive", receipt("archive sentinel", "¥1"));
      await postOf("/move-both", "archive sentinel");
      await move("moveboth", "Archive", archived, "INBOX");
      await dovecot.append("moveboth", "INBOX", receipt("next receipt", "¥100"));
      await postOf("/move-both", "next receipt");
      assert.deepEqual(seen("/move-both"), ["play receipt ¥480", "archive sentinel ¥481", "next receipt ¥581"]);
      const logged = mailbell.logger.find(/^already notified; not again$/, "info");
      assert.equal(logged.length, 2, "once in Archive, once back in INBOX");
      assert.match(String(logged[0]!.fields.identity), /^<[^>]+> [0-9a-f]{32}$/);
      assert.equal(mailbell.logger.find(/^already counted; not again$/, "info").length, 2);
    } finally {
      await mailbell.stop();
    }
  });

  it("a receipt moved to an Archive nobody watches and back to INBOX: one post, counted once", async () => {
    await dovecot.addUser("moveone", "moveone-pw");
    await dovecot.createMailbox("moveone", "Archive");
    const mailbell = await watch("moveone", ["INBOX"], "/move-one");
    try {
      const uid = await dovecot.append("moveone", "INBOX", receipt("play receipt", "¥480"));
      await postOf("/move-one", "play receipt");
      await move("moveone", "Archive", await move("moveone", "INBOX", uid, "Archive"), "INBOX");
      await dovecot.append("moveone", "INBOX", receipt("next receipt", "¥100"));
      await postOf("/move-one", "next receipt");
      assert.deepEqual(seen("/move-one"), ["play receipt ¥480", "next receipt ¥580"]);
    } finally {
      await mailbell.stop();
    }
  });

  it("the same receipt appended again (same Message-ID, same bytes): once", async () => {
    await dovecot.addUser("again", "again-pw");
    const mailbell = await watch("again", ["INBOX"], "/again");
    try {
      const raw = receipt("play receipt", "¥480", { messageId: "play-again@google.com" });
      await dovecot.append("again", "INBOX", raw);
      await postOf("/again", "play receipt");
      await dovecot.append("again", "INBOX", raw);
      await dovecot.append("again", "INBOX", receipt("next receipt", "¥100"));
      await postOf("/again", "next receipt");
      assert.deepEqual(seen("/again"), ["play receipt ¥480", "next receipt ¥580"]);
    } finally {
      await mailbell.stop();
    }
  });

  it("two different mails sharing one Message-ID, in one mailbox and in two: all posted and counted", async () => {
    await dovecot.addUser("reuser", "reuser-pw");
    const mailbell = await watch("reuser", ["INBOX", "Orders"], "/reuse");
    try {
      const messageId = "same-for-every-mail@shop.example";
      await dovecot.append("reuser", "INBOX", receipt("order 1", "¥300", { messageId, date: new Date("2026-11-20T01:00:00Z") }));
      await postOf("/reuse", "order 1");
      await dovecot.append("reuser", "INBOX", receipt("order 2", "¥500", { messageId, date: new Date("2026-11-21T01:00:00Z") }));
      await postOf("/reuse", "order 2");
      await dovecot.append("reuser", "Orders", receipt("order 3", "¥700", { messageId, date: new Date("2026-11-22T01:00:00Z") }));
      await postOf("/reuse", "order 3");
      assert.deepEqual(seen("/reuse"), ["order 1 ¥300", "order 2 ¥800", "order 3 ¥1,500"]);
    } finally {
      await mailbell.stop();
    }
  });

  it("mail without a Message-ID, read again after a UIDVALIDITY change: not posted again", async () => {
    await dovecot.addUser("renumber", "renumber-pw");
    const first = await watch("renumber", ["Receipts"], "/renumber");
    const seenBefore = receipt("no id, seen", "¥480", { noMessageId: true });
    try {
      await dovecot.append("renumber", "Receipts", seenBefore);
      await postOf("/renumber", "no id, seen");
    } finally {
      await first.stop();
    }
    // Deleted and made again: a new UIDVALIDITY, the mail seen before, and one that came meanwhile.
    await dovecot.deleteMailbox("renumber", "Receipts");
    await dovecot.appendMany("renumber", "Receipts", [seenBefore, receipt("no id, new", "¥100", { noMessageId: true })]);
    const second = startMailbell(first.configFile, first.yaml);
    try {
      await second.logger.waitFor(/UIDVALIDITY changed/, 10_000, "warn");
      await postOf("/renumber", "no id, new");
      await dovecot.append("renumber", "Receipts", receipt("after", "¥1"));
      await postOf("/renumber", "after");
      assert.deepEqual(seen("/renumber"), ["no id, seen ¥480", "no id, new ¥580", "after ¥581"]);
      const logged = second.logger.find(/^already notified; not again$/, "info");
      assert.equal(logged.length, 1);
      assert.match(String(logged[0]!.fields.identity), /^[0-9a-f]{32}$/, "the digest alone, for a mail without a Message-ID");
    } finally {
      await second.stop();
    }
  });
});
