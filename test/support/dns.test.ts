/**
 * The DKIM test tools work before anything relies on them: the DNS server (dnsmasq on
 * 127.0.0.1) serves long key records and fails on demand, mail signed here verifies with
 * mailauth through it, and every public vector in test/fixtures/dkim/ verifies with its keys
 * served (and fails once its body is changed).
 */
import assert from "node:assert/strict";
import { Resolver } from "node:dns/promises";
import { describe, it } from "node:test";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { startDnsServer } from "./dns.ts";
import { dkimRecordName, dkimVectors, dnsResolver, makeDkimKey, signMail } from "./dkim.ts";

const MAIL = "From: Shop <receipts@shop.example>\r\nTo: me@home.example\r\nSubject: Your receipt\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <r1@shop.example>\r\n\r\nTotal: 12.34 EUR\r\n";

function resolverFor(server: string, timeout = 1000): Resolver {
  const r = new Resolver({ timeout, tries: 1 });
  r.setServers([server]);
  return r;
}

async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "answered";
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

function replaceLast(raw: Buffer, from: string, to: string): Buffer {
  const i = raw.lastIndexOf(from);
  assert.ok(i >= 0, `"${from}" not in the message`);
  return Buffer.concat([raw.subarray(0, i), Buffer.from(to), raw.subarray(i + from.length)]);
}

describe("test DNS server (dnsmasq on 127.0.0.1)", () => {
  it("serves a 4096-bit RSA key record in ≤255-byte strings that join to the value, NXDOMAIN for other names", async () => {
    const key = makeDkimKey("rsa", 4096);
    const name = dkimRecordName("s1", "shop.example");
    await using dns = await startDnsServer({ txt: { [name]: key.txt, "spf.shop.example": "v=spf1 a,b -all" } });
    assert.equal(dns.server, `127.0.0.1:${dns.port}`);
    const r = resolverFor(dns.server);
    const [record, ...more] = await r.resolveTxt(name);
    assert.equal(more.length, 0);
    assert.ok(record!.length >= 3 && record!.every((s) => Buffer.byteLength(s) <= 255), `strings of ${record!.map((s) => s.length).join(", ")} bytes`);
    assert.equal(record!.join(""), key.txt);
    assert.deepEqual(await r.resolveTxt("spf.shop.example"), [["v=spf1 a,b -all"]], "a comma stays inside the value");
    assert.equal(await errorCode(r.resolveTxt(dkimRecordName("s2", "shop.example"))), "ENOTFOUND");
    assert.equal(await errorCode(r.resolveTxt("example.com")), "ENOTFOUND", "never asks a server outside");
  });

  it("changes records on the same port, and fails on demand: refused, timeout, down", async () => {
    await using dns = await startDnsServer({ txt: { "a.test.example": ["one", "two"] } });
    const r = resolverFor(dns.server, 300);
    assert.deepEqual(await r.resolveTxt("a.test.example"), [["one", "two"]]);
    await dns.setTxt("b.test.example", "bee");
    assert.deepEqual(await r.resolveTxt("b.test.example"), [["bee"]]);
    await dns.remove("a.test.example");
    assert.equal(await errorCode(r.resolveTxt("a.test.example")), "ENOTFOUND");
    const failures = { refused: "EREFUSED", timeout: "ETIMEOUT", down: "ECONNREFUSED" } as const;
    for (const [mode, code] of Object.entries(failures)) {
      await dns.fail(mode as keyof typeof failures);
      assert.equal(await errorCode(r.resolveTxt("b.test.example")), code, mode);
    }
    await dns.fail(false);
    assert.deepEqual(await r.resolveTxt("b.test.example"), [["bee"]]);
    assert.ok(dns.queries().includes("b.test.example"), "queries() lists the names asked for");
  });

  it("refuses values it cannot pass to dnsmasq unchanged", async () => {
    await using dns = await startDnsServer();
    await assert.rejects(dns.setTxt("q.test.example", 'say "hi"'), /quote/);
    await assert.rejects(dns.setTxt("q.test.example", ["x".repeat(256)]), /at most 255/);
  });
});

describe("DKIM test keys and signMail, verified by mailauth through the DNS server", () => {
  for (const type of ["rsa", "ed25519"] as const) {
    it(`a mail signed with a ${type} key passes, aligned; changed after signing it does not`, async () => {
      const key = makeDkimKey(type);
      await using dns = await startDnsServer({ txt: { [dkimRecordName("mb", "shop.example")]: key.txt } });
      const signed = await signMail(MAIL, { domain: "shop.example", selector: "mb", privateKey: key.privateKey, headers: ["From", "To", "Subject", "Date", "Message-ID"] });
      assert.match(signed.toString(), /^DKIM-Signature: /);
      const ok = await dkimVerify(signed, { resolver: dnsResolver(dns.server) });
      assert.equal(ok.results.length, 1);
      assert.equal(ok.results[0]!.status.result, "pass", ok.results[0]!.info);
      assert.equal(ok.results[0]!.status.aligned, "shop.example");
      const altered = await dkimVerify(replaceLast(signed, "12.34", "1234.00"), { resolver: dnsResolver(dns.server) });
      assert.notEqual(altered.results[0]!.status.result, "pass");
    });
  }

  it("without its key in DNS the signature does not pass; with the DNS server down it is a temporary error", async () => {
    const key = makeDkimKey("ed25519");
    await using dns = await startDnsServer();
    const signed = await signMail(MAIL, { domain: "shop.example", selector: "mb", privateKey: key.privateKey });
    const missing = await dkimVerify(signed, { resolver: dnsResolver(dns.server) });
    assert.equal(missing.results[0]!.status.result, "neutral", missing.results[0]!.info);
    await dns.fail("down");
    const down = await dkimVerify(signed, { resolver: dnsResolver(dns.server) });
    assert.equal(down.results[0]!.status.result, "temperror", down.results[0]!.info);
  });
});

describe("public DKIM test vectors (test/fixtures/dkim), keys served by the DNS server", () => {
  for (const v of dkimVectors()) {
    it(`${v.file}: every signature passes as recorded; with the body changed none does`, async () => {
      await using dns = await startDnsServer({ txt: v.txt });
      const options = { resolver: dnsResolver(dns.server), curTime: new Date(v.time) };
      const good = await dkimVerify(v.raw, options);
      assert.deepEqual(
        good.results.map((r) => ({ domain: r.signingDomain, selector: r.selector, result: r.status.result, aligned: r.status.aligned })),
        v.signatures,
        good.results.map((r) => r.info).join("\n"),
      );
      const altered = await dkimVerify(replaceLast(v.raw, v.bodyChange.from, v.bodyChange.to), options);
      assert.equal(altered.results.length, v.signatures.length);
      for (const r of altered.results) assert.notEqual(r.status.result, "pass", r.info);
    });
  }
});
