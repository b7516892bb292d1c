/**
 * What `mailbell run` writes while it runs, as a real process against the harness Dovecot: JSON
 * lines only when stderr is not a terminal (what systemd and log shippers read), readable lines on a
 * terminal (util-linux `script` gives the process a pty; no native pty addon).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { writeConfig } from "./support/daemon.ts";
import type { Dovecot } from "./support/dovecot.ts";
import { buildMail } from "./support/mail.ts";
import { spawnMailbell } from "./support/process.ts";
import type { Receiver } from "./support/receiver.ts";
import { dovecotAndReceiverForFile } from "./support/servers.ts";

const entry = path.resolve(import.meta.dirname, "../src/cli/entry.ts");
let dovecot: Dovecot;
let receiver: Receiver;
dovecotAndReceiverForFile((started) => ({ dovecot, receiver } = started));

function config(user: string, extra = ""): string {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-logs-"));
  return writeConfig(
    `state: ${dir}/state.db
${extra}accounts:
  - { name: ${user}, host: 127.0.0.1, port: ${dovecot.imapsPort}, ca: ${dovecot.caFile}, user: ${user}, pass: "\${MAILBELL_TEST_PASS}", mailboxes: [INBOX] }
targets:
  - { name: team, type: slack, url: "${receiver.url(`/services/T000/B000/${user}-secret`)}" }
rules:
  - { name: shop, match: { from: shop@example.com }, notify: [team], template: "{{subject}}" }
`,
    dir,
  );
}

/** Collects a child's output and waits for text in it. */
function watch(child: ChildProcess): { text: () => string; waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<void>; exited: Promise<number | null> } {
  let text = "";
  child.stdout?.on("data", (d: Buffer) => (text += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    text: () => text,
    async waitFor(pattern, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(text)) {
        if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${text}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    exited,
  };
}

const levels = ["trace", "debug", "info", "warn", "error", "fatal"];
// eslint-disable-next-line no-control-regex -- colour codes are what is taken out
const ansi = /\u001b\[[0-9;]*m/g;

describe("mailbell run's log", () => {
  it("is JSON lines only when stderr is a pipe, levels as words, signals included; stdout stays empty", async () => {
    // NODE_TLS_REJECT_UNAUTHORIZED makes Node warn (a process warning, plain text by default) at the first TLS connection.
    const run = spawnMailbell(config("alice"), { MAILBELL_TEST_PASS: "alicepw", NODE_TLS_REJECT_UNAUTHORIZED: "0" }, ["--log-level", "debug"]);
    try {
      await run.waitForLog(/"msg":"watching"/);
      await dovecot.append("alice", "INBOX", buildMail({ from: "shop@example.com", to: "alice@example.com", subject: "logged order", text: "hi" }));
      await dovecot.append("alice", "INBOX", buildMail({ from: "news@example.com", to: "alice@example.com", subject: "not for any rule", text: "hi" }));
      await receiver.waitFor((r) => (r.json as { text?: string } | undefined)?.text === "logged order", 8000);
      run.child.kill("SIGINT");
      assert.equal(await run.exited, 0, run.log);
    } finally {
      run.child.kill("SIGKILL");
    }
    const stdout = run.stdout;
    const stderr = run.log;
    const lines = stderr.trimEnd().split("\n");
    const records = lines.map((line) => {
      assert.doesNotThrow(() => JSON.parse(line), `a line that is not JSON: ${line}`);
      return JSON.parse(line) as { level: unknown; msg?: string; signal?: string };
    });
    assert.ok(records.some((r) => r.level === "debug"), `debug lines are JSON too:\n${stderr}`);
    for (const r of records) assert.ok(levels.includes(r.level as string), `level as a word: ${JSON.stringify(r)}`);
    assert.deepEqual(records.find((r) => r.signal === "SIGINT")?.level, "info");
    assert.match(records.find((r) => r.signal === "SIGINT")?.msg ?? "", /SIGINT received, stopping \(send it again to exit at once\)/);
    assert.equal(records.at(-1)?.msg, "mailbell stopped");
    const warning = records.find((r) => /NODE_TLS_REJECT_UNAUTHORIZED/.test(r.msg ?? ""));
    assert.equal(warning?.level, "warn", "Node's process warning is a log record");
    assert.equal(stdout, "", "nothing on stdout");
    assert.ok(!stderr.includes("alicepw") && !stderr.includes("alice-secret"), "no password or webhook URL");
  });

  it("a config error at start is one JSON record with the message and exit code, not a plain line", async () => {
    const file = writeConfig("accounts:\n  - name: a\n    host: h\n    user: u\n    pass: p\n    tls: ssl\n");
    const child = spawn(process.execPath, [entry, "run", "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
    const out = watch(child);
    assert.equal(await out.exited, 2);
    const lines = out.text().trimEnd().split("\n");
    assert.equal(lines.length, 1, out.text());
    const record = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(record.level, "error");
    assert.equal(record.code, "CONFIG");
    assert.equal(record.exitCode, 2);
    assert.match(record.msg as string, /mailbell: config error: .*mailbell\.yaml:6: accounts\[0\]\.tls: must be one of/);
  });

  it("on a terminal by default, readable lines that are not JSON; --log-format json wins over the terminal", async () => {
    const [pretty, json] = await Promise.all([onTerminal("bob", ""), onTerminal("carol", " --log-format json")]);
    assert.deepEqual(pretty.filter((l) => l.startsWith("{")), [], `no JSON on a terminal:\n${pretty.join("\n")}`);
    assert.ok(pretty.some((l) => /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\] INFO: watching \{"account":"bob"/.test(l)), pretty.join("\n"));
    assert.ok(pretty.some((l) => /INFO: SIGINT received, stopping/.test(l)), pretty.join("\n"));
    assert.ok(json.length > 0 && json.every((l) => l.startsWith("{") && JSON.parse(l) !== null), `only JSON with --log-format json:\n${json.join("\n")}`);
    assert.ok(json.some((l) => (JSON.parse(l) as { msg: string }).msg === "watching"));
  });
});

/**
 * `mailbell run` on a terminal until Ctrl-C, through `script` (a new pty: stdin, stdout and
 * stderr are that terminal); its output lines without colours.
 */
async function onTerminal(user: string, options: string): Promise<string[]> {
  // `exec`: script runs the command through $SHELL -c, or sh -c when SHELL is unset (as in CI), and
  // dash does not exec a lone command: it would stay in the terminal's foreground group, be killed
  // by the Ctrl-C meant for mailbell, and script would report 130 whatever mailbell exited with.
  const command = `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(entry)} run --config ${JSON.stringify(config(user))}${options}`;
  const child = spawn("script", ["-qfec", command, "/dev/null"], { env: { ...process.env, MAILBELL_TEST_PASS: `${user}pw`, TERM: "xterm" }, stdio: ["pipe", "pipe", "pipe"] });
  const out = watch(child);
  try {
    await out.waitFor(/watching/);
    child.stdin.write("\u0003"); // Ctrl-C on the terminal: SIGINT to mailbell
    await out.waitFor(/mailbell stopped/);
    assert.equal(await out.exited, 0, out.text());
  } finally {
    child.kill("SIGKILL");
  }
  // The terminal echoes Ctrl-C as "^C" before the next line.
  return out.text().replace(ansi, "").replaceAll("^C", "").split(/\r?\n/).filter((l) => l.trim() !== "");
}
