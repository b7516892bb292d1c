import http, { type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import https from "node:https";
import { TargetError } from "../errors.ts";
import type { TargetPayload } from "./types.ts";

export interface PostOptions {
  target: string;
  /** Default POST. */
  method?: "POST" | "PUT";
  url: string;
  /** For messages: the URL with its secret parts masked. */
  maskedUrl: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Turns a non-2xx reply into a readable reason; the service's own error text by default. */
  describeError?: (status: number, body: string) => string;
}

const defaultTimeoutMs = 15_000;

/**
 * Sends a payload (POST unless told otherwise) and classifies the outcome the way a retry queue needs it: 2xx is success;
 * 408, 429, 5xx, timeouts and connection errors may succeed later; any other status (3xx included) will not.
 *
 * Resolves at the 2xx status line, without waiting for the body: the outbox marks the row done
 * the moment this resolves, and until then a kill -9 would send the post again. A body that comes
 * in a second TCP segment can wait ~40 ms for our delayed ACK (the service's Nagle algorithm), or
 * never come; it is read and dropped as it arrives so the keep-alive socket is freed, and cut off
 * with the socket at the timeout. Only for a service whose success is in the body: postForReply.
 *
 * node:http rather than fetch: posting to a local receiver, fetch took ~190 µs of main-thread CPU
 * per request and http.request ~50 µs, on the thread that also reads mail (bench/dispatch.ts shows
 * the whole delivery). The global agents keep connections alive (Node ≥ 19) and honour
 * NODE_USE_ENV_PROXY as fetch does.
 */
export async function postPayload(payload: TargetPayload, options: PostOptions): Promise<void> {
  await post(payload, options, "status");
}

/**
 * As postPayload, but a 2xx resolves with its whole body, for a service that answers 200 and says
 * in the body whether it worked (Slack's Web API: `ok: false`) or what it made (a message's ts).
 * The caller decides from it at once: the row is marked done only when it returns.
 */
export async function postForReply(payload: TargetPayload, options: PostOptions): Promise<string> {
  return (await post(payload, options, "body")).body;
}

/** Where a 2xx ends the exchange: at its status line, or once its body is in. */
type SuccessAt = "status" | "body";

async function post(payload: TargetPayload, options: PostOptions, successAt: SuccessAt): Promise<Reply> {
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  let reply: Reply;
  try {
    reply = await exchange(payload, options, timeoutMs, successAt);
  } catch (err) {
    const reason = err instanceof ReplyTimeout ? `no reply within ${timeoutMs} ms` : describeRequestError(err);
    throw new TargetError(options.target, `target "${options.target}" (${options.maskedUrl}): ${reason}; will retry.`, { retryable: true, cause: err });
  }
  const { status, body } = reply;
  if (isSuccess(status)) return reply;
  // Redirects are not followed: following one would re-post the body (and its auth headers)
  // somewhere else. Nor retried: a webhook URL that moved stays moved until the config changes, and
  // retrying would only spend the attempts. The row goes to the dead letters, where `outbox retry`
  // finds it once the URL is fixed. Location is left out of the message: it may carry a token.
  if (status >= 300 && status < 400) {
    throw new TargetError(
      options.target,
      `target "${options.target}" (${options.maskedUrl}) answered ${status}, a redirect, which mailbell does not follow. Check the target's url (the service may have moved the webhook), then \`mailbell outbox retry --all\`.`,
      { status, retryable: false },
    );
  }
  const retryAfterSeconds = parseRetryAfter(headerValue(reply.headers["retry-after"]));
  const retryable = status === 429 || status >= 500 || status === 408;
  const detail = options.describeError ? options.describeError(status, body) : summarize(body);
  throw new TargetError(
    options.target,
    `target "${options.target}" (${options.maskedUrl}) answered ${status}${detail ? `: ${detail}` : ""}${retryable ? "; will retry" : ""}.`,
    { status, retryable, retryAfterSeconds },
  );
}

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  /** The whole body as text; "" when it was cut short (the status still decides, as with fetch), or not waited for. */
  body: string;
}

/** The whole exchange took longer than the timeout. */
class ReplyTimeout extends Error {}

/**
 * One request and its reply; rejects only when no reply (status line and headers) came. A 2xx
 * resolves at `successAt`; any other status once its body (the service's reason) is in.
 */
function exchange(payload: TargetPayload, options: PostOptions, timeoutMs: number, successAt: SuccessAt): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    // Header names in one case, so a target's own header replaces a default instead of doubling it.
    const headers: Record<string, string | number> = { accept: "*/*", "content-type": payload.contentType, "user-agent": "mailbell" };
    if (options.headers) for (const name in options.headers) headers[name.toLowerCase()] = options.headers[name]!;
    headers["content-length"] = Buffer.byteLength(payload.body);
    let response: IncomingMessage | undefined;
    const request = (/^https:/i.test(options.url) ? https : http).request(options.url, { method: options.method ?? "POST", headers, signal: options.signal }, (res) => {
      response = res;
      const status = res.statusCode ?? 0;
      res.on("error", () => {});
      // The timer runs on until the reply is over, so a body that never ends cannot hold the socket.
      res.on("close", () => clearTimeout(timer));
      if (successAt === "status" && isSuccess(status)) {
        res.resume();
        resolve({ status, headers: res.headers, body: "" });
        return;
      }
      res.setEncoding("utf8");
      let body = "";
      res.on("data", (chunk: string) => (body += chunk));
      // "end" for a whole body (a tick before "close"); "close" alone for one cut short.
      const settle = (): void => resolve({ status, headers: res.headers, body: res.complete ? body : "" });
      res.on("end", settle);
      res.on("close", settle);
    });
    const timer = setTimeout(() => request.destroy(new ReplyTimeout(`no reply within ${timeoutMs} ms`)), timeoutMs);
    request.on("error", (err) => {
      // Once the status is in, a body cut short is the response's business (see Reply.body).
      if (response) return;
      clearTimeout(timer);
      reject(err);
    });
    request.end(payload.body);
  });
}

function describeRequestError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  if (e.code && e.message && !e.message.includes(e.code)) return `${e.code} (${e.message})`;
  if (e.code && e.message) return e.message;
  return e.message ?? String(err);
}

function headerValue(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

/** Retry-After is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

export function summarize(text: string, max = 200): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > max ? `${oneLine.slice(0, max)}…` : oneLine;
}

/** Keeps scheme and host, hides path and query: webhook URLs carry their secret in the path. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    const hidden = u.pathname.length > 1 || u.search ? "/****" : "";
    const auth = u.username || u.password ? "****@" : "";
    return `${u.protocol}//${auth}${u.host}${hidden}`;
  } catch {
    return "****";
  }
}
