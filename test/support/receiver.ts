/**
 * A local stand-in for Slack incoming webhooks and generic webhook endpoints: records every
 * request and answers from a script, so tests can drive retries, rate limits and failures.
 */
import http from "node:http";
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type net from "node:net";

export interface ReceivedRequest {
  /** 0-based arrival order since start (not reset by clear). */
  index: number;
  method: string;
  /** Path with query string, as sent. */
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  /** Parsed body when it is JSON, else undefined. */
  json: unknown;
  /** performance.now() when the body was complete: compare with the client's own clock. */
  at: number;
  /** Date.now() at the same moment. */
  epochMs: number;
  /** What the receiver answered. */
  reply: Reply;
  /**
   * process.hrtime.bigint() when the status line was written, i.e. when the service had taken the
   * post and said so; unset until then. A monotonic clock shared by every process on the machine,
   * so a client in another process can compare its own hrtime with it.
   */
  answeredAt?: bigint;
}

export interface Reply {
  status: number;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
  /** Wait this long before answering (client timeouts). */
  delayMs?: number;
  /** Drop the connection without any response (network failure as the client sees it). */
  destroy?: boolean;
  /** Never answer: the connection stays open until the client gives up or close() (client timeouts). */
  hang?: boolean;
  /**
   * Write the status line and headers on their own, then the body this many ms later (0: in a
   * second write at once). Unset: both in one write, as Node does. With `noDelay: false` even 0
   * makes two TCP segments whose second waits for the client's (delayed) ACK of the first.
   */
  bodyAfterMs?: number;
}

/** A request as it arrived, before it was answered. */
export type IncomingRequest = Omit<ReceivedRequest, "reply">;

/** Picks the answer from the request, for a service whose answer depends on what was sent. */
export type Responder = (req: IncomingRequest) => Reply;

export interface ReceiverOptions {
  /** Headers sent with every reply (a service's content type, say); a reply's own headers win. */
  headers?: OutgoingHttpHeaders;
  /** TCP_NODELAY on accepted sockets (Node's default, true); false turns Nagle's algorithm on. */
  noDelay?: boolean;
}

export type RequestPredicate = (req: ReceivedRequest) => boolean;

export interface Receiver {
  readonly port: number;
  /** `http://127.0.0.1:<port><path>`. */
  url(path?: string): string;
  /** Everything received since the last clear(), in arrival order. */
  readonly requests: readonly ReceivedRequest[];
  /** Queue replies for the next requests to any path (after path-specific queues). */
  reply(...replies: Reply[]): void;
  /** Queue replies for the next requests whose path (without query) equals `path`. */
  replyOn(path: string, ...replies: Reply[]): void;
  /** Answer used once the queues are empty (or a function that picks it); initially Slack's `200 ok`. */
  setDefault(reply: Reply | Responder): void;
  /**
   * Resolves when `count` requests have arrived (with all of them), or when at least one request
   * matches `predicate` (with the matching ones). Rejects after `timeoutMs` listing what did arrive.
   */
  waitFor(countOrPredicate: number | RequestPredicate, timeoutMs?: number): Promise<ReceivedRequest[]>;
  /** Forget received requests and queued replies; the default reply is kept. */
  clear(): void;
  close(): Promise<void>;
}

const textPlain = { "content-type": "text/plain; charset=utf-8" };

/**
 * Answers as documented for Slack incoming webhooks: plain-text bodies naming the error.
 * (Slack documents the 429 only by its Retry-After header; the body here is a guess.)
 */
export const slackReplies = {
  ok: (): Reply => ({ status: 200, headers: textPlain, body: "ok" }),
  invalidPayload: (): Reply => ({ status: 400, headers: textPlain, body: "invalid_payload" }),
  actionProhibited: (): Reply => ({ status: 403, headers: textPlain, body: "action_prohibited" }),
  noService: (): Reply => ({ status: 404, headers: textPlain, body: "no_service" }),
  channelIsArchived: (): Reply => ({ status: 410, headers: textPlain, body: "channel_is_archived" }),
  rateLimited: (retryAfterSeconds = 1): Reply => ({
    status: 429,
    headers: { ...textPlain, "retry-after": String(retryAfterSeconds) },
    body: "rate_limited",
  }),
  rollupError: (): Reply => ({ status: 500, headers: textPlain, body: "rollup_error" }),
} as const;

function describe(reqs: readonly ReceivedRequest[]): string {
  if (reqs.length === 0) return "nothing was received";
  const lines = reqs.map((r) => {
    const body = r.text.length > 200 ? `${r.text.slice(0, 200)}…` : r.text;
    return `  #${r.index} ${r.method} ${r.path} → ${r.reply.status}: ${body}`;
  });
  return `received ${reqs.length}:\n${lines.join("\n")}`;
}

export async function startReceiver(options: ReceiverOptions = {}): Promise<Receiver> {
  let requests: ReceivedRequest[] = [];
  let nextIndex = 0;
  let queue: Reply[] = [];
  let pathQueues = new Map<string, Reply[]>();
  let fallback: Reply | Responder = slackReplies.ok();
  const listeners = new Set<() => void>();
  const sockets = new Set<net.Socket>();

  const nextReply = (req: IncomingRequest): Reply => {
    const bare = req.path.split("?")[0] ?? req.path;
    const reply = pathQueues.get(bare)?.shift() ?? queue.shift() ?? (typeof fallback === "function" ? fallback(req) : fallback);
    return options.headers ? { ...reply, headers: { ...options.headers, ...reply.headers } } : reply;
  };

  const server = http.createServer({ noDelay: options.noDelay ?? true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const at = performance.now();
      const epochMs = Date.now();
      const body = Buffer.concat(chunks);
      const text = body.toString("utf8");
      let json: unknown;
      try {
        json = text.length ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      const incoming: IncomingRequest = { index: nextIndex++, method: req.method ?? "", path: req.url ?? "/", headers: req.headers, body, text, json, at, epochMs };
      const reply = nextReply(incoming);
      // recorded before answering: a client that saw the response can rely on it being listed
      const received: ReceivedRequest = { ...incoming, reply };
      requests.push(received);
      for (const l of [...listeners]) l();
      const send = (): void => {
        if (reply.hang) return;
        if (reply.destroy) {
          req.socket.destroy();
          return;
        }
        const payload = reply.body ?? "";
        received.answeredAt = process.hrtime.bigint();
        res.writeHead(reply.status, { "content-length": Buffer.byteLength(payload), ...reply.headers });
        if (reply.bodyAfterMs === undefined) {
          res.end(payload);
          return;
        }
        res.flushHeaders();
        if (reply.bodyAfterMs === 0) res.end(payload);
        else setTimeout(() => res.end(payload), reply.bodyAfterMs);
      };
      if (reply.delayMs) setTimeout(send, reply.delayMs);
      else send();
    });
  });
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    url: (path = "/") => `http://127.0.0.1:${port}${path.startsWith("/") ? path : `/${path}`}`,
    get requests() {
      return requests;
    },
    reply: (...replies) => {
      queue.push(...replies);
    },
    replyOn: (path, ...replies) => {
      const q = pathQueues.get(path) ?? [];
      q.push(...replies);
      pathQueues.set(path, q);
    },
    setDefault: (reply) => {
      fallback = reply;
    },
    waitFor(countOrPredicate, timeoutMs = 5000) {
      const check = (): ReceivedRequest[] | undefined => {
        if (typeof countOrPredicate === "number") return requests.length >= countOrPredicate ? [...requests] : undefined;
        const hits = requests.filter(countOrPredicate);
        return hits.length ? hits : undefined;
      };
      const now = check();
      if (now) return Promise.resolve(now);
      return new Promise((resolve, reject) => {
        const what = typeof countOrPredicate === "number" ? `${countOrPredicate} request(s)` : "a request matching the predicate";
        const onRequest = (): void => {
          const r = check();
          if (!r) return;
          listeners.delete(onRequest);
          clearTimeout(timer);
          resolve(r);
        };
        const timer = setTimeout(() => {
          listeners.delete(onRequest);
          reject(new Error(`receiver: waited ${timeoutMs} ms for ${what}; ${describe(requests)}`));
        }, timeoutMs);
        listeners.add(onRequest);
      });
    },
    clear: () => {
      requests = [];
      queue = [];
      pathQueues = new Map();
    },
    close: () =>
      new Promise<void>((resolve) => {
        // keep-alive sockets would hold close() open until the client gives up on them
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
