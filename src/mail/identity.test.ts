import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mailIdentity, rfc822Size } from "./identity.ts";
import { normalizeMail } from "./normalize.ts";

const receipt = [
  "From: Google Play <googleplay-noreply@google.com>",
  "To: alice@example.com",
  "Subject: Google Play receipt",
  "Date: Mon, 23 Nov 2026 19:04:11 +0900",
  "Message-ID: <play-1@google.com>",
  "",
  "Total: ¥480",
  "",
];

/** The identity of `lines` as normalizeMail reads them, with the server's size and arrival time. */
async function identityOf(lines: readonly string[], facts: { size?: number; receivedAt?: Date } = {}): Promise<string> {
  const mail = await normalizeMail(Buffer.from(lines.join("\r\n"), "utf8"));
  return mailIdentity({ mail, size: facts.size ?? 2000, receivedAt: facts.receivedAt ?? new Date("2026-11-23T10:04:12Z") });
}

/** `receipt` with the header `name` replaced by `value` (or left out when undefined). */
function withHeader(name: string, value: string | undefined): string[] {
  const at = receipt.findIndex((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  const lines = [...receipt];
  if (value === undefined) lines.splice(at, 1);
  else lines[at] = `${name}: ${value}`;
  return lines;
}

describe("mailIdentity", () => {
  it("is the Message-ID with a digest, or the digest alone without one", async () => {
    assert.match(await identityOf(receipt), /^<play-1@google\.com> [0-9a-f]{32}$/);
    assert.match(await identityOf(withHeader("Message-ID", undefined)), /^[0-9a-f]{32}$/);
  });

  it("stays short for a Message-ID longer than a real one, which its own digest then stands for", async () => {
    const long = (c: string) => withHeader("Message-ID", `<${c.repeat(5000)}@example.com>`);
    const identity = await identityOf(long("a"));
    assert.match(identity, /^<#[0-9a-f]{32}> [0-9a-f]{32}$/);
    assert.notEqual(await identityOf(long("b")), identity);
    assert.match(await identityOf(withHeader("Message-ID", `<${"a".repeat(238)}@example.com>`)), /^<a{238}@example\.com> /, "250 characters are kept as they are");
  });

  // The same mail as a server shows it again: moved, copied, in another folder, renumbered.
  const same: Array<[string, string[], { size?: number; receivedAt?: Date }]> = [
    ["moved or copied: another arrival time", receipt, { receivedAt: new Date("2026-12-01T00:00:00Z") }],
    ["the Subject folded", withHeader("Subject", "Google Play\r\n receipt"), {}],
    ["the Subject as an encoded word", withHeader("Subject", "=?UTF-8?B?R29vZ2xlIFBsYXkgcmVjZWlwdA==?="), {}],
    ["header names in another case", receipt.map((l) => l.replace(/^Subject:/, "SUBJECT:").replace(/^From:/, "from:")), {}],
    ["the Date with other spacing and zone", withHeader("Date", "Mon,  23 Nov 2026 10:04:11 +0000"), {}],
    ["the From address in another case, another display name", withHeader("From", "Play <GooglePlay-NoReply@Google.com>"), {}],
  ];
  for (const [name, lines, facts] of same) {
    it(`stays the same: ${name}`, async () => {
      assert.equal(await identityOf(lines, facts), await identityOf(receipt));
    });
  }

  // Two mails that share a Message-ID (some senders reuse one for every mail) are two mails.
  const different: Array<[string, string[], { size?: number; receivedAt?: Date }]> = [
    ["another Subject", withHeader("Subject", "Google Play receipt 2"), {}],
    ["another Date", withHeader("Date", "Mon, 23 Nov 2026 19:04:12 +0900"), {}],
    ["another sender", withHeader("From", "shop@example.com"), {}],
    ["another size", receipt, { size: 2001 }],
  ];
  for (const [name, lines, facts] of different) {
    it(`differs with ${name}, though the Message-ID is the same`, async () => {
      const other = await identityOf(lines, facts);
      assert.notEqual(other, await identityOf(receipt));
      assert.ok(other.startsWith("<play-1@google.com> "));
    });
  }

  it("without a Message-ID, tells mails apart by the digest alone", async () => {
    const noId = withHeader("Message-ID", undefined);
    assert.equal(await identityOf(noId, { receivedAt: new Date("2030-01-01T00:00:00Z") }), await identityOf(noId));
    assert.notEqual(await identityOf(noId.map((l) => l.replace("receipt", "invoice"))), await identityOf(noId));
  });

  it("without a Date, the arrival time stands in (kept by MOVE and COPY), so two such mails of one size are still two", async () => {
    const noDate = withHeader("Date", undefined);
    const at = new Date("2026-11-23T10:04:12Z");
    assert.equal(await identityOf(noDate, { receivedAt: at }), await identityOf(noDate, { receivedAt: new Date(at) }));
    assert.notEqual(await identityOf(noDate, { receivedAt: at }), await identityOf(noDate, { receivedAt: new Date("2026-11-24T10:04:12Z") }));
  });

  it("an invalid Date is taken as written", async () => {
    const bad = await identityOf(withHeader("Date", "sometime  next week"));
    assert.equal(await identityOf(withHeader("Date", "sometime next week")), bad);
    assert.notEqual(await identityOf(withHeader("Date", "sometime last week")), bad);
    assert.notEqual(bad, await identityOf(withHeader("Date", undefined)));
  });
});

describe("rfc822Size", () => {
  const table: Array<[string, string, number]> = [
    ["CRLF already", "a\r\nb\r\n", 6],
    ["LF only", "a\nb\n", 6],
    ["mixed", "a\r\nb\nc", 7],
    ["a leading LF", "\nb", 3],
    ["no line break", "abc", 3],
  ];
  for (const [name, text, size] of table) {
    it(`counts each line end as CRLF: ${name}`, () => assert.equal(rfc822Size(Buffer.from(text, "latin1")), size));
  }
});
