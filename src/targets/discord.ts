import { z } from "zod";
import { TargetError } from "../errors.ts";
import { maskUrl, postPayload, summarize } from "./http.ts";
import { httpUrl, query, segments, targetBase, TargetUrlError, type TargetModule } from "./module.ts";
import { ServiceTarget } from "./service.ts";
import { fitLines, httpLink, notificationForPeople } from "./text.ts";
import type { DigestEntry, Notification, SendOptions, TargetPayload } from "./types.ts";

// Discord's own URL rule (simple-markdown's): a bare link runs to whitespace or "<" and does not
// end in punctuation. Inside it Discord reads no markdown, so neither do we.
const bareUrl = /https?:\/\/[^\s<]+[^<.,:;"')\]\s]/g;

/**
 * Makes mail text literal in Discord markdown. Discord reads `\` before any punctuation as "this
 * character, as is", so backslashes neutralise emphasis, spoilers, code, masked links `[x](url)`
 * and the `<@id>`, `<#id>`, `<@&id>`, `<t:…>` forms. `@everyone`/`@here` are plain text to the
 * parser but pings to the server, so they get a zero-width space (allowed_mentions is the other
 * lock). Bare URLs are left as URLs — their visible text is their target, so they forge nothing —
 * but the brackets in them are percent-encoded so a URL cannot close or open a masked link.
 */
export function escapeDiscord(text: string): string {
  let out = "";
  let last = 0;
  for (const m of text.matchAll(bareUrl)) {
    out += escapeMarkdown(text.slice(last, m.index));
    out += m[0].replace(/[()[\]]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/@(?=everyone|here)/gi, "%40");
    last = m.index + m[0].length;
  }
  return out + escapeMarkdown(text.slice(last));
}

function escapeMarkdown(text: string): string {
  return (
    text
      .replace(/[\\*_~`|[\]<>]/g, "\\$&")
      // Headings (#), subtext (-#), lists (- + 1.) only start a line; a text fragment may start one.
      .replace(/^([^\S\n]*)([#+-])/gm, "$1\\$2")
      .replace(/^([^\S\n]*\d+)\./gm, "$1\\.")
      .replace(/@(everyone|here)/gi, "@\u200b$1")
  );
}

export const discordSchema = z.strictObject({
  ...targetBase,
  type: z.literal("discord"),
  url: httpUrl("the webhook URL Discord gave you (https://discord.com/api/webhooks/{id}/{token}, from Channel settings → Integrations → Webhooks)"),
  username: z
    .string()
    .min(1)
    .max(80, "Discord allows at most 80 characters")
    // Discord refuses webhook names containing these with a 400; better to say so at load time.
    .refine((s) => !/discord|clyde/i.test(s), "Discord refuses webhook names containing \"discord\" or \"clyde\"; pick another name")
    .optional(),
  avatar_url: httpUrl("an http:// or https:// image URL").optional(),
});
export type DiscordTargetConfig = z.infer<typeof discordSchema>;

// Discord's documented limits: at most 25 fields in an embed, and its title, description, field
// names and values and footer together may not exceed 6,000 characters.
const fieldsMax = 25;
const embedTotalMax = 6000;

interface Embed {
  title?: string;
  url?: string;
  description?: string;
  fields?: { name: string; value: string; inline?: boolean }[];
  timestamp?: string;
  footer?: { text: string };
}

export class DiscordWebhookTarget extends ServiceTarget<DiscordTargetConfig> {
  constructor(config: DiscordTargetConfig) {
    super(discordModule, config);
  }

  /**
   * The rule's message is the content (it is what push notifications and clients with embeds
   * turned off show); the embed adds subject, sender and fields without repeating the message.
   */
  render(notification: Notification): TargetPayload {
    const n = notificationForPeople(notification);
    const text = this.ruleText(notification).trim() || "(empty message)";
    const fields = [{ name: "From", value: this.#fieldValue(escapeDiscord(n.from || "(unknown sender)")), inline: false }];
    for (const [name, field] of Object.entries(n.fields)) {
      if (fields.length >= fieldsMax) break;
      // Field names come from the rule's config, not the mail.
      fields.push({ name: this.fit("fieldName", name), value: this.#fieldValue(escapeDiscord(field ? field.text : `[${name} missing]`)), inline: true });
    }
    const embed: Embed = { title: this.fit("title", escapeDiscord(n.subject || "(no subject)")), fields };
    // The footer shows no markdown, and the rule name is from the config, not the mail.
    if (n.rule) embed.footer = { text: this.fit("footer", n.rule) };
    const link = httpLink(n.link);
    if (link) embed.url = link;
    if (n.date) embed.timestamp = n.date;
    return this.#payload(this.fit("content", text), fitEmbed(embed));
  }

  /** Discord refuses an empty field value. */
  #fieldValue(text: string): string {
    return this.fit("fieldValue", text || "\u200b");
  }

  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const content = `**${total} mails** (sent as one message to stay within Discord's rate limit)`;
    const description = fitLines(
      entries.map((e) => `• ${e.summary}`),
      total,
      this.limit("description"),
    );
    return this.#payload(content, { description });
  }

  #payload(content: string, embed: Embed): TargetPayload {
    // parse: [] turns off every mention, including any the rule's own template writes: a mail
    // notifier should never be the thing that pings a whole server.
    const payload: Record<string, unknown> = { content, embeds: [embed], allowed_mentions: { parse: [] } };
    if (this.config.username) payload.username = this.config.username;
    if (this.config.avatar_url) payload.avatar_url = this.config.avatar_url;
    return { contentType: "application/json; charset=utf-8", body: JSON.stringify(payload) };
  }

  // Execute Webhook takes no idempotency key: a resend after a lost 2xx shows twice.
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    const url = new URL(this.config.url);
    // wait=true makes Discord confirm the message was stored, not merely queued: its 200 is that
    // confirmation (errors come as 4xx/5xx), so the message object in its body is not waited for.
    url.searchParams.set("wait", "true");
    let bodyRetryAfter: number | undefined;
    try {
      await postPayload(payload, {
        target: this.name,
        url: url.href,
        maskedUrl: maskUrl(this.config.url),
        signal: options.signal,
        describeError: (status, body) => {
          const parsed = parseDiscordError(body);
          bodyRetryAfter = parsed?.retry_after;
          return describeDiscordError(status, parsed, body);
        },
      });
    } catch (err) {
      // Discord's header is whole seconds; the body's retry_after is the exact float. Wait for the
      // longer, so a sub-second limit is not read as "retry now".
      if (err instanceof TargetError && bodyRetryAfter !== undefined && Number.isFinite(bodyRetryAfter)) {
        const seconds = Math.max(err.retryAfterSeconds ?? 0, Math.ceil(bodyRetryAfter));
        if (seconds !== err.retryAfterSeconds) throw new TargetError(err.target, err.message, { status: err.status, retryable: err.retryable, retryAfterSeconds: seconds, cause: err });
      }
      throw err;
    }
  }
}

interface DiscordError {
  message?: string;
  code?: number;
  retry_after?: number;
  global?: boolean;
  errors?: unknown;
}

function parseDiscordError(body: string): DiscordError | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    return parsed !== null && typeof parsed === "object" ? (parsed as DiscordError) : undefined;
  } catch {
    return undefined;
  }
}

const hints: Record<number, string> = {
  401: "the webhook token is wrong; copy the webhook URL again from Channel settings → Integrations → Webhooks",
  403: "Discord refused this webhook; check it still exists and the channel allows it",
  404: "the webhook was deleted or the URL is wrong; create one under Channel settings → Integrations → Webhooks and update url",
};

function describeDiscordError(status: number, e: DiscordError | undefined, body: string): string {
  if (!e) return summarize(body, 100);
  const parts = [`${e.message ?? "error"}${e.code ? ` (code ${e.code})` : ""}`];
  const first = firstFieldError(e.errors);
  if (first) parts.push(first);
  if (status === 429 && e.retry_after !== undefined) parts.push(`retry after ${e.retry_after} s${e.global ? " (global limit)" : ""}`);
  const hint = hints[status];
  if (hint) parts.push(hint);
  return parts.join("; ");
}

/** Discord nests form errors by key path: `{embeds: {0: {title: {_errors: [{message}]}}}}`. */
function firstFieldError(errors: unknown, path: string[] = []): string | undefined {
  if (errors === null || typeof errors !== "object") return undefined;
  const own = (errors as { _errors?: { message?: string }[] })._errors;
  if (Array.isArray(own) && own[0]?.message) return `${path.join(".")}: ${own[0].message}`;
  for (const [key, value] of Object.entries(errors)) {
    if (key === "_errors") continue;
    const found = firstFieldError(value, [...path, key]);
    if (found) return found;
  }
  return undefined;
}

function embedLength(e: Embed): number {
  return (e.title?.length ?? 0) + (e.description?.length ?? 0) + (e.footer?.text.length ?? 0) + (e.fields ?? []).reduce((sum, f) => sum + f.name.length + f.value.length, 0);
}

/** Drops trailing fields until the embed is within Discord's 6,000-character total. */
function fitEmbed(embed: Embed): Embed {
  const fields = [...(embed.fields ?? [])];
  while (fields.length > 1 && embedLength({ ...embed, fields }) > embedTotalMax) fields.pop();
  return { ...embed, fields };
}

/**
 * `discord://[username@]{webhook_id}/{webhook_token}[?avatar_url=…&username=…]`, as Apprise
 * writes the webhook https://discord.com/api/webhooks/{webhook_id}/{webhook_token}.
 */
export const discordModule: TargetModule<DiscordTargetConfig> = {
  type: "discord",
  schemes: ["discord"],
  schema: discordSchema,
  secrets: ["url"],
  // Each webhook answers with a bucket of 5 requests per 2 s, and Discord is widely observed to
  // cap a channel's webhook posts at about 30 a minute. 0.5/s sustained stays under both; a burst
  // of 5 fits the per-webhook bucket.
  pacing: { perSecond: 0.5, burst: 5 },
  concurrency: 1,
  // Discord's documented limits, per part of a message and its embed.
  limits: { summary: 300, content: 2000, title: 256, description: 4096, fieldName: 256, fieldValue: 1024, footer: 2048 },
  escape: escapeDiscord,
  describe(c) {
    const id = /\/webhooks\/(\d+)\//.exec(new URL(c.url).pathname)?.[1];
    return `discord ${maskUrl(c.url)}${id ? ` webhook ${id}` : ""}${c.username ? ` as ${c.username}` : ""}`;
  },
  fromUrl(url) {
    const [id, token, ...rest] = [decodeURIComponent(url.hostname), ...segments(url)];
    if (!id || !token || rest.length > 0 || !/^\d+$/.test(id) || !/^[\w-]+$/.test(token)) {
      throw new TargetUrlError(
        "a Discord URL is discord://{webhook_id}/{webhook_token} — the two parts after /api/webhooks/ in the webhook URL Discord gives you (the id is digits); optionally discord://botname@{webhook_id}/{webhook_token}",
      );
    }
    const q = query(url);
    return {
      url: `https://discord.com/api/webhooks/${id}/${token}`,
      ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(q.username ? { username: q.username } : {}),
      ...(q.avatar_url ? { avatar_url: q.avatar_url } : {}),
    };
  },
  create: (config) => new DiscordWebhookTarget(config),
};
