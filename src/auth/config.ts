import { z } from "zod";

/** An account's `oauth2:` block, owned by auth/. */

export const oauth2Providers = ["google", "microsoft", "custom"] as const;

export const oauth2Schema = z.strictObject({
  /** google and microsoft fill in the token endpoint and scope; custom needs tokenUrl. */
  provider: z.enum(oauth2Providers),
  clientId: z.string().min(1),
  /** Not needed for public clients (Microsoft's device-code apps). */
  clientSecret: z.string().min(1).optional(),
  /** From `mailbell auth google|microsoft`; kept secret like a password. */
  refreshToken: z.string().min(1),
  tokenUrl: z.url({ protocol: /^https?$/ }).optional(),
  scope: z.string().min(1).optional(),
  /** Microsoft tenant (default "common"). */
  tenant: z.string().min(1).optional(),
});

export type OAuth2Config = z.infer<typeof oauth2Schema>;
