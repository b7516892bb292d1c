import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { isIP } from "node:net";
import type { AddressInfo } from "node:net";
import { MailbellError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { HealthSnapshot } from "./health.ts";

export interface StatusServerOptions {
  /** `host:port`, `[ipv6]:port` or a bare port (host 127.0.0.1); the `status.listen` config key. */
  listen: string | number;
  health: () => HealthSnapshot;
  /** Prometheus text exposition (Metrics.render). */
  metrics: () => string;
  logger: Logger;
}

export interface StatusServer {
  /** Base URL of the bound address, e.g. http://127.0.0.1:9464 (with the real port when 0 was asked). */
  url: string;
  close(): Promise<void>;
}

const configKey = "status.listen";

/**
 * Serves GET /healthz (200 or 503 with the health snapshot as JSON) and GET /metrics. Binds exactly
 * the address given; both endpoints are unauthenticated and name accounts and mailboxes, so any
 * host other than loopback is logged as a warning.
 */
export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  const { host, port } = parseListen(options.listen);
  const log = options.logger;
  const server = createServer((req, res) => handle(req, res, options));
  // Scrapes are tiny; a client that dribbles its headers must not hold a socket for minutes.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(listenError(err, host, port));
    server.once("error", onError);
    server.listen({ host, port }, () => {
      server.off("error", onError);
      resolve();
    });
  });
  // After startup an error is a socket-level problem on a live server; log it rather than crash.
  server.on("error", (err) => log.error({ err: err.message }, "status server error"));

  const bound = server.address() as AddressInfo;
  const url = `http://${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`;
  if (!isLoopback(host)) {
    log.warn({ listen: hostPort(host, bound.port) }, `status server listens on a non-loopback address; /healthz and /metrics have no authentication and reveal account and mailbox names. Set ${configKey} to 127.0.0.1:${bound.port} unless other machines must scrape it`);
  }
  log.info({ address: url }, "status server listening");

  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive sockets from a scraper would otherwise hold close() open until they time out.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function handle(req: IncomingMessage, res: ServerResponse, options: StatusServerOptions): void {
  const path = (req.url ?? "/").split("?", 1)[0];
  if (path !== "/healthz" && path !== "/metrics") return send(res, 404, "text/plain; charset=utf-8", "not found: try /healthz or /metrics\n");
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return send(res, 405, "text/plain; charset=utf-8", `method ${req.method ?? "?"} not allowed: use GET or HEAD\n`);
  }
  try {
    if (path === "/healthz") {
      const snapshot = options.health();
      send(res, snapshot.healthy ? 200 : 503, "application/json; charset=utf-8", `${JSON.stringify(snapshot, null, 2)}\n`);
    } else {
      send(res, 200, "text/plain; version=0.0.4; charset=utf-8", options.metrics());
    }
  } catch (err) {
    options.logger.error({ err: (err as Error).message, stack: (err as Error).stack, path }, "status server could not produce a reply");
    send(res, 500, "text/plain; charset=utf-8", `internal error while producing ${path}; see mailbell's log\n`);
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.statusCode = status;
  res.setHeader("Content-Type", contentType);
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.setHeader("Cache-Control", "no-store");
  // Node drops the body of a reply to HEAD itself, keeping the headers (and Content-Length).
  res.end(body);
}

/** Splits `status.listen` into host and port; a bare port means 127.0.0.1. */
export function parseListen(listen: string | number): { host: string; port: number } {
  const text = String(listen).trim();
  const match = /^(\d+)$/.exec(text) ?? /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  const hint = `use host:port such as 127.0.0.1:9464, [::1]:9464, or just a port such as 9464 (which listens on 127.0.0.1)`;
  if (!match) {
    const why = /^:\d+$/.test(text) ? "has no host" : text.split(":").length > 2 ? "looks like an IPv6 address without brackets" : "is not host:port";
    throw new MailbellError("CONFIG", `${configKey}: ${JSON.stringify(String(listen))} ${why}; ${hint}`);
  }
  const host = match.length === 2 ? "127.0.0.1" : match[1]!;
  const port = Number(match.at(-1));
  if (!Number.isInteger(port) || port > 65535) {
    throw new MailbellError("CONFIG", `${configKey}: port ${match.at(-1)} in ${JSON.stringify(String(listen))} is out of range; use a port from 1 to 65535 (0 picks a free one)`);
  }
  if (match[0].startsWith("[") && isIP(host) !== 6) throw new MailbellError("CONFIG", `${configKey}: ${JSON.stringify(host)} in brackets is not an IPv6 address; ${hint}`);
  return { host, port };
}

/** Whether `host` can only be reached from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return /^::ffff:127\./.test(h);
}

function listenError(err: NodeJS.ErrnoException, host: string, port: number): MailbellError {
  const address = hostPort(host, port);
  const fixes: Record<string, string> = {
    EADDRINUSE: `the address is already in use, perhaps by another mailbell; stop that process or set ${configKey} to a free port`,
    EACCES: `permission denied (ports below 1024 need privileges); set ${configKey} to a port of 1024 or above`,
    EADDRNOTAVAIL: `no network interface of this machine has that address; set ${configKey} to one of its addresses, usually 127.0.0.1:9464`,
    ENOTFOUND: `the host name does not resolve; set ${configKey} to an IP address such as 127.0.0.1:9464`,
  };
  const why = fixes[err.code ?? ""] ?? `${err.message}; check ${configKey}`;
  return new MailbellError("CONFIG", `status server cannot listen on ${address} (${configKey}): ${why}`, { cause: err });
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
