import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { MatchConfig } from "./config.ts";
import { addr, appleMail, googlePlayMail, input, mail } from "./fixtures.test.ts";
import { addressPatternWarning, compileMatch, failedConditions, formatAddress, formatAttachments, matches } from "./match.ts";
import type { CompiledMatch } from "./match.ts";
import type { RuleInput } from "./types.ts";

function compiled(m: MatchConfig): CompiledMatch {
  const c = compileMatch(m);
  if (Array.isArray(c)) assert.fail(`expected the match to compile: ${JSON.stringify(c)}`);
  return c;
}

const gp = input(googlePlayMail);
const apple = input(appleMail, { account: "work", mailbox: "Receipts" });
const multi = input(
  mail({
    from: [addr("alice@example.com", "Alice")],
    to: [addr("bob@example.com"), addr("carol@shop.example", "Carol")],
    cc: [addr("dave@example.org", "Dave")],
    subject: "hello",
    text: "body text",
  }),
);

describe("matches", () => {
  const cases: [name: string, m: MatchConfig, i: RuleInput, expected: boolean][] = [
    ["an empty match holds for every mail", {}, gp, true],
    ["whole address", { from: "googleplay-noreply@google.com" }, gp, true],
    ["whole address is case-insensitive", { from: "GooglePlay-NoReply@Google.com" }, gp, true],
    ["regex anchored on the bare address", { from: "/@google\\.com$/" }, gp, true],
    ["regex anchored on the bare address, other domain", { from: "/@google\\.com$/" }, apple, false],
    ["a display name is not an address", { from: "Google Play" }, gp, false],
    ["a regex never sees the display name", { from: "/^Google Play/" }, gp, false],
    ["<address> is not the bare address", { to: "<bob@example.com>" }, multi, false],
    ["a part of the address is not the address", { from: "google.com" }, gp, false],
    ["fromName: substring of the display name", { fromName: "google play" }, gp, true],
    ["fromName: regex on the display name", { fromName: "/^Google Play$/" }, gp, true],
    ["fromName: not the address", { fromName: "googleplay-noreply" }, gp, false],
    ["any To address is enough", { to: "/@shop\\.example$/" }, multi, true],
    ["To, whole address", { to: "carol@shop.example" }, multi, true],
    ["cc, domain", { cc: "@example.org" }, multi, true],
    ["cc does not look at To", { cc: "bob@example.com" }, multi, false],
    ["no From at all fails", { from: "/.*/" }, input(mail()), false],
    ["subject substring", { subject: "ご注文明細" }, gp, true],
    ["subject regex", { subject: "/^Your receipt from Apple\\.$/" }, apple, true],
    ["subject mismatch", { subject: "invoice" }, apple, false],
    ["body", { body: "合計" }, gp, true],
    ["body regex, multiline", { body: "/^TOTAL\\s+\\$/m" }, apple, true],
    ["body mismatch", { body: "合計" }, apple, false],
    ["header name is case-insensitive", { headers: { "list-id": "receipts.google.com" } }, gp, true],
    ["header name as written", { headers: { "List-Id": "/<receipts\\./" } }, gp, true],
    ["any value of a repeated header", { headers: { Received: "from b" } }, gp, true],
    ["an absent header fails", { headers: { "X-Mailer": "/.*/" } }, gp, false],
    ["all conditions must hold (AND), all true", { from: "@google.com", subject: "Google Play", body: "￥480" }, gp, true],
    ["all conditions must hold (AND), one false", { from: "@google.com", subject: "Google Play", body: "$15.14" }, gp, false],
    ["account exact", { account: "personal" }, gp, true],
    ["account exact is not a substring", { account: "person" }, gp, false],
    ["account is case-sensitive", { account: "Personal" }, gp, false],
    ["account list", { account: ["work", "personal"] }, gp, true],
    ["account regex", { account: "/^w/" }, apple, true],
    ["mailbox exact", { mailbox: "Receipts" }, apple, true],
    ["mailbox is case-sensitive", { mailbox: "receipts" }, apple, false],
    ["mailbox is not a substring", { mailbox: "Receipt" }, apple, false],
    ["INBOX is case-insensitive (RFC 3501)", { mailbox: "inbox" }, gp, true],
    ["INBOX is case-insensitive in the mail too", { mailbox: "INBOX" }, input(googlePlayMail, { mailbox: "Inbox" }), true],
    ["INBOX does not cover its children", { mailbox: "INBOX" }, input(googlePlayMail, { mailbox: "INBOX/Receipts" }), false],
    ["mailbox list", { mailbox: ["Archive", "Receipts"] }, apple, true],
    ["mailbox regex", { mailbox: "/^INBOX\\//" }, input(googlePlayMail, { mailbox: "INBOX/Receipts" }), true],
  ];
  for (const [name, m, i, expected] of cases) {
    test(name, () => {
      assert.equal(matches(compiled(m), i), expected);
    });
  }
});

describe("compileMatch errors", () => {
  test("every bad pattern is reported with its path", () => {
    const issues = compileMatch({ from: "/(/", subject: "/x/q", headers: { "List-Id": "/[/" }, mailbox: ["INBOX", "/(/"] });
    assert.ok(Array.isArray(issues));
    assert.deepEqual(
      issues.map((i) => i.path),
      ["match.mailbox[1]", "match.from", "match.subject", 'match.headers["List-Id"]'],
    );
    for (const issue of issues) assert.match(issue.message, /\/regex\/flags|valid flags/);
  });

  test("the path prefix can be chosen", () => {
    const issues = compileMatch({ subject: "/(/" }, "rules[1].match");
    assert.ok(Array.isArray(issues));
    assert.equal(issues[0]?.path, "rules[1].match.subject");
  });

  test("a header name with a colon or space is refused", () => {
    const issues = compileMatch({ headers: { "List-Id:": "x", "X Mailer": "y" } });
    assert.ok(Array.isArray(issues));
    assert.equal(issues.length, 2);
    assert.match(issues[0]!.message, /is not a header name.*without ":"/);
  });
});

describe("failedConditions", () => {
  test("names the conditions that do not hold", () => {
    const c = compiled({ from: "@google.com", subject: "invoice", mailbox: "Receipts" });
    assert.deepEqual(failedConditions(c, gp), ["match.mailbox", "match.subject"]);
    assert.deepEqual(failedConditions(compiled({ from: "@google.com" }), gp), []);
  });
});

describe("from/to/cc: the address only (the spoofs of issue 15)", () => {
  const from = (address: string, name = "") => input(mail({ from: [addr(address, name)] }));
  const cases: [name: string, pattern: string, address: string, displayName: string, expected: boolean][] = [
    ["the real sender", "googleplay-noreply@google.com", "googleplay-noreply@google.com", "Google Play", true],
    ["the address as display name of another address", "googleplay-noreply@google.com", "attacker@evil.example", "googleplay-noreply@google.com", false],
    ["the address as display name, domain form", "@google.com", "attacker@evil.example", "x@google.com", false],
    ["the address as display name, regex", "/^googleplay-noreply@google\\.com$/", "attacker@evil.example", "googleplay-noreply@google.com", false],
    ["the address with a domain appended", "googleplay-noreply@google.com", "googleplay-noreply@google.com.evil.example", "", false],
    ["the address with a prefix", "googleplay-noreply@google.com", "x-googleplay-noreply@google.com", "", false],
    ["case does not matter", "googleplay-noreply@google.com", "GooglePlay-NoReply@GOOGLE.COM", "", true],
    ["domain: itself", "@google.com", "x@google.com", "", true],
    ["domain: a subdomain", "@google.com", "x@mail.google.com", "", true],
    ["domain: case does not matter", "@Google.COM", "x@Mail.Google.com", "", true],
    ["domain: appended to", "@google.com", "x@google.com.evil.example", "", false],
    ["domain: ends with the same letters", "@google.com", "x@notgoogle.com", "", false],
    ["domain: in the local part", "@google.com", "google.com@evil.example", "", false],
    ["domain: the local part holds an @ (quoted)", "@google.com", '"a@google.com"@evil.example', "", false],
    ["regex on the address only", "/google\\.com$/", "x@google.com", "", true],
    ["regex does not see the name", "/Play/", "x@google.com", "Google Play", false],
  ];
  for (const [name, pattern, address, displayName, expected] of cases) {
    test(name, () => {
      assert.equal(matches(compiled({ from: pattern }), from(address, displayName)), expected);
    });
  }
});

describe("address pattern warnings", () => {
  const cases: [pattern: string, key: "from" | "to" | "cc", expected: RegExp | undefined][] = [
    ["googleplay-noreply@google.com", "from", undefined],
    ["@google.com", "from", undefined],
    ["/google/i", "from", undefined],
    ["Google Play", "from", /^"Google Play" has no @: it matches whole addresses now, so this rule matches nothing; write fromName: "Google Play" for the display name, @example\.com for a domain/],
    ["google.com", "from", /has no @.*\(for the domain, write "@google\.com"\)/],
    ["Bob", "to", /write headers: \{ To: "Bob" \} for the display name/],
    ["dave@", "cc", /is neither a whole address \(user@example\.com\) nor a domain/],
    ["<bob@example.com>", "to", /is neither a whole address/],
    ["@", "from", /is neither a whole address/],
  ];
  for (const [pattern, key, expected] of cases) {
    test(`${key}: ${pattern}`, () => {
      const warning = addressPatternWarning(key, pattern);
      if (expected === undefined) assert.equal(warning, undefined);
      else assert.match(warning ?? "", expected);
    });
  }

  test("compileMatch collects them under the condition's path", () => {
    const warnings: { path: string; message: string }[] = [];
    assert.ok(!Array.isArray(compileMatch({ from: "Google Play", to: "@example.com" }, "rules[0].match", warnings)));
    assert.deepEqual(warnings.map((w) => w.path), ["rules[0].match.from"]);
  });
});

describe("attachment", () => {
  const pdf = { filename: "Receipt_MQ4X7Y2Z9.pdf", contentType: "application/pdf", size: 2048 };
  const logo = { filename: "", contentType: "image/png", size: 900 };
  const withFiles = (...attachments: (typeof pdf)[]) => input(mail({ attachments }));
  const cases: [name: string, pattern: string, i: RuleInput, expected: boolean][] = [
    ["file name regex", "/\\.pdf$/i", withFiles(logo, pdf), true],
    ["file name substring, case-insensitive", "receipt_", withFiles(pdf), true],
    ["content type", "application/pdf", withFiles({ ...pdf, filename: "receipt" }), true],
    ["no attachment matches", "/\\.pdf$/i", withFiles(logo), false],
    ["no attachments at all", "/.*/", withFiles(), false],
  ];
  for (const [name, pattern, i, expected] of cases) {
    test(name, () => {
      assert.equal(matches(compiled({ attachment: pattern }), i), expected);
    });
  }

  test("{{attachments}}: names, or the type when there is none", () => {
    assert.equal(formatAttachments([pdf, logo]), "Receipt_MQ4X7Y2Z9.pdf, [image/png]");
    assert.equal(formatAttachments([]), "");
  });
});

describe("addresses", () => {
  test("display form", () => {
    assert.equal(formatAddress(addr("a@x.example", "A")), "A <a@x.example>");
    assert.equal(formatAddress(addr("a@x.example")), "a@x.example");
  });
});
