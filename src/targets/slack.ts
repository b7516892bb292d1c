import type { SlackTargetConfig } from "../config/schema.ts";
import { maskUrl, postPayload, summarize } from "./http.ts";
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
