/**
 * Verified senders against the real Dovecot and a real DNS server on 127.0.0.1 (dnsmasq) serving
 * a test DKIM key: the daemon counts and posts only mail whose signature (verify.dkim) or whose
 * own server's verdict (verify.authResults) holds, says why for the rest, and treats a DNS failure
 * as no verdict: the mail is read again, set aside, and counted once DNS works.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { State } from "../src/store/sqlite/state.ts";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { writeFileSync } from "node:fs";
import { runCli } from "./support/cli.ts";
import { accountYaml } from "./support/config-yaml.ts";
import { startMailbell, waitUntilWatching, writeConfig, type RunningMailbell } from "./support/daemon.ts";
import { dkimRecordName, makeDkimKey, signMail, type DkimKey } from "./support/dkim.ts";
import { startDnsServer, type DnsServer } from "./support/dns.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { buildMail } from "./support/mail.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";

let dovecot: Dovecot;
let receiver: Receiver;
let dns: DnsServer;
let shopKey: DkimKey;
let otherKey: DkimKey;
let users = 0;

before(async () => {
  shopKey = makeDkimKey("rsa");
  otherKey = makeDkimKey("ed25519");
  [dovecot, receiver, dns] = await Promise.all([
    startDovecot(),
    startReceiver(),
    startDnsServer({ txt: { [dkimRecordName("sel", "shop.example")]: shopKey.txt, [dkimRecordName("sel", "other.example")]: otherKey.txt } }),
  ]);
});
after(async () => {
  await Promise.all([dovecot?.dispose(), receiver?.close(), dns?.stop()]);
});

async function newUser(): Promise<string> {
  const user = `ver${++users}`;
  await dovecot.addUser(user, `${user}pw`);
  return user;
}

function configYaml(user: string, hook: string, dir: string): string {
  return `state: ${dir}/state.db
status: { listen: 0 }
dns: { servers: ["${dns.server}"], timeoutSeconds: 1 }
watch: { reconnectMaxSeconds: 1, keepaliveSeconds: 1, maxReadAttempts: 1 }
outbox: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2 }
accounts:
${accountYaml({ name: user, port: dovecot.imapsPort, caFile: dovecot.caFile, user, pass: `${user}pw` })}targets:
  - { name: hook, type: webhook, url: "${receiver.url(hook)}", rateLimit: { perSecond: 1000, burst: 1000 } }
rules:
  - name: signed
    match: { subject: "/^signed /" }
    verify: { dkim: shop.example }
    notify: [hook]
    template: "{{subject}} ({{verified}})"
  - name: stamped
    match: { subject: "/^stamped /" }
    verify: { authResults: mx.test.example }
    notify: [hook]
    template: "{{subject}} ({{verified}})"
`;
}

async function watch(user: string, hook: string): Promise<RunningMailbell & { dir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-verify-"));
  const yaml = configYaml(user, hook, dir);
  const mailbell = startMailbell(writeConfig(yaml, dir), yaml);
  await waitUntilWatching(mailbell.logger);
  return { ...mailbell, dir };
}

const mail = (subject: string, from = "billing@shop.example", text = "Total: 480 JPY\r\n") => buildMail({ from, to: "x@example.com", subject, text });
const sign = (raw: string | Buffer, domain = "shop.example", key = shopKey) => signMail(raw, { domain, selector: "sel", privateKey: key.privateKey });
const posts = (hook: string): WebhookBody[] => receiver.requests.filter((r) => r.path === hook && r.reply.status < 300).map((r) => r.json as WebhookBody);

/** Appends the mails in order, then a last verified one; once that is posted, everything before it was decided. */
async function deliver(user: string, hook: string, raws: (string | Buffer | Promise<Buffer>)[]): Promise<void> {
  for (const raw of raws) await dovecot.append(user, "INBOX", await raw);
  await dovecot.append(user, "INBOX", await sign(mail("signed last")));
  await receiver.waitFor((r) => r.path === hook && (r.json as WebhookBody).subject === "signed last", 15_000);
}

describe("verify: the sender", () => {
  it("dkim: counts a good signature of the domain, and nothing forged, altered, unsigned, of another domain or unaligned", async () => {
    const user = await newUser();
    const mailbell = await watch(user, "/dkim");
    try {
      const good = await sign(mail("signed good"));
      // Read whole in pieces no bigger than one reply may carry (a bigger one would break the connection).
      const withPdf = await sign(buildMail({ from: "billing@shop.example", to: "x@example.com", subject: "signed with a 3 MB attachment", text: "Total: 480 JPY\r\n", attachments: [{ filename: "scan.pdf", contentType: "application/pdf", content: Buffer.alloc(3 * 1024 * 1024, 7) }] }));
      const altered = Buffer.from((await sign(mail("signed altered"))).toString().replace("Total: 480 JPY", "Total: 999 JPY"));
      await deliver(user, "/dkim", [
        good,
        withPdf,
        altered,
        mail("signed unsigned"),
        sign(mail("signed by other", "billing@other.example"), "other.example", otherKey),
        sign(mail("signed unaligned", "billing@evil.example")),
      ]);
      assert.deepEqual(
        posts("/dkim").map((p) => [p.text, p.verified]),
        [
          ["signed good (DKIM shop.example)", "DKIM shop.example"],
          ["signed with a 3 MB attachment (DKIM shop.example)", "DKIM shop.example"],
          ["signed last (DKIM shop.example)", "DKIM shop.example"],
        ],
      );
      const reasons = mailbell.logger.find(/^sender not verified/).map((e) => `${String(e.fields.reason)}: ${String(e.fields.why)}`);
      assert.equal(reasons.length, 4, reasons.join("\n"));
      assert.match(reasons[0]!, /^dkim_fail: the DKIM signature of shop\.example did not verify/);
      assert.match(reasons[1]!, /^not_signed/);
      assert.match(reasons[2]!, /^other_domain: signed by other\.example, not by shop\.example/);
      assert.match(reasons[3]!, /^not_aligned: signed by shop\.example, but From is evil\.example/);
      const url = String((await mailbell.logger.waitFor(/status server listening/)).fields.address);
      assert.match(await (await fetch(`${url}/metrics`)).text(), /mailbell_mails_unverified_total\{rule="signed",reason="not_aligned"\} 1/);
      // The key was looked up once for the six signed mails.
      assert.equal(dns.queries().filter((q) => q.startsWith("sel._domainkey.shop.example")).length <= 2, true, JSON.stringify(dns.queries()));
    } finally {
      await mailbell.stop();
    }
  });

  it("dkim, a backlog read in groups: each mail decided as if read alone; a mail over one piece streamed between them", async () => {
    const user = await newUser();
    const first = await watch(user, "/backlog");
    await first.stop();
    const good = (i: number) => sign(mail(`signed backlog ${i}`));
    // Over the 256 KiB a piece (and a FETCH of whole mails) may carry: streamed, not fetched with the group.
    const big = sign(buildMail({ from: "billing@shop.example", to: "x@example.com", subject: "signed backlog big", text: "Total: 480 JPY\r\n", attachments: [{ filename: "scan.pdf", contentType: "application/pdf", content: Buffer.alloc(400 * 1024, 7) }] }));
    const altered = good(99).then((b) => Buffer.from(b.toString().replace("Total: 480 JPY", "Total: 999 JPY")));
    const backlog = [good(1), good(2), altered, good(3), big, sign(mail("signed backlog unaligned", "billing@evil.example")), ...Array.from({ length: 30 }, (_, i) => good(4 + i))];
    for (const raw of backlog) await dovecot.append(user, "INBOX", await raw);
    const yaml = configYaml(user, "/backlog", first.dir);
    const mailbell = startMailbell(writeConfig(yaml, first.dir), yaml);
    try {
      await receiver.waitFor((r) => r.path === "/backlog" && (r.json as WebhookBody).subject === "signed backlog 33", 20_000);
      const expected = ["signed backlog 1", "signed backlog 2", "signed backlog 3", "signed backlog big", ...Array.from({ length: 30 }, (_, i) => `signed backlog ${4 + i}`)];
      // A webhook has several posts in flight: they may land in any order.
      assert.deepEqual(posts("/backlog").map((p) => p.text).sort(), expected.map((s) => `${s} (DKIM shop.example)`).sort());
      const reasons = mailbell.logger.find(/^sender not verified/).map((e) => String(e.fields.reason));
      assert.deepEqual(reasons, ["dkim_fail", "not_aligned"]);
    } finally {
      await mailbell.stop();
    }
  });

  it("authResults: trusts only the topmost header of the named server; a forged pass below a real fail is ignored", async () => {
    const user = await newUser();
    const mailbell = await watch(user, "/ar");
    try {
      const stamp = (verdict: string) => `Authentication-Results: mx.test.example; dkim=${verdict} header.d=shop.example; dmarc=${verdict} header.from=shop.example\r\n`;
      await deliver(user, "/ar", [
        stamp("pass") + mail("stamped good"),
        stamp("fail") + stamp("pass") + mail("stamped forged below"),
        "Authentication-Results: evil.example; dmarc=pass header.from=shop.example\r\n" + mail("stamped by the sender"),
        mail("stamped never"),
      ]);
      assert.deepEqual(
        posts("/ar").map((p) => p.text),
        ["stamped good (DMARC pass by mx.test.example)", "signed last (DKIM shop.example)"],
      );
      const reasons = mailbell.logger.find(/^sender not verified/).map((e) => String(e.fields.reason));
      assert.deepEqual(reasons, ["auth_results_fail", "no_auth_results", "no_auth_results"]);
    } finally {
      await mailbell.stop();
    }
  });

  it("DNS down: the mail is neither counted nor lost; set aside, and posted once DNS works and it is read again", async () => {
    const user = await newUser();
    const mailbell = await watch(user, "/dns");
    try {
      await dns.fail("down");
      await dovecot.append(user, "INBOX", await sign(mail("signed while dns is down")));
      const setAside = await mailbell.logger.waitFor(/could not be read after 1 attempts; set aside/, 15_000, "error");
      assert.match(String(setAside.fields.reason), /could not be checked: the key's DNS lookup failed/);
      assert.equal(posts("/dns").length, 0);
      await dns.fail(false);
      // What the daemon asks for every 10 minutes, asked now: read it again.
      const state = State.open(path.join(mailbell.dir, "state.db"));
      try {
        assert.equal(state.setAside.requestRetryWhereReason("the key's DNS lookup failed"), 1);
      } finally {
        state.close();
      }
      await receiver.waitFor((r) => r.path === "/dns", 15_000);
      assert.deepEqual(posts("/dns").map((p) => p.text), ["signed while dns is down (DKIM shop.example)"]);
    } finally {
      await mailbell.stop();
    }
  });

  it("mailbell test verifies a saved mail the same way, through dns.servers, and says why one fails", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-verify-"));
    const config = writeConfig(configYaml("test", "/cli", dir), dir);
    const good = path.join(dir, "good.eml");
    const spoof = path.join(dir, "spoof.eml");
    writeFileSync(good, await sign(mail("signed good")));
    writeFileSync(spoof, await sign(mail("signed spoof", "googleplay-noreply@shop.example.evil.example")));
    const ok = await runCli(["test", "--config", config, good]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /rule signed: matched, sender verified \(DKIM shop\.example\)/);
    const refused = await runCli(["test", "--config", config, spoof, "--json"]);
    const signed = refused.out.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.rule === "signed");
    assert.deepEqual({ matched: signed?.matched, unverified: signed?.unverified }, { matched: false, unverified: "not_aligned" });
    assert.match(String(signed?.reason), /signed by shop\.example, but From is shop\.example\.evil\.example/);
  });
});
