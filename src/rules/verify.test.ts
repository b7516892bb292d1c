import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { normalizeMail } from "../mail/normalize.ts";
import { emptyMail, type NormalizedMail } from "../mail/types.ts";
import { checkAuthResults, checkDkim, checkVerify, compileVerify, type CompiledVerify } from "./verify.ts";
import type { DkimSignature } from "./types.ts";

function mailFrom(address: string, authResults: string[] = []): NormalizedMail {
  return { ...emptyMail(), from: [{ name: "Google Play", address }], headers: new Map([["from", [`Google Play <${address}>`]]]), authenticationResults: authResults, warnings: [] };
}

const play = mailFrom("googleplay-noreply@google.com");
const sig = (domain: string, result = "pass", aligned = true, comment?: string): DkimSignature => ({ domain, result, aligned, ...(comment ? { comment } : {}) });

describe("checkDkim: a valid signature of the domain, aligned with From", () => {
  const rows: { name: string; signatures: DkimSignature[] | undefined; mail?: NormalizedMail; expect: string }[] = [
    { name: "good signature of google.com", signatures: [sig("google.com")], expect: "verified DKIM google.com" },
    { name: "a subdomain's signature counts as the domain's", signatures: [sig("mail.google.com")], expect: "verified DKIM mail.google.com" },
    { name: "a look-alike domain does not", signatures: [sig("notgoogle.com")], expect: "other_domain" },
    { name: "any good one among several", signatures: [sig("esp.example", "pass", false), sig("google.com")], expect: "verified DKIM google.com" },
    { name: "body changed after signing", signatures: [sig("google.com", "neutral", true, "body hash did not verify")], expect: "dkim_fail: the DKIM signature of google.com did not verify: neutral (body hash did not verify)" },
    { name: "signed by another domain", signatures: [sig("evil.example", "pass", true)], expect: "other_domain" },
    { name: "google.com signs, but From is not aligned with it", signatures: [sig("google.com", "pass", false)], mail: mailFrom("billing@evil.example"), expect: "not_aligned: signed by google.com, but From is evil.example" },
    { name: "no signature", signatures: [sig("", "none", false)], expect: "not_signed" },
    { name: "not read whole", signatures: undefined, expect: "not_checked" },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const v = checkDkim(["google.com"], row.signatures, row.mail ?? play);
      const got = v.verified ? `verified ${v.by}` : `${v.code}: ${v.reason}`;
      assert.ok(got.startsWith(row.expect), `${got} should start with ${row.expect}`);
    });
  }
});

describe("checkAuthResults: the verdict of the user's own server, in the topmost header only", () => {
  const gmail = { kind: "authserv", id: "mx.google.com", preset: "gmail" } as const;
  const real = "mx.google.com; dkim=pass header.i=@google.com header.s=20230601 header.b=abc; spf=pass smtp.mailfrom=googleplay-noreply@google.com; dmarc=pass (p=REJECT) header.from=google.com";
  const failing = "mx.google.com; dkim=fail header.i=@google.com; spf=softfail smtp.mailfrom=evil.example; dmarc=fail (p=REJECT) header.from=google.com";
  const forged = "mx.google.com; dkim=pass header.d=google.com; dmarc=pass header.from=google.com";
  const rows: { name: string; headers: string[]; source?: CompiledVerify["authResults"]; expect: string }[] = [
    { name: "Gmail says dmarc=pass", headers: [real], expect: "verified DMARC pass by mx.google.com" },
    { name: "Gmail says dmarc=fail; a forged pass below it is ignored", headers: [failing, forged], expect: "auth_results_fail" },
    { name: "no header at all", headers: [], expect: "no_auth_results" },
    { name: "the topmost is another server's (the sender's own)", headers: ["evil.example; dmarc=pass header.from=google.com", real], expect: "no_auth_results: the topmost Authentication-Results header is by evil.example" },
    { name: "aligned dkim=pass without a dmarc result", headers: ["mx.google.com; dkim=pass header.d=mail.google.com"], expect: "verified DKIM mail.google.com by mx.google.com" },
    { name: "dkim=pass of an unaligned domain is not enough", headers: ["mx.google.com; dkim=pass header.d=esp.example; dmarc=none"], expect: "auth_results_fail" },
    {
      name: "Microsoft 365's form has no authserv-id",
      headers: ["spf=pass (sender IP is 203.0.113.7) smtp.mailfrom=google.com; dkim=pass (signature was verified) header.d=google.com;dmarc=pass action=none header.from=google.com;compauth=pass reason=100"],
      source: { kind: "microsoft" },
      expect: "verified DMARC pass by Microsoft 365",
    },
    { name: "Microsoft 365: a header with an authserv-id on top is not Microsoft's", headers: ["mx.google.com; dmarc=pass header.from=google.com"], source: { kind: "microsoft" }, expect: "no_auth_results" },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const v = checkAuthResults(row.source ?? gmail, mailFrom("googleplay-noreply@google.com", row.headers));
      const got = v.verified ? `verified ${v.by}` : `${v.code}: ${v.reason}`;
      assert.ok(got.startsWith(row.expect), `${got} should start with ${row.expect}`);
    });
  }
});

describe("compileVerify and checkVerify", () => {
  test("presets and authserv-ids, lower case; anything else refused with the fix", () => {
    assert.deepEqual(compileVerify({ authResults: "Gmail" }), { dkim: undefined, authResults: { kind: "authserv", id: "mx.google.com", preset: "gmail" } });
    assert.deepEqual(compileVerify({ authResults: "Mx.Example.org", dkim: "Google.com" }), { dkim: ["google.com"], authResults: { kind: "authserv", id: "mx.example.org", preset: undefined } });
    const refused = compileVerify({ authResults: "my server" });
    assert.ok(Array.isArray(refused));
    assert.match(refused[0]!.message, /neither a preset \(gmail, microsoft\) nor an authserv-id/);
  });

  test("both given: both must hold", () => {
    const both = compileVerify({ dkim: "google.com", authResults: "gmail" }) as CompiledVerify;
    const mail = mailFrom("googleplay-noreply@google.com", ["mx.google.com; dmarc=pass header.from=google.com"]);
    assert.deepEqual(checkVerify(both, { mail, dkim: [sig("google.com")] }), { verified: true, by: "DKIM google.com and DMARC pass by mx.google.com" });
    assert.equal(checkVerify(both, { mail, dkim: [sig("google.com", "fail")] }).verified, false);
  });
});

describe("verify: tricks that must not pass", () => {
  const gmail = compileVerify({ authResults: "gmail" }) as CompiledVerify;
  const dkim = compileVerify({ dkim: "shop.example" }) as CompiledVerify;
  const receipt = (top: string) => `${top}From: receipts@shop.example\r\nTo: x@example.com\r\nSubject: receipt\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@shop.example>\r\n\r\nTotal: 480 JPY\r\n`;

  test("an encoded word in the sender's address that Gmail copies in cannot add a result: the header is read as written", async () => {
    // shop.example publishes no DMARC policy: Gmail says dmarc=fail (or none) but copies the envelope sender verbatim.
    const injected = "=?utf-8?q?x=3B_dkim=3Dpass_header=2Ed=3Dshop=2Eexample_?=@evil.example";
    const mail = await normalizeMail(Buffer.from(receipt(`Authentication-Results: mx.google.com;\r\n       spf=pass smtp.mailfrom=${injected};\r\n       dmarc=fail (p=NONE) header.from=shop.example\r\n`)));
    assert.equal(checkVerify(gmail, { mail }).verified, false);
  });

  test("two dmarc results in Gmail's header (one copied in from a quoted address): not verified", async () => {
    const mail = await normalizeMail(Buffer.from(receipt(`Authentication-Results: mx.google.com; spf=pass smtp.mailfrom="a;dmarc=pass header.from=shop.example"@evil.example; dmarc=fail header.from=shop.example\r\n`)));
    const v = checkVerify(gmail, { mail });
    assert.equal(v.verified, false);
  });

  test("dmarc=pass for another domain than From's: not verified", async () => {
    const mail = await normalizeMail(Buffer.from(receipt("Authentication-Results: mx.google.com; dmarc=pass header.from=evil.example\r\n")));
    const v = checkVerify(gmail, { mail });
    assert.equal(v.verified, false);
    assert.match(v.verified ? "" : v.reason, /dmarc=pass for evil\.example, not for the From domain shop\.example/);
  });

  test("a second From (or Subject) put above a genuine signed mail: not verified, whatever the signature says", async () => {
    const mail = await normalizeMail(Buffer.from(`From: googleplay-noreply@shop.example\r\nSubject: Your receipt\r\n${receipt("")}`));
    const v = checkVerify(dkim, { mail, dkim: [sig("shop.example")] });
    assert.deepEqual(v.verified ? v : { code: v.code }, { code: "ambiguous_headers" });
  });

  test("a From with two addresses: not verified", async () => {
    const mail = await normalizeMail(Buffer.from(receipt("").replace("From: receipts@shop.example", "From: attacker@evil.example, receipts@shop.example")));
    const v = checkVerify(dkim, { mail, dkim: [sig("shop.example")] });
    assert.equal(v.verified ? "verified" : v.code, "ambiguous_headers");
  });
});

describe("needsWhole: which mail is read whole", () => {
  test("a rule that tests only the body: with the body read, only mail whose body matches", async () => {
    const { compileRules, needsWhole } = await import("./rules.ts");
    const { ruleSchema } = await import("./config.ts");
    const compiled = compileRules([ruleSchema.parse({ name: "r", match: { body: "/Total: \\d+/" }, verify: { dkim: "shop.example" }, notify: ["hook"] })], { locale: "en-US" });
    assert.ok(compiled.ok);
    const input = (text: string) => ({ mail: { ...emptyMail(), text, warnings: [] }, account: "a", mailbox: "INBOX", receivedAt: new Date() });
    assert.equal(needsWhole(compiled.rules, input(""), false), true, "header only: it might match");
    assert.equal(needsWhole(compiled.rules, input("a newsletter"), true), false, "read, and it does not");
    assert.equal(needsWhole(compiled.rules, input("Total: 480"), true), true);
  });
});

test("verify: without match.from is warned about at load, with the fix", async () => {
  const { compileRules } = await import("./rules.ts");
  const { ruleSchema } = await import("./config.ts");
  const result = compileRules([ruleSchema.parse({ name: "r", match: { subject: "receipt" }, verify: { authResults: "gmail" }, notify: ["hook"] })], { locale: "en-US" });
  assert.deepEqual(
    result.warnings.map((w) => w.path),
    ["rules[0].verify"],
  );
  assert.match(result.warnings[0]!.message, /add the sender, e\.g\. from: "@google\.com"/);
});
