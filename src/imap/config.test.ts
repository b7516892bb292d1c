import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { notifyWanted } from "./config.ts";

const folders = (n: number) => Array.from({ length: n }, (_, i) => (i === 0 ? "INBOX" : `F${i}`));

describe("notifyWanted", () => {
  it("auto: only where one connection per folder would pass the account's limit", () => {
    assert.equal(notifyWanted({ host: "mail.example.com", mailboxes: folders(10) }, "auto"), false, "10 folders fit Dovecot's default of 10");
    assert.equal(notifyWanted({ host: "mail.example.com", mailboxes: folders(11) }, "auto"), true);
    assert.equal(notifyWanted({ host: "mail.example.com", maxConnections: 3, mailboxes: folders(4) }, "auto"), true);
    assert.equal(notifyWanted({ host: "mail.example.com", maxConnections: 3, mailboxes: folders(3) }, "auto"), false);
  });

  it("on: every account with two or more folders; never for one folder, never with off", () => {
    assert.equal(notifyWanted({ host: "mail.example.com", mailboxes: folders(2) }, "on"), true);
    assert.equal(notifyWanted({ host: "mail.example.com", maxConnections: 1, mailboxes: folders(1) }, "on"), false);
    assert.equal(notifyWanted({ host: "mail.example.com", maxConnections: 1, mailboxes: folders(1) }, "auto"), false);
    assert.equal(notifyWanted({ host: "mail.example.com", maxConnections: 3, mailboxes: folders(20) }, "off"), false);
  });
});
