/**
 * Fault injection against a real Dovecot and a local receiver: mailbell must never lose a mail,
 * never post one twice (beyond the documented window), and never die silently. Every test counts
 * ids at the receiver rather than trusting "no error".
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { WebhookBody } from "../src/targets/webhook.ts";
import { startMailbell, waitUntilWatching, writeConfig } from "./support/daemon.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { buildMail } from "./support/mail.ts";
import { spawnMailbell } from "./support/process.ts";
import { startProxy } from "./support/proxy.ts";
import { slackReplies, startReceiver, type ReceivedRequest, type Receiver } from "./support/receiver.ts";

let dovecot: Dovecot;
let receiver: Receiver;

before(async () => {
  [dovecot, receiver] = await Promise.all([startDovecot(), startReceiver()]);
});
after(async () => {
  await Promise.all([dovecot?.dispose(), receiver?.close()]);
});

interface ConfigOptions {
  user: string;
  mailboxes?: string[];
  port?: number;
  path: string;
  watch?: Record<string, number>;
  logLevel?: string;
  outbox?: string;
  status?: string;
  targetExtra?: string;
}

/** A config with one account and a webhook target on the receiver under `path`. */
function config(o: ConfigOptions): { file: string; yaml: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-rel-"));
  const yaml = `state: ${dir}/state.db
watch: ${JSON.stringify({ reconnectMaxSeconds: 1, backlogLimit: 100000, ...o.watch })}
log: { level: ${o.logLevel ?? "info"} }
outbox: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2, drainSeconds: 10${o.outbox ? `, ${o.outbox}` : ""} }
${o.status ? `status: { ${o.status} }\n` : ""}accounts:
  - name: ${o.user}
    host: 127.0.0.1
    port: ${o.port ?? dovecot.imapsPort}
    ca: ${dovecot.caFile}
    user: ${o.user}
    pass: ${dovecot.users[o.user]}
    mailboxes: [${(o.mailboxes ?? ["INBOX"]).map((m) => JSON.stringify(m)).join(", ")}]
targets:
  - { name: hook, type: webhook, url: "${receiver.url(o.path)}", rateLimit: { perSecond: 1000, burst: 1000 }${o.targetExtra ? `, ${o.targetExtra}` : ""} }
rules:
  - name: all
    notify: [hook]
    template: "{{subject}}"
`;
  return { file: writeConfig(yaml, dir), yaml };
}

const on = (p: string) => (): ReceivedRequest[] => receiver.requests.filter((r) => r.path === p);
const body = (r: ReceivedRequest) => r.json as WebhookBody;
const accepted = (rs: ReceivedRequest[]) => rs.filter((r) => r.reply.status >= 200 && r.reply.status < 300);

/** Waits until `count` distinct Message-IDs have been accepted at `p`. */
async function waitForMessages(p: string, count: number, timeoutMs = 20_000): Promise<void> {
  await receiver.waitFor(() => new Set(accepted(on(p)()).map((r) => body(r).messageId)).size >= count, timeoutMs);
}

function mails(n: number, tag: string): { raws: string[]; ids: string[] } {
  const ids = Array.from({ length: n }, (_, i) => `${tag}-${i}@reliability.test`);
  return { ids, raws: ids.map((id, i) => buildMail({ from: "shop@example.com", to: "x@example.com", subject: `${tag} ${i}`, text: "x", messageId: id })) };
}

describe("never lose a mail, never post one twice", () => {
  it("kill -9 in the middle of a burst of 200 mails: after a restart every mail arrives exactly once", async () => {
    const { file } = config({ user: "alice", path: "/kill" });
    const first = spawnMailbell(file);
    const { raws, ids } = mails(200, "burst");
    let appended: Promise<unknown> | undefined;
    try {
      await first.waitForLog(/"msg":"watching"/);
      appended = dovecot.appendMany("alice", "INBOX", raws);
      await receiver.waitFor(() => on("/kill")().length >= 40, 20_000);
    } finally {
      // Also when a wait above fails: a mailbell left running would keep the test file from ending.
      first.child.kill("SIGKILL");
    }
    assert.equal(await first.exited, null, "killed by the signal");
    const before = on("/kill")().length;
    assert.ok(before < 200, `the kill landed mid-burst (${before} delivered)`);
    await appended;

    const second = spawnMailbell(file);
    try {
      await waitForMessages("/kill", 200);
      await new Promise((r) => setTimeout(r, 500)); // a late duplicate would show up by now
      const posts = accepted(on("/kill")());
      const keys = posts.map((r) => String(r.headers["idempotency-key"]));
      const messageIds = posts.map((r) => body(r).messageId);
      // A receiving service deduplicates by Idempotency-Key: what it keeps is one per key.
      const kept = new Map(posts.map((r) => [String(r.headers["idempotency-key"]), body(r).messageId]));
      assert.deepEqual([...kept.values()].sort(), [...ids].sort(), "every Message-ID exactly once after deduplication by key");
      assert.equal(new Set(keys).size, 200, "one stable key per notification");
      // Without a key, only the rows in flight at the kill (sent, commit not yet) can repeat: the
      // webhook has up to 8 (its concurrency).
      assert.ok(posts.length - 200 <= 8, `at most the 8 in-flight notifications were resent (${posts.length - 200} extra)`);
      assert.equal(new Set(messageIds).size, 200);
    } finally {
      second.child.kill("SIGTERM");
      assert.equal(await second.exited, 0);
    }
  });

  it("Dovecot restarts while mail keeps arriving: nothing lost, nothing doubled", async () => {
    const { file, yaml } = config({ user: "bob", path: "/restart" });
    const mailbell = startMailbell(file, yaml);
    await waitUntilWatching(mailbell.logger);
    const { raws, ids } = mails(12, "restart");
    const appendWithRetry = async (raw: string) => {
      for (;;) {
        try {
          return await dovecot.append("bob", "INBOX", raw);
        } catch {
          await new Promise((r) => setTimeout(r, 100)); // the server is down: the sender retries, as an MTA would
        }
      }
    };
    // Awaited below, so a restart that fails says why instead of leaving the server down.
    const restarts: Promise<void>[] = [];
    const restart = (hard: boolean): void => {
      const done = dovecot.restart({ hard });
      done.catch(() => {}); // reported where awaited
      restarts.push(done);
    };
    for (const [i, raw] of raws.entries()) {
      if (i === 4) restart(true);
      if (i === 8) restart(false);
      await appendWithRetry(raw);
      await new Promise((r) => setTimeout(r, 150));
    }
    try {
      await Promise.all(restarts);
      await waitForMessages("/restart", 12, 30_000);
      await new Promise((r) => setTimeout(r, 700));
      const got = accepted(on("/restart")()).map((r) => body(r).messageId);
      assert.deepEqual([...got].sort(), [...ids].sort(), "each mail once");
      assert.ok(mailbell.logger.find(/disconnected; reconnecting/).length >= 1, "it noticed the restart");
    } finally {
      await mailbell.stop();
    }
  });

  it("a server that vanishes without FIN/RST is noticed within the keepalive bound, and mail is caught up", async () => {
    const proxy = await startProxy(dovecot.imapsPort);
    const { file, yaml } = config({ user: "carol", path: "/halfopen", port: proxy.port, watch: { keepaliveSeconds: 1, keepaliveTimeoutSeconds: 1 } });
    const mailbell = startMailbell(file, yaml);
    try {
      await waitUntilWatching(mailbell.logger);
      await new Promise((r) => setTimeout(r, 200));
      proxy.blackhole();
      const silencedAt = Date.now();
      const uid = await dovecot.append("carol", "INBOX", buildMail({ from: "a@example.com", to: "c@example.com", subject: "while the line was dead", text: "x", messageId: "dead-line@reliability.test" }));
      await mailbell.logger.waitFor(/disconnected; reconnecting/, 10_000);
      const noticedMs = Date.now() - silencedAt;
      proxy.restore();
      // keepalive 1 s + NOOP timeout 1 s, plus up to one keepalive already under way
      assert.ok(noticedMs <= 3500, `noticed after ${noticedMs} ms`);
      assert.match(String(mailbell.logger.find(/disconnected; reconnecting/)[0]!.fields.err), /did not answer a NOOP within 1000 ms/);
      await waitForMessages("/halfopen", 1, 20_000);
      assert.equal(body(accepted(on("/halfopen")())[0]!).uid, uid);
    } finally {
      await mailbell.stop();
      await proxy.close();
    }
  });

  it("the receiver answers 500s, then 429 with Retry-After, then accepts: each mail once, none before Retry-After allowed; /metrics shows how long they waited", async () => {
    receiver.replyOn("/flaky", slackReplies.rollupError(), slackReplies.rollupError(), slackReplies.rateLimited(2));
    const { file, yaml } = config({ user: "alice", mailboxes: ["Flaky"], path: "/flaky", status: "listen: 0" });
    await dovecot.createMailbox("alice", "Flaky");
    const mailbell = startMailbell(file, yaml);
    try {
      await waitUntilWatching(mailbell.logger);
      const url = String((await mailbell.logger.waitFor(/status server listening/)).fields.address);
      const oldestPendingAge = async (): Promise<number> =>
        Number(/^mailbell_outbox_oldest_pending_age_seconds\{target="hook"\} (\S+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1]);
      const { raws, ids } = mails(3, "flaky");
      await dovecot.appendMany("alice", "Flaky", raws);
      await receiver.waitFor(() => on("/flaky")().length >= 3, 10_000);
      await new Promise((r) => setTimeout(r, 1100)); // inside the 2 s the 429 asked for
      const waited = await oldestPendingAge();
      assert.ok(waited >= 1 && waited < 10, `the oldest waiting notification's age while the target holds us off: ${waited}`);
      await waitForMessages("/flaky", 3);
      for (const until = Date.now() + 5000; (await oldestPendingAge()) !== 0; await new Promise((r) => setTimeout(r, 50))) {
        assert.ok(Date.now() < until, "back to 0 once every notification is delivered");
      }
      const all = on("/flaky")();
      assert.deepEqual(all.slice(0, 3).map((r) => r.reply.status), [500, 500, 429]);
      const limited = all[2]!;
      // The 429's own row is tried again only after the 2 s it asked for. Another row may have been
      // sent in the same moment as the 429 came back (three rows in flight after a 500's short
      // backoff): it arrives within a few ms, never between that and the 2 s.
      const key = (r: (typeof all)[number]): unknown => r.headers["idempotency-key"];
      const again = all.slice(3).find((r) => key(r) === key(limited));
      assert.ok(again, "the 429's row is sent again");
      assert.ok(again.epochMs - limited.epochMs >= 2000, `the 429's row sent again ${again.epochMs - limited.epochMs} ms after its Retry-After: 2`);
      const early = all.slice(3).filter((r) => r.epochMs - limited.epochMs >= 100 && r.epochMs - limited.epochMs < 2000);
      assert.deepEqual(early.map((r) => r.epochMs - limited.epochMs), [], "nothing sent between 100 ms and the 2 s after the 429");
      const ok = accepted(all).map((r) => body(r).messageId);
      // Several in flight (the webhook's concurrency, 8): each once, in any order.
      assert.deepEqual(ok.toSorted(), ids.toSorted(), "each once");
      assert.equal(mailbell.logger.find(/delivery failed; will retry/, "warn").length, 3);
    } finally {
      await mailbell.stop();
    }
  });

  it("a final error goes to the dead letters, is listed by mailbell outbox, and retry re-queues it for the running daemon", async () => {
    const { main } = await import("../src/cli/main.ts");
    receiver.replyOn("/dead", slackReplies.noService());
    await dovecot.createMailbox("bob", "Dead");
    const { file, yaml } = config({ user: "bob", mailboxes: ["Dead"], path: "/dead" });
    const mailbell = startMailbell(file, yaml);
    try {
      await waitUntilWatching(mailbell.logger);
      await dovecot.append("bob", "Dead", buildMail({ from: "a@example.com", to: "b@example.com", subject: "goes dead", text: "x", messageId: "dead@reliability.test" }));
      await mailbell.logger.waitFor(/delivery failed for good/, 8000);

      let out = "";
      const io = { out: (t: string) => void (out += `${t}\n`), err: (t: string) => void (out += `${t}\n`), env: {} };
      assert.equal(await main(["outbox", "--config", file], io), 0);
      assert.match(out, /outbox: 0 pending, 1 dead, 0 done/);
      assert.match(out, /dead {4}bob\/Dead\/\d+\/1\/all\/hook/);
      assert.match(out, /last error: target "hook" \(http:\/\/127\.0\.0\.1:\d+\/\*\*\*\*\) answered 404: no_service/);
      out = "";
      assert.equal(await main(["outbox", "retry", "--all", "--config", file], io), 0);
      assert.match(out, /re-queued 1 dead notification/);
      // The daemon looks at the table again within 5 s of being idle.
      await waitForMessages("/dead", 1, 8000);
      assert.equal(accepted(on("/dead")()).length, 1);
    } finally {
      await mailbell.stop();
    }
  });

  it("SIGTERM with a pending outbox: drains it, then exits 0", async () => {
    // One request at a time (a webhook sends 8 at once by default), so most are still queued at the signal.
    const { file } = config({ user: "carol", mailboxes: ["Drain"], path: "/drain", logLevel: "debug", targetExtra: "concurrency: 1" });
    await dovecot.createMailbox("carol", "Drain");
    // A slow service: five sends take two seconds, so most are still queued at the signal.
    receiver.replyOn("/drain", ...Array.from({ length: 5 }, () => ({ ...slackReplies.ok(), delayMs: 400 })));
    const proc = spawnMailbell(file);
    try {
      await proc.waitForLog(/"msg":"watching"/);
      const { raws, ids } = mails(5, "drain");
      await dovecot.appendMany("carol", "Drain", raws);
      await proc.waitForCount("mail read", 5);
      assert.ok(accepted(on("/drain")()).length < 5, "some were still queued when the signal came");
      proc.child.kill("SIGTERM");
      assert.equal(await proc.exited, 0, proc.log.slice(-2000));
      assert.deepEqual(accepted(on("/drain")()).map((r) => body(r).messageId).toSorted(), ids.toSorted(), "all five were sent before the process ended");
    } finally {
      // A failed assertion must not leave mailbell running: the test file would never end.
      proc.child.kill("SIGKILL");
    }
    assert.match(proc.log, /stopped watching; sending what is queued/);
  });

  it("a second signal exits at once, and what was still queued goes out on the next start", async () => {
    // One request at a time, so most of the four are still queued (not in flight) at the signal.
    const { file } = config({ user: "bob", mailboxes: ["Twice"], path: "/second", logLevel: "debug", targetExtra: "concurrency: 1" });
    await dovecot.createMailbox("bob", "Twice");
    receiver.replyOn("/second", ...Array.from({ length: 4 }, () => ({ ...slackReplies.ok(), delayMs: 1500 })));
    const proc = spawnMailbell(file);
    const { raws, ids } = mails(4, "second");
    let signalled: number | undefined;
    try {
      await proc.waitForLog(/"msg":"watching"/);
      await dovecot.appendMany("bob", "Twice", raws);
      await proc.waitForCount("mail read", 4);
      proc.child.kill("SIGTERM");
      await proc.waitForLog(/sending what is queued/);
      signalled = Date.now();
      proc.child.kill("SIGTERM");
      assert.equal(await proc.exited, 130);
    } finally {
      proc.child.kill("SIGKILL");
    }
    assert.ok(Date.now() - signalled < 1000, "the second signal ends the process at once");
    const before = accepted(on("/second")()).length;
    assert.ok(before < 4, `some were left queued (${before} sent)`);

    const again = spawnMailbell(file);
    try {
      await waitForMessages("/second", 4, 20_000);
      await new Promise((r) => setTimeout(r, 300));
      const got = accepted(on("/second")()).map((r) => body(r).messageId);
      assert.deepEqual([...new Set(got)].sort(), [...ids].sort(), "nothing lost");
      assert.ok(got.length <= 5, "at most the one in flight at the second signal was sent twice");
    } finally {
      again.child.kill("SIGTERM");
      await again.exited;
    }
  });

  it("one mailbox that cannot be opened does not stop the others", async () => {
    const { file, yaml } = config({ user: "carol", mailboxes: ["Nowhere", "INBOX"], path: "/others" });
    const mailbell = startMailbell(file, yaml);
    try {
      await waitUntilWatching(mailbell.logger, 1);
      const failed = await mailbell.logger.waitFor(/cannot open the mailbox/, 5000, "error");
      assert.equal(failed.fields.mailbox, "Nowhere");
      assert.match(String(failed.fields.err), /mailbox "Nowhere" does not exist/);
      await dovecot.append("carol", "INBOX", buildMail({ from: "a@example.com", to: "c@example.com", subject: "still here", text: "x", messageId: "others@reliability.test" }));
      await waitForMessages("/others", 1);
    } finally {
      await mailbell.stop();
    }
  });

  it("after downtime, a long backlog is announced up to backlogLimit one by one and the rest as one digest", async () => {
    await dovecot.createMailbox("alice", "Backlog");
    const { file, yaml } = config({ user: "alice", mailboxes: ["Backlog"], path: "/backlog", watch: { backlogLimit: 2 } });
    let mailbell = startMailbell(file, yaml);
    await waitUntilWatching(mailbell.logger);
    await mailbell.stop();
    const { raws, ids } = mails(6, "backlog");
    await dovecot.appendMany("alice", "Backlog", raws);
    mailbell = startMailbell(file, yaml);
    try {
      await receiver.waitFor(() => on("/backlog")().length >= 3, 10_000);
      await new Promise((r) => setTimeout(r, 300));
      const posts = on("/backlog")();
      assert.equal(posts.length, 3);
      assert.deepEqual(posts.slice(0, 2).map((r) => body(r).messageId), ids.slice(0, 2));
      const digest = posts[2]!.json as { digest: { count: number; items: WebhookBody[] } };
      assert.equal(digest.digest.count, 4);
      assert.deepEqual(digest.digest.items.map((i) => i.messageId), ids.slice(2));
    } finally {
      await mailbell.stop();
    }
  });

  it("after the server renumbers a mailbox, mail that arrived meanwhile is posted and mail already posted is not", async () => {
    await dovecot.createMailbox("carol", "Renumber");
    const { file, yaml } = config({ user: "carol", mailboxes: ["Renumber"], path: "/renumber" });
    let mailbell = startMailbell(file, yaml);
    await waitUntilWatching(mailbell.logger);
    const seen = buildMail({ from: "a@example.com", to: "c@example.com", subject: "seen before", text: "x", messageId: "seen@reliability.test" });
    await dovecot.append("carol", "Renumber", seen);
    await waitForMessages("/renumber", 1);
    await mailbell.stop();

    await dovecot.deleteMailbox("carol", "Renumber");
    await dovecot.appendMany("carol", "Renumber", [seen, buildMail({ from: "a@example.com", to: "c@example.com", subject: "new while away", text: "x", messageId: "away@reliability.test" })]);
    mailbell = startMailbell(file, yaml);
    try {
      await waitForMessages("/renumber", 2);
      await mailbell.logger.waitFor(/^already notified; not again$/, 5000, "info");
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(on("/renumber")().map((r) => body(r).messageId), ["seen@reliability.test", "away@reliability.test"]);
    } finally {
      await mailbell.stop();
    }
  });

  it("the same mail in two watched folders (Gmail's INBOX and All Mail) is posted once", async () => {
    await dovecot.createMailbox("bob", "All Mail");
    const { file, yaml } = config({ user: "bob", mailboxes: ["INBOX", "All Mail"], path: "/twice" });
    const mailbell = startMailbell(file, yaml);
    try {
      await waitUntilWatching(mailbell.logger, 2);
      const raw = buildMail({ from: "a@example.com", to: "b@example.com", subject: "one mail, two folders", text: "x", messageId: "twice@reliability.test" });
      await dovecot.append("bob", "INBOX", raw);
      await dovecot.append("bob", "All Mail", raw);
      await waitForMessages("/twice", 1);
      await mailbell.logger.waitFor(/^already notified; not again$/, 5000);
      assert.equal(on("/twice")().length, 1);
    } finally {
      await mailbell.stop();
    }
  });
});

describe("staying alive, and saying so", () => {
  it("serves /healthz and /metrics, reports a long outage as unhealthy, and recovers after a kick (server BYE)", async () => {
    await dovecot.createMailbox("carol", "Status");
    const { file, yaml } = config({ user: "carol", mailboxes: ["Status"], path: "/status", status: "listen: 0, reconnectBudgetSeconds: 1" });
    const mailbell = startMailbell(file, yaml);
    try {
      await waitUntilWatching(mailbell.logger);
      const url = String((await mailbell.logger.waitFor(/status server listening/)).fields.address);
      const healthy = await fetch(`${url}/healthz`);
      assert.equal(healthy.status, 200);
      const snapshot = (await healthy.json()) as { healthy: boolean; mailboxes: { account: string; mailbox: string; connected: boolean }[] };
      assert.deepEqual(snapshot.mailboxes.map((m) => [m.account, m.mailbox, m.connected]), [["carol", "Status", true]]);

      await dovecot.kick("carol");
      await mailbell.logger.waitFor(/disconnected; reconnecting/);
      await dovecot.append("carol", "Status", buildMail({ from: "a@example.com", to: "c@example.com", subject: "after BYE", text: "x", messageId: "after-bye@reliability.test" }));
      await waitForMessages("/status", 1);

      // The receiver lists the post before it answers, and the answer is recorded on the delivery
      // thread: the scrape waits for that thread's count (sent after its commit) rather than racing it.
      let metrics = "";
      for (const deadline = Date.now() + 5000; !/^mailbell_deliveries_total\{target="hook",outcome="delivered"\} 1$/m.test(metrics) && Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
        metrics = await (await fetch(`${url}/metrics`)).text();
      }
      assert.match(metrics, /^mailbell_reconnects_total\{account="carol",mailbox="Status"\} 1$/m);
      assert.match(metrics, /^mailbell_mails_processed_total\{account="carol",mailbox="Status"\} 1$/m);
      assert.match(metrics, /^mailbell_deliveries_total\{target="hook",outcome="delivered"\} 1$/m);
      assert.match(metrics, /^mailbell_rule_matches_total\{rule="all"\} 1$/m);
      assert.match(metrics, /^mailbell_outbox_rows\{target="hook",state="done"\} 1$/m);
      assert.match(metrics, /^mailbell_mailbox_up\{account="carol",mailbox="Status"\} 1$/m);

      await dovecot.stop({ hard: true });
      await new Promise((r) => setTimeout(r, 1800));
      const down = await fetch(`${url}/healthz`);
      assert.equal(down.status, 503, "an outage longer than reconnectBudgetSeconds is unhealthy");
      const why = (await down.json()) as { mailboxes: { reason?: string }[] };
      assert.ok(why.mailboxes[0]!.reason, "and says why");
      await dovecot.restart();
      const deadline = Date.now() + 10_000;
      while ((await fetch(`${url}/healthz`)).status !== 200) {
        assert.ok(Date.now() < deadline, "healthy again after the server came back");
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await mailbell.stop();
    }
  });

  it("falls back to polling on a server without IDLE, and says so", async () => {
    const noIdle = await startDovecot({ extraConfig: ["imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS"] });
    try {
      const dir = mkdtempSync(path.join(tmpdir(), "mailbell-rel-"));
      const yaml = `state: ${dir}/state.db
watch: { pollSeconds: 1 }
accounts:
  - { name: alice, host: 127.0.0.1, port: ${noIdle.imapsPort}, ca: ${noIdle.caFile}, user: alice, pass: alicepw }
targets:
  - { name: hook, type: webhook, url: "${receiver.url("/poll")}" }
rules:
  - { name: all, notify: [hook] }
`;
      const mailbell = startMailbell(writeConfig(yaml, dir), yaml);
      try {
        await waitUntilWatching(mailbell.logger);
        const warning = await mailbell.logger.waitFor(/does not support IDLE/, 3000, "warn");
        assert.equal(warning.fields.pollMs, 1000);
        await noIdle.append("alice", "INBOX", buildMail({ from: "a@example.com", to: "x@example.com", subject: "polled", text: "x", messageId: "polled@reliability.test" }));
        await waitForMessages("/poll", 1, 5000);
      } finally {
        await mailbell.stop();
      }
    } finally {
      await noIdle.dispose();
    }
  });
});
