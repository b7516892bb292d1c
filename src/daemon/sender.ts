/**
 * The daemon's sender, where `outbox.thread` puts it: `main`, the Dispatcher on the thread that reads
 * mail (no extra memory); `own`, the Dispatcher on a worker thread (delivery-thread.ts: faster
 * catch-ups on a second core, for a second JavaScript heap). The daemon uses either the same way.
 */
import { Dispatcher } from "../outbox/dispatcher.ts";
import type { State } from "../store/sqlite/state.ts";
import type { Target } from "../targets/types.ts";
import { startDeliveryThread, type DeliverySettings, type DeliveryThread, type DeliveryThreadOptions } from "./delivery-thread.ts";

/** What the sender sends with: the targets as config (for the thread) and as the main thread made them (for `main`). */
export interface SenderSettings extends DeliverySettings {
  made: Map<string, Target>;
}

export interface Sender extends Omit<DeliveryThread, "reconfigure"> {
  reconfigure(next: SenderSettings, replace: ReadonlySet<string>, stopping?: AbortSignal): Promise<void>;
}

export interface SenderOptions extends Omit<DeliveryThreadOptions, keyof DeliverySettings> {
  thread: "main" | "own";
  settings: SenderSettings;
  /** The main thread's state; the thread opens its own connection to `statePath`. */
  state: State;
}

/** Starts the sender; with `own`, resolves once the thread has opened the state file and made its targets. */
export async function startSender(o: SenderOptions): Promise<Sender> {
  const { made, ...settings } = o.settings;
  if (o.thread === "own") {
    const thread = await startDeliveryThread({ ...o, ...settings });
    return { ...thread, reconfigure: ({ made: _, ...next }, replace, stopping) => thread.reconfigure(next, replace, stopping) };
  }
  const dispatcher = new Dispatcher({ outbox: o.state.outbox, targets: made, pacing: settings.pacing, retry: settings.retry, logger: o.logger, ...(o.onOutcome ? { onOutcome: o.onOutcome } : {}) });
  return {
    start: () => dispatcher.start(),
    kick: (targets) => dispatcher.kick(targets),
    drain: (deadlineMs) => dispatcher.drain(deadlineMs),
    reconfigure: (next, replace, stopping) => dispatcher.reconfigure({ targets: next.made, pacing: next.pacing, retry: next.retry }, replace, stopping),
    stop: () => dispatcher.stop(),
  };
}
