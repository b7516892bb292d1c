import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { TargetError } from "../errors.ts";
import { postForReply, postPayload, type PostOptions } from "./http.ts";

interface Seen {
  method: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** A server whose handler each test sets; counts TCP connections to show keep-alive. */
let handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void = (_req, res) => res.end("ok");
const seen: Seen[] = [];
let connections = 0;
const server = http.createServer((req, res) => {
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (c: string) => (body += c));
  req.on("end", () => {
    seen.push({ method: req.method ?? "", headers: req.headers, rawHeaders: req.rawHeaders, body });
    handler(req, res, body);
  });
});
server.on("connection", () => connections++);
let base = "";
before(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const postOptions = (options: Partial<PostOptions>): PostOptions => ({ target: "hook", url: `${base}/hook`, maskedUrl: `${base}/****`, ...options });
const json = (body: string) => ({ contentType: "application/json; charset=utf-8", body });
const post = (body: string, options: Partial<PostOptions> = {}) => postPayload(json(body), postOptions(options));
const postReading = (body: string, options: Partial<PostOptions> = {}) => postForReply(json(body), postOptions(options));

async function failure(p: Promise<unknown>): Promise<TargetError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TargetError, String(err));
    return err;
  }
  assert.fail("expected a TargetError");
}

describe("postPayload", () => {
  it("reuses one keep-alive connection for posts in a row", async () => {
    handler = (_req, res) => res.end("ok");
    const before = connections;
    for (let i = 0; i < 5; i++) await post(`{"n":${i}}`);
    for (let i = 0; i < 5; i++) assert.equal(await postReading(`{"n":${i}}`), "ok");
    assert.equal(connections - before, 1);
  });

  it("sends the body intact, with its length in bytes, and the default headers", async () => {
    handler = (_req, res) => res.end("受け付けました");
    seen.length = 0;
    const body = JSON.stringify({ text: "Google Play: ￥480（税込）マンスリーパス 🎫" });
    assert.equal(await postReading(body, { method: "PUT", headers: { "Idempotency-Key": "a/INBOX/1/2/r/hook" } }), "受け付けました");
    const [req] = seen;
    assert.equal(req!.method, "PUT");
    assert.equal(req!.body, body);
    assert.equal(req!.headers["content-length"], String(Buffer.byteLength(body)));
    assert.equal(req!.headers["content-type"], "application/json; charset=utf-8");
    assert.equal(req!.headers["user-agent"], "mailbell");
    assert.equal(req!.headers["idempotency-key"], "a/INBOX/1/2/r/hook");
  });

  it("a target's header replaces the default of the same name whatever its case, instead of sending both", async () => {
    handler = (_req, res) => res.end("ok");
    seen.length = 0;
    await post("{}", { headers: { "Content-Type": "application/cloudevents+json", "User-Agent": "custom" } });
    const names = seen[0]!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    assert.equal(names.filter((n) => n === "content-type").length, 1);
    assert.equal(seen[0]!.headers["content-type"], "application/cloudevents+json");
    assert.equal(seen[0]!.headers["user-agent"], "custom");
  });

  it("does not follow a redirect: the body is not re-posted elsewhere, and it is final (a moved URL stays moved)", async () => {
    handler = (req, res) => {
      if (req.url === "/hook") res.writeHead(307, { location: "/elsewhere?token=s3cret" }).end();
      else res.end("ok");
    };
    seen.length = 0;
    const err = await failure(post("{}"));
    assert.equal(err.retryable, false);
    assert.equal(err.status, 307);
    assert.match(err.message, /answered 307, a redirect, which mailbell does not follow\. Check the target's url/);
    assert.doesNotMatch(err.message, /s3cret|elsewhere/, "Location may carry a token");
    assert.equal(seen.length, 1);
  });

  it("429 carries Retry-After; 4xx is final; 5xx is retried; the service's text is in the message", async () => {
    handler = (_req, res) => res.writeHead(429, { "retry-after": "7" }).end("slow down");
    const limited = await failure(post("{}"));
    assert.deepEqual([limited.status, limited.retryable, limited.retryAfterSeconds], [429, true, 7]);
    assert.match(limited.message, /answered 429: slow down; will retry\.$/);
    handler = (_req, res) => res.writeHead(404).end("no_service");
    const gone = await failure(post("{}"));
    assert.deepEqual([gone.status, gone.retryable], [404, false]);
    assert.match(gone.message, /answered 404: no_service\.$/);
    handler = (_req, res) => res.writeHead(502).end();
    assert.equal((await failure(post("{}"))).retryable, true);
  });

  it("a 2xx counts even when the reply's body is cut short: the service has taken the message", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
      setTimeout(() => res.destroy(), 20);
    };
    assert.equal(await postReading("{}"), "");
    await post("{}");
  });

  it("resolves at a 2xx status line without waiting for the body, and still frees the socket for the next post once the body is in", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-length": "2" }).flushHeaders();
      setTimeout(() => res.end("ok"), 300);
    };
    const before = connections;
    const started = performance.now();
    await post("{}");
    const tookMs = performance.now() - started;
    assert.ok(tookMs < 150, `resolved after ${tookMs.toFixed(1)} ms; the body comes at 300 ms`);
    await new Promise((r) => setTimeout(r, 400));
    handler = (_req, res) => res.end("ok");
    await post("{}");
    assert.equal(connections - before, 1, "the body was read and dropped, and the socket went back to the pool");
  });

  it("postForReply waits for a 2xx's body, which the caller needs to tell success", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-length": "11" }).flushHeaders();
      setTimeout(() => res.end('{"ok":true}'), 200);
    };
    const started = performance.now();
    assert.equal(await postReading("{}"), '{"ok":true}');
    assert.ok(performance.now() - started >= 180);
  });

  it("a 2xx body that never ends does not hold the socket past the timeout", async () => {
    let closed: () => void = () => {};
    const socketClosed = new Promise<void>((resolve) => (closed = resolve));
    handler = (req, res) => {
      req.socket.on("close", () => closed());
      res.writeHead(200, { "content-length": "100" }).flushHeaders();
    };
    await post("{}", { timeoutMs: 100 });
    const started = performance.now();
    await socketClosed;
    assert.ok(performance.now() - started < 1000, "the socket was closed at the timeout");
  });

  it("no reply within the timeout, a refused connection and the caller's abort are retryable errors", async () => {
    handler = () => {};
    const late = await failure(post("{}", { timeoutMs: 100 }));
    assert.equal(late.retryable, true);
    assert.match(late.message, /no reply within 100 ms; will retry\.$/);

    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await failure(post("{}", { url: `http://127.0.0.1:${port}/hook` }));
    assert.equal(refused.retryable, true);
    assert.match(refused.message, /ECONNREFUSED/);

    const stop = new AbortController();
    const pending = failure(post("{}", { signal: stop.signal }));
    setTimeout(() => stop.abort(), 20);
    assert.equal((await pending).retryable, true);
  });
});
