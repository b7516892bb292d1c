/**
 * Reloading the config while mailbell runs (SIGHUP), against a real Dovecot and a local webhook
 * receiver: a changed rule applies from the next mail and mail that arrives meanwhile is posted
 * once; mailboxes start and stop; targets come and change without a post in flight being sent
 * again; an invalid config is refused and the old one goes on; and `kill -HUP` on a real process.
 * Each test has its own user, state file and receiver path.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { accountYaml } from "./support/config-yaml.ts";
import { startMailbell, waitUntilWatching, writeConfig } from "./support/daemon.ts";
import type { Dovecot } from "./support/dovecot.ts";
import { buildMail } from "./support/mail.ts";
import { spawnMailbell } from "./support/process.ts";
import type { ReceivedRequest, Receiver } from "./support/receiver.ts";
import { dovecotAndReceiverForFile } from "./support/servers.ts";

let dovecot: Dovecot;
let receiver: Receiver;
let users = 0;
dovecotAndReceiverForFile((started) => ({ dovecot, receiver } = started));

async function newUser(): Promise<string> {
  const user = `reload${++users}`;
  await dovecot.addUser(user, `${user}pw`);
  return user;
}

interface Setup {
  user: string;
  mailboxes?: string[];
  /** Lines under targets:; default one webhook `hook` at /<user>. */
  targets?: string;
  rules: string;
  /** More top-level settings. */
  extra?: string;
  maxConnections?: number;
}

function yamlOf(o: Setup, dir: string): string {
  return `state: ${dir}/state.db
watch: { reconnectMaxSeconds: 1 }
outbox: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2 }
${o.extra ?? ""}
accounts:
${accountYaml({ name: o.user, port: dovecot.imapsPort, caFile: dovecot.caFile, user: o.user, pass: `${o.user}pw`, mailboxes: o.mailboxes, maxConnections: o.maxConnections })}targets:
${o.targets ?? webhook("hook", `/${o.user}`)}
rules:
${o.rules}
`;
}

const webhook = (name: string, at: string): string => `  - { name: ${name}, type: webhook, url: "${receiver.url(at)}", rateLimit: { perSecond: 1000, burst: 1000 } }`;
const tempDir = (): string => mkdtempSync(path.join(tmpdir(), "mailbell-reload-"));
const mail = (subject: string): string => buildMail({ from: "shop@example.com", to: "me@example.com", subject, text: "hello" });
const body = (r: ReceivedRequest): WebhookBody => r.json as WebhookBody;
const postsTo = (at: string): ReceivedRequest[] => receiver.requests.filter((r) => r.path === at);
const settle = (ms = 400) => new Promise((r) => setTimeout(r, ms));

/** A new user's INBOX watched by an in-process mailbell with one rule posting every mail; `ended()` says whether its run ended. */
async function startWatchingAll() {
  const user = await newUser();
  const dir = tempDir();
  const setup = { user, rules: `  - { name: all, notify: [hook], template: "{{subject}}" }` };
  const v1 = yamlOf(setup, dir);
  const file = writeConfig(v1, dir);
  const mailbell = startMailbell(file, v1);
  let ended = false;
  mailbell.done.then(
    () => (ended = true),
    () => (ended = true),
  );
  await waitUntilWatching(mailbell.logger).catch(async (err: unknown) => {
    await mailbell.stop();
    throw err;
  });
  return { user, dir, setup, file, mailbell, ended: () => ended };
}

async function posted(at: string, subject: string, timeoutMs = 8000): Promise<WebhookBody> {
  const [hit] = await receiver.waitFor((r) => r.path === at && body(r).subject === subject, timeoutMs);
  return body(hit!);
}

/** How often each subject was posted to `at`. */
function timesPosted(at: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of postsTo(at)) out[body(r).subject] = (out[body(r).subject] ?? 0) + 1;
  return out;
}

describe("config reload (SIGHUP) of a running mailbell", () => {
  it("applies a changed rule from the next mail on, and posts mail that arrives during the reload exactly once", async () => {
    const user = await newUser();
    const dir = tempDir();
    const rule = (template: string, subject: string) => `  - { name: orders, match: { subject: "${subject}" }, notify: [hook], template: "${template}" }`;
    const v1 = yamlOf({ user, rules: rule("v1 {{subject}}", "/^order/") }, dir);
    const file = writeConfig(v1, dir);
    const mailbell = startMailbell(file, v1);
    try {
      await waitUntilWatching(mailbell.logger);
      await dovecot.append(user, "INBOX", mail("order 1"));
      assert.equal((await posted(`/${user}`, "order 1")).text, "v1 order 1");

      writeFileSync(file, yamlOf({ user, rules: rule("v2 {{subject}}", "/^(order|invoice)/") }, dir));
      const during = ["order 2", "order 3", "order 4", "order 5"];
      const [outcome] = await Promise.all([
        mailbell.reload(),
        (async () => {
          for (const subject of during) await dovecot.append(user, "INBOX", mail(subject));
        })(),
      ]);
      assert.equal(outcome.applied, true);
      // Under the old rule an invoice matched nothing: its post shows the new condition and template.
      await dovecot.append(user, "INBOX", mail("invoice 6"));
      assert.equal((await posted(`/${user}`, "invoice 6")).text, "v2 invoice 6");
      for (const subject of during) await posted(`/${user}`, subject);
      await settle(); // anything doubled would show up by now
      assert.deepEqual(timesPosted(`/${user}`), { "order 1": 1, "order 2": 1, "order 3": 1, "order 4": 1, "order 5": 1, "invoice 6": 1 });

      const [line] = mailbell.logger.find(/^config reloaded/, "info");
      assert.ok(line, "one line says what the reload did");
      assert.equal(line.msg, `config reloaded: rules: changed orders — mailboxes: restarted ${user}/INBOX`);
      assert.deepEqual(line.fields.mailboxes, { started: [], stopped: [], restarted: [{ account: user, mailbox: "INBOX" }] });
    } finally {
      await mailbell.stop();
    }
  });

  it("starts watching an added mailbox and stops watching a removed one, leaving the others connected", async () => {
    const user = await newUser();
    await dovecot.createMailbox(user, "Old");
    await dovecot.createMailbox(user, "New");
    const dir = tempDir();
    const rules = `  - { name: all, notify: [hook], template: "{{subject}}" }`;
    const v1 = yamlOf({ user, mailboxes: ["INBOX", "Old"], rules }, dir);
    const file = writeConfig(v1, dir);
    const mailbell = startMailbell(file, v1);
    try {
      await waitUntilWatching(mailbell.logger, 2);
      writeFileSync(file, yamlOf({ user, mailboxes: ["INBOX", "New"], rules }, dir));
      const outcome = await mailbell.reload();
      assert.ok(outcome.applied);
      assert.deepEqual(outcome.changes.mailboxes, { started: [{ account: user, mailbox: "New" }], stopped: [{ account: user, mailbox: "Old" }], restarted: [] });
      await waitUntilWatching(mailbell.logger, 3);

      await dovecot.append(user, "Old", mail("in old"));
      await dovecot.append(user, "New", mail("in new"));
      await dovecot.append(user, "INBOX", mail("in inbox"));
      assert.equal((await posted(`/${user}`, "in new")).mailbox, "New");
      await posted(`/${user}`, "in inbox");
      await settle();
      assert.equal(timesPosted(`/${user}`)["in old"], undefined, "a mailbox no longer configured is not watched");
      const watching = mailbell.logger.find(/^watching$/).map((e) => e.fields.mailbox);
      assert.deepEqual(watching.filter((m) => m === "INBOX"), ["INBOX"], "INBOX kept its connection");
    } finally {
      await mailbell.stop();
    }
  });

  it("keeps reading an account's folders over NOTIFY after a reload stops the folder whose watcher started the notifier", async () => {
    const user = await newUser();
    for (const f of ["Orders", "Shop", "Other"]) await dovecot.createMailbox(user, f);
    const dir = tempDir();
    const rules = `  - { name: all, notify: [hook], template: "{{subject}}" }`;
    // Four folders, two connections: NOTIFY (watch.notify auto). INBOX joins the notifier first.
    const v1 = yamlOf({ user, mailboxes: ["INBOX", "Orders", "Shop", "Other"], maxConnections: 2, rules }, dir);
    const file = writeConfig(v1, dir);
    const mailbell = startMailbell(file, v1);
    try {
      await waitUntilWatching(mailbell.logger, 4);
      writeFileSync(file, yamlOf({ user, mailboxes: ["Orders", "Shop", "Other"], maxConnections: 2, rules }, dir));
      const outcome = await mailbell.reload();
      assert.ok(outcome.applied);
      assert.deepEqual(outcome.changes.mailboxes, { started: [], stopped: [{ account: user, mailbox: "INBOX" }], restarted: [] });
      await settle();
      await dovecot.append(user, "Orders", mail("after the reload"));
      assert.equal((await posted(`/${user}`, "after the reload")).mailbox, "Orders");
    } finally {
      await mailbell.stop();
    }
  });

  it("posts to an added target, and to a changed one's new address without sending again the post in flight during the reload", async () => {
    const user = await newUser();
    const dir = tempDir();
    const [a, b, second] = [`/${user}-a`, `/${user}-b`, `/${user}-second`];
    const v1 = yamlOf({ user, targets: webhook("hook", a), rules: `  - { name: all, notify: [hook], template: "{{subject}}" }` }, dir);
    const file = writeConfig(v1, dir);
    const mailbell = startMailbell(file, v1);
    try {
      await waitUntilWatching(mailbell.logger);
      receiver.replyOn(a, { status: 200, body: "ok", delayMs: 1500 });
      await dovecot.append(user, "INBOX", mail("slow"));
      await receiver.waitFor((r) => r.path === a, 8000); // on its way, not answered yet

      writeFileSync(file, yamlOf({ user, targets: `${webhook("hook", b)}\n${webhook("second", second)}`, rules: `  - { name: all, notify: [hook, second], template: "{{subject}}" }` }, dir));
      const outcome = await mailbell.reload();
      assert.ok(outcome.applied);
      assert.deepEqual(outcome.changes.targets, { added: ["second"], removed: [], changed: ["hook"] });
      await dovecot.append(user, "INBOX", mail("after"));
      await posted(b, "after");
      await posted(second, "after");
      await settle();
      assert.deepEqual([timesPosted(a), timesPosted(b), timesPosted(second)], [{ slow: 1 }, { after: 1 }, { after: 1 }]);
    } finally {
      await mailbell.stop();
    }
  });

  it("refuses an invalid config (YAML syntax, schema, a setting only a restart can change), says why, and goes on with the old one", async () => {
    const user = await newUser();
    const dir = tempDir();
    const setup = { user, rules: `  - { name: all, notify: [hook], template: "old {{subject}}" }` };
    const v1 = yamlOf(setup, dir);
    const file = writeConfig(v1, dir);
    const mailbell = startMailbell(file, v1);
    try {
      await waitUntilWatching(mailbell.logger);
      const broken = [
        // A missing ] on the rule's line.
        { yaml: yamlOf({ ...setup, rules: `  - { name: all, notify: [hook, template: "new {{subject}}" }` }, dir), says: new RegExp(`^${file}:\\d+: not valid YAML`) },
        { yaml: yamlOf({ ...setup, extra: "dns: { timeoutSeconds: soon }" }, dir), says: new RegExp(`^${file}:4: dns.timeoutSeconds: `) },
        { yaml: yamlOf({ ...setup, rules: `  - { name: all, notify: [nobody], template: "new {{subject}}" }` }, dir), says: /rules\[0\]\.notify.*nobody/ },
        { yaml: yamlOf(setup, tempDir()), says: /state: changed from .* restart mailbell/ },
      ];
      for (const [i, { yaml, says }] of broken.entries()) {
        writeFileSync(file, yaml);
        const outcome = await mailbell.reload();
        assert.equal(outcome.applied, false);
        const refusals = mailbell.logger.find(/^config reload refused; still running the config loaded before/, "error");
        assert.equal(refusals.length, i + 1);
        assert.match(refusals[i]!.fields.err as string, says);
        await dovecot.append(user, "INBOX", mail(`still ${i}`));
        assert.equal((await posted(`/${user}`, `still ${i}`)).text, `old still ${i}`);
      }
      assert.equal(mailbell.logger.find(/^config reloaded/).length, 0);

      writeFileSync(file, yamlOf({ ...setup, rules: `  - { name: all, notify: [hook], template: "new {{subject}}" }` }, dir));
      assert.equal((await mailbell.reload()).applied, true);
      await dovecot.append(user, "INBOX", mail("fixed"));
      assert.equal((await posted(`/${user}`, "fixed")).text, "new fixed");
    } finally {
      await mailbell.stop();
    }
  });

  it("keeps running when a reload adds an account whose login is refused: retried and logged at error, not the end of the run (exit 3 is for a first start)", async () => {
    const { user, dir, setup, file, mailbell, ended } = await startWatchingAll();
    try {
      const wrong = accountYaml({ name: "wrong", port: dovecot.imapsPort, caFile: dovecot.caFile, user, pass: "not-the-password" });
      writeFileSync(file, yamlOf(setup, dir).replace("targets:\n", `${wrong}targets:\n`));
      assert.equal((await mailbell.reload()).applied, true);
      const deadline = Date.now() + 8000;
      while (!mailbell.logger.find(/^login refused/, "error").some((e) => e.fields.account === "wrong")) {
        assert.ok(Date.now() < deadline && !ended(), "the refused login is logged at error, and mailbell goes on");
        await settle(20);
      }
      await dovecot.append(user, "INBOX", mail("still watching"));
      await posted(`/${user}`, "still watching");
      assert.equal(ended(), false, "mailbell is still running");
    } finally {
      await mailbell.stop();
    }
  });

  it("refuses a reload to a config with no accounts (nothing to watch), and goes on with the old one", async () => {
    const { user, dir, setup, file, mailbell, ended } = await startWatchingAll();
    try {
      writeFileSync(file, yamlOf(setup, dir).replace(/accounts:\n[\s\S]*?targets:\n/, "accounts: []\ntargets:\n"));
      const outcome = await mailbell.reload();
      assert.equal(outcome.applied, false);
      assert.match(outcome.reason, /no accounts|nothing to watch/i);
      await dovecot.append(user, "INBOX", mail("still here"));
      await posted(`/${user}`, "still here");
      assert.equal(ended(), false, "mailbell is still running");
    } finally {
      await mailbell.stop();
    }
  });

  it("reloads on a real SIGHUP to `mailbell run`, which keeps running and stops on SIGTERM as before", async () => {
    const user = await newUser();
    const dir = tempDir();
    const rules = (template: string) => `  - { name: all, notify: [hook], template: "${template}" }`;
    const file = writeConfig(yamlOf({ user, rules: rules("before {{subject}}") }, dir), dir);
    const mailbell = spawnMailbell(file);
    try {
      await mailbell.waitForLog(/"msg":"watching"/);
      writeFileSync(file, yamlOf({ user, rules: rules("after {{subject}}") }, dir));
      mailbell.child.kill("SIGHUP");
      const line = JSON.parse(await mailbell.waitForLog(/"msg":"config reloaded/)) as { level: unknown; rules: unknown };
      assert.deepEqual(line.rules, { added: [], removed: [], changed: ["all"] });
      await dovecot.append(user, "INBOX", mail("hup"));
      assert.equal((await posted(`/${user}`, "hup")).text, "after hup");
      mailbell.child.kill("SIGTERM");
      assert.equal(await mailbell.exited, 0, mailbell.log);
    } finally {
      mailbell.child.kill("SIGKILL");
    }
  });
});
