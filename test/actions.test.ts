/**
 * Rules' actions on mail (then: seen, flag, move; label through a proxy that gives Dovecot Gmail's
 * extension) against a real Dovecot: each action; a mail moved into a folder mailbell also watches
 * (posted and acted on once); a read-only mailbox and a missing folder (refused, reported, retried,
 * and watching goes on); and a crash between the commit and the action (the action is done after
 * the restart, the notification is posted once). Each test has its own user.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { ImapFlow } from "imapflow";
import { applyActions } from "../src/imap/actions.ts";
import type { MailActions } from "../src/rules/types.ts";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { accountYaml } from "./support/config-yaml.ts";
import { startMailbell, waitUntilWatching, writeConfig, type RunningMailbell } from "./support/daemon.ts";
import type { Dovecot } from "./support/dovecot.ts";
import { startImapProxy, type ImapRule } from "./support/imap-proxy.ts";
import { buildMail } from "./support/mail.ts";
import { spawnMailbell } from "./support/process.ts";
import type { Receiver } from "./support/receiver.ts";
import { dovecotAndReceiverForFile } from "./support/servers.ts";

let dovecot: Dovecot;
let receiver: Receiver;
let users = 0;
dovecotAndReceiverForFile((started) => ({ dovecot, receiver } = started), { acl: true });

/** A user of its own for each test. */
async function newUser(): Promise<string> {
  const user = `act${++users}`;
  await dovecot.addUser(user, `${user}pw`);
  return user;
}

interface Setup {
  user: string;
  mailboxes?: string[];
  then: string;
  /** Settings under watch: over the test's own. */
  watch?: Record<string, number | string>;
  hook: string;
}

/** Over Dovecot's TLS port, or with `plainPort` a proxy's plain one in front of it. */
function configYaml(o: Setup, dir: string, plainPort?: number): string {
  const server = plainPort === undefined ? { port: dovecot.imapsPort, caFile: dovecot.caFile } : { port: plainPort, tls: "none" as const };
  return `state: ${dir}/state.db
status: { listen: 0 }
watch: ${JSON.stringify({ reconnectMaxSeconds: 1, keepaliveSeconds: 1, actionRetrySeconds: 0.2, actionRetryMaxSeconds: 0.5, ...o.watch })}
outbox: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2 }
accounts:
${accountYaml({ name: o.user, ...server, user: o.user, pass: `${o.user}pw`, mailboxes: o.mailboxes })}targets:
  - { name: hook, type: webhook, url: "${receiver.url(o.hook)}", rateLimit: { perSecond: 1000, burst: 1000 } }
rules:
  - name: receipts
    match: { from: shop@example.com }
    notify: [hook]
    template: "{{subject}}"
    then: ${o.then}
`;
}

async function watch(o: Setup): Promise<RunningMailbell & { dir: string }> {
  for (const mailbox of o.mailboxes ?? []) if (mailbox !== "INBOX") await dovecot.createMailbox(o.user, mailbox);
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-actions-"));
  const yaml = configYaml(o, dir);
  const mailbell = startMailbell(writeConfig(yaml, dir), yaml);
  await waitUntilWatching(mailbell.logger, (o.mailboxes ?? ["INBOX"]).length);
  return { ...mailbell, dir };
}

const receipt = (subject: string) => buildMail({ from: "shop@example.com", to: "x@example.com", subject, text: "Total: 480 JPY\r\n" });
const other = (subject: string) => buildMail({ from: "friend@example.com", to: "x@example.com", subject, text: "hi\r\n" });
const posts = (hook: string): WebhookBody[] => receiver.requests.filter((r) => r.path === hook && r.reply.status < 300).map((r) => r.json as WebhookBody);

/** Subjects and flags of the mail in a mailbox, as another client sees them. */
async function mailIn(user: string, mailbox: string): Promise<{ subject: string; flags: string[] }[]> {
  return dovecot.withClient(user, async (c) => {
    const lock = await c.getMailboxLock(mailbox, { readOnly: true });
    try {
      const out: { subject: string; flags: string[] }[] = [];
      for await (const m of c.fetch("1:*", { envelope: true, flags: true })) out.push({ subject: m.envelope?.subject ?? "", flags: [...(m.flags ?? [])].filter((f) => f !== "\\Recent").sort() });
      return out;
    } finally {
      lock.release();
    }
  });
}

async function until<T>(what: string, probe: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function metricsOf(mailbell: RunningMailbell): Promise<string> {
  const url = String((await mailbell.logger.waitFor(/status server listening/)).fields.address);
  return (await fetch(`${url}/metrics`)).text();
}

describe("rules' actions on mail (then:)", () => {
  it("marks read, flags and moves a matched mail after posting it; other mail stays unread where it is", async () => {
    const user = await newUser();
    // A keepalive far longer than the test: the actions must follow the round, not the next keepalive.
    const mailbell = await watch({ user, hook: "/each", then: `{ seen: true, flag: ["$Notified", "\\\\Flagged"], move: Receipts }`, watch: { keepaliveSeconds: 600 } });
    try {
      await dovecot.createMailbox(user, "Receipts");
      await dovecot.append(user, "INBOX", other("hello"));
      await dovecot.append(user, "INBOX", receipt("receipt 1"));
      const filed = await until("the receipt in Receipts", () => mailIn(user, "Receipts"), (m) => m.length === 1);
      assert.deepEqual(filed, [{ subject: "receipt 1", flags: ["$Notified", "\\Flagged", "\\Seen"] }]);
      // Opened read-write, yet reading takes no \Seen (BODY.PEEK): the mail no rule acts on is untouched.
      assert.deepEqual(await mailIn(user, "INBOX"), [{ subject: "hello", flags: [] }]);
      assert.deepEqual(
        posts("/each").map((p) => p.subject),
        ["receipt 1"],
      );
      assert.match(await metricsOf(mailbell), /mailbell_mail_actions_total\{account="act\d+",mailbox="INBOX",result="done"\} 1/);
    } finally {
      await mailbell.stop();
    }
  });

  it("a mail moved into a folder mailbell also watches is posted once and acted on once", async () => {
    const user = await newUser();
    const mailbell = await watch({ user, hook: "/watched", mailboxes: ["INBOX", "Receipts"], then: `{ flag: $Notified, move: Receipts }` });
    try {
      await dovecot.append(user, "INBOX", receipt("receipt 2"));
      await until("the receipt in Receipts", () => mailIn(user, "Receipts"), (m) => m.length === 1);
      await mailbell.logger.waitFor(/already acted on/);
      await dovecot.append(user, "INBOX", receipt("receipt 3"));
      await until("both receipts in Receipts", () => mailIn(user, "Receipts"), (m) => m.length === 2);
      await until("both moved copies read in Receipts", async () => mailbell.logger.find(/already acted on/).length, (n) => n === 2);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(
        posts("/watched").map((p) => p.subject),
        ["receipt 2", "receipt 3"],
      );
      assert.equal(mailbell.logger.find(/already notified/).length, 2, "the moved copies were recognised, not posted again");
      assert.equal(mailbell.logger.find(/^could not/).length, 0);
    } finally {
      await mailbell.stop();
    }
  });

  it("a missing folder: refused with the server's reason, counted, retried, and done once the folder exists; watching goes on", async () => {
    const user = await newUser();
    const mailbell = await watch({ user, hook: "/missing", then: `{ move: "Receipts/2026" }` });
    try {
      await dovecot.append(user, "INBOX", receipt("receipt 4"));
      const refused = await mailbell.logger.waitFor(/^could not move mail to Receipts\/2026/, 10_000, "warn");
      assert.match(String(refused.fields.reason), /folder "Receipts\/2026" does not exist \(the server said: \[TRYCREATE\]/);
      await mailbell.logger.waitFor(/^could not move/, 5_000, "warn").then(() => until("a second refusal", async () => mailbell.logger.find(/^could not move/).length, (n) => n >= 2));
      assert.match(await metricsOf(mailbell), /mailbell_mail_action_refusals_total\{account="act\d+",mailbox="INBOX",action="move"\} [2-9]/);
      // Watching went on: the next mail is posted.
      await dovecot.append(user, "INBOX", other("unrelated"));
      await dovecot.append(user, "INBOX", receipt("receipt 5"));
      await receiver.waitFor((r) => r.path === "/missing" && (r.json as WebhookBody).subject === "receipt 5", 10_000);
      await dovecot.createMailbox(user, "Receipts/2026");
      const filed = await until("both receipts filed", () => mailIn(user, "Receipts/2026"), (m) => m.length === 2);
      assert.deepEqual(filed.map((m) => m.subject).sort(), ["receipt 4", "receipt 5"]);
      assert.deepEqual(await mailIn(user, "INBOX"), [{ subject: "unrelated", flags: [] }]);
      assert.deepEqual(posts("/missing").map((p) => p.subject), ["receipt 4", "receipt 5"]);
    } finally {
      await mailbell.stop();
    }
  });

  it("a read-only mailbox: the actions are refused and reported, the mail is posted and watching goes on", async () => {
    const user = await newUser();
    const first = await watch({ user, hook: "/frozen", mailboxes: ["Frozen"], then: "{ seen: true }" });
    await first.stop(); // the checkpoint is set; what comes now waits for the next start
    await dovecot.append(user, "Frozen", receipt("receipt 6"));
    await dovecot.readOnlyMailbox(user, "Frozen");
    const yaml = configYaml({ user, hook: "/frozen", mailboxes: ["Frozen"], then: "{ seen: true }" }, first.dir);
    const mailbell = startMailbell(writeConfig(yaml, first.dir), yaml);
    try {
      await mailbell.logger.waitFor(/the server opened this mailbox read-only/, 10_000, "warn");
      const refused = await mailbell.logger.waitFor(/^could not mark mail read/, 10_000, "warn");
      assert.match(String(refused.fields.reason), /read-only/);
      await receiver.waitFor((r) => r.path === "/frozen", 10_000);
      assert.deepEqual(await mailIn(user, "Frozen"), [{ subject: "receipt 6", flags: [] }]);
      assert.match(await metricsOf(mailbell), /mailbell_mail_action_refusals_total\{account="act\d+",mailbox="Frozen",action="seen"\} [1-9]/);
      assert.match(await metricsOf(mailbell), /mailbell_mailbox_up\{account="act\d+",mailbox="Frozen"\} 1/);
    } finally {
      await mailbell.stop();
    }
  });

  it("opens read-write (SELECT) only the mailboxes where a rule acts, the others read-only (EXAMINE)", async () => {
    const user = await newUser();
    await dovecot.createMailbox(user, "Quiet");
    await using proxy = await startImapProxy({ port: dovecot.imapPort });
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-actions-"));
    // The sessions' open mode; a quiet mailbox's lean connection only ever EXAMINEs.
    const yaml = configYaml({ user, hook: "/rw", mailboxes: ["INBOX", "Quiet"], then: "{ seen: true }", watch: { quietConnection: "imapflow" } }, dir, proxy.port).replace("match: { from: shop@example.com }", "match: { from: shop@example.com, mailbox: INBOX }");
    const mailbell = startMailbell(writeConfig(yaml, dir), yaml);
    try {
      await waitUntilWatching(mailbell.logger, 2);
      const opens = proxy.commands.filter((c) => c.name === "SELECT" || c.name === "EXAMINE").map((c) => `${c.name} ${c.args.replace(/ \(.*$/, "")}`);
      assert.ok(opens.includes("SELECT INBOX"), JSON.stringify(opens));
      assert.ok(opens.includes('EXAMINE Quiet') || opens.includes('EXAMINE "Quiet"'), JSON.stringify(opens));
      assert.ok(!opens.some((o) => /^SELECT "?Quiet/.test(o)), JSON.stringify(opens));
    } finally {
      await mailbell.stop();
    }
  });

  it("actions waiting when the server renumbers the mailbox are done on the mail read again under its new UID, which is not posted again", async () => {
    const user = await newUser();
    await dovecot.createMailbox(user, "Renum");
    // The refused move waits a minute for its retry: not due when mailbell starts again, yet forgotten.
    const setup = { user, hook: "/renum", mailboxes: ["Renum"], then: "{ move: Later }", watch: { actionRetrySeconds: 60, actionRetryMaxSeconds: 60 } };
    const first = await watch(setup);
    const mail = receipt("receipt 11");
    await dovecot.append(user, "Renum", mail);
    await first.logger.waitFor(/^could not move mail to Later/, 10_000, "warn");
    await first.stop();
    await dovecot.deleteMailbox(user, "Renum");
    await dovecot.append(user, "Renum", mail);
    await dovecot.createMailbox(user, "Later");
    const yaml = configYaml(setup, first.dir);
    const mailbell = startMailbell(writeConfig(yaml, first.dir), yaml);
    try {
      await mailbell.logger.waitFor(/waiting from before the server renumbered/, 10_000, "warn");
      await until("the mail moved under its new UID", () => mailIn(user, "Later"), (m) => m.length === 1);
      await mailbell.logger.waitFor(/^already notified; not again$/, 5_000, "info");
      assert.deepEqual(posts("/renum").map((p) => p.subject), ["receipt 11"]);
    } finally {
      await mailbell.stop();
    }
  });

  it("killed between the commit and the action: after the restart the action is done and the mail was posted once", async () => {
    const user = await newUser();
    await dovecot.createMailbox(user, "Receipts");
    // The proxy swallows the first run's UID MOVE: the daemon sits between its commit and the action.
    let held = false;
    const holdMove: ImapRule = { name: "holdMove", onCommand: (command) => (!held && command.name === "UID MOVE" ? ((held = true), { drop: true }) : undefined) };
    await using proxy = await startImapProxy({ port: dovecot.imapPort, rules: [holdMove] });
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-actions-"));
    const file = writeConfig(configYaml({ user, hook: "/crash", then: "{ seen: true, move: Receipts }" }, dir, proxy.port), dir);
    const firstRun = spawnMailbell(file);
    await firstRun.waitForLog(/"msg":"watching"/);
    await dovecot.append(user, "INBOX", receipt("receipt 7"));
    await until("the move held", async () => held, (h) => h);
    await receiver.waitFor((r) => r.path === "/crash", 10_000);
    await new Promise((r) => setTimeout(r, 300)); // the delivered row's commit
    firstRun.child.kill("SIGKILL");
    assert.equal(await firstRun.exited, null);
    assert.deepEqual(await mailIn(user, "INBOX"), [{ subject: "receipt 7", flags: ["\\Seen"] }], "flagged, not yet moved, when killed");

    const second = spawnMailbell(file);
    try {
      await until("the receipt moved", () => mailIn(user, "Receipts"), (m) => m.length === 1);
      await dovecot.append(user, "INBOX", receipt("receipt 8"));
      await until("the next receipt moved too", () => mailIn(user, "Receipts"), (m) => m.length === 2);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(posts("/crash").map((p) => p.subject), ["receipt 7", "receipt 8"]);
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
    }
  });
});

describe("an action that breaks the connection every time", () => {
  it("waits like a refused one after two broken sessions, so new mail is still read and the mailbox watched; done once the server mends", async () => {
    const user = await newUser();
    await dovecot.createMailbox(user, "Receipts");
    const closeAtMove: ImapRule = { name: "closeAtMove", onCommand: (command) => (command.name === "UID MOVE" ? { drop: true, then: "close" } : undefined) };
    await using proxy = await startImapProxy({ port: dovecot.imapPort, rules: [closeAtMove] });
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-actions-"));
    const yaml = configYaml({ user, hook: "/breaks", then: "{ move: Receipts }", watch: { actionRetrySeconds: 3, actionRetryMaxSeconds: 3 } }, dir, proxy.port);
    const mailbell = startMailbell(writeConfig(yaml, dir), yaml);
    try {
      await waitUntilWatching(mailbell.logger);
      await dovecot.append(user, "INBOX", receipt("receipt 9"));
      const waiting = await mailbell.logger.waitFor(/^could not move mail to Receipts/, 15_000, "warn");
      assert.match(String(waiting.fields.reason), /the connection broke each of the last 2 times this was tried/);
      assert.equal(new Set(proxy.applied.filter((a) => a.rule === "closeAtMove").map((a) => a.session)).size, 2, "two sessions broke on it, then it waited");
      // Meanwhile the mailbox goes on: the next mail is read and posted.
      await dovecot.append(user, "INBOX", other("unrelated"));
      await dovecot.append(user, "INBOX", receipt("receipt 10"));
      await receiver.waitFor((r) => r.path === "/breaks" && (r.json as WebhookBody).subject === "receipt 10", 10_000);
      proxy.setRules([]);
      const filed = await until("both receipts moved once the server mends", () => mailIn(user, "Receipts"), (m) => m.length === 2, 15_000);
      assert.deepEqual(filed.map((m) => m.subject).sort(), ["receipt 10", "receipt 9"]);
      assert.deepEqual(posts("/breaks").map((p) => p.subject), ["receipt 9", "receipt 10"]);
    } finally {
      await mailbell.stop();
    }
  });
});

describe("applyActions on a live connection", () => {
  const labels: MailActions = { seen: false, flags: [], labels: ["Receipts"], move: undefined };

  /** A client on `port` with `user`'s INBOX selected read-write and one mail in it; returns its UID. */
  async function selected(user: string, port: number): Promise<{ client: ImapFlow; uid: number }> {
    const uid = await dovecot.append(user, "INBOX", receipt("labelled"));
    const client = new ImapFlow({ ...dovecot.clientOptions(user, "plain"), port });
    await client.connect();
    await client.mailboxOpen("INBOX");
    return { client, uid };
  }

  it("labels only where the server offers Gmail's extension (X-GM-EXT-1), else refuses with the reason", async () => {
    const user = await newUser();
    const plain = await selected(user, dovecot.imapPort);
    try {
      assert.deepEqual(await applyActions(plain.client, [plain.uid], labels), { action: "label", reason: "the server does not offer Gmail's labels (X-GM-EXT-1)" });
    } finally {
      await plain.client.logout();
    }
    // Dovecot with Gmail's extension as far as the client can tell: labels stored as keywords.
    const gmailLike: ImapRule = {
      name: "gmailLike",
      onReply: (reply) => (/CAPABILITY /i.test(reply.line) && reply.complete ? { replace: reply.text.replace(/(CAPABILITY [^\]\r\n]*)/i, "$1 X-GM-EXT-1") } : undefined),
      onCommand: (command) => (command.name === "UID STORE" && command.args.includes("X-GM-LABELS") ? { replace: `${command.tag} UID STORE ${command.args.replace("X-GM-LABELS", "FLAGS")}\r\n` } : undefined),
    };
    await using proxy = await startImapProxy({ port: dovecot.imapPort, rules: [gmailLike] });
    const gmail = await selected(user, proxy.port);
    try {
      assert.equal(await applyActions(gmail.client, [gmail.uid], labels), undefined);
      assert.ok(proxy.commands.some((c) => c.name === "UID STORE" && /\+X-GM-LABELS \(Receipts\)/.test(c.args)), JSON.stringify(proxy.commands.map((c) => `${c.name} ${c.args}`)));
    } finally {
      await gmail.client.logout();
    }
    const flags = (await mailIn(user, "INBOX")).map((m) => m.flags);
    assert.deepEqual(flags, [[], ["Receipts"]]);
  });

  it("a server without MOVE: the move is refused rather than copied and deleted, which could leave copies behind", async () => {
    const user = await newUser();
    const noMove: ImapRule = { name: "noMove", onReply: (reply) => (/CAPABILITY /i.test(reply.line) && reply.complete ? { replace: reply.text.replace(/ MOVE\b/gi, "") } : undefined) };
    await using proxy = await startImapProxy({ port: dovecot.imapPort, rules: [noMove] });
    const { client, uid } = await selected(user, proxy.port);
    try {
      const refused = await applyActions(client, [uid], { seen: false, flags: [], labels: [], move: "Archive" });
      assert.equal(refused?.action, "move");
      assert.match(refused!.reason, /does not offer MOVE \(RFC 6851\)/);
      assert.ok(!proxy.commands.some((c) => /COPY|EXPUNGE|STORE/.test(c.name)), "nothing was copied, marked or expunged");
    } finally {
      await client.logout();
    }
  });
});
