import { z } from "zod";
import { memoryTargetState, type TargetStateStore } from "./state.ts";
import { TargetUrlError, type TargetDeps, type TargetModule } from "./module.ts";
import { discordModule } from "./discord.ts";
import { iftttModule } from "./ifttt.ts";
import { lineModule } from "./line.ts";
import { commandModule } from "./command.ts";
import { ntfyModule } from "./ntfy.ts";
import { slackModule } from "./slack.ts";
import { stdoutModule } from "./stdout.ts";
import { telegramModule } from "./telegram.ts";
import { teamsModule } from "./teams.ts";
import type { Target } from "./types.ts";
import { webhookModule } from "./webhook.ts";

/** Every service mailbell can post to. Adding one: its file (a TargetDefinition), one entry here, and its rows in contract.test.ts. */
export const targetModules = [slackModule, webhookModule, discordModule, teamsModule, lineModule, iftttModule, ntfyModule, telegramModule, commandModule, stdoutModule] as const;

type Module = (typeof targetModules)[number];
export type TargetConfig = Module extends TargetModule<infer C> ? C : never;

const byType = new Map<string, TargetModule>(targetModules.map((m) => [m.type, m as unknown as TargetModule]));
const byScheme = new Map<string, TargetModule>(targetModules.flatMap((m) => m.schemes.map((s) => [s, m as unknown as TargetModule] as const)));

/**
 * A target entry is the long form `{ name, type, … }`, or the one-line form: a URL string
 * (`discord://…`), or `{ name, url: "discord://…" }`. The one-line form is expanded here so the
 * service's own schema checks it like any other.
 */
function expand(entry: unknown, ctx: z.RefinementCtx): unknown {
  const asObject = typeof entry === "string" ? { url: entry } : entry;
  if (asObject === null || typeof asObject !== "object" || Array.isArray(asObject)) return entry;
  const obj = asObject as Record<string, unknown>;
  if (obj.type !== undefined || typeof obj.url !== "string") return entry;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(obj.url)?.[1]?.toLowerCase() ?? "";
  const module = byScheme.get(scheme);
  let url: URL;
  try {
    url = new URL(module?.normalizeUrl ? module.normalizeUrl(obj.url) : obj.url);
  } catch {
    ctx.addIssue({ code: "custom", message: `"${obj.url.slice(0, 12)}…" is not a URL. Write a service URL such as discord://… or give type: and its keys.` });
    return z.NEVER;
  }
  if (!module) {
    // http(s) URLs keep their meaning from type:; a bare one cannot say which service it is.
    ctx.addIssue({ code: "custom", message: `unknown service URL scheme "${scheme}://". Known: ${[...byScheme.keys()].map((s) => `${s}://`).join(", ")}; or write type: with the service's keys.` });
    return z.NEVER;
  }
  let options: Record<string, unknown>;
  try {
    options = module.fromUrl(url);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: err instanceof TargetUrlError ? err.message : `cannot read the ${scheme}:// URL: ${(err as Error).message}` });
    return z.NEVER;
  }
  const { url: _oneLine, ...rest } = obj;
  return { name: typeof entry === "string" ? scheme : obj.name, ...options, ...rest, type: module.type };
}

export const targetSchema = z.preprocess(
  expand,
  // Each module's schema is a strict z.object with a literal `type`; the cast only restores that.
  z.discriminatedUnion("type", targetModules.map((m) => m.schema) as never),
) as unknown as z.ZodType<TargetConfig>;

/** `stateFor` gives each target its own persistent store (the daemon passes SQLite's). */
export function createTargets(configs: readonly TargetConfig[], deps: { stdout?: (line: string) => void; stateFor?: (target: string) => TargetStateStore } = {}): Map<string, Target> {
  return new Map(
    configs.map((c) => {
      const targetDeps: TargetDeps = { stdout: deps.stdout, state: deps.stateFor?.(c.name) ?? memoryTargetState() };
      return [c.name, byType.get(c.type)!.create(c as never, targetDeps)];
    }),
  );
}

/** Keys of a target's config that hold secrets (masked when printed). */
export function secretKeys(type: string): readonly string[] {
  return byType.get(type)?.secrets ?? [];
}

export type { Notification, Target, TargetPayload } from "./types.ts";
