import { z } from "zod";
import { maskUrl, postPayload, summarize } from "./http.ts";
import { httpUrl, maskSecret, query, segments, targetBase, TargetUrlError, type TargetModule } from "./module.ts";
import { ServiceTarget } from "./service.ts";
import { httpLink, notificationForPeople } from "./text.ts";
import type { DigestEntry, Notification, SendOptions, TargetPayload } from "./types.ts";

/*
 * ntfy (https://docs.ntfy.sh/publish/) through its JSON publish API: POST {server}/ with
 * {topic, title, message, priority, tags, click, markdown: false}. JSON rather than POST /{topic}
 * with headers, because a header cannot carry a UTF-8 subject without RFC 2047 and a JSON string
 * can. Markdown stays off, so ntfy shows the text as it is and interprets nothing in it: mail text
 * needs no escaping beyond the convention for text people read (readable() in text.ts).
 */

const priorities = { min: 1, low: 2, default: 3, high: 4, max: 5, urgent: 5 } as const;
const priorityNames = Object.keys(priorities) as (keyof typeof priorities)[];

const priorityMessage = "use 1–5 or min, low, default, high, max (urgent = max)";
const prioritySchema = z.union([z.number().int(priorityMessage).min(1, priorityMessage).max(5, priorityMessage), z.enum(priorityNames, { error: priorityMessage })], { error: priorityMessage });

/** ntfy's own topic rule (server.go topicRegex): 1–64 of letters, digits, '_' and '-'. */
const topicPattern = /^[-_A-Za-z0-9]{1,64}$/;

export const ntfySchema = z
  .strictObject({
    ...targetBase,
    type: z.literal("ntfy"),
    /** Self-hosted server, or the public one. */
    server: httpUrl("the ntfy server's http:// or https:// URL, e.g. https://ntfy.sh").default("https://ntfy.sh"),
    topic: z.string().regex(topicPattern, "use 1–64 letters, digits, '_' or '-' (ntfy's topic rule); on ntfy.sh pick one nobody can guess, it works like a password"),
    priority: prioritySchema.optional(),
    tags: z.array(z.string().min(1).regex(/^[^,]+$/, "one tag per entry, without commas")).max(20).optional(),
    /** Access token (tk_…), sent as Authorization: Bearer. */
    token: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.token && (c.user || c.password)) ctx.addIssue({ code: "custom", path: ["token"], message: "give either token or user and password, not both" });
    if (c.user && !c.password) ctx.addIssue({ code: "custom", path: ["password"], message: "user needs a password too (or use token: for an access token)" });
    if (c.password && !c.user) ctx.addIssue({ code: "custom", path: ["user"], message: "password needs a user too (or use token: for an access token)" });
  });
export type NtfyTargetConfig = z.infer<typeof ntfySchema>;

export function ntfyPriority(p: NtfyTargetConfig["priority"]): number | undefined {
  return typeof p === "string" ? priorities[p] : p;
}

/** The JSON publish body, as ntfy documents it. */
export interface NtfyMessage {
  topic: string;
  title: string;
  message: string;
  priority?: number;
  tags?: string[];
  click?: string;
  markdown: false;
}

/** Cuts to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(text: string, maxBytes: number, ellipsis = "…"): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const budget = maxBytes - Buffer.byteLength(ellipsis);
  if (budget < 0) return "";
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const size = Buffer.byteLength(ch);
    if (bytes + size > budget) break;
    bytes += size;
    end += ch.length;
  }
  return text.slice(0, end) + ellipsis;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

export class NtfyTarget extends ServiceTarget<NtfyTargetConfig> {
  readonly #server: string;

  constructor(config: NtfyTargetConfig) {
    super(ntfyModule, config);
    this.#server = config.server.replace(/\/+$/, "");
  }

  render(notification: Notification): TargetPayload {
    const n = notificationForPeople(notification);
    return this.#payload(oneLine(n.subject) || "(no subject)", this.ruleText(notification), httpLink(n.link));
  }

  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const more = total - entries.length;
    const lines = entries.map((e) => `• ${e.summary}`);
    if (more > 0) lines.push(`…and ${more} more`);
    return this.#payload(`${total} mails`, lines.join("\n"), undefined);
  }

  #payload(title: string, message: string, click: string | undefined): TargetPayload {
    const priority = ntfyPriority(this.config.priority);
    const base: Omit<NtfyMessage, "message"> = {
      topic: this.config.topic,
      title: this.fit("title", title),
      ...(priority !== undefined ? { priority } : {}),
      ...(this.config.tags ? { tags: this.config.tags } : {}),
      ...(click ? { click } : {}),
      markdown: false,
    };
    // JSON escaping can grow the message (a quote becomes \"), so cut until the body fits too.
    let cap = this.limit("messageBytes");
    for (;;) {
      const body = JSON.stringify({ ...base, message: truncateUtf8(message, cap) });
      const over = Buffer.byteLength(body) - this.limit("jsonBytes");
      if (over <= 0 || cap <= 0) return { contentType: "application/json; charset=utf-8", body };
      cap = Math.max(0, cap - over);
    }
  }

  // ntfy takes no idempotency key: a resend after a lost 2xx shows twice. The 200 means published
  // (its body echoes the message); refusals are 4xx/5xx with a JSON error.
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    await postPayload(payload, {
      target: this.name,
      url: `${this.#server}/`,
      maskedUrl: maskUrl(this.#server),
      headers: this.#authHeader(),
      signal: options.signal,
      describeError: describeNtfyError,
    });
  }

  #authHeader(): Record<string, string> {
    const c = this.config;
    if (c.token) return { authorization: `Bearer ${c.token}` };
    if (c.user && c.password) return { authorization: `Basic ${Buffer.from(`${c.user}:${c.password}`).toString("base64")}` };
    return {};
  }
}

/** ntfy answers errors as {"code":40301,"http":403,"error":"forbidden","link":"…"}. */
export function describeNtfyError(status: number, body: string): string {
  let reason = summarize(body, 200);
  try {
    const parsed = JSON.parse(body) as { code?: unknown; error?: unknown };
    if (typeof parsed.error === "string") reason = `${summarize(parsed.error, 200)}${typeof parsed.code === "number" ? ` (ntfy code ${parsed.code})` : ""}`;
  } catch {
    // Not JSON (a proxy's error page): its text is the best we have.
  }
  if (status === 401 || status === 403) reason += "; check token (or user and password) and that it may write to this topic";
  if (status === 404) reason += "; check server: it is the ntfy base URL (https://ntfy.example.com), without the topic";
  return reason;
}

const urlHelp =
  "an ntfy URL is ntfy://topic or ntfys://topic (the public ntfy.sh), or ntfy://[user:password@]host[:port]/topic (http) / ntfys://…/topic (https), with ?token=tk_…&priority=high&tags=a,b";

/**
 * Apprise's forms: `ntfy://topic` and `ntfys://topic` publish to https://ntfy.sh;
 * `ntfy://host[:port]/topic` is http:// and `ntfys://host[:port]/topic` https:// (ntfy.sh itself
 * is always https). Auth: `user:password@host`, `tk_…@host` or `?token=tk_…`. Query: `priority`
 * (1–5 or min…max) and `tags` (Apprise also writes `xtags`), comma-separated. One topic per target.
 */
export const ntfyModule: TargetModule<NtfyTargetConfig> = {
  type: "ntfy",
  schemes: ["ntfy", "ntfys"],
  schema: ntfySchema,
  secrets: ["token", "password", "topic"],
  // ntfy.sh gives each visitor (IP) a bucket of 60 requests refilled at one per 5 s
  // (docs.ntfy.sh/config/#rate-limiting, visitor-request-limit-burst/-replenish). We take half
  // the bucket as burst so the same IP's other ntfy use keeps some.
  pacing: { perSecond: 0.2, burst: 30 },
  concurrency: 1,
  // ntfy documents no title limit; a notification shows one line of it. It keeps messages up to
  // 4,096 bytes (message-size-limit) and turns longer ones into an attachment, which the phone
  // shows as a file: we cut instead. The JSON publish body is read with twice that as its limit
  // (server.go transformBodyJSON), so the whole request stays under 8,192 bytes.
  limits: { summary: 300, title: 250, messageBytes: 4096, jsonBytes: 8192 },
  // Markdown stays off: ntfy shows the text as it is.
  escape: (text) => text,
  describe(c) {
    const auth = c.token ? ` (token ${maskSecret(c.token)})` : c.user ? ` (user ${c.user}, password ****)` : "";
    return `ntfy ${maskUrl(c.server.replace(/\/+$/, ""))} topic ${maskSecret(c.topic)}${auth}`;
  },
  fromUrl(url) {
    const path = segments(url);
    const host = url.hostname;
    const q = query(url);
    let server: string;
    let topic: string | undefined;
    if (path.length === 0) {
      if (!host) throw new TargetUrlError(`no topic in the URL: ${urlHelp}`);
      if (!topicPattern.test(host)) throw new TargetUrlError(`"${host}" is not a topic (1–64 letters, digits, '_' or '-'); for your own server write the topic after the host: ${urlHelp}`);
      server = "https://ntfy.sh";
      topic = host;
    } else {
      if (!host) throw new TargetUrlError(`no server in the URL: ${urlHelp}`);
      if (path.length > 1) throw new TargetUrlError(`one topic per target, got ${path.length} (${path.join(", ")}): add a target for each topic`);
      const secure = url.protocol === "ntfys:" || /(^|\.)ntfy\.sh$/i.test(host);
      server = `${secure ? "https" : "http"}://${url.host}`;
      topic = path[0];
    }
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    let auth: Record<string, string> = {};
    if (q.token) auth = { token: q.token };
    else if (user && !password && /^tk_/i.test(user)) auth = { token: user };
    else if (!user && password) auth = { token: password };
    else if (user) auth = { user, ...(password ? { password } : {}) };
    const tags = (q.tags ?? q.xtags)
      ?.split(",")
      .map((t) => t.trim())
      .filter((t) => t !== "");
    let priority: string | number | undefined;
    if (q.priority !== undefined) {
      const p = q.priority.toLowerCase();
      if (/^[1-5]$/.test(p)) priority = Number(p);
      else if ((priorityNames as string[]).includes(p)) priority = p;
      else throw new TargetUrlError(`priority "${q.priority}": ${priorityMessage}`);
    }
    return {
      server,
      topic,
      ...auth,
      ...(priority !== undefined ? { priority } : {}),
      ...(tags && tags.length > 0 ? { tags } : {}),
    };
  },
  create: (config) => new NtfyTarget(config),
};
