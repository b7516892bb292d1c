/**
 * A receipt whose plain part says "view this mail in a browser" and whose HTML alternative has the
 * amount, read by the daemon from Dovecot: the amount is posted and totalled, and the HTML part is
 * fetched only for that mail (the proxy shows every FETCH), never for mail whose plain part has it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { accountYaml } from "./support/config-yaml.ts";
import { startMailbell, waitUntilWatching, writeConfig } from "./support/daemon.ts";
import type { Dovecot } from "./support/dovecot.ts";
import { startImapProxy } from "./support/imap-proxy.ts";
import type { Receiver } from "./support/receiver.ts";
import { dovecotAndReceiverForFile } from "./support/servers.ts";

const fixture = (name: string): Buffer => readFileSync(path.resolve(import.meta.dirname, "fixtures", name));
const shortPlain = fixture("receipt-short-plain.eml");
const fullPlain = fixture("receipt-full-plain.eml");

let dovecot: Dovecot;
let receiver: Receiver;
let users = 0;
dovecotAndReceiverForFile((started) => ({ dovecot, receiver } = started));

function configYaml(user: string, port: number, hook: string, extract: string): string {
  return `state: ${mkdtempSync(path.join(tmpdir(), "mailbell-html-"))}/state.db
watch: { reconnectMaxSeconds: 1 }
accounts:
${accountYaml({ name: user, port, tls: "none", user, pass: `${user}pw` })}targets:
  - { name: hook, type: webhook, url: "${receiver.url(hook)}", rateLimit: { perSecond: 1000, burst: 1000 } }
rules:
  - name: shop
    match: { from: receipts@shop.example }
    extract:
      amount: ${extract}
    total: { sum: amount, per: month }
    notify: [hook]
    template: "{{amount}} ({{total}} in {{period}})"
  - name: everything
    notify: [hook]
    template: "{{subject}}"
`;
}

const posts = (hook: string, rule = "shop"): WebhookBody[] => receiver.requests.filter((r) => r.path === hook && (r.json as WebhookBody).rule === rule).map((r) => r.json as WebhookBody);

/** Each UID FETCH as "<uids> <sections>", e.g. "2 BODY.PEEK[2]<0.262144>". */
const fetchesAsked = (commands: readonly { name: string; args: string }[]): string[] =>
  commands.filter((c) => c.name === "UID FETCH").map((c) => `${c.args.split(" ")[0]} ${(c.args.match(/BODY\.PEEK\[[^\]]*\](?:<[^>]*>)?/g) ?? []).join(" ")}`);

async function run(extract: string, hook: string, mails: Buffer[]): Promise<{ posts: WebhookBody[]; fetches: string[] }> {
  const user = `html${++users}`;
  await dovecot.addUser(user, `${user}pw`);
  await using proxy = await startImapProxy({ port: dovecot.imapPort });
  const yaml = configYaml(user, proxy.port, hook, extract);
  const mailbell = startMailbell(writeConfig(yaml), yaml);
  try {
    await waitUntilWatching(mailbell.logger);
    const before = proxy.commands.length;
    for (const mail of mails) await dovecot.append(user, "INBOX", mail);
    await receiver.waitFor(() => posts(hook).length === mails.length && posts(hook, "everything").length === mails.length, 10_000);
    const commands = proxy.commands.slice(before);
    return { posts: posts(hook), fetches: fetchesAsked(commands) };
  } finally {
    await mailbell.stop();
  }
}

describe("a plain part that says less than its HTML alternative (daemon, Dovecot)", () => {
  const inBody = `{ regex: "Total:?\\\\s*(?<value>\\\\$[\\\\d.]+)", as: money }`;

  it("in: body posts and totals the amount from the HTML, fetched for that mail only", async () => {
    const got = await run(inBody, "/body", [fullPlain, shortPlain]);
    assert.deepEqual(
      got.posts.map((p) => [p.subject, p.fields["amount"]?.raw, p.total?.text]),
      [
        ["Your receipt from Shop", "$99.00", "$99.00"],
        ["Your receipt from Shop", "$12.34", "$111.34"],
      ],
    );
    // Part 1 (plain) for both; part 2 (the HTML) once, for UID 2 alone, whose plain part lacks the amount.
    const html = got.fetches.filter((f) => f.includes("BODY.PEEK[2]"));
    assert.deepEqual(html, ["2 BODY.PEEK[2]<0.262144>"], `capped at maxTextBytes like the plain part; all: ${got.fetches.join(" | ")}`);
  });

  it("mail whose plain part has the amount costs what it did: no HTML asked for", async () => {
    const got = await run(inBody, "/full", [fullPlain]);
    assert.deepEqual(got.posts.map((p) => p.fields["amount"]?.raw), ["$99.00"]);
    assert.deepEqual(got.fetches, ["1 BODY.PEEK[HEADER]<0.262144>", "1 BODY.PEEK[1]<0.262144>"], "header and structure, then the plain part: no HTML");
  });

  it("in: html reads the HTML even when the plain part has an amount", async () => {
    const got = await run(`{ regex: "Total:?\\\\s*(?<value>\\\\$[\\\\d.]+)", as: money, in: html }`, "/html", [fullPlain]);
    assert.deepEqual(got.posts.map((p) => p.fields["amount"]?.raw), ["$99.00"]);
    assert.deepEqual(got.fetches.filter((f) => f.includes("BODY.PEEK[2]")), ["1 BODY.PEEK[2]<0.262144>"]);
  });
});
