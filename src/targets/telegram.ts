import { z } from "zod";
import { TargetError } from "../errors.ts";
import { maskUrl, postPayload, summarize } from "./http.ts";
import { httpUrl, maskSecret, query, segments, targetBase, TargetUrlError, type TargetModule } from "./module.ts";
import { ServiceTarget } from "./service.ts";
import type { DigestEntry, Notification, SendOptions, TargetPayload } from "./types.ts";

/*
 * Telegram Bot API sendMessage (https://core.telegram.org/bots/api#sendmessage) with
 * parse_mode HTML. The template's own text may use Telegram's HTML (<b>, <i>, <a href>, <code>…);
 * everything from the mail is escaped so it can only ever be text.
 */

/**
 * Telegram's HTML mode: "All <, > and & symbols that are not a part of a tag or an HTML entity
 * must be replaced with the corresponding HTML entities". `"` too, so a value a template puts in an
 * attribute (`<a href="{{link}}">`) cannot close it and add its own.
 */
export function escapeTelegram(text: string): string {
  // Telegram turns @username in plain text into a mention that notifies that member of a group; a
  // word joiner after the @ keeps it readable but inert.
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/@(?=[A-Za-z0-9_])/g, "@\u2060");
}

// "Text of the message to be sent, 1-4096 characters after entities parsing" (sendMessage).
export const telegramTextMax = 4096;

const token = /<(\/?)([A-Za-z][A-Za-z0-9-]*)\b[^<>]*?(\/?)>|&(?:#\d{1,7}|#x[0-9A-Fa-f]{1,6}|[A-Za-z]{2,8});|[\uD800-\uDBFF][\uDC00-\uDFFF]|[\s\S]/g;

/**
 * Cuts Telegram HTML to `max` characters as Telegram counts them (after entity parsing: a tag
 * counts nothing, `&amp;` one), never inside a tag or an entity, and closes the tags that were open
 * at the cut so the message still parses. Text within the limit is returned unchanged.
 */
export function truncateTelegramHtml(html: string, max: number, ellipsis = "…"): string {
  const budget = max - ellipsis.length;
  const open: string[] = [];
  let visible = 0;
  let cutAt = -1;
  let openAtCut: string[] = [];
  for (const m of html.matchAll(token)) {
    const [whole, closing, tagName, selfClosing] = m;
    if (tagName !== undefined) {
      const name = tagName.toLowerCase();
      if (closing) {
        const at = open.lastIndexOf(name);
        if (at !== -1) open.length = at;
      } else if (!selfClosing) open.push(name);
      continue;
    }
    const size = whole.startsWith("&") && whole.length > 1 ? entitySize(whole) : whole.length;
    if (cutAt === -1 && visible + size > budget) {
      cutAt = m.index;
      openAtCut = [...open];
    }
    visible += size;
    if (visible > max) break;
  }
  if (visible <= max) return html;
  return `${html.slice(0, cutAt)}${ellipsis}${openAtCut
    .reverse()
    .map((t) => `</${t}>`)
    .join("")}`;
}

/** UTF-16 units of the character an entity stands for (Telegram counts like JavaScript). */
function entitySize(entity: string): number {
  const numeric = /^&#(x?)([0-9A-Fa-f]+);$/.exec(entity);
  if (!numeric) return 1;
  const code = Number.parseInt(numeric[2]!, numeric[1] ? 16 : 10);
  return code > 0xffff ? 2 : 1;
}

/** Visible text of Telegram HTML, for the "is it empty" check Telegram makes. */
function visibleText(html: string): string {
  return html.replace(/<[^<>]*>/g, "").replace(/&[^;\s]{1,10};/g, "x");
}

const tokenPattern = /^\d+:[A-Za-z0-9_-]+$/;
const chatPattern = /^(-?\d+|@[A-Za-z][A-Za-z0-9_]{3,})$/;
const chatMessage = "use the numeric chat id (e.g. 123456789, or -100… for groups and channels) or @channelusername";

export const telegramSchema = z.strictObject({
  ...targetBase,
  type: z.literal("telegram"),
  /** From @BotFather: 123456789:AAH… */
  token: z.string().regex(tokenPattern, "use the token @BotFather gave you, like 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
  /** A numeric chat id (groups and channels are negative, -100…) or @channelusername. */
  chatId: z.union([z.number().int(chatMessage), z.string().regex(chatPattern, chatMessage)], { error: chatMessage }),
  /** A forum topic (message_thread_id) in a supergroup. */
  threadId: z.number().int().positive().optional(),
  /** Deliver without sound (disable_notification). */
  silent: z.boolean().optional(),
  /** Show link previews; off by default so a mail's link is not fetched and shown as a card. */
  linkPreview: z.boolean().optional(),
  /** Bot API server; a self-hosted telegram-bot-api, or a local stand-in for tests. */
  apiUrl: httpUrl("the Bot API server's URL, e.g. https://api.telegram.org").default("https://api.telegram.org"),
});
export type TelegramTargetConfig = z.infer<typeof telegramSchema>;

export class TelegramTarget extends ServiceTarget<TelegramTargetConfig> {
  readonly #apiUrl: string;

  constructor(config: TelegramTargetConfig) {
    super(telegramModule, config);
    this.#apiUrl = config.apiUrl.replace(/\/+$/, "");
  }

  render(n: Notification): TargetPayload {
    return this.#payload(this.ruleText(n));
  }

  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const more = total - entries.length;
    const lines = entries.map((e) => `• ${e.summary}`);
    if (more > 0) lines.push(`…and ${more} more`);
    return this.#payload(`<b>${total} mails</b> (sent as one message to stay within Telegram's rate limit)\n${lines.join("\n")}`);
  }

  #payload(html: string): TargetPayload {
    const c = this.config;
    // Telegram refuses an empty text ("message text is empty").
    const text = visibleText(html).trim() === "" ? "(empty message)" : this.fit("text", html);
    const body = {
      chat_id: c.chatId,
      text,
      parse_mode: "HTML",
      link_preview_options: { is_disabled: !c.linkPreview },
      ...(c.threadId !== undefined ? { message_thread_id: c.threadId } : {}),
      ...(c.silent ? { disable_notification: true } : {}),
    };
    return { contentType: "application/json; charset=utf-8", body: JSON.stringify(body) };
  }

  // The Bot API takes no idempotency key: a resend after a lost 2xx shows twice. A 200 is
  // `ok: true`: the Bot API server answers an error with its error_code as the HTTP status
  // (telegram-bot-api's Query::set_ok is its only 200), so the body need not be waited for.
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    let retryAfter: number | undefined;
    try {
      await postPayload(payload, {
        target: this.name,
        url: `${this.#apiUrl}/bot${this.config.token}/sendMessage`,
        maskedUrl: maskUrl(this.#apiUrl),
        signal: options.signal,
        describeError: (status, body) => {
          const reply = parseReply(body);
          retryAfter = reply.retryAfter;
          return describeTelegramError(status, reply, body);
        },
      });
    } catch (err) {
      // Telegram says how long to wait in the body (parameters.retry_after), not in Retry-After.
      if (err instanceof TargetError && retryAfter !== undefined && err.retryAfterSeconds === undefined) {
        throw new TargetError(err.target, err.message, { status: err.status, retryable: err.retryable, retryAfterSeconds: retryAfter, cause: err.cause });
      }
      throw err;
    }
  }
}

interface TelegramReply {
  description?: string;
  retryAfter?: number;
  migrateTo?: number;
}

/** Errors come as {"ok":false,"error_code":400,"description":"Bad Request: chat not found","parameters":{…}}. */
function parseReply(body: string): TelegramReply {
  try {
    const r = JSON.parse(body) as { description?: unknown; parameters?: { retry_after?: unknown; migrate_to_chat_id?: unknown } };
    return {
      description: typeof r.description === "string" ? r.description : undefined,
      retryAfter: typeof r.parameters?.retry_after === "number" ? r.parameters.retry_after : undefined,
      migrateTo: typeof r.parameters?.migrate_to_chat_id === "number" ? r.parameters.migrate_to_chat_id : undefined,
    };
  } catch {
    return {};
  }
}

function describeTelegramError(status: number, reply: TelegramReply, body: string): string {
  const reason = reply.description ? summarize(reply.description, 200) : summarize(body, 200);
  if (reply.migrateTo !== undefined) return `${reason}; the group became a supergroup: set chatId to ${reply.migrateTo}`;
  if (status === 401 || status === 404) return `${reason}; check the bot token (from @BotFather)`;
  if (status === 403) return `${reason}; the bot cannot post to this chat: start a chat with it, or add it to the group or channel (as admin for channels)`;
  if (status === 400 && /chat not found/i.test(reason)) return `${reason}; check chatId, and that the bot has been added to that chat (or the user has started it)`;
  if (status === 400 && /parse entities/i.test(reason)) return `${reason}; the template's own HTML is not valid Telegram HTML (write < as &lt; in the template's text)`;
  return reason;
}

const urlHelp =
  "a Telegram URL is tgram:///{bot_token}/{chat_id} (three slashes, as a token's ':' cannot sit in a URL's host) or tgram://{bot_token with ':' written %3A}/{chat_id}; chat_id is numeric or @channelusername; options ?silent=yes&preview=yes&thread=ID";

/**
 * Apprise writes `tgram://{bot_token}/{chat_id}`. The ':' inside a bot token makes that host
 * invalid for a URL parser, so we also take the token as the first path segment
 * (`tgram:///123456789:AAH…/-100123`) or with ':' percent-encoded in the host. A leading "bot"
 * (as in the API path) is dropped. One chat per target.
 */
export const telegramModule: TargetModule<TelegramTargetConfig> = {
  type: "telegram",
  // Apprise writes tgram://123456:AAH…/chat; the colon in the bot token is not a port.
  normalizeUrl: (raw) => raw.replace(/^tgram:\/\/(?:bot)?(\d+):/i, "tgram:///$1:"),
  schemes: ["tgram"],
  schema: telegramSchema,
  secrets: ["token"],
  // Telegram's bot FAQ: about one message per second in a chat, at most 20 per minute in a group
  // (core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this). 1/3 s with a burst
  // of 3 stays within the group limit, which is the tighter one.
  pacing: { perSecond: 1 / 3, burst: 3 },
  concurrency: 1,
  limits: { summary: 300, text: telegramTextMax },
  // Limits count characters as Telegram does, after its HTML is parsed.
  cut: truncateTelegramHtml,
  escape: escapeTelegram,
  describe: (c) => `telegram chat ${c.chatId}${c.threadId ? ` topic ${c.threadId}` : ""} via ${maskUrl(c.apiUrl.replace(/\/+$/, ""))} (bot token ${maskSecret(c.token)})`,
  fromUrl(url) {
    const path = segments(url);
    const host = decodeURIComponent(url.hostname);
    const parts = host ? [host, ...path] : path;
    const [rawToken, chat, ...extra] = parts;
    if (!rawToken) throw new TargetUrlError(`no bot token: ${urlHelp}`);
    const botToken = rawToken.replace(/^bot(?=\d)/, "");
    if (!tokenPattern.test(botToken)) throw new TargetUrlError(`the bot token is not in the form 123456789:AAH… : ${urlHelp}`);
    if (!chat) throw new TargetUrlError(`no chat id after the bot token: ${urlHelp}`);
    if (extra.length > 0) throw new TargetUrlError(`one chat per target, got ${extra.length + 1}: add a target for each chat`);
    if (!chatPattern.test(chat)) throw new TargetUrlError(`chat id "${chat}" is neither numeric nor @channelusername: ${urlHelp}`);
    const q = query(url);
    const options: Record<string, unknown> = { token: botToken, chatId: chat };
    const yes = (v: string, key: string): boolean => {
      if (/^(yes|true|on|1)$/i.test(v)) return true;
      if (/^(no|false|off|0)$/i.test(v)) return false;
      throw new TargetUrlError(`${key}=${v}: write ${key}=yes or ${key}=no`);
    };
    if (q.silent !== undefined) options.silent = yes(q.silent, "silent");
    if (q.preview !== undefined) options.linkPreview = yes(q.preview, "preview");
    const thread = q.thread ?? q.topic;
    if (thread !== undefined) {
      if (!/^\d+$/.test(thread)) throw new TargetUrlError(`thread=${thread}: the forum topic is a number (message_thread_id)`);
      options.threadId = Number(thread);
    }
    return options;
  },
  create: (config) => new TelegramTarget(config),
};
