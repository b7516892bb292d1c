/**
 * Every rule preset against its own sample mails, through the real rules engine; and every
 * combination of answers init can be given makes a config that loads.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseEnv } from "node:util";
import { describe, it } from "node:test";
import { envFileWarnings, parseConfig } from "../config/load.ts";
import { ConfigError } from "../errors.ts";
import { normalizeMail } from "../mail/normalize.ts";
import { moneyToDecimalString } from "../rules/money.ts";
import { ruleSchema } from "../rules/config.ts";
import { compileRules, judgeRule } from "../rules/rules.ts";
import { initFiles, presetRule, targetKinds, type InitAnswers } from "./config-text.ts";
import { loadPresets, presetsDir, type ProviderPreset } from "./presets.ts";

const presets = await loadPresets();
const show = (v: unknown): string => JSON.stringify(v, (_key, x: unknown) => (typeof x === "bigint" ? String(x) : x));

describe("rule presets, each on its own sample mails", () => {
  it("has the presets init offers", () => {
    assert.deepEqual(
      presets.rules.map((r) => r.name),
      ["google-play", "apple", "amazon", "from-sender", "subject-keyword"],
    );
    assert.deepEqual(
      presets.providers.map((p) => p.name),
      ["gmail", "microsoft365", "icloud", "fastmail", "yahoo"],
    );
  });

  for (const preset of presets.rules) {
    for (const sample of preset.samples) {
      const expected = sample.matched ? `matched${sample.amount ? `, ${sample.currency} ${sample.amount}` : ""}` : "not matched";
      it(`${preset.name}: ${sample.file} ${JSON.stringify(sample.params)} → ${expected}`, async () => {
        // Built for Gmail, as most users have it: the samples carry the header Gmail stamps.
        const config = presetRule(preset, { authResults: "gmail", params: sample.params, timezone: "Asia/Tokyo", notify: ["team"] });
        const compiled = compileRules([ruleSchema.parse(config)], { locale: "en-US" });
        assert.ok(compiled.ok, JSON.stringify(compiled));
        const rule = compiled.rules[0]!;
        const raw = readFileSync(path.join(presetsDir, "rules/samples", sample.file));
        const mail = await normalizeMail(raw);
        const outcome = judgeRule(rule, { mail, account: "gmail", mailbox: "INBOX", receivedAt: mail.date ?? new Date() });
        if (!sample.matched) {
          assert.equal(outcome, undefined, `should not match: ${show(outcome)}`);
          return;
        }
        assert.ok(outcome && "match" in outcome, `should match: ${show(outcome)}`);
        if (preset.dkim !== undefined) assert.match(outcome.match.verified?.by ?? "", /mx\.google\.com/, "the sender is verified");
        if (sample.amount === undefined) {
          assert.equal(outcome.match.total, undefined);
          return;
        }
        const amount = outcome.match.total?.amount;
        assert.ok(amount, `an amount: ${show(outcome.match.missing)}`);
        assert.equal(moneyToDecimalString(amount), sample.amount);
        assert.equal(amount.currency, sample.currency);
      });
    }
  }

  it("a verified preset's mail without the provider's verdict is not counted", async () => {
    const preset = presets.rules.find((r) => r.name === "google-play")!;
    const compiled = compileRules([ruleSchema.parse(presetRule(preset, { authResults: "gmail", params: {}, timezone: "UTC", notify: ["t"] }))], { locale: "en-US" });
    assert.ok(compiled.ok);
    const text = readFileSync(path.join(presetsDir, "rules/samples/google-play/en.eml"), "utf8").replace(/^Authentication-Results:[^]*?(?=^Date:)/m, "");
    const mail = await normalizeMail(Buffer.from(text));
    const outcome = judgeRule(compiled.rules[0]!, { mail, account: "gmail", mailbox: "INBOX", receivedAt: new Date() });
    assert.ok(outcome && "unverified" in outcome, show(outcome));
  });
});

describe("the config init writes", () => {
  const other = undefined;
  const server = (p: ProviderPreset | undefined) => (p ? { host: p.host, port: p.port, tls: p.tls } : { host: "mail.example.org", port: 993, tls: "implicit" as const });
  const allEnv = { IMAP_PASSWORD: "pw", OAUTH_CLIENT_ID: "id", OAUTH_CLIENT_SECRET: "s", MAILBELL_REFRESH_TOKEN: "r", SLACK_WEBHOOK_URL: "https://hooks.slack.com/services/T/B/x", DISCORD_WEBHOOK_URL: "https://discord.com/api/webhooks/1/x", TEAMS_WEBHOOK_URL: "https://example.logic.azure.com/workflows/x?sig=y", NTFY_TOPIC: "mailbell-x7q", TELEGRAM_BOT_TOKEN: "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", TELEGRAM_CHAT_ID: "-1001234567890", WEBHOOK_URL: "https://example.org/hook" };

  it("loads for every provider, sign-in, target and rule preset, with a ${VAR} for each secret", () => {
    let combinations = 0;
    for (const provider of [...presets.providers, other]) {
      for (const signIn of provider?.signIn ?? (["app-password", "password-command"] as const)) {
        for (const target of targetKinds) {
          for (const rule of presets.rules) {
            const answers: InitAnswers = { provider, server: server(provider), user: "me@example.org", signIn, passCommand: ["pass", "show", "mail"], folder: "INBOX", target, rule, params: { sender: "billing@example.com", keyword: "invoice" }, timezone: "Europe/Berlin" };
            const files = initFiles(answers);
            const where = `${provider?.name ?? "other"}/${signIn}/${target}/${rule.name}`;
            const loaded = parseConfig(files.yaml, "mailbell.yaml", allEnv);
            const r = loaded.config.rules[0]!;
            assert.deepEqual(r.notify, [target], where);
            if (rule.dkim) assert.deepEqual(r.verify, provider?.authResults ? { authResults: provider.authResults } : { dkim: rule.dkim }, where);
            if (r.total) assert.equal(r.total.timezone, "Europe/Berlin", where);
            // Every variable the config uses is in .env.example, and nothing else is.
            const used = [...files.yaml.replace(/#.*$/gm, "").matchAll(/\$\{([A-Z_]+)\}/g)].map((m) => m[1]!).sort();
            const listed = [...files.envExample.matchAll(/^([A-Z_]+)=''$/gm)].map((m) => m[1]!).sort();
            assert.deepEqual([...new Set(used)], listed, where);
            assert.doesNotMatch(files.yaml, /\bpw\b|AAHdq/, "no secret in the file");
            combinations++;
          }
        }
      }
    }
    assert.ok(combinations > 200, String(combinations));
  });

  it("writes .env.example with quotes, so a value written between them is read whole, # and spaces too", () => {
    const rule = presets.rules[0]!;
    const answers: InitAnswers = { provider: other, server: server(other), user: "me", signIn: "app-password", folder: "INBOX", target: "telegram", rule, params: {}, timezone: "UTC" };
    const example = initFiles(answers).envExample;
    assert.match(example, /Keep the quotes/);
    const secret = 'p#ss w$rd"x #y';
    const filled = example.replace(/^([A-Z_]+)=''$/gm, (_, name: string) => `${name}='${secret}'`);
    assert.deepEqual(parseEnv(filled), { IMAP_PASSWORD: secret, TELEGRAM_BOT_TOKEN: secret, TELEGRAM_CHAT_ID: secret });
    assert.deepEqual(envFileWarnings(filled, ".env"), []);
    assert.equal(envFileWarnings(example.replace("IMAP_PASSWORD=''", `IMAP_PASSWORD=${secret}`), ".env").length, 1, "without the quotes it is warned about");
  });

  it("puts the answers to a preset's questions into the rule", () => {
    const rule = presets.rules.find((r) => r.name === "from-sender")!;
    const answers: InitAnswers = { provider: other, server: server(other), user: "me", signIn: "app-password", folder: "Receipts/2026", target: "slack", rule, params: { sender: "@shop.example" }, timezone: "UTC" };
    const { config } = parseConfig(initFiles(answers).yaml, "mailbell.yaml", allEnv);
    assert.equal(config.rules[0]!.match.from, "@shop.example");
    assert.deepEqual(config.accounts[0]!.mailboxes, ["Receipts/2026"]);
  });
});

describe("the config init writes, before any secret is set", () => {
  it("loads with placeholders for every target, so mailbell test can try the rule at once", () => {
    for (const target of targetKinds) {
      const rule = presets.rules[0]!;
      const answers: InitAnswers = { provider: presets.providers[0], server: { host: "imap.gmail.com", port: 993, tls: "implicit" }, user: "me@gmail.com", signIn: "app-password", folder: "INBOX", target, rule, params: {}, timezone: "UTC" };
      const loaded = parseConfig(initFiles(answers).yaml, "mailbell.yaml", {}, { missingEnv: "placeholder" });
      assert.ok(loaded.placeholders.includes("IMAP_PASSWORD"), target);
    }
  });
});

describe("loadPresets", () => {
  it("refuses a preset file with a mistake, naming the file and the key", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-presets-"));
    mkdirSync(path.join(dir, "providers"));
    mkdirSync(path.join(dir, "rules"));
    writeFileSync(path.join(dir, "providers/mine.yaml"), "name: mine\ntitle: Mine\norder: 1\nhost: imap.example.org\nport: 993\ntls: ssl\nsignIn: [app-password]\n");
    await assert.rejects(loadPresets(dir), (err: unknown) => err instanceof ConfigError && err.file.endsWith("providers/mine.yaml") && /tls/.test(err.message));
    writeFileSync(path.join(dir, "providers/mine.yaml"), "name: mine\ntitle: Mine\norder: 1\nhost: imap.example.org\nport: 993\ntls: implicit\nsignIn: [app-password]\n");
    writeFileSync(path.join(dir, "rules/bad.yaml"), "name: bad\ntitle: Bad\norder: 1\nrule: { match: { form: x@example.org } }\nsamples: [{ file: a.eml, matched: true }, { file: b.eml, matched: false }]\n");
    await assert.rejects(loadPresets(dir), (err: unknown) => err instanceof ConfigError && err.file.endsWith("rules/bad.yaml") && /form/.test(err.message));
  });
});
