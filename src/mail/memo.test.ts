import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StringMemo } from "./memo.ts";

describe("StringMemo", () => {
  it("computes a key once and answers it again from memory", () => {
    const calls: string[] = [];
    const memo = new StringMemo((key) => (calls.push(key), key.toUpperCase()));
    assert.equal(memo.get("a"), "A");
    assert.equal(memo.get("a"), "A");
    assert.equal(memo.get("b"), "B");
    assert.deepEqual(calls, ["a", "b"]);
  });

  it("forgets the oldest entry past maxEntries, so memory stays bounded", () => {
    const calls: string[] = [];
    const memo = new StringMemo((key) => (calls.push(key), key.length), { maxEntries: 2 });
    memo.get("a");
    memo.get("bb");
    memo.get("ccc");
    assert.equal(memo.size, 2);
    memo.get("bb");
    memo.get("a");
    assert.deepEqual(calls, ["a", "bb", "ccc", "a"]);
  });

  it("does not remember keys longer than maxKeyLength", () => {
    let calls = 0;
    const memo = new StringMemo((key) => (calls++, key.length), { maxKeyLength: 3 });
    assert.equal(memo.get("long key"), 8);
    assert.equal(memo.get("long key"), 8);
    assert.equal(calls, 2);
    assert.equal(memo.size, 0);
  });
});
