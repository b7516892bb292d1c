import type { Pacing, TargetDefinition } from "./module.ts";
import { notificationForPeople, renderMessage, truncate } from "./text.ts";
import type { DigestEntry, Notification, SendOptions, Target, TargetPayload } from "./types.ts";

type Config = { name: string; type: string };

/**
 * What every service's Target shares, taken from its definition: name, type, pacing, the printed
 * form, the rule's message made readable and escaped, the digest line, and the one place a limit
 * is applied (`fit`). A service file adds only what is its own: render, renderDigest and send.
 */
export abstract class ServiceTarget<C extends Config> implements Target {
  readonly name: string;
  readonly type: string;
  readonly defaultPacing: Pacing;
  readonly concurrency: number;
  protected readonly config: C;
  readonly #definition: TargetDefinition<C>;

  constructor(definition: TargetDefinition<C>, config: C) {
    this.#definition = definition;
    this.config = config;
    this.name = config.name;
    this.type = definition.type;
    this.defaultPacing = definition.pacing;
    this.concurrency = (config as { concurrency?: number }).concurrency ?? definition.concurrency;
  }

  abstract render(notification: Notification): TargetPayload;
  abstract renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload;
  abstract send(payload: TargetPayload, options?: SendOptions): Promise<void>;

  describe(): string {
    return this.#definition.describe(this.config);
  }

  /** The service's limit for `part` (a name its definition declares). */
  protected limit(part: string): number {
    const max = this.#definition.limits[part];
    if (max === undefined) throw new Error(`target type ${this.type} declares no limit "${part}"`);
    return max;
  }

  /** The text cut to the service's limit for `part`, as the service counts. */
  protected fit(part: string, text: string): string {
    return (this.#definition.cut ?? truncate)(text, this.limit(part));
  }

  /** The rule's message as this service shows it: mail text readable() and then escaped. */
  protected ruleText(n: Notification): string {
    return renderMessage(notificationForPeople(n).message, this.#definition.escape);
  }

  /** One line per mail in a digest: the message on one line, cut to the summary limit. */
  summarize(n: Notification): string {
    return this.fit("summary", this.ruleText(n).replace(/\s*\n\s*/g, " ").trim());
  }
}
