import { z } from "zod";
import { maskUrl, postPayload, summarize } from "./http.ts";
import { httpUrl, query, segments, targetBase, TargetUrlError, type TargetModule } from "./module.ts";
import { truncate } from "./text.ts";
import type { DigestEntry, Notification, SendOptions, Target, TargetPayload } from "./types.ts";

/**
 * Slack mrkdwn treats `<…>` as links and mentions (`<!channel>`, `<@U123>`, `<https://x|label>`)
 * and `&` as the start of an entity. Escaping these three in mail content is Slack's documented
 * way to make text literal, so a mail cannot ping a channel, mention someone or forge a link.
 */
export function escapeSlack(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export const slackSchema = z.strictObject({
  ...targetBase,
  type: z.literal("slack"),
  url: httpUrl("the incoming-webhook URL Slack gave you (https://hooks.slack.com/services/…)"),
  username: z.string().min(1).optional(),
  icon_emoji: z.string().regex(/^:[^:\s]+:$/, "write it as :name:").optional(),
  icon_url: z.url().optional(),
  channel: z.string().min(1).optional(),
});
export type SlackTargetConfig = z.infer<typeof slackSchema>;

// Slack limits: a section block's text is 3,000 characters; top-level text is cut at 40,000.
const sectionMax = 3000;
const textMax = 40_000;
const contextMax = 2000;

export class SlackWebhookTarget implements Target {
  readonly type = "slack";
  // Slack: "about one message per second" per incoming webhook, short bursts tolerated.
  readonly defaultPacing = { perSecond: 1, burst: 3 };
  readonly name: string;
  readonly #config: SlackTargetConfig;

  constructor(config: SlackTargetConfig) {
    this.name = config.name;
    this.#config = config;
  }

  render(n: Notification): TargetPayload {
    const text = n.render(escapeSlack);
    const context = [`*From:* ${escapeSlack(n.from)}`, `*Subject:* ${escapeSlack(n.subject || "(no subject)")}`];
    return this.#payload(text, [
      { type: "section", text: { type: "mrkdwn", text: truncate(text, sectionMax) } },
      { type: "context", elements: [{ type: "mrkdwn", text: truncate(context.join("  ·  "), contextMax) }] },
    ]);
  }

  summarize(n: Notification): string {
    return truncate(n.render(escapeSlack).replace(/\s*\n\s*/g, " "), 300);
  }

  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const more = total - entries.length;
    const lines = entries.map((e) => `• ${e.summary}`);
    if (more > 0) lines.push(`…and ${more} more`);
    const heading = `*${total} mails* (sent as one message to stay within Slack's rate limit)`;
    const text = `${heading}\n${lines.join("\n")}`;
    return this.#payload(text, [{ type: "section", text: { type: "mrkdwn", text: truncate(text, sectionMax) } }]);
  }

  #payload(text: string, blocks: unknown[]): TargetPayload {
    const payload: Record<string, unknown> = { text: truncate(text, textMax), blocks, unfurl_links: false, unfurl_media: false };
    if (this.#config.username) payload.username = this.#config.username;
    if (this.#config.icon_emoji) payload.icon_emoji = this.#config.icon_emoji;
    if (this.#config.icon_url) payload.icon_url = this.#config.icon_url;
    if (this.#config.channel) payload.channel = this.#config.channel;
    return { contentType: "application/json; charset=utf-8", body: JSON.stringify(payload) };
  }

  // Slack incoming webhooks take no idempotency key: a resend after a lost 2xx shows twice.
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    await postPayload(payload, {
      target: this.name,
      url: this.#config.url,
      maskedUrl: maskUrl(this.#config.url),
      signal: options.signal,
      // Slack answers errors as a short plain-text code such as invalid_payload or no_service.
      describeError: (_status, body) => summarize(body, 100),
    });
  }

  describe(): string {
    return `slack ${maskUrl(this.#config.url)}${this.#config.channel ? ` channel ${this.#config.channel}` : ""}`;
  }
}

/**
 * `slack://TokenA/TokenB/TokenC[/#channel][?username=…&icon_emoji=…]`, as Apprise writes the
 * incoming webhook https://hooks.slack.com/services/TokenA/TokenB/TokenC; `slack://name@…` sets
 * the username.
 */
export const slackModule: TargetModule<SlackTargetConfig> = {
  type: "slack",
  schemes: ["slack"],
  schema: slackSchema,
  secrets: ["url"],
  fromUrl(url) {
    const parts = [url.hostname, ...segments(url)].filter((p) => p !== "");
    // Apprise writes /#channel last, so a query after it lands in the fragment: split it off.
    const [hashChannel, hashQuery] = decodeURIComponent(url.hash).split("?", 2) as [string, string | undefined];
    if (hashQuery) for (const [k, v] of new URLSearchParams(hashQuery)) url.searchParams.set(k, v);
    const channel = hashChannel || parts.find((p) => p.startsWith("#"));
    const tokens = parts.filter((p) => !p.startsWith("#"));
    if (tokens.length !== 3) throw new TargetUrlError("a Slack URL is slack://TokenA/TokenB/TokenC (the three parts of https://hooks.slack.com/services/TokenA/TokenB/TokenC), optionally /#channel");
    const q = query(url);
    return {
      url: `https://hooks.slack.com/services/${tokens.map(encodeURIComponent).join("/")}`,
      ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(channel ? { channel } : {}),
      ...(q.username ? { username: q.username } : {}),
      ...(q.icon_emoji ? { icon_emoji: q.icon_emoji } : {}),
      ...(q.icon_url ? { icon_url: q.icon_url } : {}),
    };
  },
  create: (config) => new SlackWebhookTarget(config),
};
