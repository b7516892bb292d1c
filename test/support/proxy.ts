import net from "node:net";
import { listenOnLoopback } from "./loopback.ts";

/** A TCP proxy between a client under test and a real server, for breaking the link on purpose. */
export interface Proxy {
  /** Port on 127.0.0.1 to point the client at. */
  readonly port: number;
  /** Client connections currently open (including ones accepted while blackholed). */
  readonly connections: number;
  /**
   * Stops forwarding in both directions, on open connections and on ones accepted from now on,
   * without closing anything: the server has vanished with no FIN or RST. Data is read and
   * discarded so the client's writes keep succeeding locally and nothing piles up in memory.
   */
  blackhole(): void;
  /**
   * Forwards connections accepted from now on. Connections that were blackholed stay silent: the
   * bytes dropped meanwhile are gone, and a real network would have retransmitted them, so
   * resuming would hand both ends a corrupted stream no real outage produces.
   */
  restore(): void;
  /** Resets every open connection (RST), both the client's side and the server's. */
  dropAll(): void;
  /** Stops accepting and closes every connection. */
  close(): Promise<void>;
}

interface Link {
  client: net.Socket;
  upstream: net.Socket | undefined;
  /** Once set, nothing moves between the two sockets again, closes included. */
  blackholed: boolean;
}

export async function startProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<Proxy> {
  const links = new Set<Link>();
  let blackholed = false;

  // allowHalfOpen: a client's FIN is passed on as a FIN, not turned into a full close by Node.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const link: Link = { client, upstream: undefined, blackholed };
    links.add(link);
    client.on("error", () => {});
    client.on("close", (hadError) => {
      const upstream = link.upstream;
      if (!upstream || upstream.destroyed) links.delete(link);
      // While blackholed the server must learn nothing, not even that the client left.
      else if (link.blackholed) return;
      else if (hadError) upstream.resetAndDestroy();
      else upstream.end();
    });
    if (link.blackholed) {
      discard(client);
      return;
    }
    const upstream = net.connect({ host: targetHost, port: targetPort, allowHalfOpen: true });
    link.upstream = upstream;
    upstream.on("error", () => {});
    upstream.on("close", (hadError) => {
      if (client.destroyed) links.delete(link);
      else if (link.blackholed) return;
      // The server refused or reset us; a reset is the closest thing the client can be shown.
      else if (hadError) client.resetAndDestroy();
      else client.end();
    });
    forward(link, client, upstream);
    forward(link, upstream, client);
  });

  const port = await listenOnLoopback(server);

  const each = (fn: (socket: net.Socket) => void) => {
    for (const link of links) {
      fn(link.client);
      if (link.upstream) fn(link.upstream);
    }
  };

  return {
    port,
    get connections() {
      let open = 0;
      for (const link of links) if (!link.client.destroyed) open++;
      return open;
    },
    blackhole() {
      blackholed = true;
      for (const link of links) {
        link.blackholed = true;
        discard(link.client);
        if (link.upstream) discard(link.upstream);
      }
    },
    restore() {
      blackholed = false;
    },
    dropAll() {
      each((socket) => socket.resetAndDestroy());
      links.clear();
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        each((socket) => socket.destroy());
        links.clear();
      });
    },
  };
}

/** Copies `from` to `to` with backpressure, and passes on a FIN, until the link is blackholed. */
function forward(link: Link, from: net.Socket, to: net.Socket): void {
  from.on("data", (chunk: Buffer) => {
    if (link.blackholed) return;
    if (!to.write(chunk)) from.pause();
  });
  to.on("drain", () => {
    if (!link.blackholed) from.resume();
  });
  from.on("end", () => {
    if (!link.blackholed) to.end();
  });
}

/** Keeps reading so the peer's writes never block, and drops what arrives. */
function discard(socket: net.Socket): void {
  socket.on("data", () => {});
  socket.resume();
}
