import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { z } from "zod";
import { ConfigError } from "../errors.ts";
import { tlsModes } from "../imap/config.ts";
import { ruleSchema } from "../rules/config.ts";
import { identifier } from "../settings.ts";

/**
 * Provider and rule presets for `mailbell init`: data files under presets/ (shipped with the
 * package), read and checked here so a mistake in one is found by the tests, not by a user.
 */

/** presets/ at the package root: the same two levels up from src/init/ and from dist/init/. */
export const presetsDir = fileURLToPath(new URL("../../presets/", import.meta.url));

export const signInMethods = ["app-password", "oauth2", "password-command"] as const;
export type SignIn = (typeof signInMethods)[number];

const providerSchema = z.strictObject({
  name: identifier,
  title: z.string().min(1),
  /** Position in the list init offers. */
  order: z.number().int(),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  tls: z.enum(tlsModes),
  /** The ways to sign in this provider allows; the first is the default. */
  signIn: z.array(z.enum(signInMethods)).min(1),
  /** The `mailbell auth` provider, when OAuth2 is offered. */
  oauth2: z.enum(["google", "microsoft"]).optional(),
  /** Where the user makes an app password, said in the comment above `pass:`. */
  appPasswordUrl: z.string().min(1).optional(),
  /** The verify.authResults preset that is correct on this provider's mail. */
  authResults: z.enum(["gmail", "microsoft"]).optional(),
});
export type ProviderPreset = z.infer<typeof providerSchema>;

const segment = z.union([z.string().min(1), z.number().int()]);

const rulePresetSchema = z.strictObject({
  name: identifier,
  title: z.string().min(1),
  order: z.number().int(),
  /** Signing domains, for verify.dkim where the provider's verdict (authResults) cannot be used. */
  dkim: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /** What init asks for this preset (a sender, a keyword): each answer is set at `set` in the rule. */
  params: z.array(z.strictObject({ name: z.string().regex(/^[a-z][a-z-]*$/), question: z.string().min(1), set: z.array(segment).min(1) })).default([]),
  /** The rule without name, notify and verify, which init fills in. */
  rule: z.record(z.string(), z.unknown()),
  /** Mails written for this preset, with what the rule must make of each. */
  samples: z
    .array(
      z.strictObject({
        file: z.string().min(1),
        params: z.record(z.string(), z.string()).default({}),
        matched: z.boolean(),
        amount: z.string().optional(),
        currency: z.string().optional(),
      }),
    )
    .min(2),
});
export type RulePreset = z.infer<typeof rulePresetSchema>;

export interface Presets {
  providers: ProviderPreset[];
  rules: RulePreset[];
}

/** Every preset in the folder, each checked; in the order init offers them. */
export async function loadPresets(dir = presetsDir): Promise<Presets> {
  const providers = await loadFolder(path.join(dir, "providers"), providerSchema);
  const rules = await loadFolder(path.join(dir, "rules"), rulePresetSchema);
  for (const { preset, file } of rules) {
    const problems = ruleProblems(preset);
    if (problems.length > 0) throw new ConfigError(file, problems.map((message) => ({ path: "rule", message })));
  }
  return { providers: providers.map((p) => p.preset), rules: rules.map((r) => r.preset) };
}

async function loadFolder<T extends { name: string; order: number }>(dir: string, schema: z.ZodType<T>): Promise<{ preset: T; file: string }[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith(".yaml")).sort();
  const out: { preset: T; file: string }[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    const parsed = schema.safeParse(parse(await readFile(file, "utf8")));
    if (!parsed.success) throw new ConfigError(file, parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })));
    if (`${parsed.data.name}.yaml` !== name) throw new ConfigError(file, [{ path: "name", message: `must be the file's name without .yaml ("${name.slice(0, -5)}")` }]);
    out.push({ preset: parsed.data, file });
  }
  return out.sort((a, b) => a.preset.order - b.preset.order);
}

/** The preset's rule, completed with a sample name and target, must be one the config accepts. */
function ruleProblems(preset: RulePreset): string[] {
  const parsed = ruleSchema.safeParse({ ...preset.rule, name: preset.name, notify: ["target"] });
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}
