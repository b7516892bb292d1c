import type { TargetError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Target, TargetPayload } from "../targets/types.ts";

/** Identifies what a delivery is about, for logs (and, later, the outbox row id). */
export interface DeliveryRef {
  rule: string;
  account: string;
  mailbox: string;
  uidValidity: number;
  uid: number;
}

export type DeliveryOutcome = { ok: true } | { ok: false; error: TargetError };

/**
 * The one interface between deciding and sending. The first implementation sends at once and
 * logs failures; a durable queue with retries can replace it without touching its callers.
 */
export interface Delivery {
  deliver(target: Target, payload: TargetPayload, ref: DeliveryRef): Promise<DeliveryOutcome>;
}

export class DirectDelivery implements Delivery {
  readonly #log: Logger;
  constructor(logger: Logger) {
    this.#log = logger;
  }

  async deliver(target: Target, payload: TargetPayload, ref: DeliveryRef): Promise<DeliveryOutcome> {
    try {
      await target.send(payload);
      this.#log.info({ ...ref, target: target.name }, "delivered");
      return { ok: true };
    } catch (err) {
      const error = err as TargetError;
      this.#log.error({ ...ref, target: target.name, status: error.status, retryable: error.retryable, err: error.message }, "delivery failed");
      return { ok: false, error };
    }
  }
}
