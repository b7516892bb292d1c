import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { startProxy, type Proxy } from "./support/proxy.ts";

/** An echo server that remembers its sockets, so a test can see what reached the server side. */
async function startEcho(): Promise<{ port: number; sockets: Set<net.Socket>; accepted: () => number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    socket.pipe(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    accepted: () => accepted,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client that records everything that happens to it. */
async function connect(port: number) {
  const socket = net.connect({ host: "127.0.0.1", port });
  const seen = { data: "", ended: false, closed: false, error: undefined as string | undefined };
  socket.setEncoding("utf8");
  socket.on("data", (d: string) => (seen.data += d));
  socket.on("end", () => (seen.ended = true));
  socket.on("error", (err: NodeJS.ErrnoException) => (seen.error = err.code ?? err.message));
  // Not events.once: it rejects on "error", and a reset is what some tests wait for.
  const closed = new Promise<void>((resolve) =>
    socket.once("close", () => {
      seen.closed = true;
      resolve();
    }),
  );
  await once(socket, "connect");
  return { socket, seen, closed };
}

async function until(what: string, test: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

describe("test proxy", () => {
  let echo: Awaited<ReturnType<typeof startEcho>>;
  before(async () => {
    echo = await startEcho();
  });
  after(() => echo.close());

  const proxies: Proxy[] = [];
  const proxy = async () => {
    const p = await startProxy(echo.port);
    proxies.push(p);
    return p;
  };
  after(() => Promise.all(proxies.map((p) => p.close())));

  it("forwards both ways and passes a FIN on", async () => {
    const p = await proxy();
    const c = await connect(p.port);
    c.socket.write("hello");
    await until("the echo", () => c.seen.data === "hello");
    assert.equal(p.connections, 1);
    c.socket.end();
    await c.closed;
    assert.equal(c.seen.ended, true, "the server's FIN reached the client");
    assert.equal(c.seen.error, undefined);
    await until("the connection count to fall", () => p.connections === 0);
  });

  it("blackholes open and new connections without closing anything", async () => {
    const p = await proxy();
    const c = await connect(p.port);
    c.socket.write("before");
    await until("the echo", () => c.seen.data === "before");
    const serverSide = [...echo.sockets].at(-1)!;
    const acceptedBefore = echo.accepted();

    p.blackhole();
    assert.equal(c.socket.write("after"), true, "the client's write succeeds locally");
    const fresh = await connect(p.port);
    fresh.socket.write("anyone there?");
    // The server going away must not be visible either.
    serverSide.end();

    await delay(1200);
    assert.equal(c.seen.data, "before", "no reply came back");
    assert.deepEqual({ ended: c.seen.ended, closed: c.seen.closed, error: c.seen.error }, { ended: false, closed: false, error: undefined });
    assert.equal(fresh.seen.data, "");
    assert.deepEqual({ ended: fresh.seen.ended, closed: fresh.seen.closed, error: fresh.seen.error }, { ended: false, closed: false, error: undefined });
    assert.equal(echo.accepted(), acceptedBefore, "a connection made while blackholed never reaches the server");
    assert.equal(p.connections, 2);

    p.restore();
    const later = await connect(p.port);
    later.socket.write("back");
    await until("the echo after restore", () => later.seen.data === "back");
    assert.equal(c.seen.data, "before", "a connection blackholed earlier stays silent: its lost bytes cannot be replayed");
    later.socket.destroy();
    c.socket.destroy();
    fresh.socket.destroy();
  });

  it("keeps reading while blackholed, so the client's writes never block", async () => {
    const p = await proxy();
    const c = await connect(p.port);
    p.blackhole();
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 32; i++) if (!c.socket.write(chunk)) await once(c.socket, "drain");
    assert.equal(c.seen.closed, false);
    c.socket.destroy();
  });

  it("dropAll resets every connection", async () => {
    const p = await proxy();
    const a = await connect(p.port);
    const b = await connect(p.port);
    a.socket.write("x");
    await until("the echo", () => a.seen.data === "x");
    await until("both connections to be counted", () => p.connections === 2);
    p.dropAll();
    await Promise.all([a.closed, b.closed]);
    assert.equal(a.seen.error, "ECONNRESET");
    assert.equal(b.seen.error, "ECONNRESET");
    assert.equal(p.connections, 0);
  });

  it("resets the client when the target refuses the connection", async () => {
    const unused = net.createServer();
    unused.listen(0, "127.0.0.1");
    await once(unused, "listening");
    const deadPort = (unused.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => unused.close(() => resolve()));

    const p = await startProxy(deadPort);
    proxies.push(p);
    const c = await connect(p.port);
    await c.closed;
    assert.equal(c.seen.error, "ECONNRESET");
  });
});
