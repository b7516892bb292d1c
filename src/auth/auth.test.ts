import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { accountSchema } from "../imap/config.ts";
import { ImapError } from "../errors.ts";
import { main } from "../cli/main.ts";
import { credentialsFor } from "./credentials.ts";
import { deviceCodeFlow, loopbackRedirectFlow } from "./flows.ts";
import { endpoints, OAuth2TokenSource } from "./oauth2.ts";

/** A scripted OAuth server: each path answers from its queue, the last answer repeating. */
class FakeProvider {
  server!: http.Server;
  base = "";
  replies = new Map<string, { status: number; body: Record<string, unknown> }[]>();
  requests: { path: string; form: URLSearchParams }[] = [];
  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        const p = new URL(req.url ?? "/", "http://x").pathname;
        this.requests.push({ path: p, form: new URLSearchParams(body) });
        const queue = this.replies.get(p) ?? [{ status: 404, body: { error: "not_found" } }];
        const reply = queue.length > 1 ? queue.shift()! : queue[0]!;
        res.writeHead(reply.status, { "content-type": "application/json" }).end(JSON.stringify(reply.body));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
}

const provider = new FakeProvider();
before(() => provider.start());
after(() => provider.server.close());

describe("OAuth2TokenSource", () => {
  it("caches a token until a minute before expiry, refreshes after, and after invalidate()", async () => {
    provider.replies.set("/t1", [{ status: 200, body: { access_token: "a1", expires_in: 3600 } }, { status: 200, body: { access_token: "a2", expires_in: 3600 } }, { status: 200, body: { access_token: "a3", expires_in: 3600 } }]);
    let now = 0;
    const source = new OAuth2TokenSource({ account: "acc", client: { provider: "custom", clientId: "cid", clientSecret: "sec", tokenUrl: `${provider.base}/t1` }, refreshToken: "rt", now: () => now });
    assert.equal(await source.accessToken(), "a1");
    now = 3_500_000;
    assert.equal(await source.accessToken(), "a1", "still an hour minus a bit");
    now = 3_541_000;
    assert.equal(await source.accessToken(), "a2", "inside the last minute: refreshed");
    source.invalidate();
    assert.equal(await source.accessToken(), "a3");
    const form = provider.requests.find((r) => r.path === "/t1")!.form;
    assert.deepEqual(Object.fromEntries(form), { grant_type: "refresh_token", refresh_token: "rt", client_id: "cid", client_secret: "sec" });
  });

  it("makes one request when many logins want a token at once", async () => {
    provider.replies.set("/t2", [{ status: 200, body: { access_token: "shared", expires_in: 3600 } }]);
    const source = new OAuth2TokenSource({ account: "acc", client: { provider: "custom", clientId: "c", tokenUrl: `${provider.base}/t2` }, refreshToken: "rt" });
    const got = await Promise.all([1, 2, 3, 4].map(() => source.accessToken()));
    assert.deepEqual(got, ["shared", "shared", "shared", "shared"]);
    assert.equal(provider.requests.filter((r) => r.path === "/t2").length, 1);
  });

  it("a refused refresh token is an auth error that says to run mailbell auth; a provider outage is retryable", async () => {
    provider.replies.set("/t3", [{ status: 400, body: { error: "invalid_grant", error_description: "Token has been expired or revoked." } }]);
    const revoked = new OAuth2TokenSource({ account: "acc", client: { provider: "google", clientId: "c", tokenUrl: `${provider.base}/t3` }, refreshToken: "rt" });
    await assert.rejects(revoked.accessToken(), (e: unknown) => e instanceof ImapError && e.code === "IMAP_AUTH" && /Run `mailbell auth google` again/.test(e.message));
    provider.replies.set("/t4", [{ status: 503, body: { error: "temporarily_unavailable" } }]);
    const down = new OAuth2TokenSource({ account: "acc", client: { provider: "custom", clientId: "c", tokenUrl: `${provider.base}/t4` }, refreshToken: "rt" });
    await assert.rejects(down.accessToken(), (e: unknown) => e instanceof ImapError && e.code === "IMAP_CONNECT" && /will retry/.test(e.message));
  });

  it("keeps a rotated refresh token, uses it next time, and lets a new token in the config win", async () => {
    provider.replies.set("/t5", [
      { status: 200, body: { access_token: "a1", expires_in: 1, refresh_token: "rt-2" } },
      { status: 200, body: { access_token: "a2", expires_in: 1, refresh_token: "rt-3" } },
      { status: 200, body: { access_token: "a3", expires_in: 1 } },
    ]);
    const saved = new Map<string, string>();
    const store = { get: (k: string) => saved.get(k), set: (k: string, v: string) => void saved.set(k, v) };
    const client = { provider: "custom" as const, clientId: "c", tokenUrl: `${provider.base}/t5` };
    const first = new OAuth2TokenSource({ account: "acc", client, refreshToken: "rt-1", store });
    await first.accessToken();
    // A restart: a new source reads the rotated token from the store.
    const second = new OAuth2TokenSource({ account: "acc", client, refreshToken: "rt-1", store });
    await second.accessToken();
    const fresh = new OAuth2TokenSource({ account: "acc", client, refreshToken: "rt-new-from-mailbell-auth", store });
    await fresh.accessToken();
    assert.deepEqual(
      provider.requests.filter((r) => r.path === "/t5").map((r) => r.form.get("refresh_token")),
      ["rt-1", "rt-2", "rt-new-from-mailbell-auth"],
    );
  });

  it("knows Google's and Microsoft's endpoints and scopes", () => {
    assert.deepEqual(endpoints({ provider: "google", clientId: "c" }).tokenUrl, "https://oauth2.googleapis.com/token");
    assert.equal(endpoints({ provider: "google", clientId: "c" }).scope, "https://mail.google.com/");
    const ms = endpoints({ provider: "microsoft", clientId: "c", tenant: "contoso.onmicrosoft.com" });
    assert.equal(ms.tokenUrl, "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
    assert.match(ms.scope, /IMAP\.AccessAsUser\.All offline_access/);
  });
});

describe("credentials", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "mailbell-cred-"));
  const account = (extra: object) => accountSchema.parse({ name: "a", host: "h", user: "u", ...extra });

  it("reads passFile (relative to the config) at every login, first line only", async () => {
    writeFileSync(path.join(dir, "pw"), "s3cret\nsecond line\n");
    const creds = credentialsFor(account({ passFile: "pw" }), dir);
    assert.deepEqual(await creds(false), { pass: "s3cret" });
    writeFileSync(path.join(dir, "pw"), "rotated\n");
    assert.deepEqual(await creds(false), { pass: "rotated" });
    await assert.rejects(credentialsFor(account({ passFile: "missing" }), dir)(false), /cannot read passFile .*missing \(ENOENT\)/);
  });

  it("runs passCommand without a shell and takes its first line", async () => {
    const creds = credentialsFor(account({ passCommand: [process.execPath, "-e", "console.log('from-cmd $HOME;rm -rf x')"] }), dir);
    assert.deepEqual(await creds(false), { pass: "from-cmd $HOME;rm -rf x" });
    await assert.rejects(credentialsFor(account({ passCommand: ["/no/such/program"] }), dir)(false), /passCommand failed \(program "\/no\/such\/program" not found\)/);
    await assert.rejects(credentialsFor(account({ passCommand: [process.execPath, "-e", "console.error('vault locked'); process.exit(3)"] }), dir)(false), /passCommand failed \(vault locked\)/);
  });
});

describe("sign-in flows", () => {
  it("device code: shows the code, waits through pending and slow_down, returns the refresh token", async () => {
    provider.replies.set("/device", [{ status: 200, body: { device_code: "dc", user_code: "ABCD-EFGH", verification_uri: "https://microsoft.com/devicelogin", interval: 1, expires_in: 900 } }]);
    provider.replies.set("/dtoken", [
      { status: 400, body: { error: "authorization_pending" } },
      { status: 400, body: { error: "slow_down" } },
      { status: 200, body: { access_token: "at", refresh_token: "rt-new" } },
    ]);
    const said: string[] = [];
    const waits: number[] = [];
    const token = await deviceCodeFlow({
      clientId: "cid",
      endpoints: { tokenUrl: `${provider.base}/dtoken`, deviceUrl: `${provider.base}/device`, scope: "s" },
      say: (l) => said.push(l),
      sleep: async (ms) => void waits.push(ms),
    });
    assert.equal(token, "rt-new");
    assert.deepEqual(said, ["Open https://microsoft.com/devicelogin and enter the code ABCD-EFGH"]);
    assert.deepEqual(waits, [1000, 1000, 6000], "slow_down adds five seconds");
  });

  it("device code: a refusal is reported", async () => {
    provider.replies.set("/device2", [{ status: 200, body: { device_code: "dc", user_code: "X", verification_uri: "u", interval: 1 } }]);
    provider.replies.set("/dtoken2", [{ status: 400, body: { error: "access_denied", error_description: "The user declined." } }]);
    await assert.rejects(
      deviceCodeFlow({ clientId: "c", endpoints: { tokenUrl: `${provider.base}/dtoken2`, deviceUrl: `${provider.base}/device2`, scope: "s" }, say: () => {}, sleep: async () => {} }),
      /sign-in did not complete: access_denied: The user declined\./,
    );
  });

  it("loopback redirect with PKCE: the browser's visit to 127.0.0.1 completes sign-in", async () => {
    provider.replies.set("/rtoken", [{ status: 200, body: { access_token: "at", refresh_token: "rt-redirect" } }]);
    const token = await loopbackRedirectFlow({
      clientId: "cid",
      endpoints: { tokenUrl: `${provider.base}/rtoken`, authorizeUrl: "https://accounts.example.test/auth", scope: "https://mail.google.com/" },
      say: (line) => {
        // Play the browser: the provider would redirect to redirect_uri with a code and our state.
        const url = new URL(line.split("\n")[1]!);
        assert.equal(url.searchParams.get("code_challenge_method"), "S256");
        assert.equal(url.searchParams.get("access_type"), "offline");
        const back = new URL(url.searchParams.get("redirect_uri")!);
        assert.equal(back.hostname, "127.0.0.1");
        back.searchParams.set("code", "stolen-code");
        back.searchParams.set("state", "forged");
        const forged = new URL(back);
        back.searchParams.set("code", "the-code");
        back.searchParams.set("state", url.searchParams.get("state")!);
        // A page that forges the callback without our state is refused; the real one then completes.
        void fetch(forged).then((r) => {
          assert.equal(r.status, 400);
          return fetch(back);
        });
      },
    });
    assert.equal(token, "rt-redirect");
    const exchange = provider.requests.find((r) => r.path === "/rtoken")!.form;
    assert.equal(exchange.get("grant_type"), "authorization_code");
    assert.equal(exchange.get("code"), "the-code", "the forged code was never exchanged");
    assert.ok((exchange.get("code_verifier") ?? "").length >= 43, "PKCE verifier sent");
  });

  it("mailbell auth prints the refresh token on stdout and the config snippet on stderr", async () => {
    provider.replies.set("/device3", [{ status: 200, body: { device_code: "dc", user_code: "CODE", verification_uri: "https://login.example.test/device", interval: 0 } }]);
    provider.replies.set("/dtoken3", [{ status: 200, body: { access_token: "at", refresh_token: "rt-cli" } }]);
    let out = "";
    let err = "";
    const code = await main(["auth", "custom", "--client-id", "cid", "--token-url", `${provider.base}/dtoken3`, "--device-url", `${provider.base}/device3`, "--scope", "imap"], {
      out: (t) => void (out += t),
      err: (t) => void (err += `${t}\n`),
      env: {},
    });
    assert.equal(code, 0, err);
    assert.equal(out.trim(), "rt-cli");
    assert.match(err, /enter the code CODE/);
    assert.match(err, /oauth2:\n {2}provider: custom\n {2}clientId: cid/);
    assert.ok(!err.includes("rt-cli"), "the token is not mixed into the instructions");
  });

  it("mailbell auth explains what it needs", async () => {
    let err = "";
    const io = { out: () => {}, err: (t: string) => void (err += t), env: {} };
    assert.equal(await main(["auth", "yahoo"], io), 2);
    assert.match(err, /needs a provider: google, microsoft or custom/);
    err = "";
    assert.equal(await main(["auth", "google"], io), 2);
    assert.match(err, /needs --client-id/);
  });
});
