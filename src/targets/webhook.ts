import { createHmac } from "node:crypto";
import { z } from "zod";
import { maskUrl, postPayload } from "./http.ts";
import { httpUrl, query, targetBase, type TargetModule } from "./module.ts";
import { notificationForPeople, renderMessage } from "./text.ts";
import { ServiceTarget } from "./service.ts";
import type { DigestEntry, Notification, NotificationAttachment, SendOptions, TargetPayload } from "./types.ts";

/*
 * Generic webhook. By default it POSTs the JSON below (WebhookBody) with an Idempotency-Key header
 * that is the same for every attempt of one notification.
 *
 * Signature (with `secret`): each attempt carries
 *   X-Mailbell-Timestamp: <unix seconds when this attempt was sent>
 *   X-Mailbell-Signature: sha256=<hex HMAC-SHA256, keyed with the secret, of "<timestamp>.<body>">
 * where <body> is the exact request body bytes (UTF-8). To verify: recompute the HMAC over the
 * timestamp header, a ".", and the raw body as received (before any JSON parsing), compare in
 * constant time, and refuse timestamps more than a few minutes old so a captured request cannot be
 * replayed later. Retries are signed afresh; use Idempotency-Key to drop duplicates.
 *
 * Custom body (with `body`): a JSON text with {{placeholders}}. Inside a JSON string
 * ("Mail from {{from}}") a value is inserted with JSON string escaping; standing alone
 * ({"uid": {{uid}}}) it is inserted as a JSON value (string, number or null). Either way the body
 * stays valid JSON whatever the mail says; the config is checked by filling every placeholder with
 * hostile dummy text and parsing the result.
 *
 * Mail text: the default JSON is data for programs and carries it as it is, JSON-escaped (a NUL
 * is \u0000, ESC \u001b), so a receiver gets exactly what the mail said. A custom body is a
 * message shaped for some service, most often one that shows it to people, so its values follow
 * the convention for text people read (readable() in text.ts) before JSON escaping.
 */

export const bodyPlaceholders = [
  "text",
  "subject",
  "from",
  "date",
  "link",
  "verified",
  "rule",
  "account",
  "mailbox",
  "uid",
  "uidValidity",
  "messageId",
  "total",
  "totalAmount",
  "totalCurrency",
  "period",
  "periodLabel",
  "count",
  "attachments",
] as const;
const bodyPlaceholderSet: ReadonlySet<string> = new Set(bodyPlaceholders);
const fieldPlaceholder = /^fields\.([A-Za-z_][A-Za-z0-9_]*)(?:\.(raw|amount|currency))?$/;

type BodyPart = { kind: "text"; text: string } | { kind: "value"; name: string; inString: boolean };
type BodyValue = string | number | null;
type BodyValues = (name: string) => BodyValue;

/** Splits a body template into literal text and placeholders, noting which sit inside a JSON string. */
export function compileBody(source: string): { parts: BodyPart[] } | { errors: string[] } {
  const parts: BodyPart[] = [];
  const errors: string[] = [];
  let text = "";
  let inString = false;
  let i = 0;
  while (i < source.length) {
    if (source.startsWith("{{", i)) {
      const close = source.indexOf("}}", i + 2);
      if (close === -1) {
        errors.push(`"{{" at character ${i + 1} has no closing "}}": write placeholders as {{name}}`);
        break;
      }
      const name = source.slice(i + 2, close).trim();
      if (!bodyPlaceholderSet.has(name) && !fieldPlaceholder.test(name)) {
        errors.push(`unknown placeholder {{${name}}}: valid are ${bodyPlaceholders.map((p) => `{{${p}}}`).join(", ")}, and {{fields.NAME}} with .raw, .amount or .currency`);
      }
      if (text) parts.push({ kind: "text", text });
      text = "";
      parts.push({ kind: "value", name, inString });
      i = close + 2;
      continue;
    }
    const ch = source[i]!;
    text += ch;
    i += 1;
    if (inString && ch === "\\" && i < source.length && !source.startsWith("{{", i)) {
      text += source[i];
      i += 1;
    } else if (ch === '"') inString = !inString;
  }
  if (text) parts.push({ kind: "text", text });
  return errors.length > 0 ? { errors } : { parts };
}

export function renderBody(parts: readonly BodyPart[], values: BodyValues): string {
  let out = "";
  for (const part of parts) {
    if (part.kind === "text") {
      out += part.text;
      continue;
    }
    const value = values(part.name);
    if (part.inString) out += value === null ? "" : JSON.stringify(String(value)).slice(1, -1);
    else out += JSON.stringify(value);
  }
  return out;
}

function notificationValues(n: Notification, text: string): BodyValues {
  return (name) => {
    const field = fieldPlaceholder.exec(name);
    if (field) {
      const value = Object.hasOwn(n.fields, field[1]!) ? n.fields[field[1]!] : undefined;
      if (!value) return null;
      return (field[2] ? value[field[2] as "raw" | "amount" | "currency"] : value.text) ?? null;
    }
    switch (name as (typeof bodyPlaceholders)[number]) {
      case "text":
        return text;
      case "subject":
        return n.subject;
      case "from":
        return n.from;
      case "date":
        return n.date ?? null;
      case "link":
        return n.link ?? null;
      case "verified":
        return n.verified ?? null;
      case "rule":
        return n.rule;
      case "account":
        return n.account;
      case "mailbox":
        return n.mailbox;
      case "uid":
        return n.uid;
      case "uidValidity":
        return n.uidValidity;
      case "messageId":
        return n.messageId ?? null;
      case "attachments":
        // As {{attachments}} in a rule's template (rules/match.ts formatAttachments).
        return (n.attachments ?? []).map((a) => a.filename || `[${a.contentType}]`).join(", ");
      case "total":
        return n.total?.text ?? null;
      case "totalAmount":
        return n.total?.amount ?? null;
      case "totalCurrency":
        return n.total?.currency ?? null;
      case "period":
        return n.total?.period ?? null;
      case "periodLabel":
        return n.total?.periodLabel ?? null;
      case "count":
        return 1;
    }
  };
}

// Quotes, backslashes, a line break, a line separator, markup and a lone surrogate: what could
// break a body whose escaping was wrong.
const hostile = '"\\\n\u2028</x>&{{}}\ud800';

/** Checks a body template as the config loads: placeholders known, and valid JSON once filled. */
export function checkBody(source: string): string[] {
  const compiled = compileBody(source);
  if ("errors" in compiled) return compiled.errors;
  for (const dummy of [hostile, null, 12345]) {
    const rendered = renderBody(compiled.parts, () => dummy);
    try {
      JSON.parse(rendered);
    } catch (err) {
      return [
        `is not valid JSON once its placeholders are filled in (${(err as Error).message}). Write the body as JSON, with {{name}} inside a string ("Mail: {{subject}}") for text, or on its own ({"uid": {{uid}}}) for a JSON value.`,
      ];
    }
  }
  return [];
}

export const webhookSchema = z
  .strictObject({
    ...targetBase,
    type: z.literal("webhook"),
    url: httpUrl("an http:// or https:// URL"),
    headers: z.record(z.string(), z.string()).optional(),
    method: z.enum(["POST", "PUT"], { error: "use POST or PUT (in capitals)" }).optional(),
    /** Key for X-Mailbell-Signature (HMAC-SHA256); see the top of webhook.ts. */
    secret: z.string().min(16, "use at least 16 characters, e.g. the output of `openssl rand -hex 32`").optional(),
    /** JSON template replacing the default body. */
    body: z.string().min(1).optional(),
    contentType: z
      .string()
      .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;.*)?$/, "write a media type such as application/json")
      .optional(),
  })
  .superRefine((c, ctx) => {
    if (c.body !== undefined) for (const message of checkBody(c.body)) ctx.addIssue({ code: "custom", path: ["body"], message });
  });
export type WebhookTargetConfig = z.infer<typeof webhookSchema>;

/** The generic JSON payload: everything a receiving program needs, nothing escaped. */
export interface WebhookBody {
  rule: string;
  account: string;
  mailbox: string;
  uidValidity: number;
  uid: number;
  messageId: string | null;
  from: string;
  subject: string;
  date: string | null;
  fields: Notification["fields"];
  /** Every attachment (file name, "" when it has none; content type; decoded size), never its content. */
  attachments: NotificationAttachment[];
  total: Notification["total"];
  link: string | null;
  /** How the sender was verified ("DKIM google.com") for a rule with verify:, else null. */
  verified: string | null;
  text: string;
}

/**
 * The generic body (also what the command target gets on stdin and stdout prints as JSON). Data,
 * not markup: the mail's text as it is, JSON encoding being the only escaping a receiver needs.
 */
export function notificationBody(n: Notification): WebhookBody {
  return {
    rule: n.rule,
    account: n.account,
    mailbox: n.mailbox,
    uidValidity: n.uidValidity,
    uid: n.uid,
    messageId: n.messageId ?? null,
    from: n.from,
    subject: n.subject,
    date: n.date ?? null,
    fields: n.fields,
    attachments: n.attachments ?? [],
    total: n.total,
    link: n.link ?? null,
    verified: n.verified ?? null,
    text: renderMessage(n.message, (s) => s),
  };
}

const reservedHeaders = new Set(["idempotency-key", "x-mailbell-signature", "x-mailbell-timestamp"]);

export class WebhookTarget extends ServiceTarget<WebhookTargetConfig> {
  readonly #body: readonly BodyPart[] | undefined;
  readonly #contentType: string;

  constructor(config: WebhookTargetConfig) {
    super(webhookModule, config);
    if (config.body !== undefined) {
      const compiled = compileBody(config.body);
      // The schema has checked it; a config built around the schema fails here, not at send.
      if ("errors" in compiled) throw new Error(`target "${config.name}": body: ${compiled.errors.join("; ")}`);
      this.#body = compiled.parts;
    }
    this.#contentType = config.contentType ?? "application/json; charset=utf-8";
  }

  render(n: Notification): TargetPayload {
    if (this.#body) {
      const shown = notificationForPeople(n);
      return { contentType: this.#contentType, body: renderBody(this.#body, notificationValues(shown, this.ruleText(n))) };
    }
    return { contentType: this.#contentType, body: JSON.stringify(notificationBody(n)) };
  }

  /** For a custom body's digest {{text}}, which follows the body's convention: the whole message, uncut. */
  override summarize(n: Notification): string {
    return this.ruleText(n);
  }

  /**
   * Default body: `{ digest: { count, listed, items } }`, each item the body the mail would have had
   * on its own. Custom body: the template once more, {{text}} listing the mails, {{subject}}
   * "N mails", {{count}} N, {{rule}} the rules involved, per-mail values null.
   */
  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    if (this.#body) {
      const more = total - entries.length;
      const lines = [`${total} mails:`, ...entries.map((e) => `- ${e.summary.replace(/\s*\n\s*/g, " ")}`), ...(more > 0 ? [`…and ${more} more`] : [])];
      const rules = [...new Set(entries.map((e) => e.rule))].join(", ");
      const values: BodyValues = (name) => (name === "text" ? lines.join("\n") : name === "subject" ? `${total} mails` : name === "count" ? total : name === "rule" ? rules : null);
      return { contentType: this.#contentType, body: renderBody(this.#body, values) };
    }
    const items = entries.map((e) => {
      try {
        return JSON.parse(e.body) as WebhookBody;
      } catch {
        // Queued while the target had a custom body: what is known of it.
        return { rule: e.rule, subject: e.subject, text: e.summary };
      }
    });
    return { contentType: this.#contentType, body: JSON.stringify({ digest: { count: total, listed: items.length, items } }) };
  }

  /** Any 2xx is success; its body, if any, means nothing to mailbell and is not waited for. */
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.config.headers ?? {})) if (!reservedHeaders.has(k.toLowerCase())) headers[k] = v;
    if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
    if (this.config.secret) Object.assign(headers, signatureHeaders(this.config.secret, payload.body));
    await postPayload(payload, { target: this.name, method: this.config.method ?? "POST", url: this.config.url, maskedUrl: maskUrl(this.config.url), headers, signal: options.signal });
  }
}

/** The two headers of the scheme at the top of this file. */
export function signatureHeaders(secret: string, body: string, now: number = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(now / 1000));
  const signature = createHmac("sha256", secret).update(`${timestamp}.`, "utf8").update(body, "utf8").digest("hex");
  return { "x-mailbell-timestamp": timestamp, "x-mailbell-signature": `sha256=${signature}` };
}

/** `json://host[:port]/path` and `jsons://…` (TLS), as Apprise writes a JSON webhook; `?+Header=value` adds headers. */
export const webhookModule: TargetModule<WebhookTargetConfig> = {
  type: "webhook",
  schemes: ["json", "jsons"],
  schema: webhookSchema,
  secrets: ["url", "headers", "secret"],
  pacing: { perSecond: 20, burst: 20 },
  concurrency: 8,
  // The receiver is a program: the message goes whole, as data (a digest lists it whole too).
  limits: { summary: Number.POSITIVE_INFINITY },
  // JSON.stringify makes the default body safe; a custom body escapes each value where it sits.
  escape: (text) => text,
  describe(c) {
    const extras = [
      ...(c.headers ? [`+${Object.keys(c.headers).length} header(s), values hidden`] : []),
      ...(c.secret ? ["signed"] : []),
      ...(c.body ? ["custom body"] : []),
    ];
    return `webhook ${c.method === "PUT" ? "PUT " : ""}${maskUrl(c.url)}${extras.length > 0 ? ` (${extras.join(", ")})` : ""}`;
  },
  fromUrl(url) {
    const target = new URL(url.href.replace(/^jsons?:/, url.protocol === "jsons:" ? "https:" : "http:"));
    target.search = "";
    const headers: Record<string, string> = {};
    // "+Name=value" adds a header (Apprise's convention); a raw + reads as a space in a query.
    for (const [k, v] of Object.entries(query(url))) {
      if (k.startsWith("+") || k.startsWith(" ")) headers[k.slice(1)] = v;
      else target.searchParams.append(k, v);
    }
    return { url: target.href, ...(Object.keys(headers).length > 0 ? { headers } : {}) };
  },
  create: (config) => new WebhookTarget(config),
};
