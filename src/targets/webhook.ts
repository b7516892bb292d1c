import type { WebhookTargetConfig } from "../config/schema.ts";
import { maskUrl, postPayload } from "./http.ts";
import type { DigestEntry, Notification, SendOptions, Target, TargetPayload } from "./types.ts";

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
