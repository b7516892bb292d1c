import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, formatConfigIssue } from "../errors.ts";
import { loadConfig, parseConfig } from "./load.ts";
import { readerConnectionsFor } from "../imap/config.ts";

const env = { GMAIL_APP_PASSWORD: "app-pass-1234", SLACK_WEBHOOK_URL: "https://hooks.example.test/services/T000/B000/XXXX" };

const base = `state: ./mailbell.db
accounts:
  - name: personal
    host: imap.gmail.com
    user: me@gmail.com
    pass: \${GMAIL_APP_PASSWORD}
targets:
  - { name: team, type: slack, url: "\${SLACK_WEBHOOK_URL}", username: mailbell, icon_emoji: ":bell:" }
  - { name: hook, type: webhook, url: http://127.0.0.1:9000/mail }
rules:
  - name: play-receipts
    match: { from: googleplay-noreply@google.com, subject: "/Google Play/i" }
    extract:
      amount: { regex: "(?:合計|Total):?\\\\s*(?<value>[^\\\\r\\\\n]+)", as: money }
      item: { regex: "(?<value>.+?) *\\\\(" }
    total: { sum: amount, per: month, timezone: Asia/Tokyo }
    notify: [team, hook]
    template: "Google Play: {{amount}} ({{item}}) — {{total}} so far in {{period}}"
`;

function issuesOf(text: string, e: NodeJS.ProcessEnv = env): ConfigError {
  try {
    parseConfig(text, "mailbell.yaml", e);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail("expected a ConfigError");
}

describe("parseConfig", () => {
  it("loads the README's config with defaults and substituted secrets", () => {
    const { config, statePath } = parseConfig(base, "/etc/mailbell/mailbell.yaml", env);
    const account = config.accounts[0]!;
    assert.equal(account.pass, "app-pass-1234");
    assert.equal(account.tls, "implicit");
    assert.deepEqual(account.mailboxes, ["INBOX"]);
    assert.equal(config.targets[0]!.type, "slack");
    assert.equal(config.rules[0]!.total?.timezone, "Asia/Tokyo");
    assert.equal(statePath, "/etc/mailbell/mailbell.db");
    // 120 s: TCP keepalive finds a vanished peer; the NOOP (~0.5 ms CPU each) is for a hung server.
    assert.deepEqual([config.watch.keepaliveSeconds, config.watch.keepaliveTimeoutSeconds], [120, 15]);
  });

  it("names the file, line, key path and the variable when an environment variable is missing", () => {
    const err = issuesOf(base, { SLACK_WEBHOOK_URL: env.SLACK_WEBHOOK_URL });
    assert.equal(err.issues.length, 1);
    assert.equal(err.issues[0]!.path, "accounts[0].pass");
    assert.equal(err.issues[0]!.line, 6);
    assert.match(err.message, /^mailbell\.yaml:6: accounts\[0\]\.pass: environment variable GMAIL_APP_PASSWORD is not set/);
    assert.match(err.message, /export GMAIL_APP_PASSWORD=/);
  });

  it("rejects an unknown key and lists the valid ones", () => {
    const err = issuesOf(base.replace("    user: me@gmail.com", "    usr: me@gmail.com\n    user: me@gmail.com"));
    assert.equal(err.issues[0]!.path, "accounts[0]");
    assert.match(err.issues[0]!.message, /unknown key "usr"\. Valid keys here: name, host, port, tls/);
  });

  it("rejects a wrong type with the key path and line", () => {
    const err = issuesOf(base.replace("state: ./mailbell.db", "state: ./mailbell.db\nlocale: 42"));
    assert.equal(err.issues[0]!.path, "locale");
    assert.equal(err.issues[0]!.line, 2);
    assert.match(err.issues[0]!.message, /must be a string/);
  });

  it("rejects an unknown tls mode and lists the valid ones", () => {
    const err = issuesOf(base.replace("    host: imap.gmail.com", "    host: imap.gmail.com\n    tls: ssl"));
    assert.equal(err.issues[0]!.path, "accounts[0].tls");
    assert.match(err.issues[0]!.message, /"implicit", "starttls", "none"/);
  });

  it("rejects a bad regex at its key path", () => {
    const err = issuesOf(base.replace('item: { regex: "(?<value>.+?) *\\\\(" }', 'item: { regex: "(?<value>.+" }'));
    assert.equal(err.issues[0]!.path, "rules[0].extract.item.regex");
    assert.equal(err.issues[0]!.line, 15);
  });

  it("rejects a rule that notifies an unknown target", () => {
    const err = issuesOf(base.replace("notify: [team, hook]", "notify: [team, slak]"));
    assert.equal(err.issues[0]!.path, "rules[0].notify[1]");
    assert.match(err.issues[0]!.message, /unknown target "slak"\. Known targets: team, hook/);
  });

  it("rejects an unknown target type", () => {
    const err = issuesOf(base.replace("type: webhook", "type: carrier-pigeon"));
    assert.equal(err.issues[0]!.path, "targets[1].type");
    assert.match(err.issues[0]!.message, /slack/);
  });

  it("rejects duplicate names", () => {
    const err = issuesOf(base.replace("name: hook", "name: team"));
    assert.ok(err.issues.some((i) => i.path === "targets[1].name" && /already used by targets\[0\]/.test(i.message)));
  });

  it("reports invalid YAML with its line", () => {
    const err = issuesOf("accounts:\n  - name: [unclosed\n");
    assert.match(err.message, /^mailbell\.yaml:\d+: not valid YAML/);
  });

  it("reports every problem at once", () => {
    const err = issuesOf(base.replace("state: ./mailbell.db", "state: ./mailbell.db\nbogus: 1\nlocale: 42"));
    assert.deepEqual(err.issues.map((i) => i.path).sort(), ["", "locale"]);
    assert.match(err.message, /^2 problems in the config:/);
  });

  it("reports a missing variable together with the file's other mistakes", () => {
    const err = issuesOf(base.replace("    user: me@gmail.com", "    user: me@gmail.com\n    port: http"), { SLACK_WEBHOOK_URL: env.SLACK_WEBHOOK_URL });
    assert.deepEqual(
      err.issues.map((i) => [i.line, i.path]),
      [
        [6, "accounts[0].port"],
        [7, "accounts[0].pass"],
      ],
    );
    assert.match(err.issues[1]!.message, /GMAIL_APP_PASSWORD is not set/);
  });

  it("needs exactly one way to log in", () => {
    const none = issuesOf(base.replace("    pass: ${GMAIL_APP_PASSWORD}\n", ""));
    assert.equal(none.issues[0]!.path, "accounts[0]");
    assert.match(none.issues[0]!.message, /has no credentials: add pass .*passFile, passCommand, or oauth2/);
    const two = issuesOf(base.replace("    pass: ${GMAIL_APP_PASSWORD}", "    pass: ${GMAIL_APP_PASSWORD}\n    passFile: ./pw"));
    assert.equal(two.issues[0]!.path, "accounts[0].passFile");
    assert.match(two.issues[0]!.message, /only one of pass, passFile, passCommand, oauth2/);
    const oauth = parseConfig(
      base.replace("    pass: ${GMAIL_APP_PASSWORD}", "    oauth2: { provider: google, clientId: abc.apps.googleusercontent.com, refreshToken: \"${GMAIL_APP_PASSWORD}\" }"),
      "m.yaml",
      env,
    );
    assert.equal(oauth.config.accounts[0]!.oauth2?.refreshToken, "app-pass-1234");
  });

  it("says when watching would open more connections than the account allows", () => {
    const many = Array.from({ length: 16 }, (_, i) => `F${i}`).join(", ");
    const err = issuesOf(base.replace("    user: me@gmail.com", `    user: me@gmail.com\n    mailboxes: [${many}]`));
    assert.equal(err.issues[0]!.path, "accounts[0].mailboxes");
    assert.match(err.issues[0]!.message, /16 mailboxes needs 16 connections, more than the 15 .*Gmail allows about 15.*raise maxConnections/);
    const raised = parseConfig(base.replace("    user: me@gmail.com", `    user: me@gmail.com\n    maxConnections: 20\n    mailboxes: [${many}]`), "m.yaml", env);
    assert.equal(raised.config.accounts[0]!.mailboxes.length, 16);
    // Elsewhere NOTIFY (watch.notify auto, the default) watches more folders than connections, unless it is turned off.
    const dovecot = base.replace("host: imap.gmail.com", "host: mail.example.com").replace("    user: me@gmail.com", `    user: me@gmail.com\n    maxConnections: 3\n    mailboxes: [${many}]`);
    assert.equal(parseConfig(dovecot, "m.yaml", env).config.watch.notify, "auto");
    const off = issuesOf(`watch: { notify: off }\n${dovecot}`);
    assert.match(off.issues[0]!.message, /16 mailboxes needs 16 connections, more than the 3 this account allows \(maxConnections\).*remove watch.notify: off/);
    const one = issuesOf(dovecot.replace("maxConnections: 3", "maxConnections: 1"));
    assert.equal(one.issues[0]!.path, "accounts[0].maxConnections");
    assert.match(one.issues[0]!.message, /IMAP NOTIFY needs 2 .*Raise maxConnections to 2 or more/);
  });

  it("reads new mail on a second connection only when asked to, and only where the connection limit leaves room for it", () => {
    const eight = Array.from({ length: 8 }, (_, i) => `F${i}`).join(", ");
    const few = parseConfig(base.replace("    user: me@gmail.com", "    user: me@gmail.com\n    mailboxes: [INBOX, Receipts]"), "m.yaml", env);
    assert.equal(readerConnectionsFor(few.config.accounts[0]!), false, "off unless asked for, though 2 mailboxes × 2 ≤ Gmail's 15");
    const on = parseConfig(base.replace("    user: me@gmail.com", "    user: me@gmail.com\n    readerConnections: true\n    mailboxes: [INBOX, Receipts]"), "m.yaml", env);
    assert.equal(readerConnectionsFor(on.config.accounts[0]!), true);
    const err = issuesOf(base.replace("    user: me@gmail.com", `    user: me@gmail.com\n    readerConnections: true\n    mailboxes: [${eight}]`));
    assert.equal(err.issues[0]!.path, "accounts[0].readerConnections");
    assert.match(err.issues[0]!.message, /needs two connections per mailbox \(16\), more than the 15 .*remove readerConnections or raise maxConnections/);
  });

  it("refuses a rule's then.label when the rule reaches an account that is not Gmail, and says how to fix it", () => {
    const labelled = base.replace("notify: [team, hook]", "notify: [team, hook]\n    then: { label: Receipts }");
    const err = issuesOf(labelled.replace("host: imap.gmail.com", "host: imap.fastmail.com"));
    assert.equal(err.issues.length, 1);
    assert.equal(err.issues[0]!.path, "rules[0].then.label");
    assert.match(err.issues[0]!.message, /labels exist only on Gmail.*reaches "personal" \(imap\.fastmail\.com\)/);
    assert.match(err.issues[0]!.message, /Use flag: .* or move: there instead, or limit the rule to Gmail accounts with match\.account/);

    const { config } = parseConfig(labelled, "m.yaml", env);
    assert.equal(config.rules[0]!.then?.label, "Receipts", "imap.gmail.com has labels");
    const other = "  - { name: work, host: imap.fastmail.com, user: me@example.com, pass: x }\ntargets:";
    const limited = labelled.replace("targets:", other).replace("match: { from:", "match: { account: personal, from:");
    assert.equal(parseConfig(limited, "m.yaml", env).config.accounts.length, 2, "limited to the Gmail account with match.account");
  });

  it("takes a rule that only acts (then:, no notify), and refuses one that does neither", () => {
    const { config } = parseConfig(base.replace("notify: [team, hook]", "then: { seen: true, move: Receipts/2026 }"), "m.yaml", env);
    assert.deepEqual(config.rules[0]!.notify, []);
    assert.deepEqual(config.rules[0]!.then, { seen: true, move: "Receipts/2026" });
    const err = issuesOf(base.replace("    notify: [team, hook]\n", ""));
    assert.equal(err.issues.length, 1);
    assert.equal(err.issues[0]!.path, "rules[0].notify");
    assert.match(err.issues[0]!.message, /neither notifies nor acts: name a target .* or say what to do to the mail \(then: /);
  });

  it("refuses a then: that deletes or does nothing", () => {
    const deleted = issuesOf(base.replace("notify: [team, hook]", 'notify: [team, hook]\n    then: { flag: "\\\\Deleted" }'));
    assert.equal(deleted.issues[0]!.path, "rules[0].then.flag");
    assert.match(deleted.issues[0]!.message, /mailbell never deletes mail: \\Deleted is not allowed.*move it/);
    const empty = issuesOf(base.replace("notify: [team, hook]", "notify: [team, hook]\n    then: {}"));
    assert.equal(empty.issues.length, 1);
    assert.equal(empty.issues[0]!.path, "rules[0].then");
    assert.equal(empty.issues[0]!.line, 18, "the line of then:");
    assert.match(empty.issues[0]!.message, /give at least one of seen: true, flag, label or move/);
  });

  it("keeps $${ as a literal", () => {
    const { config } = parseConfig(base.replace('template: "Google Play:', () => 'template: "$${not a var} Google Play:'), "m.yaml", env);
    assert.match(config.rules[0]!.template, /^\$\{not a var\} Google Play/);
  });
});

describe("config warnings", () => {
  it("a valid config has none", () => {
    assert.deepEqual(parseConfig(base, "mailbell.yaml", env).warnings, []);
  });

  it("a from/to/cc that can match nothing loads, with a warning at its line; an error elsewhere still refuses the file", () => {
    const text = base.replace("match: { from: googleplay-noreply@google.com,", "match: { from: Google Play, to: google.com,");
    const { warnings } = parseConfig(text, "mailbell.yaml", env);
    assert.deepEqual(
      warnings.map((w) => [w.path, w.line]),
      [
        ["rules[0].match.from", 12],
        ["rules[0].match.to", 12],
      ],
    );
    assert.match(warnings[1]!.message, /"google\.com" has no @.*write "@google\.com"/);
    assert.throws(() => parseConfig(`${text}    locale: x\n`, "mailbell.yaml", env), ConfigError);
  });
});

describe("unset variables and the .env file beside the config", () => {
  const withDir = (envText?: string, mode = 0o600): string => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-dotenv-"));
    writeFileSync(path.join(dir, "mailbell.yaml"), base);
    if (envText !== undefined) {
      writeFileSync(path.join(dir, ".env"), envText);
      chmodSync(path.join(dir, ".env"), mode);
    }
    return path.join(dir, "mailbell.yaml");
  };
  const loadError = async (file: string, e: NodeJS.ProcessEnv): Promise<ConfigError> => {
    const err = await loadConfig(file, e).then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  };

  it("names every unset variable in one message, with export lines and the .env lines as the fix", () => {
    const err = issuesOf(base, {});
    const summary = err.issues.at(-1)!;
    assert.match(summary.message, /^2 environment variables are not set: GMAIL_APP_PASSWORD, SLACK_WEBHOOK_URL\./);
    assert.match(summary.message, /export GMAIL_APP_PASSWORD=…\n\s+export SLACK_WEBHOOK_URL=…/);
    assert.match(summary.message, /put these lines in \.env \(then chmod 600 \.env\):\n\s+GMAIL_APP_PASSWORD='…'\n\s+SLACK_WEBHOOK_URL='…'/);
  });

  it("reads variables from .env beside the config; the environment wins", async () => {
    const file = withDir(`GMAIL_APP_PASSWORD=from-file\nSLACK_WEBHOOK_URL="https://hooks.example.test/services/T/B/file"\n`);
    const loaded = await loadConfig(file, { GMAIL_APP_PASSWORD: "from-env" });
    assert.equal(loaded.config.accounts[0]!.pass, "from-env");
    assert.equal((loaded.config.targets[0] as { url: string }).url, "https://hooks.example.test/services/T/B/file");
    assert.equal(loaded.envFile, path.join(path.dirname(file), ".env"));
  });

  it("warns, naming the variable and the .env line but not the value, when an unquoted # cuts a value", async () => {
    const text = [
      "# a comment line, and a blank one",
      "",
      "GMAIL_APP_PASSWORD=p#ss word",
      `SLACK_WEBHOOK_URL="https://hooks.example.test/services/T/B/x#y" # quoted, then a comment`,
      "export OTHER= ab # a comment after an unquoted value: warned too, as it may be part of a password",
      "QUOTED='kept#whole'",
      "BACKTICK=`kept#whole`",
      "EMPTY=",
      'MULTI="-----BEGIN KEY-----',
      "abc=#def",
      '-----END KEY-----"',
      "APOSTROPHE='it's'",
    ].join("\n");
    const file = withDir(`${text}\n`);
    const envFile = path.join(path.dirname(file), ".env");
    const loaded = await loadConfig(file, {});
    assert.equal(loaded.config.accounts[0]!.pass, "p", "what Node's parseEnv reads, which is why it is warned about");
    assert.deepEqual(
      loaded.warnings.map((w) => [w.file, w.line, w.path]),
      [
        [envFile, 3, ""],
        [envFile, 5, ""],
        [envFile, 12, ""],
      ],
    );
    const [cut, , apostrophe] = loaded.warnings.map((w) => formatConfigIssue(loaded.file, w));
    assert.ok(cut!.startsWith(`${envFile}:3: `), cut);
    assert.match(cut!, /: GMAIL_APP_PASSWORD is not in quotes and holds a #: everything from the # on is read as a comment, so its value is cut there\. Put the value in single quotes: GMAIL_APP_PASSWORD='…'/);
    assert.match(apostrophe!, /APOSTROPHE: the quoted value ends at its second ', and the text after it is dropped\. A value holding ' goes in double quotes: APOSTROPHE="…"/);
    for (const w of loaded.warnings) assert.doesNotMatch(w.message, /p#ss|ss word|it's|\bab\b/, "no secret in a warning");
  });

  it("without a .env file, an unset variable is still an error naming the .env it would be read from", async () => {
    const file = withDir();
    const err = await loadError(file, { SLACK_WEBHOOK_URL: env.SLACK_WEBHOOK_URL });
    assert.match(err.message, /GMAIL_APP_PASSWORD is not set\. Set it: export GMAIL_APP_PASSWORD=… before starting mailbell, or add the line GMAIL_APP_PASSWORD='…' to .*mailbell-dotenv-[^/]+\/\.env/);
  });

  it("refuses a .env file that group or others can read, naming it and chmod 600 as the fix", async () => {
    for (const mode of [0o640, 0o604, 0o644]) {
      const file = withDir("GMAIL_APP_PASSWORD=x\n", mode);
      const envFile = path.join(path.dirname(file), ".env");
      const err = await loadError(file, env);
      assert.equal(err.file, envFile);
      assert.match(err.message, new RegExp(`group or others may read it \\(mode ${mode.toString(8)}\\)\\. Make it private: chmod 600 ${envFile.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`));
    }
  });
});
