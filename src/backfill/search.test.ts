import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { searchFor } from "./search.ts";

const since = new Date("2026-10-30T00:00:00Z");

describe("backfill search", () => {
  it("narrows by each rule's plain From and Subject, OR across rules", () => {
    const one = searchFor([{ name: "a", match: { from: "@shop.example", subject: "Receipt" } }], { since });
    assert.deepEqual(one, { by: "conditions", query: { since, from: "shop.example", subject: "Receipt" } });
    const two = searchFor([{ name: "a", match: { from: "billing@shop.example" } }, { name: "b", match: { subject: "Invoice", body: "/total/" } }], { since });
    assert.deepEqual(two.query, { since, or: [{ from: "billing@shop.example" }, { subject: "Invoice" }] });
  });

  it("keeps what the server can test and falls back to dates alone for a rule it cannot", () => {
    assert.deepEqual(searchFor([{ name: "a", match: { from: "/@shop\\./", subject: "Receipt" } }], { since }).query, { since, subject: "Receipt" });
    const regexOnly = searchFor([{ name: "a", match: { from: "@shop.example" } }, { name: "b", match: { subject: "/^Order \\d+/" } }], { since });
    assert.deepEqual(regexOnly, { by: "dates", query: { since }, because: "rule b has no plain from: or subject: condition" });
    assert.equal(searchFor([{ name: "a", match: { subject: "領収書" } }], { since }).by, "dates", "non-ASCII is left to the rules");
    assert.deepEqual(searchFor([{ name: "a", match: {} }], {}).query, { all: true });
  });

  it("sends a subject's longest word, as the server may not squeeze whitespace as mailbell does", () => {
    assert.deepEqual(searchFor([{ name: "a", match: { subject: " Your  receipt from " } }], { since }).query, { since, subject: "receipt" });
    assert.deepEqual(searchFor([{ name: "a", match: { subject: "Receipt" } }], { since }).query, { since, subject: "Receipt" });
  });

  it("searches by dates only on servers that match whole words (Gmail, Microsoft 365)", () => {
    const rules = [{ name: "a", match: { from: "@shop.example", subject: "receipt" } }];
    assert.deepEqual(searchFor(rules, { since }, { host: "imap.gmail.com" }), { by: "dates", query: { since }, because: "imap.gmail.com searches by whole word, not substring" });
    assert.equal(searchFor(rules, { since }, { host: "Outlook.Office365.com" }).by, "dates");
    assert.equal(searchFor(rules, { since }, { host: "127.0.0.1" }).by, "conditions");
    assert.deepEqual(searchFor(rules, { since }, { host: "127.0.0.1", datesOnly: true }), { by: "dates", query: { since }, because: "--search dates" });
  });
});
