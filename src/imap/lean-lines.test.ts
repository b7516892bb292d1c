import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hasCapability, imapString, LineReader, LineTooLong, mailboxName, parseLine } from "./lean-lines.ts";

describe("the lean connection's line reader", () => {
  it("cuts lines at CRLF across chunks, and keeps a partial line for the next chunk", () => {
    const r = new LineReader();
    assert.deepEqual(r.push(Buffer.from("* 3 EXI")), []);
    assert.deepEqual(r.push(Buffer.from("STS\r\n* OK [UIDNEXT 7] x\r\nL1 OK")), ["* 3 EXISTS", "* OK [UIDNEXT 7] x"]);
    assert.deepEqual(r.push(Buffer.from(" done\r\n")), ["L1 OK done"]);
  });

  it("skips a literal without holding it, the line going on after it", () => {
    const r = new LineReader(1000, 100);
    assert.deepEqual(r.push(Buffer.from("* LIST () \"/\" {5}\r\nab")), []);
    assert.deepEqual(r.push(Buffer.from("c\r\n\r\n* 1 EXISTS\r\n")), ['* LIST () "/" {5}', "* 1 EXISTS"]);
  });

  it("refuses a line or a literal over its cap, whatever the server sends", () => {
    const r = new LineReader(16, 100);
    assert.throws(() => r.push(Buffer.from("* OK 0123456789abcdef")), LineTooLong);
    const chunked = new LineReader(16, 100);
    chunked.push(Buffer.from("* OK 01234"));
    assert.throws(() => chunked.push(Buffer.from("56789abcdef")), LineTooLong, "the cap holds across chunks");
    assert.throws(() => new LineReader(1000, 100).push(Buffer.from("* 1 FETCH (BODY[] {101}\r\n")), LineTooLong);
  });
});

describe("the responses the lean connection acts on", () => {
  it("reads tagged answers with their response code, EXISTS, EXPUNGE, BYE, continuations and STATUS's UIDNEXT", () => {
    assert.deepEqual(parseLine("L3 NO [AUTHENTICATIONFAILED] Authentication failed."), { kind: "tagged", tag: "L3", status: "NO", code: "AUTHENTICATIONFAILED", args: "", text: "Authentication failed." });
    assert.deepEqual(parseLine("L2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in"), { kind: "tagged", tag: "L2", status: "OK", code: "CAPABILITY", args: "IMAP4rev1 IDLE", text: "Logged in" });
    assert.deepEqual(parseLine("* 12 EXISTS"), { kind: "exists", count: 12 });
    assert.deepEqual(parseLine("* 4 EXPUNGE"), { kind: "expunge" });
    assert.deepEqual(parseLine("* BYE going down"), { kind: "bye", text: "going down" });
    assert.deepEqual(parseLine("+ idling"), { kind: "continue", text: "idling" });
    assert.deepEqual(parseLine("* OK [UIDVALIDITY 1700000000] UIDs valid"), { kind: "status", status: "OK", code: "UIDVALIDITY", args: "1700000000", text: "UIDs valid" });
    assert.deepEqual(parseLine('* STATUS "INBOX.Receipts" (MESSAGES 3 UIDNEXT 42)'), { kind: "uidnext", uidNext: 42 });
    assert.deepEqual(parseLine("* 3 FETCH (FLAGS (\\Seen))"), { kind: "other" });
  });

  it("finds a capability by its whole name only", () => {
    assert.ok(hasCapability("IMAP4rev1 SASL-IR AUTH=PLAIN IDLE", "idle"));
    assert.ok(!hasCapability("IMAP4rev1 AUTH=PLAINX", "AUTH=PLAIN"));
  });
});

describe("a login's strings", () => {
  it("quotes what a quoted string can hold, escaping quote and backslash", () => {
    assert.deepEqual(imapString('p"a\\ss word'), { quoted: '"p\\"a\\\\ss word"' });
  });

  it("sends anything beyond 7-bit, or CR/LF, as a literal of its UTF-8 bytes", () => {
    assert.deepEqual(imapString("pässwort"), { literal: Buffer.from("pässwort", "utf8") });
    assert.ok("literal" in imapString("a\r\nb"));
  });

  it("writes a mailbox name in modified UTF-7 as imapflow does", () => {
    assert.equal(mailboxName("Rechnungen/Bezahlt"), "Rechnungen/Bezahlt");
    assert.equal(mailboxName("R&D"), "R&-D");
    assert.equal(mailboxName("Entwürfe"), "Entw&APw-rfe");
  });
});
