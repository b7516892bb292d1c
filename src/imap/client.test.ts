import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { selfSignedCertificate } from "../../test/support/certificate.ts";
import { listenOnLoopback } from "../../test/support/loopback.ts";
import { silentLogger } from "../log.ts";
import { createImapClient, sharedContext } from "./client.ts";

/** The TLS context a client was given (imapflow keeps its options). */
const contextOf = (account: Parameters<typeof createImapClient>[0]) => (createImapClient(account, { logger: silentLogger }) as unknown as { options: { tls: { secureContext?: tls.SecureContext } } }).options.tls.secureContext;

describe("one TLS context per CA, shared by every connection", () => {
  const account = { host: "imap.example.com", user: "me" };

  it("gives every connection without ca: the same context (the system's trust store), not one each", () => {
    const first = contextOf({ ...account, name: "a" });
    assert.ok(first);
    assert.equal(contextOf({ ...account, name: "b", user: "other" }), first);
    assert.equal(contextOf({ ...account, tls: "starttls" }), first);
  });

  it("shares a context between accounts that trust the same CA, and keeps CAs apart", () => {
    const ca = "-----BEGIN CERTIFICATE-----\nnot parsed until used\n-----END CERTIFICATE-----\n";
    const withCa = contextOf({ ...account, ca: Buffer.from(ca) });
    assert.equal(contextOf({ ...account, ca }), withCa);
    assert.notEqual(withCa, contextOf(account));
    assert.notEqual(withCa, contextOf({ ...account, ca: `${ca}\n` }));
  });

  describe("the certificate is still checked per connection", () => {
    let dir: string;
    let server: tls.Server;
    let port: number;
    let certPem: string;
    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-client-test-"));
      await selfSignedCertificate(path.join(dir, "key.pem"), path.join(dir, "cert.pem"));
      certPem = readFileSync(path.join(dir, "cert.pem"), "utf8");
      server = tls.createServer({ key: readFileSync(path.join(dir, "key.pem")), cert: certPem }, (s) => s.end());
      port = await listenOnLoopback(server);
    });
    after(() => {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const handshake = (secureContext: tls.SecureContext, rejectUnauthorized: boolean) =>
      new Promise<string>((resolve) => {
        const s = tls.connect({ host: "127.0.0.1", port, secureContext, rejectUnauthorized }, () => {
          s.destroy();
          resolve("ok");
        });
        s.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });

    it("refuses a certificate the system does not trust through the shared default context", async () => {
      assert.equal(await handshake(sharedContext(undefined), true), "DEPTH_ZERO_SELF_SIGNED_CERT");
      // ...and a connection that turned the check off (tlsVerify: false) does not change it for the others
      assert.equal(await handshake(sharedContext(undefined), false), "ok");
      assert.equal(await handshake(sharedContext(undefined), true), "DEPTH_ZERO_SELF_SIGNED_CERT");
    });

    it("accepts it through the context of the CA that signed it", async () => {
      assert.equal(await handshake(sharedContext(certPem), true), "ok");
    });
  });
});
