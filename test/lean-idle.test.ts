/**
 * A quiet mailbox waits on the lean IDLE connection (src/imap/quiet.ts, lean-idle.ts) against a
 * real Dovecot: mail while lean is read once, mail in the gap between the session's end and the
 * lean EXAMINE is read, a renumbering, a dropped lean connection, a refused lean login, STARTTLS.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { MemoryCheckpoints, watchMailbox, type WatchedMail, type WatchEvent, type WatchOptions } from "../src/index.ts";
import type { ImapAccount } from "../src/imap/client.ts";
import { FolderWakeups } from "../src/imap/notify.ts";
import { quietHooks } from "../src/imap/quiet.ts";
import { imapAccountOf, startDovecot, type Dovecot } from "./support/dovecot.ts";
import { CaptureLogger } from "./support/logger.ts";
import { buildMail } from "./support/mail.ts";

let dovecot: Dovecot;
before(async () => {
  dovecot = await startDovecot();
});
after(async () => {
  await dovecot?.dispose();
});
afterEach(() => {
  quietHooks.beforeLean = undefined;
});

const mail = (subject: string) => buildMail({ from: "a@example.com", to: "alice@example.com", subject, text: "x" });

async function until(what: string, ok: () => boolean, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A watcher running in the background, with what it handed over, its events and its log. */
function watch(options: Partial<WatchOptions> & { account: ImapAccount; mailbox: string }) {
  const controller = new AbortController();
  const mails: WatchedMail[] = [];
  const events: WatchEvent[] = [];
  const logger = new CaptureLogger();
  const it = watchMailbox({ checkpoints: new MemoryCheckpoints(), signal: controller.signal, logger, onEvent: (e) => events.push(e), reconnect: { baseMs: 50, capMs: 200, authFailureMs: 100 }, quietAfterMailMs: 300, ...options });
  const done = (async () => {
    for await (const m of it) mails.push(m);
  })();
  const leanWaits = () => logger.entries.filter((e) => e.msg === "quiet: waiting on a lean connection").length;
  return {
    mails,
    events,
    logger,
    leanWaits,
    /** Waits until the lean connection has been waiting `n` times in all. */
    lean: (n = 1) => until(`${n} lean wait(s); log: ${logger.entries.map((e) => e.msg).join(" | ")}`, () => leanWaits() >= n),
    got: (n: number) => until(`${n} mails, got ${mails.map((m) => m.mail.subject).join(", ")}`, () => mails.length >= n),
    async stop() {
      controller.abort();
      await done;
    },
  };
}

describe("quiet mailboxes wait on a lean connection", () => {
  it("starts on a lean connection, reads mail that comes while lean exactly once, and goes lean again", async () => {
    await dovecot.createMailbox("alice", "Lean1");
    const w = watch({ account: imapAccountOf(dovecot, "alice"), mailbox: "Lean1" });
    try {
      await w.lean(1);
      const uid = await dovecot.append("alice", "Lean1", mail("while lean"));
      await w.got(1);
      assert.equal(w.mails[0]!.uid, uid);
      // After quietAfterMailMs without mail the session hands over again.
      await w.lean(2);
      const uid2 = await dovecot.append("alice", "Lean1", mail("while lean again"));
      await w.got(2);
      await w.lean(3);
      assert.deepEqual(w.mails.map((m) => m.uid), [uid, uid2], "each mail once, in order");
      assert.ok(!w.events.some((e) => e.type === "disconnected"), "a handover is no disconnect");
      assert.equal(w.events.filter((e) => e.type === "connected").length, 1, "one connect; wake-ups are rounds of reading");
    } finally {
      await w.stop();
    }
  });

  it("reads mail that arrived between the session's end and the lean EXAMINE", async () => {
    await dovecot.createMailbox("alice", "Gap");
    let appended: number | undefined;
    let leans = 0;
    // The first lean connection starts the watch; the second follows the session that read "first".
    quietHooks.beforeLean = async (mailbox) => {
      if (mailbox === "Gap" && ++leans === 2) appended = await dovecot.append("alice", "Gap", mail("in the gap"));
    };
    const w = watch({ account: imapAccountOf(dovecot, "alice"), mailbox: "Gap" });
    try {
      await w.lean(1);
      const first = await dovecot.append("alice", "Gap", mail("first"));
      await w.got(2);
      assert.deepEqual(w.mails.map((m) => m.uid), [first, appended]);
      // The second lean connection saw the change at EXAMINE and never waited; this is the third.
      await w.lean(2);
      assert.equal(w.mails.length, 2);
      // Both came while the mailbox was watched: neither is a catch-up.
      assert.deepEqual(w.logger.entries.filter((e) => /^catching up/.test(e.msg ?? "")).map((e) => e.msg), []);
      assert.ok(w.mails.every((m) => m.catchUp === undefined));
    } finally {
      await w.stop();
    }
  });

  it("notices a renumbering (UIDVALIDITY) in the gap and reads what came since the checkpoint", async () => {
    await dovecot.createMailbox("alice", "Renum");
    let leans = 0;
    let fresh: number | undefined;
    quietHooks.beforeLean = async (mailbox) => {
      if (mailbox !== "Renum" || ++leans !== 2) return;
      await dovecot.deleteMailbox("alice", "Renum");
      fresh = await dovecot.append("alice", "Renum", mail("after renumbering"));
    };
    const w = watch({ account: imapAccountOf(dovecot, "alice"), mailbox: "Renum" });
    try {
      await w.lean(1);
      const first = await dovecot.append("alice", "Renum", mail("first"));
      await until("uidvalidity-changed", () => w.events.some((e) => e.type === "uidvalidity-changed"));
      await w.got(2);
      assert.deepEqual(w.mails.map((m) => m.uid), [first, fresh]);
      await w.lean(2);
    } finally {
      await w.stop();
    }
  });

  it("reconnects when the server drops the lean connection, and catches up on mail sent meanwhile", async () => {
    await dovecot.addUser("leandrop", "droppw");
    await dovecot.createMailbox("leandrop", "INBOX");
    const w = watch({ account: imapAccountOf(dovecot, "leandrop"), mailbox: "INBOX" });
    try {
      await w.lean(1);
      await dovecot.kick("leandrop");
      const uid = await dovecot.append("leandrop", "INBOX", mail("after the drop"));
      await w.got(1);
      assert.equal(w.mails[0]!.uid, uid);
      const dropped = w.events.find((e) => e.type === "disconnected");
      assert.ok(dropped && dropped.type === "disconnected", "the lost lean connection is reported as a disconnect");
      await w.lean(2);
    } finally {
      await w.stop();
    }
  });

  it("reports a refused lean login like a session's (IMAP_AUTH) and recovers", async () => {
    await dovecot.createMailbox("alice", "Refused");
    let calls = 0;
    const good = dovecot.auth("alice").pass;
    const account: ImapAccount = { ...imapAccountOf(dovecot, "alice"), pass: undefined, credentials: async () => ({ pass: ++calls === 1 ? "wrong" : good }) };
    const w = watch({ account, mailbox: "Refused" });
    try {
      await until("a disconnect", () => w.events.some((e) => e.type === "disconnected"));
      const dropped = w.events.find((e) => e.type === "disconnected");
      assert.equal(dropped?.type === "disconnected" ? dropped.error?.code : undefined, "IMAP_AUTH");
      await w.lean(1);
      const uid = await dovecot.append("alice", "Refused", mail("after the refusal"));
      await w.got(1);
      assert.equal(w.mails[0]!.uid, uid);
    } finally {
      await w.stop();
    }
  });

  it("failFast first-login: a lean login refused after the mailbox was opened is retried, not a first start given up", async () => {
    await dovecot.createMailbox("alice", "Opened");
    let calls = 0;
    const good = dovecot.auth("alice").pass;
    // Call 1: the session (opens, reads nothing, hands over); 2 and 3: the lean connection, refused twice.
    const account: ImapAccount = { ...imapAccountOf(dovecot, "alice"), pass: undefined, credentials: async () => ({ pass: ++calls === 2 || calls === 3 ? "wrong" : good }) };
    // Wake-ups whose NOTIFY turned out unusable: the watch starts with a session, as a daemon's folder does.
    const wakeups = new FolderWakeups(["Opened"]);
    wakeups.setMode("off");
    const w = watch({ account, mailbox: "Opened", wakeups, failFast: "first-login" });
    try {
      await w.lean(1);
      assert.ok(calls >= 4, `logins: ${calls}`);
      const uid = await dovecot.append("alice", "Opened", mail("after the refusals"));
      await w.got(1);
      assert.equal(w.mails[0]!.uid, uid);
    } finally {
      await w.stop();
    }
  });

  it("logs in with STARTTLS on the plain port", async () => {
    await dovecot.createMailbox("bob", "Starttls");
    const w = watch({ account: { ...imapAccountOf(dovecot, "bob"), port: dovecot.imapPort, tls: "starttls" }, mailbox: "Starttls" });
    try {
      await w.lean(1);
      const uid = await dovecot.append("bob", "Starttls", mail("over starttls"));
      await w.got(1);
      assert.equal(w.mails[0]!.uid, uid);
    } finally {
      await w.stop();
    }
  });

  it("quietConnection imapflow keeps the session's connection in IDLE", async () => {
    await dovecot.createMailbox("bob", "Stays");
    const w = watch({ account: imapAccountOf(dovecot, "bob"), mailbox: "Stays", quietConnection: "imapflow" });
    try {
      await until("idle", () => w.events.some((e) => e.type === "idle"));
      const uid = await dovecot.append("bob", "Stays", mail("stays"));
      await w.got(1);
      assert.equal(w.mails[0]!.uid, uid);
      assert.equal(w.leanWaits(), 0);
    } finally {
      await w.stop();
    }
  });
});
