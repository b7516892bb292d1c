/** One field of a notification, as the webhook payload carries it. */
export interface NotificationField {
  /** How it reads in the message: "¥480", "Monthly pass". */
  text: string;
  /** What the regex captured, untouched. */
  raw: string;
  /** For money: exact decimal string and ISO currency. */
  amount?: string;
  currency?: string;
}

export interface NotificationTotal {
  /** Exact decimal string of the running total, this mail included. */
  amount: string;
  currency: string;
  text: string;
  /** Period key ("2026-11") and label ("November"). */
  period: string;
  periodLabel: string;
}

/**
 * A piece of a rule's rendered template: the user's literal text, which may use the target's
 * markup and goes out as written, or a value from the mail, which anyone can send and so each
 * target escapes (text.ts renderMessage) when it builds its payload.
 */
export type MessageSegment = { literal: string } | { fromMail: string };

/**
 * What one rule has to say about one mail, independent of where it goes: plain data, so it can
 * be stored and turned into any target's payload later. Targets build their payload from it; the
 * message's mail-derived segments go through the target's escaping, so mail content cannot
 * become markup.
 */
export interface Notification {
  rule: string;
  account: string;
  mailbox: string;
  uidValidity: number;
  uid: number;
  messageId: string | undefined;
  /** First From as "Name <address>". */
  from: string;
  subject: string;
  /** ISO 8601 Date header, when the mail had a valid one. */
  date: string | undefined;
  fields: Record<string, NotificationField | null>;
  /**
   * The mail's attachments, as its structure describes them (never downloaded). Absent in
   * notifications queued by a mailbell that did not know them: read as none.
   */
  attachments?: NotificationAttachment[] | undefined;
  total: NotificationTotal | null;
  /** The key of the period the rule counts in ("2026-11"), even when this mail's amount is missing. */
  period?: string | undefined;
  link: string | undefined;
  /** How the sender was verified ("DKIM google.com"), for a rule with verify:. */
  verified?: string | undefined;
  /** The rule's template, filled in. */
  message: readonly MessageSegment[];
}

/** One attachment of the mail: its file name ("" when it has none), type and decoded size in bytes. */
export interface NotificationAttachment {
  filename: string;
  contentType: string;
  size: number;
}

/** A request body ready to send, rendered from a notification just before it is sent. */
export interface TargetPayload {
  contentType: string;
  body: string;
  /** Where in the service it goes, beside the body: Slack's thread key (rule and period). */
  thread?: string;
}

/** A queued notification as a digest lists it. */
export interface DigestEntry {
  rule: string;
  subject: string;
  /** One line, already escaped for this target (from `summarize`). */
  summary: string;
  body: string;
  /** The row's thread key (TargetPayload.thread), for a digest that may join that thread. */
  thread?: string;
}

export interface SendOptions {
  signal?: AbortSignal;
  /** Stable per outbox row: services that deduplicate by key drop our rare resend. */
  idempotencyKey?: string;
}

export interface Target {
  readonly name: string;
  readonly type: string;
  /** Sustained rate the service allows, used unless the config sets rateLimit. */
  readonly defaultPacing: { perSecond: number; burst: number };
  /**
   * Requests sent at once (default 1: one after the other, in queue order). More only where the
   * service does not show posts in the order they arrive, or where order does not matter.
   */
  readonly concurrency?: number;
  /**
   * Builds the service's payload. Pure: no I/O, so `mailbell test` can show it. Text a person will
   * read goes through notificationForPeople (text.ts) first.
   */
  render(notification: Notification): TargetPayload;
  /** One line for digests, escaped for this service. Pure. */
  summarize(notification: Notification): string;
  /** One message standing for many: the first entries listed, `total` counted. Pure. */
  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload;
  /**
   * Sends one payload. Resolves as soon as the service's answer tells success (its status line,
   * unless the service says it in the body): the row is marked done then, and until then a kill
   * would post it again. Throws TargetError (with `retryable`) otherwise.
   */
  send(payload: TargetPayload, options?: SendOptions): Promise<void>;
  /** One line for logs and `mailbell check`, with secrets masked. */
  describe(): string;
}
