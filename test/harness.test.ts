/**
 * Proves the integration harness against a real Dovecot: if these fail, every integration test
 * built on test/support would fail for reasons that have nothing to do with mailbell.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { once } from "node:events";
import { ImapFlow } from "imapflow";
import { startDovecot } from "./support/dovecot.ts";
import type { Dovecot } from "./support/dovecot.ts";
import { startReceiver, slackReplies } from "./support/receiver.ts";
import type { Receiver } from "./support/receiver.ts";
import { buildMail } from "./support/mail.ts";

const clients = new Set<ImapFlow>();

async function connect(dc: Dovecot, user: string, mode: "tls" | "starttls" | "plain" = "tls"): Promise<ImapFlow> {
  const client = new ImapFlow(dc.clientOptions(user, mode));
  // a server-side close may surface as an error event; unhandled it would crash the run
  client.on("error", () => {});
  clients.add(client);
  await client.connect();
  return client;
}

async function inboxCount(dc: Dovecot, user: string): Promise<number> {
  return dc.withClient(user, async (c) => {
    const st = await c.status("INBOX", { messages: true });
    assert.ok(st && typeof st.messages === "number", "STATUS INBOX failed");
    return st.messages;
  });
}

function mail(subject: string): string {
  return buildMail({ from: "Sender <sender@example.com>", to: "alice@example.com", subject, text: `body of ${subject}` });
}

/** Resolves with the ms until `p` settles, rejects after `ms`. */
async function within(ms: number, what: string, p: Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      p,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - t0;
}

describe("integration harness", () => {
  let dc: Dovecot;
  let rx: Receiver;
  let startupNote = "";

  before(async () => {
    const t0 = performance.now();
    dc = await startDovecot();
    rx = await startReceiver();
    startupNote = `dovecot greeting after ${dc.startMs.toFixed(0)} ms (startDovecot ${(performance.now() - t0).toFixed(0)} ms)`;
  });

  after(async () => {
    for (const c of clients) c.close();
    await rx?.close();
    await dc?.dispose();
  });

  test("implicit TLS trusting only caFile; default trust is refused", async (t) => {
    t.diagnostic(startupNote);
    const client = await connect(dc, "alice", "tls");
    assert.equal(client.secureConnection, true);
    await client.logout();

    const untrusted = new ImapFlow({ ...dc.clientOptions("alice", "tls"), tls: {} });
    untrusted.on("error", () => {});
    await assert.rejects(untrusted.connect(), (err: Error & { code?: string }) => {
      assert.match(`${err.code} ${err.message}`, /CERT|SIGNATURE|self[- ]signed/i);
      return true;
    });
    untrusted.close();
  });

  // Dovecot 2.3 still answers a failure on its next 500 ms tick with auth_failure_delay = 0
  test("STARTTLS on the plain port, and a wrong password fails within a second", async () => {
    const client = await connect(dc, "bob", "starttls");
    assert.equal(client.secureConnection, true);
    await client.logout();

    const bad = new ImapFlow({ ...dc.clientOptions("bob", "tls"), auth: { user: "bob", pass: "wrong" } });
    bad.on("error", () => {});
    const t0 = performance.now();
    await assert.rejects(bad.connect());
    bad.close();
    assert.ok(performance.now() - t0 < 1000, `failed login took ${(performance.now() - t0).toFixed(0)} ms`);
  });

  test("APPEND returns increasing UIDs, creates mailboxes, keeps the internal date", async () => {
    const uids = [await dc.append("alice", "INBOX", mail("a1")), await dc.append("alice", "INBOX", mail("a2"))];
    uids.push(...(await dc.appendMany("alice", "INBOX", [mail("a3"), mail("a4")])));
    for (let i = 1; i < uids.length; i++) assert.ok(uids[i]! > uids[i - 1]!, `UIDs not increasing: ${uids.join(",")}`);

    const when = new Date("2020-02-03T04:05:06Z");
    const uid = await dc.append("carol", "Receipts/2020", mail("old"), { internalDate: when });
    assert.equal(uid, 1);
    const got = await dc.withClient("carol", async (c) => {
      await c.mailboxOpen("Receipts/2020");
      return c.fetchOne(String(uid), { internalDate: true }, { uid: true });
    });
    assert.ok(got);
    assert.equal(new Date(got.internalDate!).toISOString(), when.toISOString());
    await dc.deleteMailbox("carol", "Receipts/2020");
  });

  test("an idling client sees EXISTS for APPEND and for LMTP delivery", async (t) => {
    const client = await connect(dc, "alice");
    await client.mailboxOpen("INBOX");
    const base = client.mailbox ? client.mailbox.exists : 0;
    // explicit IDLE: auto-IDLE would only start after 15 s
    const idling = client.idle();

    const viaAppend = once(client, "exists");
    await dc.append("alice", "INBOX", mail("pushed by append"));
    const appendMs = await within(3000, "EXISTS after APPEND", viaAppend);

    const viaLmtp = once(client, "exists");
    const replies = await dc.deliverLmtp("alice", mail("pushed by lmtp"));
    assert.match(replies[0]!, /^250 /);
    const lmtpMs = await within(3000, "EXISTS after LMTP", viaLmtp);

    const [ev] = (await viaLmtp) as [{ count: number }];
    assert.equal(ev.count, base + 2);
    t.diagnostic(`EXISTS after APPEND ${appendMs.toFixed(0)} ms, after LMTP ${lmtpMs.toFixed(0)} ms`);
    await client.logout();
    await idling.catch(() => {});
  });

  test("kick closes a session at once", async () => {
    const client = await connect(dc, "alice");
    await client.mailboxOpen("INBOX");
    void client.idle().catch(() => {});
    const closed = once(client, "close");
    await dc.kick("alice");
    const ms = await within(2000, "close after kick", closed);
    assert.ok(ms < 1000, `kick took ${ms.toFixed(0)} ms`);
  });

  test("hard stop closes sessions fast; restart keeps ports and mail", async (t) => {
    const before = { imapPort: dc.imapPort, imapsPort: dc.imapsPort, lmtpPort: dc.lmtpPort };
    const count = await inboxCount(dc, "alice");
    assert.ok(count >= 6, `INBOX has ${count} messages`);

    const client = await connect(dc, "alice");
    await client.mailboxOpen("INBOX");
    void client.idle().catch(() => {});
    const closed = once(client, "close");
    const t0 = performance.now();
    await dc.stop({ hard: true });
    const stopMs = performance.now() - t0;
    const closeMs = await within(1000, "close after hard stop", closed);
    assert.equal(dc.pid, undefined);

    const t1 = performance.now();
    await dc.restart();
    const restartMs = performance.now() - t1;
    assert.deepEqual({ imapPort: dc.imapPort, imapsPort: dc.imapsPort, lmtpPort: dc.lmtpPort }, before);
    assert.equal(await inboxCount(dc, "alice"), count);
    t.diagnostic(`hard stop ${stopMs.toFixed(0)} ms (client closed +${closeMs.toFixed(0)} ms), restart ${restartMs.toFixed(0)} ms`);
  });

  test("addUser works without a reload", async () => {
    await dc.addUser("dave", "davepw");
    const client = await connect(dc, "dave");
    await client.logout();
  });

  test("receiver records JSON and plays scripted replies", async () => {
    const res = await fetch(rx.url("/services/T0/B0/x"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "hello" }),
    });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok");
    const [req] = await rx.waitFor(1, 1000);
    assert.equal(req!.method, "POST");
    assert.equal(req!.path, "/services/T0/B0/x");
    assert.deepEqual(req!.json, { text: "hello" });
    assert.equal(req!.headers["content-type"], "application/json");

    rx.reply(slackReplies.rateLimited(7));
    rx.replyOn("/hook", slackReplies.channelIsArchived());
    const limited = await fetch(rx.url("/services/T0/B0/x"), { method: "POST", body: "{}" });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get("retry-after"), "7");
    await limited.text();
    const archived = await fetch(rx.url("/hook"), { method: "POST", body: "{}" });
    assert.equal(archived.status, 410);
    assert.equal(await archived.text(), "channel_is_archived");
    const again = await fetch(rx.url("/services/T0/B0/x"), { method: "POST", body: "{}" });
    assert.equal(again.status, 200);
    await again.text();
    assert.deepEqual(rx.requests.map((r) => r.reply.status), [200, 429, 410, 200]);

    await assert.rejects(rx.waitFor((r) => r.path === "/never", 50), /waited 50 ms.*received 4/s);
    rx.clear();
    assert.equal(rx.requests.length, 0);
  });
});

describe("integration harness with the ACL plugin", () => {
  let dc: Dovecot;

  before(async () => {
    dc = await startDovecot({ acl: true });
  });

  after(async () => {
    await dc?.dispose();
  });

  test("readOnlyMailbox: SELECT says READ-ONLY, MOVE is refused, FETCH works, other mailboxes stay writable", async () => {
    const frozenUid = await dc.append("alice", "Frozen", mail("frozen"));
    const openUid = await dc.append("alice", "Open", mail("open"));
    await dc.readOnlyMailbox("alice", "Frozen");

    await dc.withClient("alice", async (c) => {
      const frozen = await c.mailboxOpen("Frozen");
      assert.equal(frozen.readOnly, true);
      assert.equal(frozen.permanentFlags?.size, 0);
      const got = await c.fetchOne(String(frozenUid), { envelope: true, flags: true }, { uid: true });
      assert.ok(got);
      assert.equal(got.envelope?.subject, "frozen");
      // imapflow does not even send STORE to a read-only mailbox; Dovecot would answer OK and change nothing
      assert.equal(await c.messageFlagsAdd(String(frozenUid), ["\\Seen"], { uid: true }), false);
      // MOVE is sent and answered "NO [NOPERM] Permission denied"
      assert.equal(await c.messageMove(String(frozenUid), "Open", { uid: true }), false);
      const st = await c.status("Frozen", { messages: true });
      assert.ok(st && st.messages === 1, "the refused MOVE took mail out of Frozen");

      const open = await c.mailboxOpen("Open");
      assert.equal(open.readOnly, false);
      assert.equal(await c.messageFlagsAdd(String(openUid), ["\\Seen"], { uid: true }), true);
      const flagged = await c.fetchOne(String(openUid), { flags: true }, { uid: true });
      assert.ok(flagged && flagged.flags?.has("\\Seen"));
    });
  });
});
