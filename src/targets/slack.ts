import { z } from "zod";
import { TargetError } from "../errors.ts";
import { memoryTargetState, type TargetStateStore } from "./state.ts";
import { maskUrl, postForReply, postPayload, summarize } from "./http.ts";
import { httpUrl, maskSecret, query, segments, targetBase, TargetUrlError, type TargetModule } from "./module.ts";
import { ServiceTarget } from "./service.ts";
import { notificationForPeople } from "./text.ts";
import type { DigestEntry, Notification, SendOptions, TargetPayload } from "./types.ts";

/**
 * Slack mrkdwn treats `<…>` as links and mentions (`<!channel>`, `<@U123>`, `<https://x|label>`)
 * and `&` as the start of an entity. Escaping these three in mail content is Slack's documented
 * way to make text literal, so a mail cannot ping a channel, mention someone or forge a link.
 */
export function escapeSlack(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export const defaultSlackApiUrl = "https://slack.com/api";

/**
 * One `slack` type, two ways in: `url` (an incoming webhook: no setup beyond the URL, but it
 * answers only "ok", so it can never learn a message's ts) or `token` + `channel` (the Web API's
 * chat.postMessage, which returns the ts and so makes threads possible).
 */
export const slackSchema = z
  .strictObject({
    ...targetBase,
    type: z.literal("slack"),
    url: httpUrl("the incoming-webhook URL Slack gave you (https://hooks.slack.com/services/…)").optional(),
    token: z
      .string()
      .regex(/^\S+$/, "must be the token alone, without spaces or a 'Bearer ' prefix")
      // Only the common mix-ups are refused: a stricter xoxb- check would also refuse the stand-in
      // value `mailbell test` puts in place of an unset ${SLACK_TOKEN}.
      .refine((t) => !/^https?:/i.test(t), "is a URL: an incoming-webhook URL goes in url, a bot token (xoxb-…) in token")
      .refine((t) => !t.startsWith("xapp-"), "is an app-level token (xapp-…), which cannot post messages; use the Bot User OAuth Token (xoxb-…)")
      .optional(),
    /** With url: overrides the webhook's channel (legacy webhooks only). With token: required. */
    channel: z.string().min(1).optional(),
    /** Web API only: follow-ups for the same rule (and total period) go into one thread. */
    thread: z.boolean().optional(),
    /** Web API base URL; only tests and proxies need to change it. */
    apiUrl: httpUrl("the Slack Web API base URL (https://slack.com/api)").optional(),
    username: z.string().min(1).optional(),
    icon_emoji: z.string().regex(/^:[^:\s]+:$/, "write it as :name:").optional(),
    icon_url: z.url().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.url !== undefined && c.token !== undefined) {
      ctx.addIssue({ code: "custom", message: "give either url (an incoming webhook) or token (a bot token xoxb-…, with channel), not both" });
      return;
    }
    if (c.url === undefined && c.token === undefined) {
      ctx.addIssue({
        code: "custom",
        message: "give url (an incoming webhook, https://hooks.slack.com/services/…) or token (a bot token xoxb-…, with channel for the Web API)",
      });
      return;
    }
    if (c.token !== undefined && c.channel === undefined) {
      ctx.addIssue({ code: "custom", path: ["channel"], message: "is required with token: the channel to post to, e.g. \"#receipts\" or its ID \"C0123456789\" (the ID survives renames)" });
    }
    if (c.url !== undefined && c.thread !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["thread"],
        message: "needs token + channel (the Web API): an incoming webhook answers only \"ok\", never the message's ts, so there is no thread to reply to",
      });
    }
    if (c.url !== undefined && c.apiUrl !== undefined) {
      ctx.addIssue({ code: "custom", path: ["apiUrl"], message: "is for the Web API (token); an incoming webhook posts to its url" });
    }
  });
export type SlackTargetConfig = z.infer<typeof slackSchema>;


/**
 * Rows queued before schema 7 were rendered at enqueue time, so the thread a message belonged to
 * travelled inside the stored body as this private field. Such a row still carries it: it is read
 * as the row's thread and stripped before the body reaches Slack. Payloads rendered now carry the
 * key beside the body (TargetPayload.thread).
 */
export const threadField = "_mailbell_thread";

/** What both modes render alike; they differ in channel and thread handling. */
abstract class SlackTarget extends ServiceTarget<SlackTargetConfig> {
  constructor(config: SlackTargetConfig) {
    super(slackModule, config);
  }

  /** The text, blocks and options both modes share. */
  protected slackMessage(text: string, blocks: unknown[]): Record<string, unknown> {
    const message: Record<string, unknown> = { text: this.fit("text", text), blocks, unfurl_links: false, unfurl_media: false };
    if (this.config.username) message.username = this.config.username;
    if (this.config.icon_emoji) message.icon_emoji = this.config.icon_emoji;
    if (this.config.icon_url) message.icon_url = this.config.icon_url;
    return message;
  }

  protected notificationBlocks(notification: Notification): { text: string; blocks: unknown[] } {
    const n = notificationForPeople(notification);
    const text = this.ruleText(notification);
    const context = [`*From:* ${escapeSlack(n.from)}`, `*Subject:* ${escapeSlack(n.subject || "(no subject)")}`];
    return {
      text,
      blocks: [
        { type: "section", text: { type: "mrkdwn", text: this.fit("section", text) } },
        { type: "context", elements: [{ type: "mrkdwn", text: this.fit("context", context.join("  ·  ")) }] },
      ],
    };
  }

  protected digestBlocks(entries: readonly DigestEntry[], total: number): { text: string; blocks: unknown[] } {
    const more = total - entries.length;
    const lines = entries.map((e) => `• ${e.summary}`);
    if (more > 0) lines.push(`…and ${more} more`);
    const heading = `*${total} mails* (sent as one message to stay within Slack's rate limit)`;
    const text = `${heading}\n${lines.join("\n")}`;
    return { text, blocks: [{ type: "section", text: { type: "mrkdwn", text: this.fit("section", text) } }] };
  }
}

function jsonPayload(message: Record<string, unknown>): TargetPayload {
  return { contentType: "application/json; charset=utf-8", body: JSON.stringify(message) };
}

function parseObject(body: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export class SlackWebhookTarget extends SlackTarget {
  readonly #url: string;

  constructor(config: SlackTargetConfig) {
    if (config.url === undefined) throw new Error(`slack target "${config.name}": a webhook target needs url`);
    super(config);
    this.#url = config.url;
  }

  render(n: Notification): TargetPayload {
    const { text, blocks } = this.notificationBlocks(n);
    return this.#payload(text, blocks);
  }

  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const { text, blocks } = this.digestBlocks(entries, total);
    return this.#payload(text, blocks);
  }

  #payload(text: string, blocks: unknown[]): TargetPayload {
    const message = this.slackMessage(text, blocks);
    if (this.config.channel) message.channel = this.config.channel;
    return jsonPayload(message);
  }

  // Slack incoming webhooks take no idempotency key: a resend after a lost 2xx shows twice. A 200
  // is success (its body is only "ok"); every refusal has its own 4xx/5xx.
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    await postPayload(withoutThreadField(payload), {
      target: this.name,
      url: this.#url,
      maskedUrl: maskUrl(this.#url),
      signal: options.signal,
      // Slack answers errors as a short plain-text code such as invalid_payload or no_service.
      describeError: (_status, body) => summarize(body, 100),
    });
  }
}

/** A row queued while this target used the Web API with threads must not carry our field to a webhook. */
function withoutThreadField(payload: TargetPayload): TargetPayload {
  if (!payload.body.includes(`"${threadField}"`)) return payload;
  const message = parseObject(payload.body);
  if (!message) return payload;
  delete message[threadField];
  return { contentType: payload.contentType, body: JSON.stringify(message) };
}

/**
 * How each `ok: false` code of chat.postMessage is treated. Retryable ones are Slack being busy,
 * down or migrating; everything else (auth, scopes, channel, payload) repeats identically on every
 * attempt, so it goes straight to the dead letters where `mailbell outbox retry` can revive it
 * after the fix. Codes Slack adds later are final too: retrying an unknown refusal 12 times only
 * delays the message that explains it.
 */
const retryableErrors = new Set([
  "ratelimited",
  // The older spelling, still listed in chat.postMessage's documented errors.
  "rate_limited",
  "internal_error",
  // Slack warns that part of the operation may have succeeded: a retry can post twice, which we
  // prefer to losing the message.
  "fatal_error",
  "service_unavailable",
  "request_timeout",
  "team_added_to_org",
]);

/** The saved parent is gone (deleted, or aged out of a retention policy): start a new thread. */
const threadGoneErrors = new Set(["thread_not_found", "message_not_found"]);

const hints: Record<string, string> = {
  invalid_auth: "the token is wrong; copy the Bot User OAuth Token (xoxb-…) again",
  not_authed: "no token reached Slack",
  account_inactive: "the token belongs to a deleted user or workspace",
  token_revoked: "the token was revoked or the app uninstalled; reinstall the app and use its new token",
  token_expired: "the token expired (token rotation is on); use a non-rotating bot token",
  no_permission: "the app may not post there; add it to the channel",
  missing_scope: "the app lacks a scope; add it under OAuth & Permissions and reinstall the app",
  channel_not_found: "check channel; for a private channel, add the app to it first",
  not_in_channel: "add the app to the channel (/invite @your-app)",
  is_archived: "the channel is archived",
  msg_too_long: "the message is too long",
  restricted_action: "a workspace setting stops the app from posting there",
};

/** What chat.postMessage answers; only the fields we use. */
interface SlackReply {
  ok?: unknown;
  error?: unknown;
  ts?: unknown;
  needed?: unknown;
  response_metadata?: { messages?: unknown };
}

/** An `ok: false` answer, with Slack's error code kept for the thread recovery. */
class SlackApiError extends TargetError {
  readonly slackError: string;
  constructor(target: string, message: string, slackError: string, retryable: boolean) {
    super(target, message, { status: 200, retryable });
    this.slackError = slackError;
  }
}

/**
 * The Web API mode: chat.postMessage with a bot token. With `thread: true`, the first message of a
 * thread key is posted to the channel and its ts kept in the target's persistent state; later
 * messages with the same key reply to it.
 *
 * Thread keys: the rule name, plus the total's period when the notification has a running total
 * ("receipts/2026-11"), so each month (or day, week, year, as the rule counts) of receipts gets
 * its own thread whose replies add up to that period's total. A rule without a total has one
 * thread for good. The state key also carries the channel, because a ts is only meaningful in the
 * channel it was posted to: after a channel change the first message starts a fresh thread.
 */
export class SlackApiTarget extends SlackTarget {
  readonly #token: string;
  readonly #channel: string;
  readonly #endpoint: string;
  readonly #state: TargetStateStore;

  constructor(config: SlackTargetConfig, state: TargetStateStore) {
    if (config.token === undefined || config.channel === undefined) throw new Error(`slack target "${config.name}": the Web API needs token and channel`);
    super(config);
    this.#token = config.token;
    this.#channel = config.channel;
    this.#endpoint = `${(config.apiUrl ?? defaultSlackApiUrl).replace(/\/+$/, "")}/chat.postMessage`;
    this.#state = state;
  }

  render(n: Notification): TargetPayload {
    const { text, blocks } = this.notificationBlocks(n);
    return this.#payload(text, blocks, this.config.thread ? threadKey(n) : undefined);
  }

  /**
   * A digest joins a thread only when every row in it was headed for that same thread (a burst of
   * one rule's receipts); a mix of rules would not belong in any one of them, so it goes to the
   * channel.
   */
  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const { text, blocks } = this.digestBlocks(entries, total);
    const keys = new Set(entries.map((e) => e.thread ?? parseObject(e.body)?.[threadField]));
    const [only] = keys;
    return this.#payload(text, blocks, this.config.thread && keys.size === 1 && typeof only === "string" ? only : undefined);
  }

  #payload(text: string, blocks: unknown[], thread: string | undefined): TargetPayload {
    const payload = jsonPayload({ channel: this.#channel, ...this.slackMessage(text, blocks) });
    return thread === undefined ? payload : { ...payload, thread };
  }

  /**
   * chat.postMessage has no idempotency key (its client_msg_id is not deduplicated for apps), so
   * `options.idempotencyKey` has nowhere to go: a resend after a reply lost in transit posts twice.
   */
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    const message = parseObject(payload.body);
    if (!message) throw new TargetError(this.name, `target "${this.name}": the queued message is not a JSON object; it cannot be sent.`, { retryable: false });
    const thread = payload.thread ?? message[threadField];
    delete message[threadField];
    delete message.thread_ts;
    // Where to post is the config's say at send time, like a webhook's url: a row queued before a
    // channel change goes to the new channel, which is also the channel its thread state is kept for.
    message.channel = this.#channel;
    const stateKey = this.config.thread && typeof thread === "string" ? `thread:${this.#channel}:${thread}` : undefined;
    const parent = stateKey ? this.#state.get(stateKey) : undefined;
    if (parent) {
      try {
        await this.#post({ ...message, thread_ts: parent }, options);
        return;
      } catch (err) {
        if (!(err instanceof SlackApiError && threadGoneErrors.has(err.slackError))) throw err;
      }
    }
    const ts = await this.#post(message, options);
    if (stateKey && ts) {
      try {
        this.#state.set(stateKey, ts);
      } catch {
        // The message is already in Slack; failing now would have the outbox post it again. The
        // cost of not remembering it is only that the next message starts another thread.
      }
    }
  }

  /**
   * Posts once; resolves to the new message's ts, throws TargetError for any refusal. The Web API
   * answers most refusals with a 200 and `ok: false`, so success is known only from the body.
   */
  async #post(message: Record<string, unknown>, options: SendOptions): Promise<string | undefined> {
    const body = await postForReply(jsonPayload(message), {
      target: this.name,
      url: this.#endpoint,
      maskedUrl: this.#publicEndpoint(),
      headers: { authorization: `Bearer ${this.#token}` },
      signal: options.signal,
      // 429 (ratelimited, with Retry-After) and 5xx reach here with the same JSON error body.
      describeError: (_status, text) => {
        const reply = parseObject(text) as SlackReply | undefined;
        return typeof reply?.error === "string" ? reply.error : summarize(text, 100);
      },
    });
    const reply = parseObject(body) as SlackReply | undefined;
    if (!reply || typeof reply.ok !== "boolean") {
      // A cut-off body after a 200 may still mean the message was posted; we retry rather than
      // risk losing it, as for any reply lost in transit.
      throw new TargetError(this.name, `target "${this.name}" (${this.#publicEndpoint()}) answered 200 without the Web API's JSON reply (${summarize(body, 100) || "empty"}); will retry.`, {
        status: 200,
        retryable: true,
      });
    }
    if (reply.ok) return typeof reply.ts === "string" ? reply.ts : undefined;
    const code = typeof reply.error === "string" && reply.error !== "" ? reply.error : "unknown_error";
    const retryable = retryableErrors.has(code);
    const details = [hints[code], typeof reply.needed === "string" ? `needed: ${reply.needed}` : undefined, slackMessages(reply)].filter((d) => d !== undefined);
    throw new SlackApiError(
      this.name,
      `target "${this.name}" (${this.#publicEndpoint()}) answered ok:false "${code}"${details.length > 0 ? ` (${details.join("; ")})` : ""}${retryable ? "; will retry" : ""}.`,
      code,
      retryable,
    );
  }

  /** The endpoint is not secret (the token is in a header), but credentials in apiUrl would be. */
  #publicEndpoint(): string {
    const u = new URL(this.#endpoint);
    return u.username || u.password ? maskUrl(this.#endpoint) : this.#endpoint;
  }
}

/** Slack explains invalid_blocks and invalid_arguments in response_metadata.messages. */
function slackMessages(reply: SlackReply): string | undefined {
  const messages = reply.response_metadata?.messages;
  if (!Array.isArray(messages) || messages.length === 0) return undefined;
  return summarize(messages.filter((m) => typeof m === "string").join(" "), 200);
}

const webApiToken = /^xox[bp]-/;

function parseBoolean(name: string, value: string): boolean {
  if (/^(yes|true|1|on)$/i.test(value)) return true;
  if (/^(no|false|0|off)$/i.test(value)) return false;
  throw new TargetUrlError(`?${name}=${value} in a slack:// URL: write ${name}=yes or ${name}=no`);
}

/**
 * Two forms, as Apprise writes them:
 * - `slack://TokenA/TokenB/TokenC[/#channel]`: the incoming webhook
 *   https://hooks.slack.com/services/….
 * - `slack://xoxb-…/#channel` (or a channel ID: `slack://xoxb-…/C0123456789`): the Web API with a
 *   bot (xoxb-) or user (xoxp-) token.
 * `slack://name@…` and `?username=` set the username; `?icon_emoji=`, `?icon_url=`; `?thread=yes`
 * threads follow-ups (Web API only).
 */
export const slackModule: TargetModule<SlackTargetConfig> = {
  type: "slack",
  schemes: ["slack"],
  schema: slackSchema,
  secrets: ["url", "token"],
  // Slack: "about one message per second" per incoming webhook, and chat.postMessage is rate-limited
  // "special", about one per second per channel; both tolerate short bursts.
  pacing: { perSecond: 1, burst: 3 },
  concurrency: 1,
  // A section block's text is 3,000 characters; top-level text is cut at 40,000.
  limits: { summary: 300, text: 40_000, section: 3000, context: 2000 },
  escape: escapeSlack,
  describe(c) {
    if (c.token === undefined) return `slack ${maskUrl(c.url ?? "")}${c.channel ? ` channel ${c.channel}` : ""}`;
    const api = c.apiUrl && c.apiUrl.replace(/\/+$/, "") !== defaultSlackApiUrl ? ` via ${new URL(c.apiUrl).origin}` : "";
    return `slack Web API token ${maskSecret(c.token)} channel ${c.channel}${c.thread ? " (threads per rule and period)" : ""}${api}`;
  },
  fromUrl(url) {
    const parts = [url.hostname, ...segments(url)].filter((p) => p !== "");
    // Apprise writes /#channel last, so a query after it lands in the fragment: split it off.
    const [hashChannel, hashQuery] = decodeURIComponent(url.hash).split("?", 2) as [string, string | undefined];
    if (hashQuery) for (const [k, v] of new URLSearchParams(hashQuery)) url.searchParams.set(k, v);
    const q = query(url);
    const options: Record<string, unknown> = {};
    if (url.username) options.username = decodeURIComponent(url.username);
    if (q.username) options.username = q.username;
    if (q.icon_emoji) options.icon_emoji = q.icon_emoji;
    if (q.icon_url) options.icon_url = q.icon_url;
    if (q.thread !== undefined) options.thread = parseBoolean("thread", q.thread);

    if (parts[0] !== undefined && webApiToken.test(parts[0])) {
      const channels = [...(hashChannel ? [hashChannel] : []), ...parts.slice(1)];
      if (channels.length !== 1) {
        throw new TargetUrlError(
          `a Slack Web API URL is slack://xoxb-…/#channel (one channel, by #name or ID such as C0123456789)${channels.length === 0 ? "; the channel is missing" : `; got ${channels.length} channels`}`,
        );
      }
      return { token: parts[0], channel: channels[0], ...options };
    }

    const channel = hashChannel || parts.find((p) => p.startsWith("#"));
    const tokens = parts.filter((p) => !p.startsWith("#"));
    if (tokens.length !== 3) {
      throw new TargetUrlError(
        "a Slack URL is slack://TokenA/TokenB/TokenC (the three parts of https://hooks.slack.com/services/…), optionally /#channel; or slack://xoxb-…/#channel for the Web API with a bot token",
      );
    }
    return { url: `https://hooks.slack.com/services/${tokens.map(encodeURIComponent).join("/")}`, ...(channel ? { channel } : {}), ...options };
  },
  create: (config, deps) => (config.token !== undefined ? new SlackApiTarget(config, deps.state ?? memoryTargetState()) : new SlackWebhookTarget(config)),
};

/** One thread per rule and counting period; a receipt whose amount was not found still joins its month. */
function threadKey(n: Notification): string {
  const period = n.period ?? n.total?.period;
  return period ? `${n.rule}/${period}` : n.rule;
}
