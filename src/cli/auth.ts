import { endpoints, oauth2Presets, type OAuth2Provider } from "../auth/oauth2.ts";
import { deviceCodeFlow, loopbackRedirectFlow } from "../auth/flows.ts";
import { UsageError } from "../errors.ts";
import type { CliIO } from "./io.ts";

export interface AuthCommandOptions {
  provider: string | undefined;
  clientId?: string;
  clientSecret?: string;
  tenant?: string;
  flow?: string;
  tokenUrl?: string;
  authorizeUrl?: string;
  deviceUrl?: string;
  scope?: string;
}

/**
 * `mailbell auth google|microsoft|custom`: signs in once and prints the refresh token to put in
 * the config. The token is printed on stdout only, never logged.
 */
export async function authCommand(o: AuthCommandOptions, io: CliIO): Promise<number> {
  const provider = o.provider as OAuth2Provider | undefined;
  if (provider !== "google" && provider !== "microsoft" && provider !== "custom") {
    throw new UsageError(`mailbell auth needs a provider: google, microsoft or custom (got ${o.provider ?? "nothing"}).`);
  }
  if (!o.clientId) {
    throw new UsageError(
      `mailbell auth ${provider} needs --client-id: register an app (Google Cloud console → OAuth client "Desktop app"; Microsoft Entra → app registration with "Allow public client flows") and pass its client id.`,
    );
  }
  if (provider === "custom" && !o.tokenUrl) throw new UsageError("mailbell auth custom needs --token-url, and --device-url or --authorize-url.");
  const base = endpoints({ provider, clientId: o.clientId, clientSecret: o.clientSecret, tenant: o.tenant, tokenUrl: o.tokenUrl, scope: o.scope });
  const ends = { ...base, authorizeUrl: o.authorizeUrl ?? base.authorizeUrl, deviceUrl: o.deviceUrl ?? base.deviceUrl };
  const flow = o.flow ?? (provider === "custom" ? (ends.deviceUrl ? "device" : "redirect") : oauth2Presets[provider].flow);
  if (flow !== "device" && flow !== "redirect") throw new UsageError(`--flow must be device or redirect (got ${flow}).`);
  const say = (line: string) => io.err(line);
  const options = { clientId: o.clientId, clientSecret: o.clientSecret, endpoints: ends, say };
  const refreshToken = flow === "device" ? await deviceCodeFlow(options) : await loopbackRedirectFlow(options);
  io.err("Signed in. Put this under the account in your config (keep the token secret, e.g. in an environment variable):");
  io.err(
    [
      "oauth2:",
      `  provider: ${provider}`,
      `  clientId: ${o.clientId}`,
      ...(o.clientSecret ? ["  clientSecret: ${OAUTH_CLIENT_SECRET}"] : []),
      ...(o.tenant ? [`  tenant: ${o.tenant}`] : []),
      ...(provider === "custom" ? [`  tokenUrl: ${ends.tokenUrl}`] : []),
      "  refreshToken: ${MAILBELL_REFRESH_TOKEN}",
      "",
      "The refresh token (stdout):",
    ].join("\n"),
  );
  io.out(refreshToken);
  return 0;
}
