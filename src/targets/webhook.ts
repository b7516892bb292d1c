import type { WebhookTargetConfig } from "../config/schema.ts";
import { maskUrl, postPayload } from "./http.ts";
import type { Notification, Target, TargetPayload } from "./types.ts";

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

  async send(payload: TargetPayload, signal?: AbortSignal): Promise<void> {
    await postPayload(payload, { target: this.name, url: this.#config.url, maskedUrl: maskUrl(this.#config.url), headers: this.#config.headers, signal });
  }

  describe(): string {
    const headers = this.#config.headers ? ` (+${Object.keys(this.#config.headers).length} header(s), values hidden)` : "";
    return `webhook ${maskUrl(this.#config.url)}${headers}`;
  }
}
