/**
 * Many folders over one connection (IMAP NOTIFY, RFC 5465; issue 18): where the server offers
 * NOTIFY, an account's folders are watched by one notifier connection, each folder read on a
 * connection of its own only while it has mail; where it does not, each folder IDLEs on its own.
 * Against the real Dovecot (which offers NOTIFY), behind the line-aware proxy that counts the
 * connections and, for the fallback, strips NOTIFY from the capabilities.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { watchMailbox, type WatchedMail } from "../src/index.ts";
import { FolderWakeups, runNotifier } from "../src/imap/notify.ts";
import { silentLogger } from "../src/log.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { missingFromFetch, startImapProxy, type ImapProxy, type ImapRule } from "./support/imap-proxy.ts";
import { CaptureLogger } from "./support/logger.ts";
import { buildMail } from "./support/mail.ts";
import { startMailbell, writeConfig } from "./support/daemon.ts";
import { startReceiver } from "./support/receiver.ts";
import { accountSchema, watchSchema } from "../src/imap/config.ts";
import { Notifiers } from "../src/daemon/notifiers.ts";

let dovecot: Dovecot;
before(async () => {
  dovecot = await startDovecot();
});
after(async () => {
  await dovecot?.dispose();
});

const folders = ["INBOX", "Orders", "Shop/Invoices", "Reçus"];

async function waitUntil(what: string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(10);
  }
}

const mail = (subject: string): string => buildMail({ from: "shop@example.com", to: "n@example.com", subject, text: subject });

/** Removes NOTIFY from every capability list, as a server without it would send. */
const stripNotify: ImapRule = {
  name: "strip NOTIFY",
  onReply(reply) {
    return / NOTIFY\b/.test(reply.line) ? { replace: reply.text.replace(/ NOTIFY\b/g, "") } : undefined;
  },
};

/** One account's folders watched the daemon's way: a notifier and a watcher per folder sharing its wake-ups. */
async function watchAccount(user: string, proxy: ImapProxy, stop: AbortSignal) {
  const account = { name: user, host: "127.0.0.1", port: proxy.port, tls: "none" as const, user, pass: "pw" };
  const wakeups = new FolderWakeups(folders);
  const got: WatchedMail[] = [];
  const logger = new CaptureLogger();
  const notifier = runNotifier({ account, accountName: user, wakeups, log: silentLogger, signal: stop, keepaliveMs: 60_000, keepaliveTimeoutMs: 5000, reconnectMaxMs: 1000 });
  const watchers = folders.map(async (mailbox) => {
    for await (const m of watchMailbox({ account, mailbox, wakeups, logger, signal: stop, reconnect: { baseMs: 100, capMs: 500 } })) got.push(m);
  });
  return { wakeups, got, logger, done: Promise.all([notifier, ...watchers]) };
}

function subjectsBy(got: readonly WatchedMail[]): Record<string, string[]> {
  const by: Record<string, string[]> = {};
  for (const m of got) (by[m.mailbox] ??= []).push(m.mail.subject ?? "");
  return by;
}

describe("an account's folders with NOTIFY", () => {
  it("are watched over one connection, each mail posted once, also after the notifier's connection drops", async () => {
    const user = "notify1";
    await dovecot.addUser(user, "pw");
    for (const f of folders.slice(1)) await dovecot.createMailbox(user, f);
    const commands: string[] = [];
    await using proxy = await startImapProxy({ port: dovecot.imapPort, rules: [{ name: "commands", onCommand: (c) => (commands.push(c.name), undefined) }] });
    const stop = new AbortController();
    const watching = await watchAccount(user, proxy, stop.signal);
    try {
      await waitUntil("NOTIFY on and only the notifier connected", () => watching.wakeups.mode === "on" && proxy.connections === 1, 20_000);
      assert.ok(commands.includes("NOTIFY"));
      assert.ok(!commands.includes("IDLE"), "no folder IDLEs on a connection of its own");
      for (const f of folders) await dovecot.append(user, f, mail(`${f} 1`));
      await dovecot.append(user, "Orders", mail("Orders 2"));
      await waitUntil("all five read", () => watching.got.length >= 5, 20_000);
      // Quiet again: the reading connections close, the notifier stays.
      await waitUntil("back to one connection", () => proxy.connections === 1, 20_000);
      assert.deepEqual(subjectsBy(watching.got), { INBOX: ["INBOX 1"], Orders: ["Orders 1", "Orders 2"], "Shop/Invoices": ["Shop/Invoices 1"], "Reçus": ["Reçus 1"] });
      assert.deepEqual(watching.logger.find(/^catching up/), [], "mail the notifier told of is no catch-up");
      assert.ok(watching.got.every((m) => m.catchUp === undefined));

      // Mail that comes while the notifier is away is read once it is back.
      proxy.dropAll();
      await dovecot.append(user, "Reçus", mail("Reçus 2"));
      await waitUntil("Reçus 2 read", () => watching.got.length >= 6, 20_000);
      assert.deepEqual(watching.logger.find(/^catching up/).map((e) => e.msg), ["catching up 1 mail in Reçus"], "mail that came while the notifier was away is");
      await waitUntil("back to one connection", () => proxy.connections === 1, 20_000);
      await sleep(300);
      assert.deepEqual(
        watching.got.map((m) => m.mail.subject).sort(),
        ["INBOX 1", "Orders 1", "Orders 2", "Reçus 1", "Reçus 2", "Shop/Invoices 1"],
        "each mail exactly once",
      );
    } finally {
      stop.abort();
      await watching.done;
    }
  });

  it("fall back to one connection per folder where the server does not offer NOTIFY", async () => {
    const user = "notify2";
    await dovecot.addUser(user, "pw");
    for (const f of folders.slice(1)) await dovecot.createMailbox(user, f);
    const commands: string[] = [];
    await using proxy = await startImapProxy({ port: dovecot.imapPort, rules: [stripNotify, { name: "commands", onCommand: (c) => (commands.push(c.name), undefined) }] });
    const stop = new AbortController();
    const watching = await watchAccount(user, proxy, stop.signal);
    try {
      await waitUntil("NOTIFY off and each folder on its own connection", () => watching.wakeups.mode === "off" && proxy.connections === folders.length, 20_000);
      // Each folder's first start takes the mailbox's end as its checkpoint: mail appended before
      // that is old mail and never announced. Under a loaded test run a folder connected but not yet
      // that far once missed its mail, so the mail comes only once every folder is watching.
      await waitUntil("each folder watching", () => watching.logger.find(/^watching$/).length >= folders.length, 20_000);
      for (const f of folders) await dovecot.append(user, f, mail(`${f} 1`));
      await waitUntil("all four read", () => watching.got.length >= 4, 20_000);
      await sleep(300);
      assert.deepEqual(subjectsBy(watching.got), { INBOX: ["INBOX 1"], Orders: ["Orders 1"], "Shop/Invoices": ["Shop/Invoices 1"], "Reçus": ["Reçus 1"] });
      assert.ok(!commands.includes("NOTIFY"), "NOTIFY is not tried where it is not offered");
      assert.equal(proxy.connections, folders.length);
    } finally {
      stop.abort();
      await watching.done;
    }
  });

  it("share few reading connections fairly: mail flowing into one folder does not keep another's mail waiting", async () => {
    // maxConnections 2: the notifier and one reading connection. INBOX gets a mail every 100 ms
    // (its session would stay open, polling, while mail flows); one mail into Orders must still be read soon.
    const user = "notify4";
    await dovecot.addUser(user, "pw");
    await dovecot.createMailbox(user, "Orders");
    await using proxy = await startImapProxy({ port: dovecot.imapPort });
    const account = { name: user, host: "127.0.0.1", port: proxy.port, tls: "none" as const, user, pass: "pw" };
    const wakeups = new FolderWakeups(["INBOX", "Orders"], 1);
    const got: { subject: string; at: number }[] = [];
    const stop = new AbortController();
    const notifier = runNotifier({ account, accountName: user, wakeups, log: silentLogger, signal: stop.signal, keepaliveMs: 60_000, keepaliveTimeoutMs: 5000, reconnectMaxMs: 1000 });
    const watchers = ["INBOX", "Orders"].map(async (mailbox) => {
      for await (const m of watchMailbox({ account, mailbox, wakeups, signal: stop.signal, reconnect: { baseMs: 100, capMs: 500 } })) got.push({ subject: m.mail.subject ?? "", at: performance.now() });
    });
    let flowing = true;
    let sent = 0;
    try {
      await waitUntil("NOTIFY on and only the notifier connected", () => wakeups.mode === "on" && proxy.connections === 1, 20_000);
      const flow = (async () => {
        await dovecot.withClient(user, async (c) => {
          const deadline = performance.now() + 8000;
          while (flowing && performance.now() < deadline) {
            await c.append("INBOX", mail(`flow ${++sent}`));
            await sleep(100);
          }
        });
      })();
      await waitUntil("INBOX mail flowing and being read", () => got.length >= 5, 10_000);
      const appended = performance.now();
      await dovecot.append(user, "Orders", mail("order"));
      try {
        await waitUntil("the Orders mail read while INBOX mail still flows", () => got.some((g) => g.subject === "order"), 3000);
      } finally {
        flowing = false;
        await flow;
      }
      const order = got.find((g) => g.subject === "order")!;
      assert.ok(order.at - appended < 3000, `Orders' mail read ${Math.round(order.at - appended)} ms after its APPEND`);
      await waitUntil("every INBOX mail read", () => got.filter((g) => g.subject.startsWith("flow ")).length >= sent, 10_000);
      await sleep(300);
      const flows = got.filter((g) => g.subject.startsWith("flow ")).map((g) => g.subject);
      assert.deepEqual(flows, Array.from({ length: sent }, (_, i) => `flow ${i + 1}`), "each INBOX mail once, in order");
    } finally {
      flowing = false;
      stop.abort();
      await Promise.all([notifier, ...watchers]);
    }
  });

  it("keep logins few while mail flows into more folders than reading connections: a holder reads a while before it hands over", async () => {
    // maxConnections 2: the notifier and one reading connection; three folders get a mail every 100 ms for 3 s.
    const user = "notify7";
    const three = ["INBOX", "Orders", "Shop"];
    await dovecot.addUser(user, "pw");
    for (const f of three.slice(1)) await dovecot.createMailbox(user, f);
    await using proxy = await startImapProxy({ port: dovecot.imapPort });
    const account = { name: user, host: "127.0.0.1", port: proxy.port, tls: "none" as const, user, pass: "pw" };
    const wakeups = new FolderWakeups(three, 1);
    const got: string[] = [];
    const stop = new AbortController();
    const notifier = runNotifier({ account, accountName: user, wakeups, log: silentLogger, signal: stop.signal, keepaliveMs: 60_000, keepaliveTimeoutMs: 5000, reconnectMaxMs: 1000 });
    const watchers = three.map(async (mailbox) => {
      for await (const m of watchMailbox({ account, mailbox, wakeups, signal: stop.signal, reconnect: { baseMs: 100, capMs: 500 } })) got.push(m.mail.subject ?? "");
    });
    let sent = 0;
    try {
      await waitUntil("NOTIFY on and only the notifier connected", () => wakeups.mode === "on" && proxy.connections === 1, 20_000);
      const before = proxy.sessions;
      await dovecot.withClient(user, async (c) => {
        const until = performance.now() + 3000;
        while (performance.now() < until) {
          await c.append(three[sent % 3]!, mail(`flow ${++sent}`));
          await sleep(100 / 3);
        }
      });
      await waitUntil("every mail read", () => got.length >= sent, 20_000);
      const logins = proxy.sessions - before;
      // About one per second of flow while folders wait (minHoldMs), and a few at its ends; a login per round would be dozens.
      assert.ok(logins <= 10, `${logins} logins for ${sent} mails in 3 s`);
      await sleep(300);
      assert.deepEqual([...got].sort(), Array.from({ length: sent }, (_, i) => `flow ${i + 1}`).sort(), "each mail once");
    } finally {
      stop.abort();
      await Promise.all([notifier, ...watchers]);
    }
  });

  it("wait a retry pause without the reading connection: another folder's mail is read meanwhile", async () => {
    // One reading connection; INBOX's first mail is never handed over (retried after 1 s, 2 s, 4 s…).
    const user = "notify8";
    await dovecot.addUser(user, "pw");
    await dovecot.createMailbox(user, "Orders");
    await dovecot.append(user, "Orders", mail("before")); // UID 1 in Orders: read before the watch, never fetched
    await using proxy = await startImapProxy({ port: dovecot.imapPort, rules: [missingFromFetch(1)] });
    const account = { name: user, host: "127.0.0.1", port: proxy.port, tls: "none" as const, user, pass: "pw" };
    const wakeups = new FolderWakeups(["INBOX", "Orders"], 1);
    const got: { subject: string; at: number }[] = [];
    const logger = new CaptureLogger();
    const stop = new AbortController();
    const notifier = runNotifier({ account, accountName: user, wakeups, log: silentLogger, signal: stop.signal, keepaliveMs: 60_000, keepaliveTimeoutMs: 5000, reconnectMaxMs: 1000 });
    const watchers = ["INBOX", "Orders"].map(async (mailbox) => {
      for await (const m of watchMailbox({ account, mailbox, wakeups, logger, maxReadAttempts: 10, signal: stop.signal, reconnect: { baseMs: 100, capMs: 500 } })) got.push({ subject: m.mail.subject ?? "", at: performance.now() });
    });
    try {
      await waitUntil("NOTIFY on and only the notifier connected", () => wakeups.mode === "on" && proxy.connections === 1, 20_000);
      await dovecot.append(user, "INBOX", mail("unreadable"));
      await waitUntil("INBOX's mail failed a third time (a 4 s pause)", () => logger.find(/could not be read; trying again/).some((e) => e.fields.attempts === 3), 10_000);
      const appended = performance.now();
      await dovecot.append(user, "Orders", mail("order"));
      await waitUntil("the Orders mail read", () => got.some((g) => g.subject === "order"), 5000);
      const took = got.find((g) => g.subject === "order")!.at - appended;
      assert.ok(took < 2000, `Orders' mail read ${Math.round(took)} ms after its APPEND, during INBOX's 4 s pause`);
    } finally {
      stop.abort();
      await Promise.all([notifier, ...watchers]);
    }
  });

  it("release the reading connection where the server offers NOTIFY but not IDLE", async () => {
    const user = "notify9";
    await dovecot.addUser(user, "pw");
    await dovecot.createMailbox(user, "Orders");
    const stripIdle: ImapRule = { name: "strip IDLE", onReply: (reply) => (/ IDLE\b/.test(reply.line) ? { replace: reply.text.replace(/ IDLE\b/g, "") } : undefined) };
    await using proxy = await startImapProxy({ port: dovecot.imapPort, rules: [stripIdle] });
    const account = { name: user, host: "127.0.0.1", port: proxy.port, tls: "none" as const, user, pass: "pw" };
    const wakeups = new FolderWakeups(["INBOX", "Orders"], 1);
    const got: string[] = [];
    const stop = new AbortController();
    const notifier = runNotifier({ account, accountName: user, wakeups, log: silentLogger, signal: stop.signal, keepaliveMs: 60_000, keepaliveTimeoutMs: 5000, reconnectMaxMs: 1000 });
    const watchers = ["INBOX", "Orders"].map(async (mailbox) => {
      for await (const m of watchMailbox({ account, mailbox, wakeups, signal: stop.signal, reconnect: { baseMs: 100, capMs: 500 } })) got.push(m.mail.subject ?? "");
    });
    try {
      await waitUntil("NOTIFY on and only the notifier connected", () => wakeups.mode === "on" && proxy.connections === 1, 20_000);
      await dovecot.append(user, "INBOX", mail("inbox"));
      await waitUntil("the INBOX mail read", () => got.includes("inbox"), 5000);
      await dovecot.append(user, "Orders", mail("order"));
      await waitUntil("the Orders mail read", () => got.includes("order"), 5000);
      await waitUntil("back to one connection", () => proxy.connections === 1, 5000);
    } finally {
      stop.abort();
      await Promise.all([notifier, ...watchers]);
    }
  });

  it("a folder with no connection of its own stays alive to health while the notifier's keepalives are answered", async () => {
    const user = "notify10";
    await dovecot.addUser(user, "pw");
    await dovecot.createMailbox(user, "Orders");
    await using proxy = await startImapProxy({ port: dovecot.imapPort });
    const account = { name: user, host: "127.0.0.1", port: proxy.port, tls: "none" as const, user, pass: "pw" };
    const wakeups = new FolderWakeups(["INBOX", "Orders"]);
    const events: string[] = [];
    const stop = new AbortController();
    const notifier = runNotifier({ account, accountName: user, wakeups, log: silentLogger, signal: stop.signal, keepaliveMs: 200, keepaliveTimeoutMs: 5000, reconnectMaxMs: 1000 });
    const watchers = ["INBOX", "Orders"].map(async (mailbox) => {
      const onEvent = mailbox === "Orders" ? (e: { type: string }) => events.push(e.type) : undefined;
      for await (const _ of watchMailbox({ account, mailbox, wakeups, signal: stop.signal, keepaliveMs: 200, reconnect: { baseMs: 100, capMs: 500 }, ...(onEvent ? { onEvent } : {}) }));
    });
    try {
      await waitUntil("NOTIFY on and only the notifier connected", () => wakeups.mode === "on" && proxy.connections === 1, 20_000);
      await waitUntil(`'alive' twice after 'idle' (events: ${events.join(", ")})`, () => events.lastIndexOf("idle") >= 0 && events.slice(events.lastIndexOf("idle")).filter((e) => e === "alive").length >= 2, 3000);
    } finally {
      stop.abort();
      await Promise.all([notifier, ...watchers]);
    }
  });

  it("the daemon's notifier logs in and sets NOTIFY once at start, all folders joining in the same tick", async () => {
    const user = "notify5";
    await dovecot.addUser(user, "pw");
    const twelve = ["INBOX", ...Array.from({ length: 11 }, (_, i) => `F${i + 1}`)];
    for (const f of twelve.slice(1)) await dovecot.createMailbox(user, f);
    await using proxy = await startImapProxy({ port: dovecot.imapPort });
    const account = accountSchema.parse({ name: user, host: "127.0.0.1", port: proxy.port, tls: "none", user, pass: "pw", maxConnections: 3, mailboxes: twelve });
    const imap = { host: "127.0.0.1", port: proxy.port, tls: "none" as const, user, pass: "pw" };
    const run = new AbortController();
    const notifiers = new Notifiers(silentLogger, run.signal);
    // As the daemon starts its watchers: every folder joins before the notifier's first await.
    const joined = twelve.map((f) => notifiers.join(imap, account, f, watchSchema.parse({})));
    try {
      await waitUntil("NOTIFY on", () => joined[0]!.wakeups?.mode === "on", 20_000);
      await sleep(500);
      const named = (name: string) => proxy.commands.filter((c) => c.name === name).length;
      assert.equal(named("NOTIFY"), 1, "NOTIFY SET once");
      assert.equal(proxy.sessions, 1, "one login");
      assert.equal(joined[0]!.wakeups?.count("F11"), 1, "each folder woken once");
    } finally {
      for (const j of joined) j.leave();
      run.abort();
    }
  });

  it("a refused login waits authFailureMs before the notifier tries again, not reconnectMaxMs", async () => {
    const user = "notify6";
    await dovecot.addUser(user, "pw");
    await using proxy = await startImapProxy({ port: dovecot.imapPort });
    const stop = new AbortController();
    const notifier = runNotifier({ account: { host: "127.0.0.1", port: proxy.port, tls: "none", user, pass: "wrong" }, accountName: user, wakeups: new FolderWakeups(["INBOX", "Orders"]), log: silentLogger, signal: stop.signal, keepaliveMs: 60_000, keepaliveTimeoutMs: 5000, reconnectMaxMs: 50, authFailureMs: 60_000 });
    try {
      await waitUntil("the first login refused", () => proxy.sessions >= 1 && proxy.connections === 0, 10_000);
      await sleep(1500);
      assert.equal(proxy.sessions, 1, "no second login within authFailureMs");
    } finally {
      stop.abort();
      await notifier;
    }
  });

  it("watch.notify auto (the default): the daemon posts each folder's mail once over one connection, more folders than maxConnections", async () => {
    const user = "notify3";
    await dovecot.addUser(user, "pw");
    for (const f of folders.slice(1)) await dovecot.createMailbox(user, f);
    await using proxy = await startImapProxy({ port: dovecot.imapPort });
    const receiver = await startReceiver();
    const dir = writeConfig("");
    const yaml = `
state: ${dir.replace(/mailbell\.yaml$/, "state.db")}
accounts:
  - { name: n, host: 127.0.0.1, port: ${proxy.port}, tls: none, user: ${user}, pass: pw, maxConnections: 3, mailboxes: ${JSON.stringify(folders)} }
targets:
  - { name: hook, type: webhook, url: "${receiver.url("/hook")}" }
rules:
  - { name: all, match: {}, notify: [hook], template: "{{subject}}" }
`;
    const mailbell = startMailbell(writeConfig(yaml, dir.replace(/\/mailbell\.yaml$/, "")), yaml);
    try {
      await waitUntil("every folder watched and only the notifier connected", () => mailbell.logger.find(/^watching$/).length >= folders.length && proxy.connections === 1, 20_000);
      for (const f of folders) await dovecot.append(user, f, mail(`${f} 1`));
      await receiver.waitFor(folders.length, 20_000);
      await waitUntil("back to one connection", () => proxy.connections === 1, 20_000);
      await sleep(300);
      assert.deepEqual(receiver.requests.map((r) => (r.json as { subject?: string; text?: string }).subject ?? JSON.stringify(r.json)).sort(), folders.map((f) => `${f} 1`).sort());
    } finally {
      await mailbell.stop();
      await receiver.close();
    }
  });
});
