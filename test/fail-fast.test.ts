/**
 * failFast against a real Dovecot: the failures retrying cannot fix (a refused login, an unknown
 * mailbox, an untrusted certificate) thrown to the caller as typed ImapErrors; by default they are
 * retried as before, with one process warning when nobody listens; nonsense options refused at once.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ImapError, TlsError, UsageError, watchMailbox, type ImapAccount, type WatchEvent, type WatchOptions } from "../src/index.ts";
import { imapAccountOf, startDovecot, type Dovecot } from "./support/dovecot.ts";

let dovecot: Dovecot;

before(async () => {
  dovecot = await startDovecot();
});
after(async () => {
  await dovecot?.dispose();
});

const account = (user: string): ImapAccount => imapAccountOf(dovecot, user);

/** Counts connection attempts without a logger or onEvent: every session passes the gate once. */
function countingGate(): { connects: number; run<T>(connect: () => Promise<T>): Promise<T> } {
  const gate = {
    connects: 0,
    run<T>(connect: () => Promise<T>): Promise<T> {
      gate.connects++;
      return connect();
    },
  };
  return gate;
}

/** Runs the watcher until it throws (resolving with the error and how long it took) or 5 s pass. */
async function firstError(options: WatchOptions): Promise<{ error: unknown; ms: number }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5000);
  const startedAt = Date.now();
  try {
    for await (const _ of watchMailbox({ signal: controller.signal, ...options })) {
      // no mail expected
    }
    return { error: undefined, ms: Date.now() - startedAt };
  } catch (error) {
    return { error, ms: Date.now() - startedAt };
  } finally {
    clearTimeout(timer);
  }
}

describe("failFast", () => {
  // First in the file: the warning is said once per process.
  it("by default retries what it cannot fix, and warns once that nobody sees it", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on("warning", onWarning);
    const gate = countingGate();
    const controller = new AbortController();
    const done = (async () => {
      for await (const _ of watchMailbox({ account: account("alice"), mailbox: "No/Such", signal: controller.signal, connectGate: gate, reconnect: { baseMs: 10, capMs: 20 } })) {
        // no mail expected
      }
    })();
    const deadline = Date.now() + 8000;
    while (gate.connects < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    await done; // ends quietly: nothing thrown
    process.off("warning", onWarning);
    assert.ok(gate.connects >= 3, `retried: ${gate.connects} connects`);
    const ours = warnings.filter((w) => (w as { code?: string }).code === "MAILBELL_SILENT_RETRIES");
    assert.equal(ours.length, 1, "said once, not per failure");
    assert.match(ours[0]!.message, /neither logger nor onEvent.*Pass logger \(console will do\) or onEvent/);
  });

  it('"first-connect": a wrong password throws IMAP_AUTH at once, not after the 5 minute wait', async () => {
    const { error, ms } = await firstError({ account: { ...account("bob"), pass: "wrong" }, mailbox: "INBOX", failFast: "first-connect" });
    assert.ok(error instanceof ImapError, String(error));
    assert.equal(error.code, "IMAP_AUTH");
    assert.match(error.message, /refused the login.*Check user and pass/);
    assert.ok(ms < 3000, `${ms} ms`);
  });

  it("with credentials(), a refused login is tried once more with fresh ones before it throws", async () => {
    const asked: boolean[] = [];
    const credentials = async (refused: boolean): Promise<{ pass: string }> => (asked.push(refused), { pass: "wrong" });
    const { error } = await firstError({ account: { ...account("bob"), pass: undefined, credentials }, mailbox: "INBOX", failFast: "always" });
    assert.ok(error instanceof ImapError && error.code === "IMAP_AUTH", String(error));
    assert.deepEqual(asked, [false, true]);
  });

  it('"always": an unknown mailbox throws IMAP_MAILBOX naming it', async () => {
    const { error, ms } = await firstError({ account: account("alice"), mailbox: "No/Such", failFast: "always" });
    assert.ok(error instanceof ImapError, String(error));
    assert.equal(error.code, "IMAP_MAILBOX");
    assert.equal(error.mailbox, "No/Such");
    assert.ok(ms < 3000, `${ms} ms`);
  });

  it("an untrusted certificate (implicit TLS without ca) throws IMAP_CONNECT, a TlsError", async () => {
    const { error } = await firstError({ account: { ...account("alice"), ca: undefined }, mailbox: "INBOX", failFast: "first-connect" });
    assert.ok(error instanceof TlsError, String(error));
    assert.equal(error.code, "IMAP_CONNECT");
    assert.match(error.message, /TLS certificate check failed.*set ca:/);
  });

  for (const mode of ["first-connect", "always"] as const) {
    it(`${mode}: a mailbox deleted after it was opened is ${mode === "always" ? "thrown" : "retried"}`, async () => {
      const box = `Gone-${mode}`;
      await dovecot.createMailbox("carol", box);
      const seen: WatchEvent[] = [];
      const controller = new AbortController();
      const done = (async () => {
        for await (const _ of watchMailbox({ account: account("carol"), mailbox: box, signal: controller.signal, failFast: mode, onEvent: (e) => seen.push(e), reconnect: { baseMs: 10, capMs: 20 } })) {
          // no mail expected
        }
      })().then(
        () => undefined,
        (err: unknown) => err,
      );
      const until = async (ok: () => boolean): Promise<void> => {
        const deadline = Date.now() + 8000;
        while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      };
      await until(() => seen.some((e) => e.type === "idle"));
      await dovecot.deleteMailbox("carol", box);
      await dovecot.kick("carol");
      const mailboxGone = (): boolean => seen.some((e) => e.type === "disconnected" && e.error?.code === "IMAP_MAILBOX");
      if (mode === "always") {
        const error = await done;
        assert.ok(error instanceof ImapError && error.code === "IMAP_MAILBOX", String(error));
      } else {
        await until(() => seen.filter((e) => e.type === "connecting").length >= 4 && mailboxGone());
        controller.abort();
        assert.equal(await done, undefined);
        assert.ok(mailboxGone(), seen.map((e) => e.type).join(", "));
      }
    });
  }

  it("an unreachable server is retried even with failFast: the server may come back", async () => {
    const gate = countingGate();
    const controller = new AbortController();
    const done = (async () => {
      for await (const _ of watchMailbox({ account: { ...account("alice"), port: 1 }, mailbox: "INBOX", signal: controller.signal, failFast: "always", connectGate: gate, logger: { error() {}, warn() {}, info() {}, debug() {} }, reconnect: { baseMs: 10, capMs: 20 } })) {
        // no mail expected
      }
    })();
    const deadline = Date.now() + 8000;
    while (gate.connects < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    await done;
    assert.ok(gate.connects >= 3, `retried: ${gate.connects} connects`);
  });
});

describe("options that cannot work", () => {
  it('host "" is refused before connecting, naming the option and the fix', async () => {
    const gate = countingGate();
    await assert.rejects(watchMailbox({ account: { ...account("alice"), host: "" }, mailbox: "INBOX", connectGate: gate }).next(), (err: unknown) => err instanceof UsageError && /account\.host "" .*host: "imap\.example\.com"/.test(err.message));
    assert.equal(gate.connects, 0);
  });
});
