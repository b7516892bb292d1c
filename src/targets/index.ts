import type { TargetConfig } from "../config/schema.ts";
import { SlackWebhookTarget } from "./slack.ts";
import type { Target } from "./types.ts";
import { WebhookTarget } from "./webhook.ts";

type Factory = (config: TargetConfig) => Target;

/** Target type → constructor. Adding a service is one module and one line here. */
const factories: Record<TargetConfig["type"], Factory> = {
  slack: (c) => new SlackWebhookTarget(c as Extract<TargetConfig, { type: "slack" }>),
  webhook: (c) => new WebhookTarget(c as Extract<TargetConfig, { type: "webhook" }>),
};

export function createTargets(configs: readonly TargetConfig[]): Map<string, Target> {
  return new Map(configs.map((c) => [c.name, factories[c.type](c)]));
}

export type { Notification, Target, TargetPayload } from "./types.ts";
