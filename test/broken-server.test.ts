/**
 * What a broken (or merely unusual) server does to mailbell, each reproduced with the line-aware
 * proxy in front of the real Dovecot altering exactly one kind of reply: mailbell must never get
 * stuck, never skip mail without a warning, never hold more than it chose to read, and say so in
 * /healthz and its metrics. Every test counts posts at a local receiver.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import type { Readable } from "node:stream";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { StateError } from "../src/errors.ts";
import type { WatchEvent } from "../src/imap/watcher.ts";
import { MemoryCheckpoints, watchMailbox } from "../src/index.ts";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { runCli } from "./support/cli.ts";
import { startMailbell, writeConfig, type RunningMailbell } from "./support/daemon.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import {
  closeAtIdle,
  dropUidNext,
  edit,
  endlessLineFor,
  hugeLiteralFor,
  missingFromFetch,
  renumberEachSession,
  startImapProxy,
  unparsableBodystructureFor,
  wrongUidFor,
  type ImapProxy,
  type ImapRule,
} from "./support/imap-proxy.ts";
import { buildMail } from "./support/mail.ts";
import { spawnMailbell } from "./support/process.ts";
import { startReceiver, type ReceivedRequest, type Receiver } from "./support/receiver.ts";

let dovecot: Dovecot;
let receiver: Receiver;

before(async () => {
  [dovecot, receiver] = await Promise.all([startDovecot(), startReceiver()]);
});
after(async () => {
  await Promise.all([dovecot?.dispose(), receiver?.close()]);
});

interface Setup {
  user: string;
  rules: ImapRule[];
  path: string;
  watch?: Record<string, unknown>;
  status?: boolean;
  account?: string;
  mailbox?: string;
  /** The state folder of an earlier start, to start again where it stopped. */
  dir?: string;
}

/** mailbell through a proxy with `rules`, posting every mail to the receiver under `path`. */
async function start(o: Setup): Promise<{ mailbell: RunningMailbell; proxy: ImapProxy; file: string; dir: string; healthz: () => Promise<{ status: number; body: HealthBody }> }> {
  await dovecot.addUser(o.user, `${o.user}pw`);
  const proxy = await startImapProxy({ port: dovecot.imapPort, rules: o.rules });
  const dir = o.dir ?? mkdtempSync(path.join(tmpdir(), "mailbell-broken-"));
  const yaml = `state: ${dir}/state.db
watch: ${JSON.stringify({ reconnectMaxSeconds: 1, backlogLimit: 100000, keepaliveSeconds: 2, ...o.watch })}
outbox: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2, drainSeconds: 5 }
${o.status ? "status: { listen: 0, reconnectBudgetSeconds: 1.5 }\n" : ""}accounts:
  - { name: ${o.user}, host: 127.0.0.1, port: ${proxy.port}, tls: none, user: ${o.user}, pass: ${o.user}pw, mailboxes: [${o.mailbox ?? "INBOX"}], ${o.account ?? "readerConnections: false"} }
targets:
  - { name: hook, type: webhook, url: "${receiver.url(o.path)}", rateLimit: { perSecond: 1000, burst: 1000 } }
  - { name: ops, type: webhook, url: "${receiver.url(`${o.path}/ops`)}" }
rules:
  - { name: all, notify: [hook], template: "{{subject}}" }
`;
  const file = writeConfig(yaml, dir);
  let mailbell: RunningMailbell;
  try {
    mailbell = startMailbell(file, yaml);
  } catch (err) {
    await proxy.close();
    throw err;
  }
  const healthz = async () => {
    const url = String((await mailbell.logger.waitFor(/status server listening/)).fields.address);
    const res = await fetch(`${url}/healthz`);
    return { status: res.status, body: (await res.json()) as HealthBody };
  };
  return { mailbell, proxy, file, dir, healthz };
}

interface HealthBody {
  healthy: boolean;
  mailboxes: { state: string; connected: boolean; reason?: string }[];
}

const posts = (p: string): ReceivedRequest[] => receiver.requests.filter((r) => r.path === p && r.reply.status >= 200 && r.reply.status < 300);
const subjects = (p: string): string[] => posts(p).map((r) => (r.json as WebhookBody).subject);

function mail(subject: string, extra: { headers?: Record<string, string> } = {}): string {
  return buildMail({ from: "shop@example.com", to: "x@example.com", subject, text: `${subject} body`, messageId: `${subject.replace(/\W/g, "-")}@broken.test`, ...extra });
}

async function waitForSubjects(p: string, expected: string[], timeoutMs = 20_000): Promise<void> {
  await receiver.waitFor(() => expected.every((s) => subjects(p).includes(s)), timeoutMs).catch(() => {
    throw new Error(`expected posts ${JSON.stringify(expected)} at ${p}, got ${JSON.stringify(subjects(p))}`);
  });
}

async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`not done within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("a server without UIDNEXT on EXAMINE (Courier)", () => {
  it("starts watching on a first start and posts the mail that comes", async () => {
    await dovecot.addUser("uidnext1", "uidnext1pw");
    await dovecot.append("uidnext1", "INBOX", mail("before the start"));
    const { mailbell, proxy } = await start({ user: "uidnext1", rules: [dropUidNext()], path: "/uidnext-first" });
    try {
      await mailbell.logger.waitFor(/^watching$/, 10_000);
      assert.ok(proxy.applied.some((a) => a.rule === "dropUidNext"), "the proxy did drop UIDNEXT");
      await dovecot.append("uidnext1", "INBOX", mail("after the start"));
      await waitForSubjects("/uidnext-first", ["after the start"]);
      assert.deepEqual(subjects("/uidnext-first"), ["after the start"], "mail from before the first start is not announced");
      assert.equal(mailbell.logger.find(/disconnected; reconnecting/).length, 0);
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });

  it("recovers from a UIDVALIDITY change without UIDNEXT: no mail lost, none posted twice", async () => {
    await dovecot.addUser("uidnext2", "uidnext2pw");
    await dovecot.createMailbox("uidnext2", "Receipts");
    const one = mail("one");
    const first = await start({ user: "uidnext2", rules: [dropUidNext()], path: "/uidnext-renumber", mailbox: "Receipts" });
    try {
      await first.mailbell.logger.waitFor(/^watching$/, 10_000);
      await dovecot.append("uidnext2", "Receipts", one);
      await waitForSubjects("/uidnext-renumber", ["one"]);
    } finally {
      await first.mailbell.stop();
      await first.proxy.close();
    }
    // Deleted and made again: a new UIDVALIDITY, with "one" back and "two" new.
    await dovecot.deleteMailbox("uidnext2", "Receipts");
    await dovecot.append("uidnext2", "Receipts", one);
    await dovecot.append("uidnext2", "Receipts", mail("two"));
    const again = await start({ user: "uidnext2", rules: [dropUidNext()], path: "/uidnext-renumber", mailbox: "Receipts", dir: first.dir });
    try {
      await again.mailbell.logger.waitFor(/UIDVALIDITY changed/, 10_000);
      await again.mailbell.logger.waitFor(/^watching$/, 10_000);
      await waitForSubjects("/uidnext-renumber", ["one", "two"]);
      await dovecot.append("uidnext2", "Receipts", mail("three"));
      await waitForSubjects("/uidnext-renumber", ["one", "two", "three"]);
      assert.deepEqual(subjects("/uidnext-renumber").sort(), ["one", "three", "two"], "each once");
      assert.equal(again.mailbell.logger.find(/disconnected; reconnecting/).length, 0, "no reconnect loop");
    } finally {
      await again.mailbell.stop();
      await again.proxy.close();
    }
  });
});

describe("sessions that keep failing", () => {
  it("/healthz is 503 within the budget and stays so while every session is dropped at IDLE", async () => {
    const { mailbell, proxy, healthz } = await start({ user: "flappy", rules: [closeAtIdle()], path: "/flappy", status: true });
    try {
      await mailbell.logger.waitFor(/^watching$/, 10_000);
      await new Promise((r) => setTimeout(r, 2500));
      const seen: number[] = [];
      for (let i = 0; i < 12; i++) {
        seen.push((await healthz()).status);
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.ok(proxy.sessions >= 3, `sessions kept being dropped (${proxy.sessions})`);
      assert.deepEqual(new Set(seen), new Set([503]), `every look at /healthz said 503: ${seen.join(" ")}`);
      const { body } = await healthz();
      assert.match(body.mailboxes[0]!.reason!, /not been watching|sessions keep failing/);
      // The server is mended: one session that stays up makes it healthy again after the settle time.
      proxy.setRules([]);
      const deadline = Date.now() + 15_000;
      while ((await healthz()).status !== 200) {
        assert.ok(Date.now() < deadline, "healthy again once a session stays up");
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });
});

describe("errors that are not the network's", () => {
  it("a checkpoint store that fails ends the watch with a StateError instead of reconnecting forever", async () => {
    await dovecot.addUser("dbfail", "dbfailpw");
    const events: WatchEvent["type"][] = [];
    const watch = watchMailbox({
      account: { name: "dbfail", host: "127.0.0.1", port: dovecot.imapsPort, ca: dovecot.ca, user: "dbfail", pass: "dbfailpw" },
      mailbox: "INBOX",
      checkpoints: {
        load: () => undefined,
        save: () => {
          throw new Error("disk I/O error");
        },
      },
      onEvent: (e) => events.push(e.type),
    });
    await assert.rejects(watch.next(), (err: unknown) => {
      assert.ok(err instanceof StateError, String(err));
      assert.match(err.message, /could not save the checkpoint for account "dbfail" mailbox "INBOX": the checkpoint store \(Object\) failed: disk I\/O error\. The watcher has stopped/);
      return true;
    });
    assert.ok(!events.includes("disconnected"), "not taken for a dropped connection");
  });
});

describe("one mail that cannot be read", () => {
  const cases: { name: string; user: string; rule: (uid: number) => ImapRule; reason: RegExp; announce?: boolean; retryWhileBroken?: boolean }[] = [
    { name: "a 2 GB literal declared for it", user: "huge", rule: (uid) => hugeLiteralFor(uid, 2 * 2 ** 30, { items: /^BODY\[HEADER\]/ }), reason: /Literal size 2147483648 exceeds/, retryWhileBroken: true },
    { name: "an endless line", user: "endless", rule: (uid) => endlessLineFor(uid, { items: /^BODY\[HEADER\]/, maxMs: 20_000 }), reason: /Line length \d+ exceeds|Response size/ },
    { name: "a FETCH that leaves it out though it is there", user: "missing", rule: (uid) => missingFromFetch(uid), reason: /did not return it .* still there/, announce: true },
  ];
  for (const c of cases) {
    it(`${c.name}: is set aside after 3 tries, the mail after it is posted, and it can be listed and read again`, async () => {
      await dovecot.addUser(c.user, `${c.user}pw`);
      const p = `/unreadable-${c.user}`;
      // UIDs 1..3: the second is the broken one.
      const { mailbell, proxy, file } = await start({ user: c.user, rules: [], path: p, status: true, watch: { maxReadAttempts: 3, ...(c.announce ? { announceUnreadable: ["ops"] } : {}) } });
      try {
        await mailbell.logger.waitFor(/^watching$/, 10_000);
        proxy.setRules([c.rule(2)]);
        const rssBefore = process.memoryUsage().rss;
        await dovecot.append(c.user, "INBOX", mail(`${c.user} first`));
        await dovecot.append(c.user, "INBOX", mail(`${c.user} broken`));
        await dovecot.append(c.user, "INBOX", mail(`${c.user} after`));
        await waitForSubjects(p, [`${c.user} first`, `${c.user} after`], 40_000);
        assert.ok(!subjects(p).includes(`${c.user} broken`));
        const setAside = mailbell.logger.find(/could not be read after 3 attempts; set aside/, "error");
        assert.equal(setAside.length, 1);
        assert.equal(setAside[0]!.fields.uid, 2);
        assert.match(String(setAside[0]!.fields.reason), c.reason);
        assert.ok(process.memoryUsage().rss - rssBefore < 100 * 2 ** 20, `RSS grew by ${Math.round((process.memoryUsage().rss - rssBefore) / 2 ** 20)} MiB`);
        const url = String((await mailbell.logger.waitFor(/status server listening/)).fields.address);
        assert.match(await (await fetch(`${url}/metrics`)).text(), new RegExp(`^mailbell_mails_set_aside_total\\{account="${c.user}",mailbox="INBOX"\\} 1$`, "m"));

        const listed = await runCli(["unreadable", "--config", file]);
        assert.equal(listed.code, 0);
        assert.match(listed.out, new RegExp(`${c.user}/INBOX UID 2 \\(UIDVALIDITY \\d+\\): 3 failed read\\(s\\)`));

        if (c.retryWhileBroken) {
          // Asked to read it again while it still breaks the connection: tried once, not by every
          // new session, and the mail after it still flows.
          const tries = proxy.applied.length;
          assert.equal((await runCli(["unreadable", "retry", "2", "--config", file])).code, 0);
          await until(() => proxy.applied.length > tries, 10_000);
          await dovecot.append(c.user, "INBOX", mail(`${c.user} after the retry`));
          await waitForSubjects(p, [`${c.user} after the retry`], 20_000);
          assert.match((await runCli(["unreadable", "--config", file])).out, /UID 2 .*set aside/);
          assert.equal(proxy.applied.length, tries + 1, "one try");
        }
        // Mended: asked to read it again, the running daemon posts it at its next keepalive.
        proxy.setRules([]);
        assert.equal((await runCli(["unreadable", "retry", "2", "--config", file])).code, 0);
        await waitForSubjects(p, [`${c.user} broken`], 15_000);
        assert.match((await runCli(["unreadable", "--config", file])).out, /^0 mail\(s\) set aside/);
        assert.equal(subjects(p).length, c.retryWhileBroken ? 4 : 3, "each mail once");
        if (c.announce) {
          const told = posts(`${p}/ops`);
          assert.equal(told.length, 1, "watch.announceUnreadable: told once");
          assert.match((told[0]!.json as WebhookBody).text, new RegExp(`^1 mail could not be read in ${c.user}/INBOX \\(UID 2\\) after 3 attempts: .*mailbell unreadable`));
        }
      } finally {
        await mailbell.stop();
        await proxy.close();
      }
    });
  }
});

describe("mail skipped without a word", () => {
  it("a BODYSTRUCTURE that cannot be parsed: the mail is read from its header, with a warning, not taken as expunged", async () => {
    const { mailbell, proxy } = await start({ user: "badstruct", rules: [], path: "/badstruct" });
    try {
      await mailbell.logger.waitFor(/^watching$/, 10_000);
      proxy.setRules([unparsableBodystructureFor(1)]);
      await dovecot.append("badstruct", "INBOX", mail("odd structure"));
      await waitForSubjects("/badstruct", ["odd structure"]);
      assert.ok(proxy.applied.some((a) => a.rule === "unparsableBodystructureFor"));
      const warned = mailbell.logger.find(/message read with warnings/, "warn");
      assert.ok(warned.some((w) => /BODYSTRUCTURE for UID 1 could not be read; only the header was read/.test(JSON.stringify(w.fields.warnings))));
      assert.equal(mailbell.logger.find(/expunged or moved/).length, 0);
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });

  it("a FETCH that answers another UID than asked (1000 for 2) never moves the checkpoint past mail not seen", async () => {
    await dovecot.addUser("wronguid", "wronguidpw");
    const { mailbell, proxy } = await start({ user: "wronguid", rules: [], path: "/wronguid", account: "readerConnections: true, maxConnections: 4" });
    try {
      await mailbell.logger.waitFor(/^watching$/, 10_000);
      proxy.setRules([wrongUidFor(2, 1000)]);
      for (let i = 1; i <= 6; i++) await dovecot.append("wronguid", "INBOX", mail(`wrong ${i}`));
      await waitForSubjects("/wronguid", ["wrong 1", "wrong 3", "wrong 4", "wrong 5", "wrong 6"], 30_000);
      assert.ok(mailbell.logger.find(/answered FETCH for UIDs that were not asked for/, "warn").length >= 1);
      assert.equal(mailbell.logger.find(/could not be read after 3 attempts; set aside/, "error")[0]?.fields.uid, 2);
      await dovecot.append("wronguid", "INBOX", mail("wrong 7"));
      await waitForSubjects("/wronguid", ["wrong 7"]);
      assert.equal(new Set(subjects("/wronguid")).size, subjects("/wronguid").length, "none twice");
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });
});

describe("servers that refuse, throttle or break at the worst moment (from review)", () => {
  const refuseSearch = (args: RegExp): ImapRule => ({
    name: "refuseSearch",
    onCommand: (c) => (c.name === "UID SEARCH" && args.test(c.args.trim()) ? { drop: true, inject: `${c.tag} NO [SERVERBUG] Internal error\r\n` } : undefined),
  });

  it("a mail that breaks the connection during a UIDVALIDITY recovery is set aside; the mailbox goes on", async () => {
    await dovecot.addUser("recover", "recoverpw");
    await dovecot.createMailbox("recover", "Receipts");
    const one = mail("r one");
    const first = await start({ user: "recover", rules: [], path: "/recover", mailbox: "Receipts" });
    try {
      await first.mailbell.logger.waitFor(/^watching$/, 10_000);
      await dovecot.append("recover", "Receipts", one);
      await waitForSubjects("/recover", ["r one"]);
    } finally {
      await first.mailbell.stop();
      await first.proxy.close();
    }
    await dovecot.deleteMailbox("recover", "Receipts");
    for (const raw of [one, mail("r broken"), mail("r two")]) await dovecot.append("recover", "Receipts", raw);
    const again = await start({ user: "recover", rules: [hugeLiteralFor(2, 2 * 2 ** 30, { items: /^BODY\[HEADER\]/ })], path: "/recover", mailbox: "Receipts", dir: first.dir });
    try {
      await again.mailbell.logger.waitFor(/UIDVALIDITY changed/, 10_000);
      await waitForSubjects("/recover", ["r two"], 30_000);
      await dovecot.append("recover", "Receipts", mail("r three"));
      await waitForSubjects("/recover", ["r three"], 20_000);
      assert.equal(again.mailbell.logger.find(/could not be read after 3 attempts; set aside/, "error")[0]?.fields.uid, 2);
      assert.deepEqual(subjects("/recover").sort(), ["r one", "r three", "r two"]);
    } finally {
      await again.mailbell.stop();
      await again.proxy.close();
    }
  });

  it("a mail left out whose UID SEARCH is refused is not taken as gone: it is set aside, never skipped", async () => {
    const { mailbell, proxy } = await start({ user: "unconfirmed", rules: [], path: "/unconfirmed" });
    try {
      await mailbell.logger.waitFor(/^watching$/, 10_000);
      proxy.setRules([missingFromFetch(2), refuseSearch(/^UID 2$/i)]);
      for (const subject of ["u first", "u broken", "u after"]) await dovecot.append("unconfirmed", "INBOX", mail(subject));
      await waitForSubjects("/unconfirmed", ["u first", "u after"], 30_000);
      assert.equal(mailbell.logger.find(/expunged or moved/).length, 0);
      assert.equal(mailbell.logger.find(/could not be read after 3 attempts; set aside/, "error")[0]?.fields.uid, 2);
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });

  it("a server that throttles with BYE on FETCH: no mail is blamed, and it is posted once the server lets it", async () => {
    let left = 4;
    const byeOnFetch: ImapRule = {
      name: "byeOnFetch",
      onCommand: (c) => (c.name === "UID FETCH" && left-- > 0 ? { drop: true, inject: "* BYE [UNAVAILABLE] Account exceeded command or bandwidth limits\r\n", then: "close" } : undefined),
    };
    const { mailbell, proxy } = await start({ user: "throttled", rules: [], path: "/throttled" });
    try {
      await mailbell.logger.waitFor(/^watching$/, 10_000);
      proxy.setRules([byeOnFetch]);
      await dovecot.append("throttled", "INBOX", mail("t healthy"));
      await waitForSubjects("/throttled", ["t healthy"], 30_000);
      assert.equal(mailbell.logger.find(/set aside/).length, 0, "not set aside");
      assert.ok(mailbell.logger.find(/ended the session for all mail/, "warn").some((e) => /bandwidth limits/.test(String(e.fields.err))), "the BYE text is the reason");
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });

  it("a server that refuses every UID SEARCH is reported at error and fails /healthz, not taken for 'no new mail'", async () => {
    const { mailbell, proxy, healthz } = await start({ user: "nosearch", rules: [], path: "/nosearch", status: true });
    try {
      await mailbell.logger.waitFor(/^watching$/, 10_000);
      proxy.setRules([refuseSearch(/./)]);
      await dovecot.append("nosearch", "INBOX", mail("s one"));
      const said = await mailbell.logger.waitFor(/the server's answer cannot be used/, 10_000, "error");
      assert.match(String(said.fields.err), /refused UID SEARCH for new mail/);
      const deadline = Date.now() + 10_000;
      while ((await healthz()).status !== 503) {
        assert.ok(Date.now() < deadline, "/healthz says 503 once the budget is used up");
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.match((await healthz()).body.mailboxes[0]!.reason!, /refused UID SEARCH/);
      proxy.setRules([]);
      await waitForSubjects("/nosearch", ["s one"], 20_000);
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });
});

describe("a server that renumbers the mailbox on every connect", () => {
  // On the lean connection (the default) each wake-up is one more connection, so one more renumbering.
  for (const quietConnection of ["imapflow", "lean"] as const) {
  it(`${quietConnection}: posts each of 6 mails without a Message-ID once, through 3 renumberings`, async () => {
    const user = `renumber${quietConnection}`;
    const at = `/renumber-${quietConnection}`;
    const { mailbell, proxy } = await start({ user, rules: [renumberEachSession()], path: at, watch: { quietConnection } });
    try {
      await mailbell.logger.waitFor(/^watching$/, 10_000);
      const noId = (i: number) => mail(`no id ${i}`).replace(/^Message-ID: .*\r\n/im, "");
      assert.doesNotMatch(noId(1), /Message-ID/i);
      for (let round = 0; round < 3; round++) {
        await dovecot.append(user, "INBOX", noId(2 * round + 1));
        await dovecot.append(user, "INBOX", noId(2 * round + 2));
        await waitForSubjects(at, [`no id ${2 * round + 1}`, `no id ${2 * round + 2}`]);
        const watching = mailbell.logger.find(/^watching$/).length;
        proxy.dropAll();
        await until(() => mailbell.logger.find(/^watching$/).length > watching, 10_000);
      }
      await new Promise((r) => setTimeout(r, 500));
      const renumberings = mailbell.logger.find(/UIDVALIDITY changed/).length;
      if (quietConnection === "imapflow") assert.equal(renumberings, 3);
      else assert.ok(renumberings >= 3, `${renumberings} renumberings seen`);
      assert.deepEqual(subjects(at).sort(), [1, 2, 3, 4, 5, 6].map((i) => `no id ${i}`));
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });
  }
});

describe("a server that understates RFC822.SIZE", () => {
  it("mail read whole is fetched in groups bounded by what mailbell asks for, not by the sizes the server states; each mail read whole, once", async () => {
    const user = "smallsize";
    await dovecot.addUser(user, `${user}pw`);
    const count = 30;
    // ~100 KB each, stated as 100 bytes: grouped by the stated sizes, all 30 went in one FETCH asking up to 256 KiB of each.
    const raws = Array.from({ length: count }, (_, i) => buildMail({ from: "shop@example.com", to: "x@example.com", subject: `sized ${i + 1}`, text: `${"y".repeat(99)}\r\n`.repeat(1000), messageId: `sized-${i + 1}@broken.test` }));
    await dovecot.appendMany(user, "INBOX", raws);
    const status = await dovecot.withClient(user, (c) => c.status("INBOX", { uidValidity: true }));
    assert.ok(status && status.uidValidity !== undefined, "STATUS INBOX gives its UIDVALIDITY");
    const checkpoints = new MemoryCheckpoints();
    await checkpoints.save(user, "INBOX", { uidValidity: Number(status.uidValidity), lastUid: 0 });
    const realSize = new Map<number, number>();
    const asked: { uids: number; partial: number }[] = [];
    const understate: ImapRule = {
      name: "understate RFC822.SIZE",
      onCommand(c) {
        const partial = /BODY\.PEEK\[\]<0\.(\d+)>/.exec(c.args);
        if (c.name === "UID FETCH" && partial) asked.push({ uids: uidCount(c.args.split(" ")[0]!), partial: Number(partial[1]) });
        return undefined;
      },
      onReply(reply) {
        const item = reply.fetch?.items.find((i) => i.name === "RFC822.SIZE");
        if (!item || reply.fetch?.uid === undefined) return undefined;
        realSize.set(reply.fetch.uid, Number(item.value));
        return edit(reply, [[item, "100"]]);
      },
    };
    await using proxy = await startImapProxy({ port: dovecot.imapPort, rules: [understate] });
    const stop = new AbortController();
    const timeout = setTimeout(() => stop.abort(), 20_000);
    const wholeBytes: number[] = [];
    const got: number[] = [];
    try {
      const whole = {
        wanted: () => true,
        async read(content: Readable | Buffer) {
          wholeBytes.push(Buffer.isBuffer(content) ? content.length : (await content.toArray()).reduce((n: number, b: Buffer) => n + b.length, 0));
          return [];
        },
      };
      const account = { name: user, host: "127.0.0.1", port: proxy.port, tls: "none" as const, user, pass: `${user}pw` };
      for await (const m of watchMailbox({ account, mailbox: "INBOX", checkpoints, whole, signal: stop.signal })) {
        got.push(m.uid);
        if (got.length === count) stop.abort();
      }
    } finally {
      clearTimeout(timeout);
      stop.abort();
    }
    assert.deepEqual(got, Array.from({ length: count }, (_, i) => i + 1), "each mail once, in order");
    assert.ok(asked.length > 0, "small mail is still fetched in groups");
    for (const a of asked) assert.ok(a.uids * a.partial <= 2 * 2 ** 20, `a FETCH asked up to ${a.partial} bytes of each of ${a.uids} mails (${((a.uids * a.partial) / 2 ** 20).toFixed(1)} MiB)`);
    assert.deepEqual(wholeBytes, got.map((uid) => realSize.get(uid)), "each mail read whole, though bigger than the server said");
  });
});

/** How many UIDs a sequence set names ("1:3,7" is 4). */
function uidCount(set: string): number {
  return set.split(",").reduce((n, part) => {
    const [from, to] = part.split(":").map(Number);
    return n + (to === undefined ? 1 : Math.abs(to - from!) + 1);
  }, 0);
}

describe("headers are read up to a cap", () => {
  it("a mail with a 20 MB header line is read up to maxHeaderBytes, posted with a warning, and costs no more", async () => {
    await dovecot.addUser("bighead", "bigheadpw");
    const proxy = await startImapProxy({ port: dovecot.imapPort, rules: [] });
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-broken-"));
    const file = writeConfig(
      `state: ${dir}/state.db
log: { level: info }
accounts:
  - { name: bighead, host: 127.0.0.1, port: ${proxy.port}, tls: none, user: bighead, pass: bigheadpw, maxHeaderBytes: 65536, readerConnections: false }
targets:
  - { name: hook, type: webhook, url: "${receiver.url("/bighead")}" }
rules:
  - { name: all, notify: [hook], template: "{{subject}}" }
`,
      dir,
    );
    // A process of its own, so what is measured is mailbell's memory, not this test's 20 MB string.
    const mailbell = spawnMailbell(file);
    try {
      await mailbell.waitForLog(/"msg":"watching"/);
      const before = peakRss(mailbell.child.pid!);
      const huge = buildMail({ from: "shop@example.com", to: "x@example.com", subject: "big header", text: "x", messageId: "big-header@broken.test", headers: { "X-Huge": "a".repeat(20 * 2 ** 20) } });
      await dovecot.append("bighead", "INBOX", huge);
      await waitForSubjects("/bighead", ["big header"], 30_000);
      const warned = mailbell.entries().filter((e) => e.msg === "message read with warnings");
      assert.ok(warned.some((w) => /header is longer than 65536 bytes.*X-Huge/.test(JSON.stringify(w.warnings))), JSON.stringify(warned));
      const grown = peakRss(mailbell.child.pid!) - before;
      // Reading it whole took five times its size (105 → 610 MB for 100 MB); capped, it costs next to nothing.
      assert.ok(grown < 10 * 2 ** 20, `peak RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB for a 20 MiB header`);
    } finally {
      mailbell.child.kill("SIGTERM");
      await mailbell.exited;
      await proxy.close();
    }
  });
});

/** The process's peak resident set (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(kb, `no VmHWM for process ${pid}`);
  return Number(kb[1]) * 1024;
}
