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
 * 429, 5xx, timeouts and connection errors may succeed later; any other status will not.
 */
export async function postPayload(payload: TargetPayload, options: PostOptions): Promise<string> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? defaultTimeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetch(options.url, {
      method: options.method ?? "POST",
      headers: { "content-type": payload.contentType, "user-agent": "mailbell", ...options.headers },
      body: payload.body,
      signal,
      redirect: "error",
    });
  } catch (err) {
    const reason = timeout.aborted ? `no reply within ${options.timeoutMs ?? defaultTimeoutMs} ms` : describeFetchError(err);
    throw new TargetError(options.target, `target "${options.target}" (${options.maskedUrl}): ${reason}; will retry.`, { retryable: true, cause: err });
  }
  const body = await response.text().catch(() => "");
  if (response.ok) return body;
  const retryAfterSeconds = parseRetryAfter(response.headers.get("retry-after"));
  const retryable = response.status === 429 || response.status >= 500 || response.status === 408;
  const detail = options.describeError ? options.describeError(response.status, body) : summarize(body);
  throw new TargetError(
    options.target,
    `target "${options.target}" (${options.maskedUrl}) answered ${response.status}${detail ? `: ${detail}` : ""}${retryable ? "; will retry" : ""}.`,
    { status: response.status, retryable, retryAfterSeconds },
  );
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ""}`;
  if (cause?.message) return cause.message;
  return (err as Error).message;
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
