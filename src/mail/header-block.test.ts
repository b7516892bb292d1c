import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { capHeader } from "./header-block.ts";
import { readFetchedParts } from "./parts.ts";

const bytes = (s: string) => Buffer.from(s, "latin1");
const text = (b: Uint8Array) => Buffer.from(b).toString("latin1");

describe("capHeader", () => {
  it("leaves a header shorter than the limit alone", () => {
    const h = bytes("From: a@example.com\r\nSubject: hi\r\n\r\n");
    assert.deepEqual(capHeader(h, 1000), { header: h });
    assert.deepEqual(capHeader(h, undefined), { header: h });
  });

  it("leaves a header that ends exactly at the limit alone", () => {
    const h = bytes("Subject: hi\r\n\r\n");
    assert.deepEqual(capHeader(h, h.length), { header: h });
  });

  it("drops the field the limit cut, folded lines included, and says from which field on", () => {
    const whole = "From: a@example.com\r\nSubject: receipt\r\n folded\r\nX-Huge: " + "a".repeat(500) + "\r\nTo: b@example.com\r\n\r\n";
    const cut = capHeader(bytes(whole).subarray(0, 200), 200);
    assert.equal(text(cut.header), "From: a@example.com\r\nSubject: receipt\r\n folded\r\n");
    assert.equal(cut.warning, 'the message header is longer than 200 bytes; it was read up to there and the rest left out (from the field "X-Huge" on)');
  });

  it("keeps nothing of one endless line, and names no field it cannot name safely", () => {
    const cut = capHeader(bytes("Subj\u001bect: " + "x".repeat(300)).subarray(0, 100), 100);
    assert.equal(cut.header.length, 0);
    assert.equal(cut.warning, "the message header is longer than 100 bytes; it was read up to there and the rest left out");
  });

  it("reads the fields before the cut through readFetchedParts, with the warning on the mail", () => {
    const header = bytes("From: Shop <shop@example.com>\r\nSubject: Your receipt\r\nX-Big: " + "b".repeat(5000));
    const mail = readFetchedParts({ uid: 1, header: header.subarray(0, 4096), plan: undefined, bodies: new Map(), headerLimit: 4096 });
    assert.equal(mail.subject, "Your receipt");
    assert.equal(mail.from[0]?.address, "shop@example.com");
    assert.ok(mail.warnings.some((w) => /header is longer than 4096 bytes.*"X-Big"/.test(w)), mail.warnings.join("; "));
  });
});
