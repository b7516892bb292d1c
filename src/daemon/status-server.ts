import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { MailbellError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { HealthSnapshot } from "./health.ts";
import { configKey, hostHeaderIsLoopback, hostPort, isLoopback, parseListen, tokenMissingMessage } from "./listen.ts";
import { contentSecurityPolicy, loadPageAssets, type PageAssets } from "./status-page.ts";
import { minimalHealth, type StatusView } from "./status-view.ts";

export interface StatusServerOptions {
  /** `host:port`, `[ipv6]:port` or a bare port (host 127.0.0.1); the `status.listen` config key. */
  listen: string | number;
  health: () => HealthSnapshot;
  /** Prometheus text exposition (Metrics.render). */
  metrics: () => string;
  /** What the status page shows (GET /status.json). */
  status: () => StatusView;
  /**
   * `status.token`: when set, the page's data (/status.json) and /metrics need it as
   * `Authorization: Bearer …`. Required when listening beyond loopback.
   */
  token?: string | undefined;
  logger: Logger;
}

export interface StatusServer {
  /** Base URL of the bound address, e.g. http://127.0.0.1:9464 (with the real port when 0 was asked). */
  url: string;
  close(): Promise<void>;
}

// For importers of this file; the address rules live in listen.ts, which config loading also reads.
export { isLoopback, parseListen } from "./listen.ts";

/**
 * Serves the status page (GET / and its files), its data (/status.json), /healthz (200 or 503) and
 * /metrics. Binds exactly the address given. Beyond loopback a token is required (refused
 * otherwise). With a token (wherever it listens), the data and /metrics need it, and /healthz says
 * only up or down and why, in counts, naming no account or mailbox. The page's own files hold
 * nothing of this mailbell and stay open, so a browser can load the page, which asks for the token once.
 */
export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  const { host, port } = parseListen(options.listen);
  const log = options.logger;
  const token = options.token === undefined || options.token === "" ? undefined : options.token;
  if (!isLoopback(host) && token === undefined) throw new MailbellError("CONFIG", tokenMissingMessage(host, port));
  const access: Access = { token, assets: await loadPageAssets(), warnedForeignHost: false };
  const server = createServer((req, res) => handle(req, res, options, access));
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
    log.warn({ listen: hostPort(host, bound.port) }, `status server listens on a non-loopback address: the status page's data (/status.json) and /metrics require the token (status.token) as "Authorization: Bearer <token>", which the page asks for once; /healthz stays open and says only up or down and why. Set ${configKey} to 127.0.0.1:${bound.port} unless other machines must reach it`);
  } else if (token !== undefined) {
    log.info({}, "status server: /status.json and /metrics require the token (status.token)");
  }
  log.info({ address: url, page: `${url}/` }, "status server listening");

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

interface Access {
  /** When set, the data needs it, and /healthz names no account or mailbox. */
  token: string | undefined;
  assets: PageAssets;
  /** Whether a request addressed to a foreign name was logged at warn already (later ones at debug). */
  warnedForeignHost: boolean;
}

const endpoints = ["/healthz", "/metrics", "/status.json"];

function handle(req: IncomingMessage, res: ServerResponse, options: StatusServerOptions, access: Access): void {
  const path = (req.url ?? "/").split("?", 1)[0]!;
  const asset = Object.hasOwn(access.assets, path) ? access.assets[path as keyof PageAssets] : undefined;
  securityHeaders(res);
  if (access.token === undefined && !hostHeaderIsLoopback(req.headers.host)) return refuseForeignHost(req, res, options.logger, access);
  if (!asset && !endpoints.includes(path)) return send(res, 404, "text/plain; charset=utf-8", "not found: try / (the status page), /status.json, /healthz or /metrics\n");
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return send(res, 405, "text/plain; charset=utf-8", `method ${req.method ?? "?"} not allowed: use GET or HEAD\n`);
  }
  if (asset) return send(res, 200, asset.contentType, asset.body);
  if (path !== "/healthz" && access.token !== undefined && !bearerMatches(req.headers.authorization, access.token)) {
    res.setHeader("WWW-Authenticate", 'Bearer realm="mailbell"');
    return send(res, 401, "text/plain; charset=utf-8", `${path} needs the token set as status.token in mailbell's config: send "Authorization: Bearer <token>" (the page at / asks for it)\n`);
  }
  try {
    if (path === "/healthz") {
      const snapshot = options.health();
      const body = access.token !== undefined ? minimalHealth(snapshot) : snapshot;
      send(res, snapshot.healthy ? 200 : 503, "application/json; charset=utf-8", `${JSON.stringify(body, null, 2)}\n`);
    } else if (path === "/status.json") {
      send(res, 200, "application/json; charset=utf-8", JSON.stringify(options.status()));
    } else {
      send(res, 200, "text/plain; version=0.0.4; charset=utf-8", options.metrics());
    }
  } catch (err) {
    options.logger.error({ err: (err as Error).message, stack: (err as Error).stack, path }, "status server could not produce a reply");
    send(res, 500, "text/plain; charset=utf-8", `internal error while producing ${path}; see mailbell's log\n`);
  }
}

/**
 * Without a token, a loopback listen is the only protection; a web page whose name resolves to
 * 127.0.0.1 (DNS rebinding) would otherwise read the data as its own. The page's files are
 * refused too: nothing is served under a foreign name.
 */
function refuseForeignHost(req: IncomingMessage, res: ServerResponse, log: Logger, access: Access): void {
  const host = JSON.stringify(req.headers.host);
  const fields = { host: req.headers.host, path: (req.url ?? "/").split("?", 1)[0], remote: req.socket.remoteAddress };
  if (access.warnedForeignHost) log.debug(fields, `status server: refused a request addressed to ${host}`);
  else log.warn(fields, `status server: refused a request addressed to ${host}, not to a loopback name; a web page may be trying to read the status page by re-pointing its name at 127.0.0.1 (later ones are logged at debug). If a proxy passes another name, set status.token`);
  access.warnedForeignHost = true;
  const port = req.socket.localPort ?? 0;
  send(res, 403, "text/plain; charset=utf-8", `this status server has no token (status.token), so it answers only requests addressed to this machine by a loopback name (127.0.0.1, localhost or [::1]); this one was addressed to ${host}. Open http://127.0.0.1:${port}/ (or the [::1] address it listens on), or set status.token if a proxy must pass another name\n`);
}

function securityHeaders(res: ServerResponse): void {
  res.setHeader("Content-Security-Policy", contentSecurityPolicy);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
}

/**
 * Compares digests, which always have the same length, in constant time: neither the token's
 * length nor how much of it matched shows in the time taken.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer +(\S+) *$/i.exec(header ?? "")?.[1];
  const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();
  const same = timingSafeEqual(digest(given ?? ""), digest(token));
  return given !== undefined && same;
}


function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.statusCode = status;
  res.setHeader("Content-Type", contentType);
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.setHeader("Cache-Control", "no-store");
  // Node drops the body of a reply to HEAD itself, keeping the headers (and Content-Length).
  res.end(body);
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
