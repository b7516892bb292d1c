/**
 * `mailbell init` as a user meets it: answering its questions in a real terminal (util-linux
 * `script` gives it a pty), with flags only in a script, and the config it writes checked against
 * Dovecot standing in for the provider and then posting a first mail to a local receiver.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { loadConfig } from "../src/config/load.ts";
import { runDaemon } from "../src/daemon/run.ts";
import { runCli } from "./support/cli.ts";
import { waitUntilWatching } from "./support/daemon.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { CaptureLogger } from "./support/logger.ts";
import { buildMail } from "./support/mail.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";

const root = path.resolve(import.meta.dirname, "..");
const entry = path.join(root, "src/cli/entry.ts");
const freshDir = (): string => mkdtempSync(path.join(tmpdir(), "mailbell-init-"));
/** The child's environment: no secrets of the test runner's, so check's findings are ours. */
const bareEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmpdir(), TERM: "xterm", LANG: "C.UTF-8", TZ: "Asia/Tokyo" };

// Started at once, so Dovecot comes up while the terminal tests run.
const servers = Promise.all([startDovecot(), startReceiver()]);
after(async () => {
  const [dovecot, receiver] = await servers;
  await Promise.all([dovecot.dispose(), receiver.close()]);
});

/** `mailbell init` on a pseudo-terminal: waits for each question's text before typing the answer. */
class TerminalSession {
  readonly child: ChildProcess;
  readonly exit: Promise<number>;
  screen = "";
  #seen = 0;

  constructor(args: readonly string[]) {
    // `exec`: sh -c (SHELL is unset here) would otherwise stay between the terminal and mailbell.
    const command = "exec " + [process.execPath, entry, "init", ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    // -e: script exits with the command's code; -f: output is passed on at once; -q: no banner.
    this.child = spawn("script", ["-qfec", command, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"], env: bareEnv });
    this.child.stdout!.on("data", (chunk: Buffer) => void (this.screen += chunk.toString("utf8")));
    this.exit = new Promise((resolve) => this.child.on("close", (code) => resolve(code ?? -1)));
  }

  /** Waits until `text` appears after what was matched before, then moves past it. */
  async waitFor(text: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.screen.indexOf(text, this.#seen);
      if (at >= 0) {
        this.#seen = at + text.length;
        return;
      }
      if (Date.now() > deadline) throw new Error(`"${text}" did not appear within ${timeoutMs} ms; the terminal shows:\n${this.screen.slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Types an answer and presses Enter ("" is Enter alone: the default). */
  async answer(question: string, prompt: string, typed: string): Promise<void> {
    await this.waitFor(question);
    await this.waitFor(prompt);
    this.child.stdin!.write(`${typed}\r`);
  }
}

describe("mailbell init on a terminal", { concurrency: 2 }, () => {
  it("asks one question at a time, takes Enter as the default, asks again on a wrong answer, and writes the config", async () => {
    const dir = freshDir();
    const term = new TerminalSession(["--dir", dir]);
    try {
      await term.answer("Which mail provider?", "Choose 1-6 [1]: ", ""); // Enter: Gmail
      await term.answer("Your address (the IMAP user name)", ": ", "me@gmail.com");
      await term.answer("How does mailbell sign in?", "Choose 1-3 [1]: ", "7");
      await term.answer('"7" is not one of the choices', "Choose 1-3 [1]: ", "1"); // app password
      await term.answer("Which folder to watch", "[INBOX]: ", "");
      await term.answer("Where should notifications go?", "Choose 1-6 [1]: ", "2"); // Discord
      await term.answer("A first rule to start from:", "Choose 1-5 [1]: ", "from-sender");
      await term.answer("Mail from which address?", ": ", "@shop.example");
      await term.waitFor("Wrote ");
      // Then it checks the config: the secrets are not set yet, and it names each with the fix.
      assert.equal(await term.exit, 2, term.screen);
    } finally {
      term.child.kill();
    }
    assert.match(term.screen, /IMAP_PASSWORD is not set\. Set it: export IMAP_PASSWORD=… before starting mailbell, or add the line IMAP_PASSWORD='…' to .*\/\.env/);
    assert.match(term.screen, /2 environment variables are not set: IMAP_PASSWORD, DISCORD_WEBHOOK_URL/);
    const yaml = readFileSync(path.join(dir, "mailbell.yaml"), "utf8");
    assert.match(yaml, /host: imap\.gmail\.com\n\s+port: 993\n\s+tls: implicit\n\s+user: "me@gmail\.com"/);
    assert.match(yaml, /pass: \$\{IMAP_PASSWORD\}/);
    assert.match(yaml, /mailboxes: \["INBOX"\]/);
    assert.match(yaml, /type: discord\n\s+url: "\$\{DISCORD_WEBHOOK_URL\}"/);
    assert.match(yaml, /match: \{ from: "@shop\.example" \}/);
    assert.match(yaml, /notify: \[ discord \]/);
    const example = readFileSync(path.join(dir, ".env.example"), "utf8");
    assert.deepEqual([...example.matchAll(/^([A-Z_]+)=''$/gm)].map((m) => m[1]), ["IMAP_PASSWORD", "DISCORD_WEBHOOK_URL"]);
  });

  it("offers OAuth2 for Microsoft 365 first, and a receipt preset verified by Microsoft's own header", async () => {
    const dir = freshDir();
    // A flag answers its question, so the terminal skips it.
    const term = new TerminalSession(["--dir", dir, "--no-check", "--target", "ntfy"]);
    try {
      await term.answer("Which mail provider?", "Choose 1-6 [1]: ", "2");
      await term.answer("Your address", ": ", "me@contoso.com");
      await term.waitFor("1) OAuth2");
      await term.answer("", "Choose 1-3 [1]: ", "");
      await term.answer("Which folder to watch", "[INBOX]: ", "Receipts");
      await term.answer("A first rule to start from:", "Choose 1-5 [1]: ", "2"); // Apple
      assert.equal(await term.exit, 0, term.screen);
    } finally {
      term.child.kill();
    }
    assert.doesNotMatch(term.screen, /Where should notifications go\?/);
    const yaml = readFileSync(path.join(dir, "mailbell.yaml"), "utf8");
    assert.match(yaml, /host: outlook\.office365\.com/);
    assert.match(yaml, /oauth2:\n\s+provider: microsoft\n\s+clientId: \$\{OAUTH_CLIENT_ID\}\n\s+refreshToken: \$\{MAILBELL_REFRESH_TOKEN\}/);
    assert.match(yaml, /mailbell auth microsoft --client-id/);
    assert.match(yaml, /verify: \{ authResults: microsoft \}/);
    assert.match(yaml, /timezone: Asia\/Tokyo/);
    assert.match(yaml, /type: ntfy\n\s+server: https:\/\/ntfy\.sh.*\n\s+topic: "\$\{NTFY_TOPIC\}"/);
  });

  it("for another server asks host, TLS and port, asks again for a wrong port, and on Ctrl-C stops writing nothing", async () => {
    const dir = freshDir();
    const term = new TerminalSession(["--dir", dir]);
    try {
      await term.answer("Which mail provider?", "Choose 1-6 [1]: ", "6");
      await term.answer("IMAP server host name", ": ", "mail.example.org");
      await term.answer("How does the server use TLS?", "Choose 1-3 [1]: ", "2"); // STARTTLS
      await term.answer("Port [143]", ": ", "99999");
      await term.answer("not a port number; use 1–65535", "Port [143]: ", "");
      await term.answer("Your address", ": ", "me");
      await term.waitFor("How does mailbell sign in?");
      await term.waitFor("Choose 1-2 [1]: "); // no OAuth2 offered for an unknown server
      term.child.stdin!.write("\x03");
      assert.equal(await term.exit, 2, term.screen);
    } finally {
      term.child.kill();
    }
    assert.match(term.screen, /stopped before every question was answered; nothing was written/);
    assert.equal(existsSync(path.join(dir, "mailbell.yaml")), false);
  });
});

describe("mailbell init with flags only", () => {
  // In this process (main(), as bin/mailbell.js runs it), where stdin and stdout are not a terminal.
  it("needs no terminal, and refuses to overwrite what it wrote unless --force", async () => {
    assert.ok(!(process.stdin.isTTY && process.stdout.isTTY), "the test runner gives no terminal");
    const dir = freshDir();
    const args = ["init", "--dir", dir, "--provider", "fastmail", "--user", "me@fastmail.com", "--auth", "password-command", "--pass-command", "pass show mail/fastmail", "--target", "telegram", "--rule", "amazon", "--timezone", "Europe/Berlin", "--no-check"];
    const first = await runCli(args);
    assert.equal(first.code, 0, first.err);
    const yaml = readFileSync(path.join(dir, "mailbell.yaml"), "utf8");
    assert.match(yaml, /passCommand: \["pass","show","mail\/fastmail"\]/);
    assert.match(yaml, /verify:\n\s+dkim: \[ amazon\.com, amazon\.co\.jp \]/, "off Gmail and Microsoft 365, receipts are verified by DKIM");
    assert.match(yaml, /timezone: Europe\/Berlin/);
    assert.match(readFileSync(path.join(dir, ".env.example"), "utf8"), /^TELEGRAM_BOT_TOKEN=''\n[^]*^TELEGRAM_CHAT_ID=''$/m);

    writeFileSync(path.join(dir, "mailbell.yaml"), "# mine\n");
    const again = await runCli(args);
    assert.equal(again.code, 2);
    assert.match(again.err, /mailbell\.yaml already exists, and mailbell init does not overwrite it\. Pass --force to replace it, or --dir for another folder/);
    assert.equal(readFileSync(path.join(dir, "mailbell.yaml"), "utf8"), "# mine\n");
    const forced = await runCli([...args, "--force"]);
    assert.equal(forced.code, 0, forced.err);
    assert.match(readFileSync(path.join(dir, "mailbell.yaml"), "utf8"), /host: imap\.fastmail\.com/);
  });

  it("without a terminal, names every missing answer's flag, and writes nothing", async () => {
    const dir = freshDir();
    const r = await runCli(["init", "--dir", dir, "--provider", "other", "--user", "me"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /no terminal to ask on, and these answers are missing: --host, --target, --rule\. Give them as flags/);
    assert.equal(existsSync(path.join(dir, "mailbell.yaml")), false);
    const help = await runCli(["init", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.out, /--provider gmail\|microsoft365\|icloud\|fastmail\|yahoo\|other\n/);
    assert.match(help.out, /--rule google-play\|apple\|amazon\|from-sender\|subject-keyword\n\s+--sender ANSWER +\(for --rule from-sender\)[^\n]*\n\s+--keyword ANSWER/);
    const wrong = await runCli(["init", "--dir", dir, "--provider", "hotmail"]);
    assert.match(wrong.err, /--provider hotmail is not one of: gmail, microsoft365, icloud, fastmail, yahoo, other/);
    const flags = ["init", "--dir", dir, "--provider", "other", "--host", "h.example", "--user", "me", "--target", "slack", "--rule", "apple"];
    assert.match((await runCli([...flags, "--port", "0"])).err, /--port 0: not a port number; use 1–65535/);
    assert.match((await runCli([...flags, "--auth", "oauth2"])).err, /--auth oauth2 is not one of: app-password, password-command/);
    assert.match((await runCli([...flags, "--timezone", "Mars/Olympus"])).err, /--timezone Mars\/Olympus: not a time zone/);
    assert.equal(existsSync(path.join(dir, "mailbell.yaml")), false);
  });
});

describe("the config init writes, against a real server", () => {
  let dovecot: Dovecot;
  let receiver: Receiver;
  before(async () => {
    [dovecot, receiver] = await servers;
  });

  it("passes check with the secrets set (from .env), fails naming a variable unset, and posts a first mail", async () => {
    const dir = freshDir();
    const webhook = receiver.url("/services/T000/B000/init-secret");
    const init = (env: NodeJS.ProcessEnv, extra: string[] = []) =>
      runCli(["init", "--dir", dir, "--provider", "other", "--host", "127.0.0.1", "--port", String(dovecot.imapsPort), "--tls", "implicit", "--ca", dovecot.caFile, "--user", "alice", "--target", "slack", "--rule", "from-sender", "--sender", "@shop.example", ...extra], env);

    const unset = await init({ IMAP_PASSWORD: "alicepw" });
    assert.equal(unset.code, 2, unset.out + unset.err);
    assert.match(unset.err, /targets\[0\]\.url: environment variable SLACK_WEBHOOK_URL is not set\. Set it: export SLACK_WEBHOOK_URL=…/);
    assert.doesNotMatch(unset.err, /IMAP_PASSWORD is not set/);

    // The password in .env beside the config, the webhook in the environment.
    const envFile = path.join(dir, ".env");
    writeFileSync(envFile, "IMAP_PASSWORD=alicepw\n", { mode: 0o600 });
    const check = await runCli(["check", "--config", path.join(dir, "mailbell.yaml")], { SLACK_WEBHOOK_URL: webhook });
    assert.equal(check.code, 0, check.out + check.err);
    assert.match(check.out, /✓ account mail: logged in as alice at 127\.0\.0\.1:\d+ \(implicit\)/);
    assert.match(check.out, /✓ mail\/INBOX: \d+ message\(s\)/);
    assert.match(check.out, /All checks passed\./);
    assert.doesNotMatch(check.out, /init-secret/);

    chmodSync(envFile, 0o644);
    const exposed = await runCli(["check", "--config", path.join(dir, "mailbell.yaml")], { SLACK_WEBHOOK_URL: webhook });
    assert.equal(exposed.code, 2);
    assert.match(exposed.err, new RegExp(`group or others may read it \\(mode 644\\)\\. Make it private: chmod 600 ${envFile.replace(/[.]/g, "\\.")}`));
    chmodSync(envFile, 0o600);

    // The first post: the daemon on the written config, a mail from the chosen sender.
    const loaded = await loadConfig(path.join(dir, "mailbell.yaml"), { SLACK_WEBHOOK_URL: webhook });
    const logger = new CaptureLogger();
    const controller = new AbortController();
    const done = runDaemon(loaded, { logger, signal: controller.signal });
    try {
      await waitUntilWatching(logger);
      await dovecot.deliverLmtp("alice", buildMail({ from: "Shop <orders@shop.example>", to: "alice@example.org", subject: "Your order 1234", text: "Thanks." }));
      const [post] = await receiver.waitFor(1, 10_000);
      assert.equal(post!.path, "/services/T000/B000/init-secret");
      assert.match(JSON.stringify(post!.json), /orders@shop\.example.*Your order 1234/);
    } finally {
      controller.abort();
      await done;
    }
  });
});
