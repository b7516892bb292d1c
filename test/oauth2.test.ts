/**
 * OAuth2 for real: Dovecot's oauth2 passdb checks every token against a local introspection
 * endpoint, and a local token endpoint issues short-lived tokens, so expiry and refresh happen
 * while mailbell runs.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { startMailbell, waitUntilWatching, writeConfig, type RunningMailbell } from "./support/daemon.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { buildMail } from "./support/mail.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";

/** A token service: /token issues access tokens for a refresh token, /introspect validates them for Dovecot. */
class TokenService {
  server!: http.Server;
  url = "";
  issued: { token: string; at: number; revoked: boolean }[] = [];
  /** expires_in we announce, and how long the token really stays valid. */
  announceSeconds = 63;
  validMs = 3000;
  refreshTokenValid = true;
  grants: string[] = [];

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        const form = new URLSearchParams(body);
        const json = (status: number, value: unknown) => {
          res.writeHead(status, { "content-type": "application/json" });
          res.end(JSON.stringify(value));
        };
        if (req.url === "/token") {
          this.grants.push(form.get("grant_type") ?? "");
          if (form.get("client_id") !== "mailbell-test" || form.get("refresh_token") !== "rt-alice" || !this.refreshTokenValid) {
            return json(400, { error: "invalid_grant", error_description: "Token has been expired or revoked." });
          }
          const token = `at-${this.issued.length + 1}-${Math.random().toString(36).slice(2)}`;
          this.issued.push({ token, at: Date.now(), revoked: false });
          return json(200, { access_token: token, token_type: "Bearer", expires_in: this.announceSeconds });
        }
        if (req.url === "/introspect") {
          const entry = this.issued.find((t) => t.token === form.get("token"));
          const active = !!entry && !entry.revoked && Date.now() - entry.at < this.validMs;
          return json(200, active ? { active: true, username: "alice" } : { active: false });
        }
        json(404, {});
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
}

let dovecot: Dovecot;
let receiver: Receiver;
const tokens = new TokenService();
let mailbell: RunningMailbell;

before(async () => {
  await tokens.start();
  [dovecot, receiver] = await Promise.all([startDovecot({ oauth2Introspection: `${tokens.url}/introspect` }), startReceiver()]);
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-oauth-"));
  const yaml = `state: ${dir}/state.db
watch: { reconnectMaxSeconds: 1, authRetryMinutes: 10 }
accounts:
  - name: alice
    host: 127.0.0.1
    port: ${dovecot.imapsPort}
    ca: ${dovecot.caFile}
    user: alice
    oauth2: { provider: custom, tokenUrl: "${tokens.url}/token", clientId: mailbell-test, refreshToken: "\${REFRESH_TOKEN}" }
targets:
  - { name: hook, type: webhook, url: "${receiver.url("/oauth")}" }
rules:
  - { name: all, notify: [hook], template: "{{subject}}" }
`;
  mailbell = startMailbell(writeConfig(yaml, dir), yaml, { REFRESH_TOKEN: "rt-alice" });
});

after(async () => {
  await mailbell?.stop();
  await Promise.all([dovecot?.dispose(), receiver?.close()]);
  tokens.server?.close();
});

async function mailArrives(subject: string): Promise<void> {
  await dovecot.append("alice", "INBOX", buildMail({ from: "a@example.com", to: "alice@example.com", subject, text: "x" }));
  await receiver.waitFor((r) => (r.json as { subject?: string }).subject === subject, 10_000);
}

describe("OAuth2 (XOAUTH2/OAUTHBEARER) against Dovecot's oauth2 passdb", () => {
  it("logs in with an access token obtained from the refresh token, and notifies", async () => {
    await waitUntilWatching(mailbell.logger);
    assert.deepEqual(tokens.grants, ["refresh_token"]);
    assert.equal(tokens.issued.length, 1);
    await mailArrives("first with oauth2");
    // The start opened only the lean connection (watch.quietConnection: lean), logged in with the token too.
    assert.ok(mailbell.logger.entries.some((e) => e.msg === "quiet: waiting on a lean connection"), "the mail came while the lean connection waited");
    assert.equal(tokens.issued.length, 1, "the lean connection and the reading session shared the token");
  });

  it("refreshes a token that is about to expire before logging in again", async () => {
    await new Promise((r) => setTimeout(r, tokens.validMs + 300)); // the first token has expired for Dovecot too
    const refusedBefore = mailbell.logger.find(/login refused/).length;
    await dovecot.kick("alice");
    await mailbell.logger.waitFor(/disconnected; reconnecting/);
    await waitUntilWatching(mailbell.logger, 2);
    assert.equal(tokens.issued.length, 2, "a new token was fetched for the new login");
    assert.equal(mailbell.logger.find(/login refused/).length, refusedBefore, "and the server never saw the expired one");
    await mailArrives("after refresh");
  });

  it("on a refused login fetches a fresh token at once instead of waiting out the long auth backoff", async () => {
    tokens.announceSeconds = 3600; // mailbell believes its token is good for an hour…
    tokens.validMs = 3_600_000;
    tokens.issued.at(-1)!.revoked = true; // …but the provider revoked it early
    // Get a long-lived token cached first: force one refresh by revoking and kicking.
    await dovecot.kick("alice");
    await mailbell.logger.waitFor(/trying once more with fresh credentials/, 10_000, "warn");
    await waitUntilWatching(mailbell.logger, 3);
    const issuedAfterFirst = tokens.issued.length;
    tokens.issued.at(-1)!.revoked = true;
    await dovecot.kick("alice");
    const deadline = Date.now() + 10_000;
    while (mailbell.logger.find(/^watching$/).length < 4) {
      assert.ok(Date.now() < deadline, "reconnected with a fresh token");
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(tokens.issued.length, issuedAfterFirst + 1, "exactly one refresh for the refused login");
    assert.equal(mailbell.logger.find(/waiting before trying again so the server does not lock/).length, 0, "no long auth backoff");
    await mailArrives("after revocation");
  });

  it("a revoked refresh token is reported loudly with the fix, and not retried in a loop", async () => {
    tokens.refreshTokenValid = false;
    tokens.issued.at(-1)!.revoked = true;
    const grantsBefore = tokens.grants.length;
    await dovecot.kick("alice");
    const loud = await mailbell.logger.waitFor(/waiting before trying again so the server does not lock/, 10_000, "error");
    assert.match(String(loud.fields.err), /refused the refresh token \(invalid_grant: Token has been expired or revoked\.\)\. Run `mailbell auth <provider>` again/);
    assert.ok(Number(loud.fields.retryInMs) >= 600_000, "waits authRetryMinutes");
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(tokens.grants.length - grantsBefore <= 2, `no tight loop against the token endpoint (${tokens.grants.length - grantsBefore} requests)`);
  });
});
