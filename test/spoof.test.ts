/**
 * from: matches the address, never the display name, against a real Dovecot: mail whose display
 * name is the receipt sender's address, or whose address is that address with a domain appended,
 * is not posted, while the real sender's mail is. Spoofs are appended first, so a post that should
 * not happen would arrive before the real one. Attachments are read from BODYSTRUCTURE: a rule
 * matches a PDF by its name, and the post lists it.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { accountYaml } from "./support/config-yaml.ts";
import { startMailbell, waitUntilWatching, writeConfig, type RunningMailbell } from "./support/daemon.ts";
import type { Dovecot } from "./support/dovecot.ts";
import { buildMail } from "./support/mail.ts";
import type { Receiver } from "./support/receiver.ts";
import { dovecotAndReceiverForFile } from "./support/servers.ts";

let dovecot: Dovecot;
let receiver: Receiver;
dovecotAndReceiverForFile((started) => ({ dovecot, receiver } = started));

async function watch(user: string, hookPath: string): Promise<RunningMailbell> {
  await dovecot.addUser(user, `${user}-pw`);
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-spoof-"));
  const yaml = `state: ${dir}/state.db
outbox: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2 }
accounts:
${accountYaml({ name: user, port: dovecot.imapsPort, caFile: dovecot.caFile, user, pass: `${user}-pw` })}targets:
  - { name: hook, type: webhook, url: "${receiver.url(hookPath)}", rateLimit: { perSecond: 1000, burst: 1000 } }
rules:
  - name: play
    match: { from: googleplay-noreply@google.com }
    notify: [hook]
    template: "play: {{subject}}"
  - name: google
    match: { from: "@google.com" }
    notify: [hook]
    template: "google: {{subject}}"
  - name: byname
    match: { from: Google Play }
    notify: [hook]
    template: "byname: {{subject}}"
  - name: invoice
    match: { attachment: "/\\\\.pdf$/i" }
    notify: [hook]
    template: "invoice: {{subject}} ({{attachments}})"
`;
  const mailbell = startMailbell(writeConfig(yaml, dir), yaml);
  await waitUntilWatching(mailbell.logger);
  return mailbell;
}

const posts = (hookPath: string): WebhookBody[] => receiver.requests.filter((r) => r.path === hookPath).map((r) => r.json as WebhookBody);

describe("spoofed senders against the daemon", () => {
  it("posts the real sender's mail only; the display-name and appended-domain spoofs match no rule", async () => {
    const mailbell = await watch("spoofed", "/spoof");
    try {
      const warned = mailbell.logger.find(/rules\[2\]\.match\.from: "Google Play" has no @: it matches whole addresses now, so this rule matches nothing; write fromName: "Google Play"/, "warn");
      assert.equal(warned.length, 1, "the from: without @ is warned about at start");
      const mail = (from: string, subject: string) => buildMail({ from, to: "spoofed@example.com", subject, text: "Total: ¥480" });
      await dovecot.append("spoofed", "INBOX", mail(`"googleplay-noreply@google.com" <attacker@evil.example>`, "spoof: display name"));
      await dovecot.append("spoofed", "INBOX", mail("Google Play <googleplay-noreply@google.com.evil.example>", "spoof: domain appended"));
      await dovecot.append("spoofed", "INBOX", mail("Google Play <x@notgoogle.com>", "spoof: look-alike domain"));
      await dovecot.append("spoofed", "INBOX", mail("Google Play <googleplay-noreply@google.com>", "real receipt"));
      await dovecot.append("spoofed", "INBOX", mail("Payments <payments-noreply@mail.google.com>", "subdomain"));
      await receiver.waitFor((r) => r.path === "/spoof" && (r.json as WebhookBody).subject === "subdomain", 10_000);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(posts("/spoof").map((p) => p.text).sort(), ["google: real receipt", "google: subdomain", "play: real receipt"]);
    } finally {
      await mailbell.stop();
    }
  });

  it("a rule matches a PDF attachment by its name from BODYSTRUCTURE, and the post lists it", async () => {
    const mailbell = await watch("attached", "/attached");
    try {
      const pdf = Buffer.concat([Buffer.from("%PDF-1.4\n"), Buffer.alloc(300_000, 0x41)]);
      const mail = (subject: string, attachments: { filename: string; contentType: string; content: Buffer }[]) =>
        buildMail({ from: "billing@shop.example", to: "attached@example.com", subject, text: "See attached.", attachments });
      await dovecot.append("attached", "INBOX", mail("newsletter", [{ filename: "logo.png", contentType: "image/png", content: Buffer.alloc(2000, 1) }]));
      await dovecot.append("attached", "INBOX", mail("invoice 42", [{ filename: "Invoice-42.PDF", contentType: "application/pdf", content: pdf }]));
      await receiver.waitFor((r) => r.path === "/attached" && (r.json as WebhookBody).subject === "invoice 42", 10_000);
      await new Promise((r) => setTimeout(r, 200));
      const got = posts("/attached");
      assert.deepEqual(got.map((p) => p.text), ["invoice: invoice 42 (Invoice-42.PDF)"]);
      const [listed] = got[0]!.attachments;
      assert.deepEqual([listed?.filename, listed?.contentType], ["Invoice-42.PDF", "application/pdf"]);
      // Estimated from the encoded size the server reports: within a line of the real size.
      assert.ok(Math.abs(listed!.size - pdf.length) <= 57, `size ${listed!.size} vs ${pdf.length}`);
    } finally {
      await mailbell.stop();
    }
  });
});
