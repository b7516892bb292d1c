/**
 * Header values in raw Shift_JIS, EUC-JP, ISO-2022-JP, UTF-8 and Latin-1 (no RFC 2047), read the
 * way the daemon reads them: appended to a real Dovecot, fetched (header, BODYSTRUCTURE, text
 * parts) and decoded; then a subject rule on the daemon and on `mailbell test`, both ways in.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { before, describe, it } from "node:test";
import type { FetchedMessage } from "../src/imap/fetch.ts";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { runCli } from "./support/cli.ts";
import { accountYaml } from "./support/config-yaml.ts";
import { startMailbell, waitUntilWatching, writeConfig } from "./support/daemon.ts";
import type { Dovecot } from "./support/dovecot.ts";
import { appendAndFetch } from "./support/fetch.ts";
import { rawHeaderCases, readRawHeaderFixture } from "./support/raw-headers.ts";
import type { Receiver } from "./support/receiver.ts";
import { dovecotAndReceiverForFile } from "./support/servers.ts";

let dovecot: Dovecot;
let receiver: Receiver;
dovecotAndReceiverForFile((started) => ({ dovecot, receiver } = started));

describe("raw legacy-charset headers fetched from Dovecot", () => {
  const read = (needsBody: boolean): Promise<Map<string, FetchedMessage>> =>
    appendAndFetch(dovecot, "alice", needsBody ? "Raw" : "RawHeaderOnly", new Map(rawHeaderCases.map((c) => [c.file, readRawHeaderFixture(c)])), {
      maxTextBytes: 256 * 1024,
      needsBody: () => needsBody,
    });

  for (const needsBody of [true, false]) {
    it(needsBody ? "with their text parts" : "header only (no rule reads the body)", async () => {
      const byFile = await read(needsBody);
      for (const c of rawHeaderCases) {
        const mail = byFile.get(c.file)?.mail;
        assert.ok(mail, `${c.file} fetched`);
        assert.equal(mail.subject, c.subject, c.file);
        assert.deepEqual(mail.from, c.from, c.file);
        assert.deepEqual(mail.warnings, c.warnings, c.file);
      }
    });
  }
});

describe("a subject rule on a raw Shift_JIS subject", () => {
  let dir: string;
  let yaml: string;
  let configFile: string;

  before(async () => {
    await dovecot.createMailbox("alice", "Orders");
    dir = mkdtempSync(path.join(tmpdir(), "mailbell-raw-headers-"));
    yaml = `
state: ${dir}/state.db
accounts:
${accountYaml({ name: "alice", port: dovecot.imapsPort, caFile: dovecot.caFile, user: "alice", pass: "alicepw", mailboxes: ["Orders"] })}targets:
  - { name: hook, type: webhook, url: "${receiver.url("/hook")}" }
rules:
  - name: order
    match: { subject: "/ご注文確認/" }
    notify: [hook]
    template: "{{subject}} from {{from}}"
`;
    configFile = writeConfig(yaml, dir);
  });

  it("the daemon matches it and posts the decoded subject and sender", async () => {
    const mailbell = startMailbell(configFile, yaml);
    try {
      await waitUntilWatching(mailbell.logger);
      // The UTF-8 one says ご請求, not ご注文確認: it must not match.
      for (const file of ["raw-header-utf8.eml", "raw-header-shift-jis.eml"]) {
        await dovecot.append("alice", "Orders", readRawHeaderFixture(rawHeaderCases.find((c) => c.file === file)!));
      }
      const [post] = await receiver.waitFor((r) => r.path === "/hook", 10_000);
      const body = post!.json as WebhookBody;
      assert.equal(body.rule, "order");
      assert.equal(body.subject, "【重要】ご注文確認 合計 1,280円");
      assert.equal(body.from, "ソフト表示ショップ <shop@example.jp>");
      assert.equal(body.text, "【重要】ご注文確認 合計 1,280円 from ソフト表示ショップ <shop@example.jp>");
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(receiver.requests.filter((r) => r.path === "/hook").length, 1, "only the Shift_JIS mail matched");
    } finally {
      await mailbell.stop();
    }
  });

  it("mailbell test matches the same file the same way", async () => {
    const file = path.join(dir, "order.eml");
    writeFileSync(file, readRawHeaderFixture(rawHeaderCases[0]!));
    const { code, out, err } = await runCli(["test", "--config", configFile, file, "--json"]);
    assert.equal(code, 0, err);
    const reports = out.trim().split("\n").map((line) => JSON.parse(line) as { rule?: string; matched?: boolean; message?: string });
    const order = reports.find((r) => r.rule === "order");
    assert.equal(order?.matched, true, out);
    assert.equal(order?.message, "【重要】ご注文確認 合計 1,280円 from ソフト表示ショップ <shop@example.jp>");
  });
});
