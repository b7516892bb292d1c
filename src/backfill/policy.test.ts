import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { keyIsGone } from "./policy.ts";

describe("backfill policy", () => {
  it("tells a DKIM key removed from DNS from other failures", () => {
    assert.equal(keyIsGone([{ domain: "shop.example", result: "neutral", aligned: true, comment: "no key" }]), true);
    assert.equal(keyIsGone([{ domain: "shop.example", result: "fail", aligned: true, comment: "body hash did not verify" }]), false);
    assert.equal(keyIsGone([{ domain: "shop.example", result: "pass", aligned: true }]), false);
    assert.equal(keyIsGone(undefined), false);
  });
});
