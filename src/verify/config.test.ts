import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dnsSchema, isResolverAddress } from "./config.ts";

describe("dns.servers", () => {
  const cases: [string, boolean][] = [
    ["9.9.9.9", true],
    ["127.0.0.1:5353", true],
    ["::1", true],
    ["[::1]:53", true],
    ["[2001:db8::1]", true],
    ["dns.google", false],
    ["localhost:53", false],
    ["1.2.3", false],
    ["127.0.0.1:0", false],
    ["127.0.0.1:70000", false],
    ["[127.0.0.1]:53", false],
    ["", false],
  ];
  for (const [server, ok] of cases) {
    it(`${JSON.stringify(server)} is ${ok ? "" : "not "}a resolver's address`, () => {
      assert.equal(isResolverAddress(server), ok);
    });
  }

  it("a host name is refused at load with what to give instead (node:dns would throw at start, an internal error)", () => {
    const parsed = dnsSchema.safeParse({ servers: ["9.9.9.9", "dns.google"] });
    assert.equal(parsed.success, false);
    const issue = parsed.error!.issues[0]!;
    assert.deepEqual(issue.path, ["servers", 1]);
    assert.match(issue.message, /"dns\.google" is not a resolver's IP address: give each as IP or IP:port/);
  });
});
