import assert from "node:assert/strict";
import { request } from "node:http";
import { connect } from "node:net";
import { after, describe, it } from "node:test";
import { CaptureLogger } from "../../test/support/logger.ts";
import { MailbellError } from "../errors.ts";
import type { HealthSnapshot } from "./health.ts";
import { bearerMatches, isLoopback, parseListen, startStatusServer, type StatusServer } from "./status-server.ts";
import type { StatusView } from "./status-view.ts";

const healthy: HealthSnapshot = {
  healthy: true,
  mailboxes: [{ account: "a", mailbox: "INBOX", state: "idle", connected: true, lastEventAt: 1, lastRoundTripAt: 1, reconnects: 0, lastError: null, healthy: true }],
};
const sick: HealthSnapshot = {
  healthy: false,
  mailboxes: [{ account: "a", mailbox: "INBOX", state: "disconnected", connected: false, lastEventAt: 1, lastRoundTripAt: 1, reconnects: 4, lastError: "connect ECONNREFUSED", healthy: false, reason: "has had no working connection for 300 s" }],
};

const view: StatusView = { generatedAt: 5, healthy: true, mailboxes: [], outbox: [{ target: "team", waiting: 1, dead: 0, sent: 2, oldestWaitingAt: 4 }], notifications: [], totals: [] };
const noStatus = () => view;

/** One request on a fresh connection, so no keep-alive socket outlives the test. */
function fetchRaw(url: string, method = "GET", headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("status server", () => {
  const servers: StatusServer[] = [];
  after(() => Promise.all(servers.map((s) => s.close())));
  async function start(overrides: { health?: () => HealthSnapshot; metrics?: () => string; logger?: CaptureLogger; token?: string } = {}) {
    const server = await startStatusServer({
      listen: "127.0.0.1:0",
      status: noStatus,
      token: overrides.token,
      health: overrides.health ?? (() => healthy),
      metrics: overrides.metrics ?? (() => "# HELP x y\n# TYPE x gauge\nx 1\n"),
      logger: overrides.logger ?? new CaptureLogger(),
    });
    servers.push(server);
    return server;
  }

  it("answers /healthz with the snapshot: 200 when healthy, 503 with reasons when not", async () => {
    let current = healthy;
    const server = await start({ health: () => current });
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const ok = await fetchRaw(`${server.url}/healthz`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers["content-type"], "application/json; charset=utf-8");
    assert.deepEqual(JSON.parse(ok.body), healthy);

    current = sick;
    const bad = await fetchRaw(`${server.url}/healthz?verbose=1`);
    assert.equal(bad.status, 503);
    assert.deepEqual(JSON.parse(bad.body), sick);
  });

  it("serves /metrics as Prometheus text, also for HEAD", async () => {
    const server = await start();
    const res = await fetchRaw(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(res.body, "# HELP x y\n# TYPE x gauge\nx 1\n");
    const head = await fetchRaw(`${server.url}/metrics`, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.equal(head.headers["content-length"], String(res.body.length));
  });

  it("answers 404 for other paths and 405 for other methods", async () => {
    const server = await start();
    assert.equal((await fetchRaw(`${server.url}/index.php`)).status, 404);
    assert.equal((await fetchRaw(`${server.url}/healthz/extra`)).status, 404);
    const post = await fetchRaw(`${server.url}/metrics`, "POST");
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
  });

  it("answers 500 and logs when producing a reply fails", async () => {
    const logger = new CaptureLogger();
    const server = await start({
      logger,
      metrics: () => {
        throw new Error("database is locked");
      },
    });
    const res = await fetchRaw(`${server.url}/metrics`);
    assert.equal(res.status, 500);
    assert.doesNotMatch(res.body, /database is locked/, "internals stay in the log");
    assert.equal(logger.find(/could not produce a reply/, "error")[0]?.fields.err, "database is locked");
  });

  it("rejects a port in use, naming the address and status.listen", async () => {
    const first = await start();
    const port = new URL(first.url).port;
    await assert.rejects(
      startStatusServer({ listen: `127.0.0.1:${port}`, health: () => healthy, metrics: () => "", status: noStatus, logger: new CaptureLogger() }),
      (err: unknown) => {
        assert.ok(err instanceof MailbellError);
        assert.equal(err.code, "CONFIG");
        assert.match(err.message, new RegExp(`^status server cannot listen on 127\\.0\\.0\\.1:${port} \\(status\\.listen\\): the address is already in use`));
        assert.match(err.message, /set status\.listen to a free port/);
        return true;
      },
    );
  });

  it("does not warn on loopback, and close() is idempotent and ends keep-alive sockets", async () => {
    const logger = new CaptureLogger();
    const server = await startStatusServer({ listen: "0", health: () => healthy, metrics: () => "", status: noStatus, logger });
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/, "a bare port listens on 127.0.0.1");
    assert.equal(logger.find(/non-loopback/).length, 0);
    assert.equal(logger.find(/status server listening/, "info").length, 1);

    // A scraper's keep-alive connection, left open after its reply.
    const { port } = new URL(server.url);
    const scraper = connect({ host: "127.0.0.1", port: Number(port) });
    scraper.on("error", () => {});
    const scraperClosed = new Promise<void>((resolve) => scraper.once("close", () => resolve()));
    let reply = "";
    scraper.setEncoding("utf8");
    scraper.on("data", (d: string) => (reply += d));
    scraper.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`);
    while (!reply.includes('"healthy": true')) await new Promise((r) => setTimeout(r, 10));
    await Promise.all([server.close(), server.close()]);
    await scraperClosed;
    await assert.rejects(fetchRaw(`${server.url}/healthz`), /ECONNREFUSED/);
  });
  it("serves the page, its files and /status.json, each with a CSP that allows no inline or foreign script", async () => {
    const server = await start();
    const page = await fetchRaw(`${server.url}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers["content-type"], "text/html; charset=utf-8");
    assert.match(page.body, /<script src="status\.js" defer><\/script>/);
    assert.doesNotMatch(page.body, /<script>|<style>| on\w+=|https?:\/\//, "no inline script or style, nothing from elsewhere");
    const csp = String(page.headers["content-security-policy"]);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self';/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(page.headers["x-content-type-options"], "nosniff");
    const uplot = await fetchRaw(`${server.url}/uplot.js`);
    assert.equal(uplot.headers["content-type"], "text/javascript; charset=utf-8");
    assert.match(uplot.body, /uPlot/);
    assert.ok(uplot.body.length > 20_000, "uPlot itself, served from node_modules");
    for (const file of ["/status.js", "/status.css", "/uplot.css"]) assert.equal((await fetchRaw(`${server.url}${file}`)).status, 200, file);
    const data = await fetchRaw(`${server.url}/status.json`);
    assert.equal(data.status, 200);
    assert.deepEqual(JSON.parse(data.body), view);
  });

  it("with a token: data and /metrics need it as a bearer (401 without or wrong), /healthz stays open and names nothing", async () => {
    const token = "s3cret-token-0123456789";
    const logger = new CaptureLogger();
    const server = await start({ token, health: () => sick, logger });
    assert.equal(logger.find(/\/status\.json and \/metrics require the token \(status\.token\)/, "info").length, 1, "start-up says the token is required");
    assert.doesNotMatch(JSON.stringify(logger.entries), new RegExp(token), "the token itself is never logged");
    for (const path of ["/status.json", "/metrics"]) {
      const without = await fetchRaw(`${server.url}${path}`);
      assert.equal(without.status, 401, path);
      assert.equal(without.headers["www-authenticate"], 'Bearer realm="mailbell"');
      assert.match(without.body, /needs the token set as status\.token/);
      assert.equal((await fetchRaw(`${server.url}${path}`, "GET", { authorization: "Bearer wrong-token-0123456789" })).status, 401, path);
      assert.equal((await fetchRaw(`${server.url}${path}?token=${token}`)).status, 401, "never taken from the URL");
      assert.equal((await fetchRaw(`${server.url}${path}`, "GET", { authorization: `Bearer ${token}` })).status, 200, path);
    }
    // The page's files hold nothing of this mailbell: open, so the page can ask for the token.
    assert.equal((await fetchRaw(`${server.url}/`)).status, 200);
    const health = await fetchRaw(`${server.url}/healthz`);
    assert.equal(health.status, 503);
    assert.deepEqual(JSON.parse(health.body), { healthy: false, why: "1 of 1 mailbox unhealthy (1 disconnected); the status page or the log says which and why" });
    assert.doesNotMatch(health.body, /INBOX|"a"|ECONNREFUSED/);
    for (const reply of [health, await fetchRaw(`${server.url}/status.json`), await fetchRaw(`${server.url}/metrics`)]) assert.doesNotMatch(reply.body, new RegExp(token));
  });

  it("without a token, answers only requests addressed to a loopback name, so a page re-pointed by DNS to 127.0.0.1 reads nothing", async () => {
    const logger = new CaptureLogger();
    const server = await start({ logger });
    const { port } = new URL(server.url);
    for (const path of ["/status.json", "/healthz", "/metrics", "/"]) {
      for (const host of [`evil.example:${port}`, "evil.example", `127.0.0.1.evil.example:${port}`, `localhost.evil.example:${port}`, `[::2]:${port}`, `${port}`, "127.0.0.1:x"]) {
        const res = await fetchRaw(`${server.url}${path}`, "GET", { host });
        assert.equal(res.status, 403, `${path} Host: ${host}`);
        assert.match(res.body, /answers only requests addressed to this machine by a loopback name \(127\.0\.0\.1, localhost or \[::1\]\)/, host);
        assert.match(res.body, /or set status\.token/, host);
        assert.doesNotMatch(res.body, /INBOX|team|uPlot|<html/i, "nothing of this mailbell, not even the page");
      }
    }
    assert.equal(logger.find(/refused a request addressed to/, "warn").length, 1, "warned once, not for every request");
    // How people reach a loopback page: by its address, localhost, [::1], or through an SSH tunnel (another port).
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LocalHost.:${port}`, "localhost:8080", `[::1]:${port}`, "127.0.0.1", `[::ffff:127.0.0.1]:${port}`]) {
      assert.equal((await fetchRaw(`${server.url}/status.json`, "GET", { host })).status, 200, `Host: ${host}`);
    }
    // A browser always sends Host; a probe speaking HTTP/1.0 may not, and is answered.
    const probe = connect({ host: "127.0.0.1", port: Number(port) });
    let reply = "";
    probe.setEncoding("utf8");
    probe.on("data", (d: string) => (reply += d));
    await new Promise((resolve) => probe.once("close", resolve).end("GET /healthz HTTP/1.0\r\n\r\n"));
    assert.match(reply, /^HTTP\/1\.1 200 /);
  });

  it("without a token, also on [::1] and localhost, answers its own address and refuses a foreign name", async () => {
    for (const listen of ["[::1]:0", "localhost:0"]) {
      const server = await startStatusServer({ listen, health: () => healthy, metrics: () => "", status: noStatus, logger: new CaptureLogger() });
      servers.push(server);
      assert.equal((await fetchRaw(`${server.url}/status.json`)).status, 200, `${listen}: its own URL ${server.url}`);
      assert.equal((await fetchRaw(`${server.url}/status.json`, "GET", { host: `localhost:${new URL(server.url).port}` })).status, 200, listen);
      assert.equal((await fetchRaw(`${server.url}/status.json`, "GET", { host: "evil.example" })).status, 403, listen);
    }
  });

  it("with a token, any Host is answered: the token is what protects the data", async () => {
    const token = "s3cret-token-0123456789";
    const server = await start({ token });
    const host = "mailbell.example.org:443";
    assert.equal((await fetchRaw(`${server.url}/status.json`, "GET", { host, authorization: `Bearer ${token}` })).status, 200);
    assert.equal((await fetchRaw(`${server.url}/status.json`, "GET", { host })).status, 401);
    assert.equal((await fetchRaw(`${server.url}/`, "GET", { host })).status, 200);
  });

  it("refuses a non-loopback listen without a token, naming status.token and the fix, before binding anything", async () => {
    await assert.rejects(startStatusServer({ listen: "0.0.0.0:0", health: () => healthy, metrics: () => "", status: noStatus, logger: new CaptureLogger() }), (err: unknown) => {
      assert.ok(err instanceof MailbellError);
      assert.equal(err.code, "CONFIG");
      assert.match(err.message, /status\.listen 0\.0\.0\.0:0 is reachable from other machines, so the status page and \/metrics need a token: set status\.token .* or listen on 127\.0\.0\.1:0/);
      return true;
    });
  });
});

describe("bearerMatches", () => {
  it("takes only the exact token after Bearer", () => {
    const token = "0123456789abcdef";
    assert.equal(bearerMatches(`Bearer ${token}`, token), true);
    assert.equal(bearerMatches(`bearer ${token}`, token), true);
    for (const header of [undefined, "", token, `Basic ${token}`, `Bearer ${token}x`, `Bearer ${token.slice(1)}`, "Bearer ", `Bearer ${token} extra`]) assert.equal(bearerMatches(header, token), false, String(header));
  });
});

describe("parseListen", () => {
  it("reads host:port, [ipv6]:port and a bare port", () => {
    assert.deepEqual(parseListen("127.0.0.1:9464"), { host: "127.0.0.1", port: 9464 });
    assert.deepEqual(parseListen("9464"), { host: "127.0.0.1", port: 9464 });
    assert.deepEqual(parseListen(9464), { host: "127.0.0.1", port: 9464 });
    assert.deepEqual(parseListen("[::1]:9464"), { host: "::1", port: 9464 });
    assert.deepEqual(parseListen("localhost:0"), { host: "localhost", port: 0 });
    assert.deepEqual(parseListen("0.0.0.0:9464"), { host: "0.0.0.0", port: 9464 });
  });

  it("explains what is wrong and what is valid", () => {
    assert.throws(() => parseListen(":9464"), /^MailbellError: status\.listen: ":9464" has no host; use host:port such as 127\.0\.0\.1:9464/);
    assert.throws(() => parseListen("::1:9464"), /status\.listen: "::1:9464" looks like an IPv6 address without brackets; use host:port such as 127\.0\.0\.1:9464, \[::1\]:9464/);
    assert.throws(() => parseListen("localhost"), /status\.listen: "localhost" is not host:port/);
    assert.throws(() => parseListen("127.0.0.1:70000"), /status\.listen: port 70000 in "127\.0\.0\.1:70000" is out of range; use a port from 1 to 65535/);
    assert.throws(() => parseListen("[example.com]:80"), /"example\.com" in brackets is not an IPv6 address/);
  });
});

describe("isLoopback", () => {
  it("knows which hosts only this machine can reach", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "::ffff:127.0.0.1"]) assert.equal(isLoopback(host), true, host);
    for (const host of ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "127.example.com"]) assert.equal(isLoopback(host), false, host);
  });
});
