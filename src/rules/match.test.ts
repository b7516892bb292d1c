import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { MatchConfig } from "./config.ts";
import { addr, appleMail, googlePlayMail, input, mail } from "./fixtures.test.ts";
import { addressForms, compileMatch, failedConditions, formatAddress, matches } from "./match.ts";
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
    ["bare address as substring", { from: "googleplay-noreply@google.com" }, gp, true],
    ["address substring is case-insensitive", { from: "GooglePlay-NoReply@Google.com" }, gp, true],
    ["regex anchored on the bare address", { from: "/@google\\.com$/" }, gp, true],
    ["regex anchored on the bare address, other domain", { from: "/@google\\.com$/" }, apple, false],
    ["display name", { from: "Google Play" }, gp, true],
    ["Name <address> form", { from: "/^Google Play <googleplay-noreply@/" }, gp, true],
    ["<address> form without a name", { to: "<bob@example.com>" }, multi, true],
    ["any To address is enough", { to: "/@shop\\.example$/" }, multi, true],
    ["cc", { cc: "dave@" }, multi, true],
    ["cc does not look at To", { cc: "bob@" }, multi, false],
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
    ["all conditions must hold (AND), all true", { from: "google.com", subject: "Google Play", body: "￥480" }, gp, true],
    ["all conditions must hold (AND), one false", { from: "google.com", subject: "Google Play", body: "$15.14" }, gp, false],
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
    const c = compiled({ from: "google.com", subject: "invoice", mailbox: "Receipts" });
    assert.deepEqual(failedConditions(c, gp), ["match.mailbox", "match.subject"]);
    assert.deepEqual(failedConditions(compiled({ from: "google.com" }), gp), []);
  });
});

describe("addresses", () => {
  test("forms tested", () => {
    assert.deepEqual(addressForms(addr("a@x.example", "A")), ["a@x.example", "A <a@x.example>"]);
    assert.deepEqual(addressForms(addr("a@x.example")), ["a@x.example", "<a@x.example>"]);
  });

  test("display form", () => {
    assert.equal(formatAddress(addr("a@x.example", "A")), "A <a@x.example>");
    assert.equal(formatAddress(addr("a@x.example")), "a@x.example");
  });
});
