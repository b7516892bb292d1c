import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { amountField, notificationWith } from "../../test/support/targets.ts";
import { TargetError } from "../errors.ts";
import { memoryTargetState } from "./state.ts";
import { commandModule, stderrTail, type CommandDigest } from "./command.ts";
import { TargetUrlError } from "./module.ts";
import type { Notification, Target } from "./types.ts";
import type { WebhookBody } from "./webhook.ts";

const node = process.execPath;
const hostileSubject = "$(touch /tmp/pwned); `id` --help\0nul";
const hostileText = "--output=/etc/passwd; rm -rf ~ | tee x\n$HOME";

const notification = notificationWith({
  account: "personal",
  subject: hostileSubject,
  fields: { amount: amountField, "item-name": { text: "Pass", raw: "Pass" }, missing: null },
  total: { amount: "3200", currency: "JPY", text: "¥3,200", period: "2026-11", periodLabel: "November" },
  link: "https://mail.example/x",
  render: (escape) => `Paid: ${escape(hostileText)}`,
});

let dir: string;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), "mailbell-command-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let outCount = 0;
function outFile(): string {
  outCount += 1;
  return path.join(dir, `out-${outCount}.json`);
}

function create(options: Record<string, unknown>): Target {
  return commandModule.create(commandModule.schema.parse({ name: "script", type: "command", ...options }), { state: memoryTargetState() });
}

/** A program that records what it was given. */
const recorder = `
const fs = require("node:fs");
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  fs.writeFileSync(process.env.OUT, JSON.stringify({ argv: process.argv, env: process.env, stdin: input, cwd: process.cwd() }));
});`;

interface Recorded {
  argv: string[];
  env: Record<string, string>;
  stdin: string;
  cwd: string;
}

async function run(options: Record<string, unknown>, n: Notification = notification()): Promise<Recorded> {
  const out = outFile();
  const t = create({ command: [node, "-e", recorder], ...options, env: { OUT: out, ...(options.env as object) } });
  await t.send(t.render(n));
  return JSON.parse(readFileSync(out, "utf8")) as Recorded;
}

async function failure(t: Target, n: Notification = notification(), signal?: AbortSignal): Promise<TargetError> {
  try {
    await t.send(t.render(n), { signal });
  } catch (err) {
    assert.ok(err instanceof TargetError, String(err));
    return err;
  }
  assert.fail("the send should have failed");
}

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  // A killed grandchild may linger as a zombie until something reaps it: it runs no more.
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

describe("command payload", () => {
  it("render is the webhook JSON, the mail's text as it is, so the outbox stores what stdin gets", () => {
    const t = create({ command: ["/bin/true"] });
    const payload = t.render(notification());
    assert.match(payload.contentType, /^application\/json/);
    const body = JSON.parse(payload.body) as WebhookBody;
    assert.equal(body.text, `Paid: ${hostileText}`);
    assert.equal(body.subject, hostileSubject);
    assert.deepEqual(body.fields.missing, null);
    assert.equal(t.summarize(notification()), "Paid: --output=/etc/passwd; rm -rf ~ | tee x $HOME");
  });

  it("a digest lists the items and a text", () => {
    const t = create({ command: ["/bin/true"] });
    const entries = [1, 2].map((uid) => ({ rule: "receipts", subject: "s", summary: `mail ${uid}`, body: t.render(notification({ uid })).body }));
    const digest = JSON.parse(t.renderDigest(entries, 7).body) as CommandDigest;
    assert.equal(digest.digest.count, 7);
    assert.equal(digest.digest.listed, 2);
    assert.equal((digest.digest.items[1] as WebhookBody).uid, 2);
    assert.equal(digest.digest.text, "7 mails:\n- mail 1\n- mail 2\n…and 5 more");
  });
});

describe("command run", () => {
  it("passes the JSON on stdin and the values as environment variables", async () => {
    const r = await run({});
    const stdin = JSON.parse(r.stdin) as WebhookBody;
    assert.equal(stdin.uid, 42);
    assert.equal(stdin.text, `Paid: ${hostileText}`);
    const expected: Record<string, string> = {
      MAILBELL_RULE: "receipts",
      MAILBELL_ACCOUNT: "personal",
      MAILBELL_MAILBOX: "INBOX",
      MAILBELL_UID: "42",
      MAILBELL_UIDVALIDITY: "7",
      MAILBELL_MESSAGE_ID: "m@x",
      MAILBELL_SUBJECT: "$(touch /tmp/pwned); `id` --help\uFFFDnul",
      MAILBELL_FROM: "Eve <eve@evil.example>",
      MAILBELL_DATE: "2026-11-23T00:00:00.000Z",
      MAILBELL_LINK: "https://mail.example/x",
      MAILBELL_TEXT: `Paid: ${hostileText}`,
      MAILBELL_TOTAL: "¥3,200",
      MAILBELL_TOTAL_AMOUNT: "3200",
      MAILBELL_TOTAL_CURRENCY: "JPY",
      MAILBELL_PERIOD: "2026-11",
      MAILBELL_FIELD_AMOUNT: "¥480",
      MAILBELL_FIELD_AMOUNT_RAW: "￥480",
      MAILBELL_FIELD_AMOUNT_AMOUNT: "480",
      MAILBELL_FIELD_AMOUNT_CURRENCY: "JPY",
      MAILBELL_FIELD_ITEM_NAME: "Pass",
      MAILBELL_FIELD_ITEM_NAME_RAW: "Pass",
    };
    const got = Object.fromEntries(Object.entries(r.env).filter(([k]) => k.startsWith("MAILBELL_")));
    assert.deepEqual(got, expected);
    assert.equal(r.env.MAILBELL_FIELD_MISSING, undefined, "a missing field is unset");
  });

  it("keeps mail text out of argv: only the configured arguments", async () => {
    const r = await run({ command: [node, "-e", recorder, "fixed-arg"] });
    assert.deepEqual(r.argv.slice(1), ["fixed-arg"]);
    for (const arg of r.argv) assert.ok(!arg.includes("pwned") && !arg.includes("passwd"), arg);
  });

  it("does not hand over mailbell's environment unless inheritEnv is set", async () => {
    process.env.MAILBELL_TEST_IMAP_PASS = "hunter2";
    try {
      const r = await run({ env: { EXTRA: "yes" } });
      assert.equal(r.env.MAILBELL_TEST_IMAP_PASS, undefined);
      assert.equal(r.env.EXTRA, "yes");
      assert.equal(r.env.PATH, process.env.PATH);
      const inherited = await run({ inheritEnv: true });
      assert.equal(inherited.env.MAILBELL_TEST_IMAP_PASS, "hunter2");
    } finally {
      delete process.env.MAILBELL_TEST_IMAP_PASS;
    }
  });

  it("runs in cwd", async () => {
    assert.equal((await run({ cwd: dir })).cwd, dir);
  });

  it("cuts huge values in the environment but not on stdin", async () => {
    const big = "x".repeat(200_000);
    const r = await run({}, notification({ render: (e) => e(big) }));
    assert.equal(r.env.MAILBELL_TEXT!.length, 32_768);
    assert.ok(r.env.MAILBELL_TEXT!.endsWith("…"));
    assert.equal((JSON.parse(r.stdin) as WebhookBody).text.length, 200_000);
  });

  it("a digest sets MAILBELL_DIGEST_COUNT and MAILBELL_TEXT", async () => {
    const out = outFile();
    const t = create({ command: [node, "-e", recorder], env: { OUT: out } });
    const entries = [{ rule: "receipts", subject: "s", summary: "one", body: t.render(notification()).body }];
    await t.send(t.renderDigest(entries, 3));
    const r = JSON.parse(readFileSync(out, "utf8")) as Recorded;
    assert.equal(r.env.MAILBELL_DIGEST_COUNT, "3");
    assert.equal(r.env.MAILBELL_TEXT, "3 mails:\n- one\n…and 2 more");
    assert.equal((JSON.parse(r.stdin) as CommandDigest).digest.count, 3);
  });

  const exits: [string, string, boolean, RegExp][] = [
    ["exit 0 is delivered", "process.exit(0)", false, /^$/],
    ["exit 75 is retryable", "process.exit(75)", true, /exited with 75 \(EX_TEMPFAIL: try again later\); will retry\./],
    ["exit 1 is final and shows stderr", "console.error('bad config: no API key'); process.exit(1)", false, /exited with 1; stderr: bad config: no API key\. Exit 0 means delivered and 75 means try again later/],
    [
      "stderr shows its last lines, one line, without terminal escapes",
      "for (let i = 1; i <= 9; i++) console.error('line ' + i); console.error('\\u001b[31mboom\\u001b[0m'); process.exit(2)",
      false,
      /exited with 2; stderr: line 6 \| line 7 \| line 8 \| line 9 \| boom\./,
    ],
    ["death by a signal is final", "process.kill(process.pid, 'SIGSEGV')", false, /was killed by SIGSEGV/],
  ];
  for (const [what, script, retryable, message] of exits) {
    it(what, async () => {
      const t = create({ command: [node, "-e", script] });
      try {
        await t.send(t.render(notification()));
        assert.match("", message);
      } catch (err) {
        assert.ok(err instanceof TargetError);
        assert.equal(err.retryable, retryable);
        assert.match(err.message, message);
        assert.match(err.message, /^target "script" \(/);
      }
    });
  }

  it("a timeout kills the whole process group and is retryable", async () => {
    const out = outFile();
    const script = `
      const { spawn } = require("node:child_process");
      const g = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
      require("node:fs").writeFileSync(process.env.OUT, String(g.pid));
      setInterval(() => {}, 1000);`;
    const started = Date.now();
    const err = await failure(create({ command: [node, "-e", script], timeoutSeconds: 0.5, env: { OUT: out } }));
    assert.equal(err.retryable, true);
    assert.match(err.message, /ran longer than timeoutSeconds \(0\.5\) and was stopped; will retry\. Raise timeoutSeconds/);
    assert.ok(Date.now() - started < 4000);
    const grandchild = Number(readFileSync(out, "utf8"));
    for (let i = 0; i < 40 && !gone(grandchild); i++) await sleep(50);
    assert.ok(gone(grandchild), `grandchild ${grandchild} still running`);
  });

  it("a program that ignores SIGTERM gets SIGKILL after the grace period", async () => {
    const started = Date.now();
    const err = await failure(create({ command: [node, "-e", "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"], timeoutSeconds: 0.3 }));
    assert.equal(err.retryable, true);
    assert.match(err.message, /ran longer than timeoutSeconds/);
    assert.ok(Date.now() - started < 3000, `${Date.now() - started} ms`);
  });

  it("shutting down stops the program and leaves the row for later", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const err = await failure(create({ command: [node, "-e", "setInterval(() => {}, 1000)"] }), notification(), controller.signal);
    assert.equal(err.retryable, true);
    assert.match(err.message, /stopped: mailbell is shutting down; will retry/);
  });

  it("a program that does not read stdin is fine", async () => {
    await create({ command: [node, "-e", "process.exit(0)"] }).send(create({ command: ["/bin/true"] }).render(notification({ render: () => "x".repeat(1_000_000) })));
  });

  it("a missing program is a final error naming it", async () => {
    const abs = await failure(create({ command: [path.join(dir, "no-such-program")] }));
    assert.equal(abs.retryable, false);
    assert.match(abs.message, /command\[0\] ".*no-such-program": no such file\. Give the program's absolute path/);
    const bare = await failure(create({ command: ["mailbell-no-such-program"] }));
    assert.match(bare.message, /command\[0\] "mailbell-no-such-program": not found on PATH \(/);
  });

  it("a program that is not executable is a final error saying how to fix it", async () => {
    const file = path.join(dir, "not-executable.sh");
    writeFileSync(file, "#!/bin/sh\nexit 0\n");
    chmodSync(file, 0o644);
    const err = await failure(create({ command: [file] }));
    assert.equal(err.retryable, false);
    assert.match(err.message, /is not executable \(EACCES\)\. Make it executable \(chmod \+x\)/);
  });

  it("a missing cwd is named as such", async () => {
    const missing = path.join(dir, "no-such-dir");
    assert.ok(!existsSync(missing));
    const err = await failure(create({ command: [node, "-e", "0"], cwd: missing }));
    assert.equal(err.retryable, false);
    assert.match(err.message, /cwd ".*no-such-dir" does not exist/);
  });
});

describe("stderrTail", () => {
  it("keeps the end of long output", () => {
    const tail = stderrTail(`${"y".repeat(2000)}\n`);
    assert.equal(tail.length, 500);
    assert.ok(tail.startsWith("…"));
    assert.equal(stderrTail("\n\n"), "");
  });
});

describe("command config", () => {
  const invalid: [string, Record<string, unknown>, RegExp][] = [
    ["a shell string", { command: "notify --all" }, /command: write the command as a list/],
    ["an empty list", { command: [] }, /command: give at least the program/],
    ["an empty argument", { command: ["/bin/x", ""] }, /command\.1: an empty string/],
    ["a bad env name", { command: ["/bin/x"], env: { "A-B": "1" } }, /env\.A-B: environment variable names/],
    ["a zero timeout", { command: ["/bin/x"], timeoutSeconds: 0 }, /timeoutSeconds: /],
  ];
  for (const [what, options, message] of invalid) {
    it(`rejects ${what}`, () => {
      const r = commandModule.schema.safeParse({ name: "c", type: "command", ...options });
      assert.ok(!r.success);
      assert.match(r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n"), message);
    });
  }

  it("describes itself without env values", () => {
    const d = create({ command: ["/usr/local/bin/notify", "--quiet"], env: { API_KEY: "s3cret" } }).describe();
    assert.equal(d, "command /usr/local/bin/notify (+1 arg(s)), timeout 30s, 1 env var(s), values hidden");
  });
});

describe("command URL form", () => {
  const valid: [string, Record<string, unknown>][] = [
    ["command:///usr/local/bin/notify", { command: ["/usr/local/bin/notify"] }],
    ["command:///opt/my%20tools/n?arg=--quiet&arg=-v&timeout=10", { command: ["/opt/my tools/n", "--quiet", "-v"], timeoutSeconds: 10 }],
  ];
  for (const [url, expected] of valid) {
    it(`reads ${url}`, () => {
      const options = commandModule.fromUrl(new URL(url));
      assert.deepEqual(options, expected);
      assert.ok(commandModule.schema.safeParse({ name: "c", type: "command", ...options }).success);
    });
  }
  const invalid: [string, RegExp][] = [
    ["command://notify", /"notify" looks like a host: a command URL is command:\/\/\/absolute\/path/],
    ["command://", /no program path/],
    ["command:///x?shell=1", /unknown option "shell"/],
    ["command:///x?timeout=soon", /timeout=soon: give seconds/],
  ];
  for (const [url, message] of invalid) {
    it(`explains what is wrong with ${url}`, () => {
      assert.throws(
        () => commandModule.fromUrl(new URL(url)),
        (err: unknown) => err instanceof TargetUrlError && message.test(err.message),
      );
    });
  }
});
