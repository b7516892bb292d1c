import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TlsError } from "../errors.ts";
import { silentLogger } from "../log.ts";
import { classifyImapError, createImapClient } from "./client.ts";
import { describeCertificateError, describeTransportError, type Endpoint } from "./transport-errors.ts";

const plain: Endpoint = { host: "imap.example.com", port: 143, tls: "implicit" };
const tlsPort: Endpoint = { host: "imap.example.com", port: 993, tls: "none" };

describe("transport errors in words, with the setting that fixes them", () => {
  const cases: { name: string; err: { code?: string; message?: string }; at: Endpoint; says: RegExp; settled: boolean }[] = [
    {
      name: "implicit TLS on a plain port (OpenSSL's wrong version number)",
      err: { code: "ERR_SSL_WRONG_VERSION_NUMBER", message: "40DD…:error:0A00010B:SSL routines:tls_validate_record_header:wrong version number:../deps/openssl/openssl/ssl/record/methods/tlsany_meth.c:77:\n" },
      at: plain,
      says: /^port 143 does not speak TLS from the first byte \(imap\.example\.com:143 answered in plain text\): use tls: starttls, or port 993$/,
      settled: true,
    },
    {
      name: "implicit TLS on port 993 that answers in plain text: no advice to use the port it already uses",
      err: { code: "ERR_SSL_WRONG_VERSION_NUMBER", message: "wrong version number" },
      at: { ...plain, port: 993 },
      says: /^port 993 does not speak TLS from the first byte \(imap\.example\.com:993 answered in plain text\): use tls: starttls, or check the port$/,
      settled: true,
    },
    { name: "plain text on the TLS port 993", err: { code: "GREETING_TIMEOUT", message: "Failed to receive greeting" }, at: tlsPort, says: /sent no IMAP greeting within 5 s: port 993 expects TLS: use tls: implicit$/, settled: false },
    {
      name: "no greeting on another port: maybe TLS, maybe a slow server (imapflow's 16 s)",
      err: { code: "GREETING_TIMEOUT" },
      at: { ...tlsPort, port: 10993, tls: "starttls" },
      says: /^imap\.example\.com:10993 sent no IMAP greeting within 16 s: if port 10993 expects TLS from the first byte, use tls: implicit; else the server is slow to greet \(overloaded\?\)$/,
      settled: false,
    },
    { name: "a closed port", err: { code: "ECONNREFUSED", message: "connect ECONNREFUSED 1.2.3.4:143" }, at: plain, says: /^nothing listens on imap\.example\.com:143 \(connection refused\): check host and port$/, settled: false },
    { name: "an unknown host", err: { code: "ENOTFOUND" }, at: plain, says: /^the host name "imap\.example\.com" was not found \(DNS: ENOTFOUND\): check host$/, settled: false },
    { name: "a dropped SYN", err: { code: "ETIMEDOUT" }, at: plain, says: /^no answer from imap\.example\.com:143 \(timed out\): check host and port, and that no firewall/, settled: false },
    { name: "imapflow's connect deadline", err: { code: "CONNECT_TIMEOUT" }, at: plain, says: /^no answer from imap\.example\.com:143 \(timed out\)/, settled: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const problem = describeTransportError(c.err, c.at);
      assert.ok(problem, "recognised");
      assert.match(problem.message, c.says);
      assert.equal(problem.settled, c.settled);
    });
  }

  it("leaves what is not a transport failure to the caller", () => {
    assert.equal(describeTransportError({ code: "NoConnection", message: "Connection not available" }, plain), undefined);
    assert.equal(describeTransportError({ message: "Command failed" }, plain), undefined);
  });

  it("names the certificate problems a user meets", () => {
    assert.match(describeCertificateError("ERR_TLS_CERT_ALTNAME_INVALID", plain)!, /is not for "imap\.example\.com".*set host: to a name the certificate lists/);
    assert.match(describeCertificateError("CERT_HAS_EXPIRED", plain)!, /has expired/);
    assert.equal(describeCertificateError("DEPTH_ZERO_SELF_SIGNED_CERT", plain), undefined);
  });

  it("classifyImapError uses them when it knows the endpoint: a wrong TLS mode is a TlsError (retrying cannot fix it)", () => {
    const wrongMode = classifyImapError({ code: "ERR_SSL_WRONG_VERSION_NUMBER", message: "wrong version number" }, "alice", undefined, plain);
    assert.ok(wrongMode instanceof TlsError);
    assert.equal(wrongMode.message, 'account "alice": port 143 does not speak TLS from the first byte (imap.example.com:143 answered in plain text): use tls: starttls, or port 993');
    const refused = classifyImapError({ code: "ECONNREFUSED", message: "connect ECONNREFUSED" }, "alice", "INBOX", plain);
    assert.equal(refused.code, "IMAP_CONNECT");
    assert.ok(!(refused instanceof TlsError), "a closed port may open: retried");
    assert.equal(classifyImapError({ code: "ECONNREFUSED", message: "connect ECONNREFUSED" }, "alice").message, 'account "alice": ECONNREFUSED: connect ECONNREFUSED', "without the endpoint, as before");
  });

  it("waits 5 s for a greeting only where TLS is known to be expected (port 993 without tls: implicit); elsewhere a slow server gets imapflow's 16 s", () => {
    const greetingWait = (port: number, tls: Endpoint["tls"]) => (createImapClient({ host: "127.0.0.1", port, tls, user: "u", pass: "p" }, { logger: silentLogger }) as unknown as { options: { greetingTimeout?: number } }).options.greetingTimeout;
    assert.equal(greetingWait(993, "none"), 5000);
    assert.equal(greetingWait(993, "starttls"), 5000);
    assert.equal(greetingWait(143, "starttls"), undefined);
    assert.equal(greetingWait(143, "none"), undefined);
    assert.equal(greetingWait(993, "implicit"), undefined);
  });

  it("a login turned away for the server's own reasons ([UNAVAILABLE], [INUSE], [LIMIT], [THROTTLED]) is not a wrong password: retried, not given up on", () => {
    const turnedAway = [
      { serverResponseCode: "UNAVAILABLE", responseText: "Temporary authentication failure" },
      { serverResponseCode: "LIMIT", responseText: "Too many simultaneous connections" },
      { serverResponseCode: "INUSE", responseText: "Mailbox in use" },
      { responseText: "[THROTTLED] Account is temporarily unavailable" },
    ];
    for (const answer of turnedAway) {
      const err = classifyImapError({ authenticationFailed: true, message: "Command failed", ...answer }, "alice", "INBOX", plain);
      assert.equal(err.code, "IMAP_CONNECT", JSON.stringify(answer));
      assert.doesNotMatch(err.message, /Check user and pass/);
      assert.match(err.message, /^account "alice": the server turned the login away for now, not for the password \(.+\); try again later$/);
    }
    const wrong = classifyImapError({ authenticationFailed: true, serverResponseCode: "AUTHENTICATIONFAILED", responseText: "Authentication failed." }, "alice", "INBOX", plain);
    assert.equal(wrong.code, "IMAP_AUTH");
    assert.match(wrong.message, /Check user and pass/);
  });
});
