import { z } from "zod";

/**
 * Building blocks that every area's config schema uses. Each area owns its part of the config
 * (rules/config.ts, imap/config.ts, …); config/ only composes them and loads the file.
 */

/** Names of accounts, targets and rules: they appear in logs, metrics and the state database. */
export const identifier = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "use letters, digits, '.', '_' or '-' (it appears in logs, metrics and the state database)");

/** A number of seconds (fractions allowed) within bounds. */
export const seconds = (min: number, max: number) => z.number().min(min).max(max);
