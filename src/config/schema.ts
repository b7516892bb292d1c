import { z } from "zod";
import { outboxSchema } from "../outbox/config.ts";
import { statusSchema } from "../daemon/config.ts";
import { accountSchema, watchSchema } from "../imap/config.ts";
import { ruleSchema } from "../rules/config.ts";
import { targetSchema } from "../targets/index.ts";
import { dnsSchema } from "../verify/config.ts";

/**
 * The config file's shape, composed from the parts each area owns (imap/config.ts: accounts and
 * watch; targets/: targets; rules/config.ts: rules; outbox/config.ts; daemon/config.ts: status).
 * Every object is strict, so a misspelt key is an error that names it, not a setting silently
 * ignored. Semantic checks that need the whole file (a rule naming an unknown target, a regex that
 * does not compile) live in validate.ts.
 */
export const configSchema = z.strictObject({
  /** SQLite file that holds checkpoints and totals, relative to the config file. */
  state: z.string().min(1).default("./mailbell.db"),
  locale: z.string().min(2).default("en-US"),
  log: z
    .strictObject({
      level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
      /** json: one JSON object per line; pretty: readable lines; auto: pretty on a terminal, else json. */
      format: z.enum(["json", "pretty", "auto"]).default("auto"),
    })
    .default({ level: "info", format: "auto" }),
  watch: watchSchema.default(watchSchema.parse({})),
  outbox: outboxSchema.default(outboxSchema.parse({})),
  status: statusSchema.optional(),
  /** Where DKIM keys are looked up (rules with verify.dkim). */
  dns: dnsSchema.default(dnsSchema.parse({})),
  accounts: z.array(accountSchema).default([]),
  targets: z.array(targetSchema).default([]),
  rules: z.array(ruleSchema).default([]),
});

export type Config = z.infer<typeof configSchema>;
