/** The mailbell command as a user runs it: check against Dovecot, run as a process, config errors. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { runCli } from "./support/cli.ts";
import { writeConfig } from "./support/daemon.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { buildMail } from "./support/mail.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";

const root = path.resolve(import.meta.dirname, "..");
let dovecot: Dovecot;
let receiver: Receiver;

before(async () => {
  [dovecot, receiver] = await Promise.all([startDovecot(), startReceiver()]);
});
after(async () => {
  await Promise.all([dovecot?.dispose(), receiver?.close()]);
});

function config(opts: { pass?: string; mailboxes?: string[]; tls?: string; port?: number; ca?: boolean; then?: string } = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-cli-"));
  return writeConfig(
    `state: ${dir}/state.db
accounts:
  - name: alice
    host: 127.0.0.1
    port: ${opts.port ?? dovecot.imapsPort}
    tls: ${opts.tls ?? "implicit"}
${opts.ca === false ? "" : `    ca: ${dovecot.caFile}\n`}    user: alice
    pass: \${MAILBELL_TEST_PASS}
    mailboxes: [${(opts.mailboxes ?? ["INBOX"]).join(", ")}]
targets:
  - { name: team, type: slack, url: "${receiver.url("/services/T000/B000/secret-token")}" }
rules:
  - name: everything
    notify: [team]
    template: "{{from}}: {{subject}}"
${opts.then ? `    then: ${opts.then}\n` : ""}`,
    dir,
  );
}

const cli = (args: string[], pass = "alicepw") => runCli(args, { MAILBELL_TEST_PASS: pass });

describe("mailbell check", () => {
  it("validates, logs in, confirms every mailbox, and masks the target", async () => {
    await dovecot.createMailbox("alice", "Receipts");
    const r = await cli(["check", "--config", config({ mailboxes: ["INBOX", "Receipts"] })]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /✓ account alice: logged in as alice at 127\.0\.0\.1:\d+ \(implicit\)/);
    assert.match(r.out, /✓ alice\/INBOX: \d+ message\(s\)/);
    assert.match(r.out, /✓ alice\/Receipts: \d+ message\(s\)/);
    assert.match(r.out, /· target team: slack http:\/\/127\.0\.0\.1:\d+\/\*\*\*\* \(not contacted\)/);
    assert.ok(!r.out.includes("secret-token"), "the webhook URL's secret part is masked");
    assert.equal(receiver.requests.length, 0, "check sends nothing to targets");
  });

  it("fails with the server's reason when the password is wrong", async () => {
    const r = await cli(["check", "--config", config()], "wrong");
    assert.equal(r.code, 3);
    assert.match(r.out, /✗ account alice: .*refused the login.*Check user and pass/);
    assert.ok(!r.out.includes("wrong") || !/pass.*wrong/.test(r.out), "the password is not printed");
  });

  it("fails naming a mailbox that does not exist", async () => {
    const r = await cli(["check", "--config", config({ mailboxes: ["INBOX", "Nope"] })]);
    assert.equal(r.code, 3);
    assert.match(r.out, /✓ alice\/INBOX/);
    assert.match(r.out, /✗ alice\/Nope: .*mailbox "Nope" does not exist/);
  });

  it("names a folder a rule moves mail to that does not exist, and confirms one that does", async () => {
    await dovecot.createMailbox("alice", "Filed");
    const missing = await cli(["check", "--config", config({ then: "{ move: Filde }" })]);
    assert.equal(missing.code, 3);
    assert.match(missing.out, /✗ alice\/Filde: rule everything moves mail there \(then\.move\), but the folder does not exist: create it, or fix the name/);
    const there = await cli(["check", "--config", config({ then: "{ move: Filed }" })]);
    assert.equal(there.code, 0, there.out + there.err);
    assert.match(there.out, /✓ alice\/Filed: exists \(rule everything moves mail there\)/);
  });

  it("refuses a Gmail label on a server that is not Gmail, with the fix", async () => {
    const r = await cli(["check", "--config", config({ then: "{ label: Receipts }" })]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /rules\[0\]\.then\.label: labels exist only on Gmail .*"alice" \(127\.0\.0\.1\).*Use flag:/);
  });

  it("refuses a server certificate it cannot verify", async () => {
    const r = await cli(["check", "--config", config({ ca: false })]);
    assert.equal(r.code, 3);
    assert.match(r.out, /TLS certificate check failed.*set ca:/);
  });

  it("with tls: starttls refuses a server that does not offer STARTTLS, before sending the password", async () => {
    const plain = await startDovecot({ ssl: "no" });
    try {
      const r = await cli(["check", "--config", config({ tls: "starttls", port: plain.imapPort, ca: false })]);
      assert.equal(r.code, 3);
      assert.match(r.out, /STARTTLS/);
      assert.doesNotMatch(plain.logTail(50), /Login: user=<alice>/);
    } finally {
      await plain.dispose();
    }
  });

  it("reports a config error with file, line, key path and exit code 2", async () => {
    const file = writeConfig("accounts:\n  - name: a\n    host: h\n    user: u\n    pass: p\n    tls: ssl\n");
    const r = await cli(["check", "--config", file]);
    assert.equal(r.code, 2);
    assert.match(r.err, /mailbell: config error: .*mailbell\.yaml:6: accounts\[0\]\.tls: must be one of: "implicit", "starttls", "none"/);
  });

  it("explains usage mistakes", async () => {
    assert.equal((await cli(["frobnicate"])).code, 2);
    assert.match((await cli(["frobnicate"])).err, /unknown command "frobnicate"/);
    assert.match((await cli(["test", "--config", "x.yaml"])).err, /needs exactly one message file/);
    assert.equal((await cli(["--help"])).code, 0);
  });
});

describe("mailbell test as a process", () => {
  it("a rule whose regex backtracks catastrophically still finishes: V8 switches it to its linear-time engine", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-cli-"));
    const file = writeConfig(
      `state: ${dir}/state.db
accounts:
  - { name: alice, host: 127.0.0.1, port: ${dovecot.imapsPort}, user: alice, pass: alicepw }
targets:
  - { name: team, type: slack, url: "${receiver.url("/services/T000/B000/redos")}" }
rules:
  - name: nested
    match: { subject: "/(a+)+$/" }
    notify: [team]
`,
      dir,
    );
    const mail = path.join(dir, "mail.eml");
    // 2^40 ways to split the a's: hours of backtracking without the flag, milliseconds with it.
    writeFileSync(mail, buildMail({ from: "a@example.com", to: "b@example.com", subject: `${"a".repeat(40)}!`, text: "x" }));
    const child = spawn(process.execPath, [path.join(root, "src/cli/entry.ts"), "test", "--config", file, mail], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("exit", (c, s) => resolve([c, s])));
    clearTimeout(timer);
    assert.equal(signal, null, `killed after 20 s: the regex still backtracks\n${output}`);
    assert.equal(code, 0, output);
    assert.match(output, /nested/);
  });
});

describe("mailbell run as a process", () => {
  it("notifies, never logs the password or webhook URL, and exits 0 on SIGTERM", async () => {
    const file = config();
    const child = spawn(process.execPath, [path.join(root, "src/cli/entry.ts"), "run", "--config", file], {
      env: { ...process.env, MAILBELL_TEST_PASS: "alicepw" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      const deadline = Date.now() + 10_000;
      while (!stderr.includes('"msg":"watching"')) {
        if (Date.now() > deadline) throw new Error(`mailbell did not start watching:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await dovecot.append("alice", "INBOX", buildMail({ from: "Shop <shop@example.com>", to: "alice@example.com", subject: "process test", text: "hi" }));
      const [post] = await receiver.waitFor((r) => (r.json as { text?: string } | undefined)?.text === "Shop &lt;shop@example.com&gt;: process test", 8000);
      assert.ok(post);
      child.kill("SIGTERM");
      assert.equal(await exited, 0, stderr);
      assert.match(stderr, /"msg":"mailbell stopped"/);
      assert.ok(!stderr.includes("alicepw"), "password in the log");
      assert.ok(!stderr.includes("secret-token"), "webhook URL in the log");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
