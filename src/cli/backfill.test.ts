import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { unreadText } from "./backfill.ts";

describe("backfill summary", () => {
  it("prints why mail was not read with server and DNS text made harmless for the terminal", () => {
    const text = unreadText([{ account: "me", mailbox: "INBOX", uid: 7, reason: "its DKIM signature (d=evil\u001b]0;owned\u0007.example) could not be checked\nFAKE LINE" }]);
    assert.ok(![...text].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f), JSON.stringify(text));
    assert.match(text, /^me\/INBOX UID 7: its DKIM signature \(d=evil.*\.example\) could not be checked FAKE LINE$/);
  });
});
