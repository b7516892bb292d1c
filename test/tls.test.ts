/** TLS modes against Dovecot with a self-signed CA: verification on by default, STARTTLS, plaintext only on request. */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { CliIO } from "../src/cli/io.ts";
import { main } from "../src/cli/main.ts";
import { startMailbell, waitUntilWatching, writeConfig } from "./support/daemon.ts";
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

function yamlFor(account: string, hookPath: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-tls-"));
  return `state: ${dir}/state.db
accounts:
  - { name: bob, host: 127.0.0.1, user: bob, pass: bobpw, ${account} }
targets:
  - { name: hook, type: webhook, url: "${receiver.url(hookPath)}" }
rules:
  - { name: all, notify: [hook], template: "{{subject}}" }
`;
}

async function check(yaml: string): Promise<{ code: number; out: string }> {
  let out = "";
  const io: CliIO = { out: (t) => void (out += `${t}\n`), err: (t) => void (out += `${t}\n`), env: {} };
  return { code: await main(["check", "--config", writeConfig(yaml)], io), out };
}

describe("TLS", () => {
  it("STARTTLS on the plain port, trusting the configured CA", async () => {
    const r = await check(yamlFor(`port: ${dovecot.imapPort}, tls: starttls, ca: ${dovecot.caFile}`, "/x"));
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /logged in as bob at 127\.0\.0\.1:\d+ \(starttls\)/);
  });

  it("verifies certificates by default: implicit TLS without the CA fails, and says how to fix it", async () => {
    const r = await check(yamlFor(`port: ${dovecot.imapsPort}`, "/x"));
    assert.equal(r.code, 3);
    assert.match(r.out, /TLS certificate check failed \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)\. For a private server set ca:/);
  });

  it("tlsVerify: false connects but is logged as a warning", async () => {
    const yaml = yamlFor(`port: ${dovecot.imapsPort}, tlsVerify: false`, "/noverify");
    const mailbell = startMailbell(writeConfig(yaml), yaml);
    try {
      await waitUntilWatching(mailbell.logger);
      assert.equal(mailbell.logger.find(/tlsVerify: false/, "warn").length, 1);
    } finally {
      await mailbell.stop();
    }
  });

  it("tls: none works only because it was asked for, with a warning, and mail still flows", async () => {
    const yaml = yamlFor(`port: ${dovecot.imapPort}, tls: none`, "/plain");
    const mailbell = startMailbell(writeConfig(yaml), yaml);
    try {
      await waitUntilWatching(mailbell.logger);
      assert.match(mailbell.logger.find(/tls: none/, "warn")[0]!.msg!, /unencrypted/);
      await dovecot.append("bob", "INBOX", buildMail({ from: "a@example.com", to: "b@example.com", subject: "in the clear", text: "x" }));
      await receiver.waitFor((r) => r.path === "/plain", 8000);
    } finally {
      await mailbell.stop();
    }
  });
});
