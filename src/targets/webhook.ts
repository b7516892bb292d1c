import { z } from "zod";
import { maskUrl, postPayload } from "./http.ts";
import { httpUrl, query, targetBase, type TargetModule } from "./module.ts";
import type { DigestEntry, Notification, SendOptions, Target, TargetPayload } from "./types.ts";

export const webhookSchema = z.strictObject({
  ...targetBase,
  type: z.literal("webhook"),
  url: httpUrl("an http:// or https:// URL"),
  headers: z.record(z.string(), z.string()).optional(),
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
  total: Notification["total"];
  link: string | null;
  text: string;
}

export class WebhookTarget implements Target {
  readonly type = "webhook";
  readonly defaultPacing = { perSecond: 20, burst: 20 };
  readonly name: string;
  readonly #config: WebhookTargetConfig;

  constructor(config: WebhookTargetConfig) {
    this.name = config.name;
    this.#config = config;
  }

  render(n: Notification): TargetPayload {
    const body: WebhookBody = {
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
      total: n.total,
      link: n.link ?? null,
      text: n.render((s) => s),
    };
    return { contentType: "application/json; charset=utf-8", body: JSON.stringify(body) };
  }

  summarize(n: Notification): string {
    return n.render((s) => s);
  }

  /** `{ digest: { count, items } }`: each item is the body the mail would have had on its own. */
  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const items = entries.map((e) => JSON.parse(e.body) as WebhookBody);
    return { contentType: "application/json; charset=utf-8", body: JSON.stringify({ digest: { count: total, listed: items.length, items } }) };
  }

  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    const headers = { ...this.#config.headers, ...(options.idempotencyKey ? { "idempotency-key": options.idempotencyKey } : {}) };
    await postPayload(payload, { target: this.name, url: this.#config.url, maskedUrl: maskUrl(this.#config.url), headers, signal: options.signal });
  }

  describe(): string {
    const headers = this.#config.headers ? ` (+${Object.keys(this.#config.headers).length} header(s), values hidden)` : "";
    return `webhook ${maskUrl(this.#config.url)}${headers}`;
  }
}

/** `json://host[:port]/path` and `jsons://…` (TLS), as Apprise writes a JSON webhook; `?+Header=value` adds headers. */
export const webhookModule: TargetModule<WebhookTargetConfig> = {
  type: "webhook",
  schemes: ["json", "jsons"],
  schema: webhookSchema,
  secrets: ["url", "headers"],
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
