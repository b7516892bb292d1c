import { createHash } from "node:crypto";
import { z } from "zod";
import { TargetError } from "../errors.ts";
import { postPayload, summarize } from "./http.ts";
import { httpUrl, maskSecret, query, segments, targetBase, TargetUrlError, type TargetModule } from "./module.ts";
import { ServiceTarget } from "./service.ts";
import { fitLines } from "./text.ts";
import type { DigestEntry, Notification, SendOptions, TargetPayload } from "./types.ts";

/*
 * LINE Messaging API push messages. LINE Notify, which the first user's bot posted through, was
 * shut down on 2025-03-31; a Messaging API channel (a LINE Official Account) is what replaces it:
 * it pushes to a user, group or room it knows by ID, with the channel access token as Bearer.
 *
 * The message is a plain "text" message: LINE reads no markup in it, and mentions exist only in
 * "textV2" with a substitution object we never send, so mail text goes out unchanged.
 */

export const lineSchema = z.strictObject({
  ...targetBase,
  type: z.literal("line"),
  token: z.string().regex(/^\S+$/, "must be the channel access token without spaces (LINE Developers Console → your channel → Messaging API → Channel access token)"),
  to: z
    .string()
    .regex(
      /^[UCR][0-9a-f]{32}$/,
      "must be a LINE user, group or room ID: U, C or R and 32 hex digits (your own is under Basic settings → Your user ID; others come from webhook events) — not a LINE ID or display name",
    ),
  apiUrl: httpUrl("an http:// or https:// URL (default https://api.line.me; change it only for a proxy or a test server)").default("https://api.line.me"),
  /** Deliver without a sound or banner (LINE's notificationDisabled). */
  silent: z.boolean().default(false),
});
export type LineTargetConfig = z.infer<typeof lineSchema>;

// Any fixed UUID: it only keeps our name-based retry keys apart from other programs' keys.
const retryKeyNamespace = Buffer.from("5f0c4a3e8d2b4c7a9e1f6b2d3c4a5e6f", "hex");

/**
 * A name-based UUID (RFC 4122 version 5) from the outbox row's key: every attempt at the same row
 * carries the same X-Line-Retry-Key, so LINE delivers it at most once and answers 409 to repeats.
 */
export function lineRetryKey(seed: string): string {
  const hash = createHash("sha1").update(retryKeyNamespace).update(seed, "utf8").digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export class LinePushTarget extends ServiceTarget<LineTargetConfig> {
  constructor(config: LineTargetConfig) {
    super(lineModule, config);
  }

  render(n: Notification): TargetPayload {
    return this.#payload(this.ruleText(n).trim() || "(empty message)");
  }

  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const heading = `${total} mails (sent as one message to save LINE's monthly message quota):`;
    return this.#payload(`${heading}\n${fitLines(
      entries.map((e) => `• ${e.summary}`),
      total,
      this.limit("text") - heading.length - 1,
    )}`);
  }

  #payload(text: string): TargetPayload {
    const payload: Record<string, unknown> = { to: this.config.to, messages: [{ type: "text", text: this.fit("text", text) }] };
    if (this.config.silent) payload.notificationDisabled = true;
    return { contentType: "application/json; charset=utf-8", body: JSON.stringify(payload) };
  }

  // A 200 is success (its body lists the sent messages); refusals are 4xx/5xx with a JSON message.
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    const url = `${this.config.apiUrl.replace(/\/+$/, "")}/v2/bot/message/push`;
    const headers: Record<string, string> = { authorization: `Bearer ${this.config.token}` };
    if (options.idempotencyKey) headers["x-line-retry-key"] = lineRetryKey(`${this.config.to}\n${options.idempotencyKey}`);
    let lineMessage: string | undefined;
    try {
      await postPayload(payload, {
        target: this.name,
        url,
        // The token travels in a header; the URL holds nothing secret.
        maskedUrl: url,
        headers,
        signal: options.signal,
        describeError: (status, body) => {
          const e = parseLineError(body);
          lineMessage = e?.message;
          return describeLineError(status, e, body);
        },
      });
    } catch (err) {
      if (!(err instanceof TargetError)) throw err;
      // 409 answers a retry key LINE already accepted: an earlier attempt was delivered and only
      // its reply was lost.
      if (err.status === 409 && headers["x-line-retry-key"]) return;
      // The monthly quota comes back as 429 too, but waiting minutes will not refill it.
      if (err.status === 429 && /monthly limit/i.test(lineMessage ?? "")) {
        throw new TargetError(
          err.target,
          `target "${err.target}" (${url}) answered 429: ${lineMessage} The channel's monthly message quota is used up; it refills at the start of next month. Raise the plan in LINE Official Account Manager, or run mailbell outbox retry after the reset.`,
          { status: 429, retryable: false, cause: err },
        );
      }
      throw err;
    }
  }
}

interface LineError {
  message?: string;
  details?: { message?: string; property?: string }[];
}

function parseLineError(body: string): LineError | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    return parsed !== null && typeof parsed === "object" ? (parsed as LineError) : undefined;
  } catch {
    return undefined;
  }
}

const hints: Record<number, string> = {
  400: "check that `to` is a user, group or room this channel can reach (the user added the account as a friend and has not blocked it)",
  401: "the channel access token is wrong, revoked or expired; issue one under Messaging API → Channel access token and update token",
  403: "this channel may not use the push API (plan or role); check it in LINE Official Account Manager",
};

function describeLineError(status: number, e: LineError | undefined, body: string): string {
  if (!e?.message) return summarize(body, 150);
  const details = (e.details ?? [])
    .slice(0, 3)
    .map((d) => [d.property, d.message].filter(Boolean).join(": "))
    .filter(Boolean);
  const hint = hints[status];
  return [`${e.message}${details.length ? ` (${details.join("; ")})` : ""}`, hint].filter(Boolean).join("; ");
}


/**
 * `line://{channel_access_token}/{to}` as Apprise writes it (a `/` inside the token must be
 * written %2F), or `line://{to}?token={channel_access_token}`.
 */
export const lineModule: TargetModule<LineTargetConfig> = {
  type: "line",
  schemes: ["line"],
  schema: lineSchema,
  secrets: ["token"],
  // LINE allows 2,000 push requests per second per channel; what runs out first is the monthly
  // message quota, not the rate. 10/s keeps a backlog from looking like a flood.
  pacing: { perSecond: 10, burst: 10 },
  concurrency: 1,
  // LINE's documented maximum for a text message.
  limits: { summary: 300, text: 5000 },
  // A plain "text" message: LINE reads no markup in it.
  escape: (text) => text,
  describe(c) {
    const via = c.apiUrl === "https://api.line.me" ? "" : ` via ${c.apiUrl}`;
    return `line push to ${c.to} token ${maskSecret(c.token)}${via}${c.silent ? " (silent)" : ""}`;
  },
  fromUrl(url) {
    const parts = [decodeURIComponent(url.hostname), ...segments(url)].filter((p) => p !== "");
    const q = query(url);
    const [token, to] = q.token ? [q.token, parts[0]] : [parts[0], parts[1]];
    const extra = parts.length - (q.token ? 1 : 2);
    if (!token || !to || extra > 0) {
      throw new TargetUrlError(
        `a LINE URL is line://{channel_access_token}/{to} (to: a user, group or room ID, U/C/R and 32 hex digits)${extra > 0 ? "; it has too many parts — a target sends to one ID (add a target per recipient), and a '/' inside the token must be written %2F (or use line://{to}?token={channel_access_token})" : ""}`,
      );
    }
    return { token, to, ...(/^(1|yes|true|on)$/i.test(q.silent ?? "") ? { silent: true } : {}) };
  },
  create: (config) => new LinePushTarget(config),
};
