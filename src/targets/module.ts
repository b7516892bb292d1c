import { z } from "zod";
import { identifier } from "../settings.ts";
import type { TargetStateStore } from "./state.ts";
import type { Target } from "./types.ts";

/** How fast a service may be sent to: sustained sends per second, and the burst allowed at once. */
export interface Pacing {
  perSecond: number;
  burst: number;
}

/**
 * The service's length limits by part of its payload (`summary` is the one line a digest lists a
 * mail by; others as the service names them: title, text, field…), in characters unless the
 * service's own `cut` counts otherwise. Applied in one place: ServiceTarget.fit.
 */
export type Limits = Readonly<{ summary: number } & Record<string, number>>;

/**
 * What every service declares, Apprise-style, as plain data plus a few functions: its config
 * shape (checked when the config loads, not at send time), its one-line URL form, which keys are
 * secrets, its pacing and length limits, how it makes mail text literal, how it prints itself, and
 * how to build the Target that renders and sends. Adding a service = one file exporting this, one
 * line in index.ts, and its rows in contract.test.ts.
 */
export interface TargetDefinition<Config extends { name: string; type: string } = { name: string; type: string }> {
  type: Config["type"];
  /** URL schemes of the one-line form, e.g. ["discord"]. */
  schemes: readonly string[];
  /** Strict zod object for the long form; must include `name`, `type` and the pacing keys (use targetBase). */
  schema: z.ZodType<Config>;
  /**
   * The one-line form → long-form options (without name). Throws `TargetUrlError` naming what is
   * wrong and what a valid URL looks like.
   */
  fromUrl(url: URL): Record<string, unknown>;
  /** Rewrites the one-line form before it is parsed as a URL, for services whose usual form is not one (a token with a colon where a port would be). */
  normalizeUrl?(raw: string): string;
  /** Config keys whose values are secrets: masked wherever a target is printed. */
  secrets: readonly string[];
  /** The rate the service allows, used unless the config sets rateLimit. */
  pacing: Pacing;
  /**
   * Requests in flight at once unless the config sets concurrency: 1 where the service shows posts
   * in the order they arrive (chats, push notifications) or runs something per post (a command);
   * more where order is not the service's business (a webhook). The table is in README (Targets).
   */
  concurrency: number;
  limits: Limits;
  /** Cuts text to a limit the way this service counts (default: characters, entity-safe, text.ts truncate). */
  cut?(text: string, max: number): string;
  /** Makes mail-derived text literal in the service's markup; the identity where it reads none. */
  escape(text: string): string;
  /** One line for logs and `mailbell check`, every secret masked (the contract test checks it). */
  describe(config: Config): string;
  create(config: Config, deps: TargetDeps): Target;
}

/** The earlier name of TargetDefinition. */
export type TargetModule<Config extends { name: string; type: string } = { name: string; type: string }> = TargetDefinition<Config>;

/** What targets may need from outside; tests replace them. */
export interface TargetDeps {
  /** Where the stdout target prints (default: process stdout). */
  stdout?: (line: string) => void;
  /** The target's own persistent key-value store (default: in memory, lost on exit). */
  state?: TargetStateStore;
}

export class TargetUrlError extends Error {}

/** Keys every target has: its name, and how fast it may be sent to. */
export const targetBase = {
  name: identifier,
  /**
   * Sustained sends per second and the burst allowed at once; defaults per service. `off`: no
   * pacing at all (a receiver of our own that takes whatever comes, as fast as it comes).
   */
  rateLimit: z
    .union([
      z.literal("off").transform((): Pacing => ({ perSecond: Infinity, burst: 1000 })),
      z.strictObject({ perSecond: z.number().positive().max(1000), burst: z.number().int().min(1).max(1000).default(1) }),
    ])
    .optional(),
  /**
   * Requests in flight at once (1–64). Above 1 the posts may arrive out of order; defaults per
   * service (TargetDefinition.concurrency).
   */
  concurrency: z.number().int().min(1).max(64).optional(),
  /** paced: every mail is sent, spaced out. digest: when more than digestAfter wait, one summary message. */
  overflow: z.enum(["paced", "digest"]).default("paced"),
  digestAfter: z.number().int().min(1).max(1000).default(5),
};

/** `https?` URL check with a message saying what was expected. */
export function httpUrl(what: string) {
  return z.url({ protocol: /^https?$/, error: `must be ${what}` });
}

/** Path segments of a URL, decoded, without empty ones. */
export function segments(url: URL): string[] {
  return url.pathname
    .split("/")
    .filter((s) => s !== "")
    .map((s) => decodeURIComponent(s));
}

/** Query parameters as a plain object (last one wins). */
export function query(url: URL): Record<string, string> {
  return Object.fromEntries(url.searchParams.entries());
}

/** `****` for a secret, keeping the first characters of long ones so users can tell them apart. */
export function maskSecret(value: string): string {
  return value.length > 12 ? `${value.slice(0, 4)}****` : "****";
}
