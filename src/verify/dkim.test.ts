import assert from "node:assert/strict";
import crypto from "node:crypto";
import { describe, test } from "node:test";
import { dkimRecordName, dkimVectors, makeDkimKey, signMail } from "../../test/support/dkim.ts";
import { buildMail } from "../../test/support/mail.ts";
import { ReadAgainLater } from "../imap/fetch.ts";
import { cachedResolver } from "./dns.ts";
import { dkimVerifier } from "./dkim.ts";

/** A resolver that answers from a table, the way node:dns would: string chunks per record, ENOTFOUND otherwise. */
function tableResolver(txt: Record<string, string>, fail?: string) {
  return cachedResolver({
    cacheMs: 60_000,
    timeoutMs: 1000,
    lookup: async (name) => {
      if (fail) throw Object.assign(new Error(`queryTxt ${fail} ${name}`), { code: fail });
      const value = txt[name];
      if (value === undefined) throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: "ENOTFOUND" });
      return [[value]];
    },
  });
}

describe("dkimVerifier on public test vectors (RFC 8463, dkimpy, Exim), signatures nobody here made", () => {
  for (const vector of dkimVectors()) {
    test(`${vector.file}: verifies as expected, and not once the body is altered`, async () => {
      const verifier = dkimVerifier(tableResolver(vector.txt).resolve, ["football.example.com", "test.ex"]);
      const got = await verifier.verify(vector.raw);
      assert.deepEqual(
        got.map((s) => [s.domain, s.result, s.aligned]),
        vector.signatures.map((s) => [s.domain, s.result, s.aligned !== false]),
      );
      const altered = Buffer.from(vector.raw.toString("latin1").replace(vector.bodyChange.from, vector.bodyChange.to), "latin1");
      assert.ok((await verifier.verify(altered)).every((s) => s.result !== "pass"));
    });
  }
});

describe("dkimVerifier and DNS", () => {
  const [vector] = dkimVectors();

  test("a key that does not exist is a verdict (no key), not a reason to wait", async () => {
    const got = await dkimVerifier(tableResolver({}).resolve, ["football.example.com"]).verify(vector!.raw);
    assert.ok(got.length > 0 && got.every((s) => s.result === "neutral" && /no key/.test(s.comment ?? "")), JSON.stringify(got));
  });

  for (const code of ["ETIMEOUT", "ESERVFAIL", "ECONNREFUSED", "EREFUSED"]) {
    test(`a failed lookup (${code}) is no verdict: ReadAgainLater, with the reason`, async () => {
      await assert.rejects(dkimVerifier(tableResolver(vector!.txt, code).resolve, ["example.com"]).verify(vector!.raw), (err: unknown) => err instanceof ReadAgainLater && /the key's DNS lookup failed/.test(err.message));
    });
  }

  test("a failed lookup for a domain no rule trusts is a verdict (temperror), not a reason to wait: a sender cannot stall the mailbox", async () => {
    const got = await dkimVerifier(tableResolver(vector!.txt, "ESERVFAIL").resolve, ["shop.example"]).verify(vector!.raw);
    assert.ok(got.every((s) => s.result === "temperror"), JSON.stringify(got));
  });

  test("keys are cached: many mails of one sender cost one lookup per key", async () => {
    const resolver = tableResolver(vector!.txt);
    const verifier = dkimVerifier(resolver.resolve, ["football.example.com"]);
    await Promise.all(Array.from({ length: 50 }, () => verifier.verify(vector!.raw)));
    assert.equal(resolver.lookups, Object.keys(vector!.txt).length);
  });
});

describe("cachedResolver", () => {
  test("found: kept for cacheMs; absent: for 5 minutes; failed: not kept", async () => {
    let now = 0;
    const asked: string[] = [];
    const answers: Record<string, () => string[][]> = {
      "a.example": () => [["v=DKIM1; p=x"]],
      "gone.example": () => {
        throw Object.assign(new Error("nx"), { code: "ENOTFOUND" });
      },
      "flaky.example": () => {
        throw Object.assign(new Error("timeout"), { code: "ETIMEOUT" });
      },
    };
    const r = cachedResolver({ cacheMs: 1000, timeoutMs: 1000, now: () => now, lookup: async (name) => (asked.push(name), answers[name]!()) });
    await r.resolve("A.example", "TXT");
    await r.resolve("a.example", "TXT");
    now = 1001;
    await r.resolve("a.example", "TXT");
    await assert.rejects(r.resolve("gone.example", "TXT"));
    await assert.rejects(r.resolve("gone.example", "TXT"));
    await assert.rejects(r.resolve("flaky.example", "TXT"));
    await assert.rejects(r.resolve("flaky.example", "TXT"));
    assert.deepEqual(asked, ["a.example", "a.example", "gone.example", "flaky.example", "flaky.example"]);
    await assert.rejects(r.resolve("a.example", "A"), /only TXT records/);
  });
});

describe("dkimVerifier and l= (a signature over the start of the body only)", () => {
  test("content appended after the signed part makes the signature count for nothing, even though it verifies", async () => {
    const key = makeDkimKey("rsa");
    const raw = buildMail({ from: "billing@shop.example", to: "x@example.com", subject: "receipt", text: "Thank you.\r\n" });
    const signed = await signMail(raw, { domain: "shop.example", selector: "sel", privateKey: key.privateKey, bodyLength: 12 });
    const verifier = dkimVerifier(tableResolver({ [dkimRecordName("sel", "shop.example")]: key.txt }).resolve, ["shop.example"]);
    assert.deepEqual((await verifier.verify(signed)).map((s) => s.result), ["pass"], "nothing appended: the whole body is signed");
    const appended = Buffer.concat([signed, Buffer.from("Total: 99999 JPY\r\n")]);
    const [sig] = await verifier.verify(appended);
    assert.equal(sig?.result, "policy");
    assert.match(sig?.comment ?? "", /^l= leaves \d+ bytes of the body unsigned$/);
  });
});

describe("dkimVerifier's parsed keys", () => {
  const raw = buildMail({ from: "billing@shop.example", to: "x@example.com", subject: "receipt", text: "Total: 1,200 JPY\r\n" });
  const name = dkimRecordName("sel", "shop.example");

  test("a key record is parsed once for many mails, not once per mail", async (t) => {
    const key = makeDkimKey("rsa");
    const signed = await signMail(raw, { domain: "shop.example", selector: "sel", privateKey: key.privateKey });
    const verifier = dkimVerifier(tableResolver({ [name]: key.txt }).resolve, ["shop.example"]);
    // mailauth imports the record with crypto.createPublicKey (called through the module object, so it can be counted).
    const imports = t.mock.method(crypto, "createPublicKey");
    const results = await Promise.all(Array.from({ length: 20 }, () => verifier.verify(signed)));
    assert.ok(results.every((r) => r.length === 1 && r[0]!.result === "pass"), JSON.stringify(results[0]));
    assert.ok(imports.mock.callCount() <= 2, `createPublicKey was called ${imports.mock.callCount()} times for 20 mails`);
  });

  test("a rotated key is used once the DNS answer is looked up again; until then the old one still verifies", async () => {
    const [before, after] = [makeDkimKey("rsa"), makeDkimKey("rsa")];
    let now = 0;
    let published = before.txt;
    const resolver = cachedResolver({ cacheMs: 1000, timeoutMs: 1000, now: () => now, lookup: async () => [[published]] });
    const verifier = dkimVerifier(resolver.resolve, ["shop.example"]);
    const signedBefore = await signMail(raw, { domain: "shop.example", selector: "sel", privateKey: before.privateKey });
    const signedAfter = await signMail(raw, { domain: "shop.example", selector: "sel", privateKey: after.privateKey });
    assert.equal((await verifier.verify(signedBefore))[0]?.result, "pass");
    published = after.txt;
    assert.equal((await verifier.verify(signedBefore))[0]?.result, "pass", "the DNS answer is still cached");
    now = 1001;
    assert.equal((await verifier.verify(signedAfter))[0]?.result, "pass", "the new key, looked up again");
    assert.equal((await verifier.verify(signedBefore))[0]?.result, "fail", "the old key no longer counts");
    assert.equal(resolver.lookups, 2);
  });
});
