/**
 * A burst is read without waiting for the server's IDLE push (issue 18): Dovecot holds every push
 * ~500 ms after the first change, while a command's reply reports new mail at once. So while mail
 * is flowing the watcher asks (NOOP) instead of idling; once quiet it idles again and sends nothing.
 * Observed through the line-aware proxy in front of the real Dovecot: which reply first told the
 * watcher of each mail — an IDLE push, or the reply to a command it sent.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { watchMailbox, type WatchedMail } from "../src/index.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { startImapProxy, type ImapProxy, type ImapRule } from "./support/imap-proxy.ts";
import { buildMail } from "./support/mail.ts";

let dovecot: Dovecot;
before(async () => {
  dovecot = await startDovecot();
});
after(async () => {
  await dovecot?.dispose();
});

interface Exists {
  session: number;
  count: number;
  /** The command the reply belongs to: "IDLE" for a push. */
  during: string;
}

/** Records every command and every `* N EXISTS` (with the command it came during); changes nothing. */
function observer(commands: { session: number; name: string }[], exists: Exists[]): ImapRule {
  return {
    name: "observer",
    onCommand(command) {
      commands.push({ session: command.session, name: command.name });
      return undefined;
    },
    onReply(reply) {
      const m = /^\* (\d+) EXISTS/i.exec(reply.line);
      if (m) exists.push({ session: reply.session, count: Number(m[1]), during: reply.command?.name ?? "" });
      return undefined;
    },
  };
}

async function waitUntil(what: string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(10);
  }
}

const mail = (n: number): string => buildMail({ from: "shop@example.com", to: "burst@example.com", subject: `burst ${n}`, text: `mail ${n}` });


/** Mail 1, read, then mails 2 to 5 at 50 ms: all five must be read, in order. */
async function appendBurst(user: string, got: readonly WatchedMail[]): Promise<void> {
  await dovecot.withClient(user, async (appender) => {
    await appender.append("INBOX", mail(1));
    await waitUntil("mail 1 read", () => got.length === 1, 10_000);
    for (let n = 2; n <= 5; n++) {
      await appender.append("INBOX", mail(n));
      await sleep(50);
    }
  });
  await waitUntil("mails 2 to 5 read", () => got.length === 5, 10_000);
  assert.deepEqual(
    got.map((m) => m.mail.subject),
    [1, 2, 3, 4, 5].map((n) => `burst ${n}`),
  );
}

describe("a burst of mail", () => {
  for (const readerConnection of [true, false]) {
    it(`is read as NOOP replies announce it, not at IDLE pushes, then IDLE again with no command sent (quietConnection: imapflow, readerConnection: ${readerConnection})`, async () => {
      const user = `burst${readerConnection ? "r" : "w"}`;
      await dovecot.addUser(user, "pw");
      await dovecot.append(user, "INBOX", mail(0));
      const commands: { session: number; name: string }[] = [];
      const exists: Exists[] = [];
      let proxy: ImapProxy | undefined = await startImapProxy({ port: dovecot.imapPort, rules: [observer(commands, exists)] });
      const stop = new AbortController();
      const got: WatchedMail[] = [];
      const watching = (async () => {
        for await (const m of watchMailbox({ account: { name: user, host: "127.0.0.1", port: proxy!.port, tls: "none", user, pass: "pw" }, mailbox: "INBOX", readerConnection, quietConnection: "imapflow", signal: stop.signal })) got.push(m);
      })();
      try {
        await waitUntil("the watcher idles", () => commands.some((c) => c.session === 1 && c.name === "IDLE"), 10_000);
        // The burst's first mail comes with the IDLE push; the next ones while the watcher polls.
        await appendBurst(user, got);
        // Mail n is message n + 1 (mail 0 was there before).
        const firstHeard = (n: number): Exists | undefined => exists.find((e) => e.count >= n + 1);
        assert.equal(firstHeard(1)?.during, "IDLE", "the first mail of a burst comes with the push");
        for (let n = 2; n <= 5; n++) {
          const heard = firstHeard(n);
          assert.ok(heard && heard.during !== "IDLE", `mail ${n} was first announced by ${heard ? `a reply during ${heard.during}` : "nothing"}, not by the reply to a command: it waited for the push (EXISTS seen: ${JSON.stringify(exists)})`);
        }
        assert.ok(commands.some((c) => c.session === 1 && c.name === "NOOP"), "the watching connection asked with NOOP");

        // Quiet again: back in IDLE, and nothing more is sent while no mail comes.
        await waitUntil("the watching connection idles again", () => commands.filter((c) => c.session === 1).at(-1)?.name === "IDLE", 5000);
        const sent = commands.length;
        await sleep(1500);
        assert.deepEqual(commands.slice(sent), [], "no command while no mail comes");
      } finally {
        stop.abort();
        await watching;
        await proxy.close();
        proxy = undefined;
      }
    });
  }
  it("quietConnection lean: the lean connection's push wakes a session, which polls through the burst, then hands back and nothing is sent", async () => {
    const user = "burstl";
    await dovecot.addUser(user, "pw");
    await dovecot.append(user, "INBOX", mail(0));
    const commands: { session: number; name: string }[] = [];
    const exists: Exists[] = [];
    let proxy: ImapProxy | undefined = await startImapProxy({ port: dovecot.imapPort, rules: [observer(commands, exists)] });
    const stop = new AbortController();
    const got: WatchedMail[] = [];
    const watching = (async () => {
      for await (const m of watchMailbox({ account: { name: user, host: "127.0.0.1", port: proxy!.port, tls: "none", user, pass: "pw" }, mailbox: "INBOX", quietAfterMailMs: 1500, signal: stop.signal })) got.push(m);
    })();
    try {
      // A start with nothing to read opens only the lean connection.
      await waitUntil("the lean connection idles", () => commands.some((c) => c.session === 1 && c.name === "IDLE"), 10_000);
      assert.ok(!commands.some((c) => c.name === "UID"), "no session: nothing was searched");
      await appendBurst(user, got);
      const firstHeard = (n: number): Exists | undefined => exists.find((e) => e.count >= n + 1);
      assert.deepEqual({ session: firstHeard(1)?.session, during: firstHeard(1)?.during }, { session: 1, during: "IDLE" }, "the first mail comes with the lean connection's push");
      const reading = commands.find((c) => c.session !== 1)!.session;
      for (let n = 2; n <= 5; n++) {
        const heard = exists.find((e) => e.session === reading && e.count >= n + 1);
        assert.ok(heard && heard.during !== "IDLE", `mail ${n} was announced on the reading session by ${heard ? `a reply during ${heard.during}` : "nothing"}, not by a push (EXISTS seen: ${JSON.stringify(exists)})`);
      }
      assert.ok(commands.some((c) => c.session === reading && c.name === "NOOP"), "the reading session asked with NOOP");
      assert.equal(new Set(commands.filter((c) => c.name === "LOGIN" || c.name === "AUTHENTICATE").map((c) => c.session)).size, 2, "one login for the lean start, one for the burst");

      // Quiet for quietAfterMailMs: the session hands back to a lean connection, which sends nothing more.
      await waitUntil("a new lean connection idles", () => commands.some((c) => c.session > reading && c.name === "IDLE"), 5000);
      const sent = commands.length;
      await sleep(1500);
      assert.deepEqual(commands.slice(sent), [], "no command while no mail comes");
    } finally {
      stop.abort();
      await watching;
      await proxy.close();
      proxy = undefined;
    }
  });
});
