import { z } from "zod";

/** Names of accounts, targets and rules: they appear in logs, metrics and the state database. */
export const identifier = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "use letters, digits, '.', '_' or '-' (it appears in logs, metrics and the state database)");
