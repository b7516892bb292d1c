import { z } from "zod";
import { postPayload, summarize } from "./http.ts";
import { httpUrl, maskSecret, query, segments, targetBase, TargetUrlError, type TargetModule } from "./module.ts";
import { fitLines, notificationForPeople, renderMessage } from "./text.ts";
import { ServiceTarget } from "./service.ts";
import type { DigestEntry, Notification, SendOptions, TargetPayload } from "./types.ts";

/*
 * IFTTT Webhooks, the "Receive a web request" trigger the first user's bot used: value1–value3
 * become the applet's ingredients. They are plain text handed to whatever action the user wired
 * up (a notification, a sheet row), which reads no markup, so nothing is escaped here.
 */

/** What a value carries: one of these, or the name of one of the rule's extracted fields. */
export const iftttSources = ["message", "subject", "from", "total", "link"] as const;
const source = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, `must be one of ${iftttSources.join(", ")}, or the name of a field the rule extracts`);

export const iftttSchema = z.strictObject({
  ...targetBase,
  type: z.literal("ifttt"),
  /** The Webhooks key: the last part of https://maker.ifttt.com/use/{key}. */
  key: z.string().regex(/^[\w-]+$/, "must be the Webhooks key: the last part of https://maker.ifttt.com/use/{key} (ifttt.com → Webhooks → Documentation)"),
  // A leading dot is refused so "." or ".." cannot turn the request path into another one.
  event: z.string().regex(/^[\w-][\w.-]*$/, "must be the applet's event name as written in its \"Receive a web request\" trigger (letters, digits, _ . -, not starting with .)"),
  apiUrl: httpUrl("an http:// or https:// URL (default https://maker.ifttt.com; change it only for a proxy or a test server)").default("https://maker.ifttt.com"),
  value1: source.default("message"),
  value2: source.default("subject"),
  /** Default: the rule's running total when it keeps one, else its first extracted field. */
  value3: source.optional(),
});
export type IftttTargetConfig = z.infer<typeof iftttSchema>;

export class IftttWebhookTarget extends ServiceTarget<IftttTargetConfig> {
  constructor(config: IftttTargetConfig) {
    super(iftttModule, config);
  }

  render(notification: Notification): TargetPayload {
    const n = notificationForPeople(notification);
    return this.#payload(valueOf(n, this.config.value1), valueOf(n, this.config.value2), this.config.value3 ? valueOf(n, this.config.value3) : defaultValue3(n));
  }

  /** value1: the list (as the message would be), value2: "N mails" (as the subject), value3: N. */
  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    return this.#payload(
      fitLines(
        entries.map((e) => `• ${e.summary}`),
        total,
        this.limit("value"),
      ),
      `${total} mails`,
      String(total),
    );
  }

  #payload(value1: string, value2: string, value3: string): TargetPayload {
    return { contentType: "application/json; charset=utf-8", body: JSON.stringify({ value1: this.fit("value", value1), value2: this.fit("value", value2), value3: this.fit("value", value3) }) };
  }

  #url(key: string): string {
    return `${this.config.apiUrl.replace(/\/+$/, "")}/trigger/${encodeURIComponent(this.config.event)}/with/key/${key}`;
  }

  // IFTTT takes no idempotency key: a resend after a lost 200 runs the applet twice. The 200 is
  // success ("Congratulations! You've fired the … event"); refusals are 4xx with JSON errors.
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    await postPayload(payload, {
      target: this.name,
      url: this.#url(encodeURIComponent(this.config.key)),
      maskedUrl: this.#url("****"),
      signal: options.signal,
      describeError: describeIftttError,
    });
  }
}

function valueOf(n: Notification, name: string): string {
  switch (name) {
    case "message":
      return renderMessage(n.message, (s) => s).trim();
    case "subject":
      return n.subject;
    case "from":
      return n.from;
    case "total":
      return n.total?.text ?? "";
    case "link":
      return n.link ?? "";
  }
  if (!Object.hasOwn(n.fields, name)) return "";
  // The same stand-in the rule's template writes for a field this mail lacked.
  return n.fields[name]?.text ?? `[${name} missing]`;
}

function defaultValue3(n: Notification): string {
  if (n.total) return n.total.text;
  const first = Object.values(n.fields).find((f) => f !== null);
  return first?.text ?? "";
}

const hints: Record<number, string> = {
  401: "the Webhooks key is wrong or was regenerated; copy it from https://ifttt.com/maker_webhooks/settings and update key",
  403: "IFTTT refused the trigger; check the Webhooks service is connected and your plan includes it",
  404: "check the event name and apiUrl",
};

/** IFTTT answers errors as `{"errors": [{"message": "…"}]}`. */
function describeIftttError(status: number, body: string): string {
  let reason = summarize(body, 150);
  try {
    const errors = (JSON.parse(body) as { errors?: { message?: string }[] }).errors;
    const messages = (errors ?? []).map((e) => e.message).filter(Boolean);
    if (messages.length > 0) reason = summarize(messages.join("; "), 200);
  } catch {
    // not JSON: keep the text
  }
  const hint = hints[status];
  return [reason, hint].filter(Boolean).join("; ");
}


/**
 * `ifttt://{key}/{event}`, or Apprise's `ifttt://{key}@{event}`; `?value1=…&value2=…&value3=…`
 * choose what each value carries.
 */
export const iftttModule: TargetModule<IftttTargetConfig> = {
  type: "ifttt",
  schemes: ["ifttt"],
  schema: iftttSchema,
  secrets: ["key"],
  // IFTTT publishes no rate for Webhooks triggers; each one runs an applet, so stay gentle.
  pacing: { perSecond: 1, burst: 3 },
  concurrency: 1,
  // IFTTT documents no limit on a value's length; 5,000 characters keeps a runaway message from
  // becoming an oversized SMS or notification downstream.
  limits: { summary: 300, value: 5000 },
  // The values are plain text handed to the user's applet, which reads no markup.
  escape: (text) => text,
  describe(c) {
    const via = c.apiUrl === "https://maker.ifttt.com" ? "" : ` via ${c.apiUrl}`;
    return `ifttt event ${c.event} key ${maskSecret(c.key)}${via}`;
  },
  fromUrl(url) {
    const host = decodeURIComponent(url.hostname);
    const parts = url.username ? [decodeURIComponent(url.username), host, ...segments(url)] : [host, ...segments(url)];
    const [key, event, ...rest] = parts.filter((p) => p !== "");
    if (!key || !event || rest.length > 0) {
      throw new TargetUrlError(
        `an IFTTT URL is ifttt://{key}/{event} (or ifttt://{key}@{event}): the key from https://maker.ifttt.com/use/{key} and one applet event name${rest.length > 0 ? "; for several events, add one target per event" : ""}`,
      );
    }
    const q = query(url);
    const values = Object.fromEntries((["value1", "value2", "value3"] as const).flatMap((k) => (q[k] ? [[k, q[k]]] : [])));
    return { key, event, ...values };
  },
  create: (config) => new IftttWebhookTarget(config),
};
