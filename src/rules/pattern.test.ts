import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { compilePattern, compileRegex, isPatternError, parseRegexLiteral } from "./pattern.ts";
import type { CompiledPattern } from "./pattern.ts";

function compiled(p: string): CompiledPattern {
  const c = compilePattern(p);
  if (isPatternError(c)) assert.fail(`expected ${p} to compile: ${c.error}`);
  return c;
}

describe("compilePattern", () => {
  const cases: [pattern: string, text: string, expected: boolean][] = [
    // plain strings: case-insensitive substring, regex characters are literal
    ["googleplay-noreply@google.com", "Google Play <googleplay-noreply@google.com>", true],
    ["GOOGLEPLAY-NOREPLY@GOOGLE.COM", "googleplay-noreply@google.com", true],
    ["receipt", "Your Receipt from Apple.", true],
    ["a.c", "abc", false],
    ["a.c", "xa.cx", true],
    ["(税込)", "￥480 (税込)", true],
    ["ご注文", "Google Play のご注文明細", true],
    ["missing", "nothing here", false],
    ["//", "http://x", true],
    // /regex/flags
    ["/@google\\.com$/", "googleplay-noreply@google.com", true],
    ["/@google\\.com$/", "googleplay-noreply@google.com.evil.example", false],
    ["/receipt/", "Your Receipt", false],
    ["/receipt/i", "Your Receipt", true],
    ["/^Your/", "Your receipt", true],
    ["/^receipt/", "Your receipt", false],
    ["/a.c/", "abc", true],
    ["/合計|Total/", "合計: ￥480", true],
    ["/a/b/", "a/b", true],
    ["/^\\//", "/path", true],
  ];
  for (const [p, s, expected] of cases) {
    test(`${p} on ${JSON.stringify(s)} → ${expected}`, () => {
      assert.equal(compiled(p).test(s), expected);
    });
  }

  test("reports which kind it made", () => {
    assert.equal(compiled("abc").kind, "substring");
    assert.equal(compiled("/abc/").kind, "regex");
    assert.equal(compiled("/abc/i").source, "/abc/i");
  });

  for (const flags of ["g", "y", "gy", "gi"]) {
    test(`the ${flags} flag does not make test() remember the last match`, () => {
      const p = compiled(`/receipt/${flags}`);
      const text = flags.includes("i") ? "RECEIPT" : "receipt";
      assert.deepEqual([p.test(text), p.test(text), p.test(text)], [true, true, true]);
      assert.equal(p.test("nothing"), false);
      assert.equal(p.test(text), true);
    });
  }

  test("y anchors at the start of the text, every time", () => {
    const p = compiled("/Total/y");
    assert.equal(p.test("Total 5"), true);
    assert.equal(p.test("Sub Total 5"), false);
    assert.equal(p.test("Total 5"), true);
  });

  const errors: [pattern: string, expected: RegExp][] = [
    ["/(abc/", /invalid regex \/\(abc\/: Unterminated group\. Write it as \/regex\/flags/],
    ["/[a-/i", /invalid regex \/\[a-\/i: .*Write it as \/regex\/flags/],
    ["/abc/q", /invalid regex flag "q" in \/abc\/q: valid flags are d g i m s u v y/],
    ["/usr/bin", /invalid regex flags "b", "n" in \/usr\/bin.*escape them/],
    ["/abc/I", /invalid regex flag "I"/],
    ["", /empty pattern/],
  ];
  for (const [p, expected] of errors) {
    test(`${JSON.stringify(p)} is an error`, () => {
      const c = compilePattern(p);
      assert.ok(isPatternError(c), "expected an error");
      assert.match(c.error, expected);
    });
  }

  test("repeated flags are tolerated", () => {
    assert.equal(compiled("/abc/ii").test("ABC"), true);
  });
});

describe("parseRegexLiteral", () => {
  test("splits body and flags, keeping inner slashes", () => {
    assert.deepEqual(parseRegexLiteral("/a\\/b/gi"), { body: "a\\/b", flags: "gi" });
    assert.deepEqual(parseRegexLiteral("/a/b/"), { body: "a/b", flags: "" });
  });

  test("is undefined for anything else", () => {
    for (const p of ["abc", "/", "//", "/abc", "abc/", "/abc/1"]) assert.equal(parseRegexLiteral(p), undefined, p);
  });
});

describe("compileRegex", () => {
  test("names the regex as shown in the config", () => {
    const r = compileRegex("(?<value>", "", "extract.amount.regex");
    assert.ok(!(r instanceof RegExp));
    assert.match(r.error, /^invalid regex extract\.amount\.regex: /);
  });

  test("duplicate named groups are reported", () => {
    const r = compileRegex("(?<value>a)(?<value>b)", "");
    assert.ok(!(r instanceof RegExp));
    assert.match(r.error, /Duplicate capture group name/);
  });
});
