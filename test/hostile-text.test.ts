/**
 * Control characters from mail (issue 13, item 8), from the raw message on: an RFC 2047 subject
 * may decode to NUL, ESC[2J, BEL, C1 and bidi overrides, and the mail parser keeps them.
 * `mailbell test` renders the payloads the daemon would queue; src/targets/text.test.ts runs the
 * same convention through every target.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { main } from "../src/cli/main.ts";
import { buildMail } from "./support/mail.ts";

const hostile = "Invoice \u0000\u001b[2J\u0007\u202Egnp.exe\u202C \u0085\u009b31m \u007f ready";
// eslint-disable-next-line no-control-regex -- looking for control characters is the test
const unreadable = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

const dir = mkdtempSync(path.join(tmpdir(), "mailbell-hostile-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Report {
  message: string;
  targets: { target: string; payload: Record<string, unknown> }[];
}

function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return value !== null && typeof value === "object" ? Object.values(value).flatMap(strings) : [];
}

async function render(): Promise<Report> {
  const eml = path.join(dir, "hostile.eml");
  writeFileSync(eml, buildMail({ from: "billing@evil.example", to: "taro@example.com", subject: hostile, text: "x" }));
  const config = path.join(dir, "mailbell.yaml");
  writeFileSync(
    config,
    `state: ${dir}/state.db
accounts:
  - { name: a, host: 127.0.0.1, user: u, pass: p }
targets:
  - { name: team, type: slack, url: "https://hooks.slack.example/services/T/B/x" }
  - { name: phone, type: ntfy, topic: alerts }
  - { name: hook, type: webhook, url: "http://127.0.0.1:1/x" }
rules:
  - name: all
    notify: [team, phone, hook]
    template: "New: {{subject}}"
`,
  );
  let out = "";
  const code = await main(["test", "--config", config, eml, "--json"], { out: (t) => void (out += t), err: (t) => assert.fail(t), env: {} });
  assert.equal(code, 0);
  // One JSON line per rule.
  return JSON.parse(out.trim().split("\n")[0]!) as Report;
}

describe("control characters in a mail's subject", () => {
  it("reach the chat services as U+FFFD, the bidi overrides removed; the webhook JSON has them as they are", async () => {
    const report = await render();
    const payload = (name: string) => report.targets.find((t) => t.target === name)!.payload;
    assert.ok(unreadable.test(report.message), "the mail parser keeps them: the targets must take them out");
    const cleaned = "Invoice \uFFFD\uFFFD[2J\uFFFDgnp.exe \uFFFD\uFFFD31m \uFFFD ready";
    assert.equal(payload("team").text, `New: ${cleaned}`);
    assert.equal(payload("phone").title, cleaned);
    for (const text of [...strings(payload("team")), ...strings(payload("phone"))]) assert.doesNotMatch(text, unreadable);
    assert.equal(payload("hook").subject, hostile);
  });
});
