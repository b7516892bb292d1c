import { createHash } from "node:crypto";
import { ImapError } from "../errors.ts";

/** Where a refresh token the provider rotated is kept between runs (the state database). */
export interface RefreshTokenStore {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

/** Token endpoints and scopes of the providers mailbell knows; `custom` gives its own. */
export const oauth2Presets = {
  google: {
    tokenUrl: "https://oauth2.googleapis.com/token",
    authorizeUrl: "https://accounts.google.com/o/oauth2/v2/auth",
    deviceUrl: "https://oauth2.googleapis.com/device/code",
    scope: "https://mail.google.com/",
    // Google's device flow does not grant the Gmail scope; a loopback redirect does.
    flow: "redirect",
  },
  microsoft: {
    tokenUrl: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
    authorizeUrl: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
    deviceUrl: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
    scope: "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    flow: "device",
  },
} as const;

export type OAuth2Provider = keyof typeof oauth2Presets | "custom";

export interface OAuth2Client {
  provider: OAuth2Provider;
  clientId: string;
  clientSecret?: string;
  tokenUrl?: string;
  scope?: string;
  tenant?: string;
}

/** The endpoints for a client: the preset's, with any the config overrides. */
export function endpoints(client: OAuth2Client): { tokenUrl: string; authorizeUrl?: string; deviceUrl?: string; scope: string } {
  const preset = client.provider === "custom" ? undefined : oauth2Presets[client.provider];
  const tenant = client.tenant ?? "common";
  const fill = (u: string | undefined) => u?.replace("{tenant}", encodeURIComponent(tenant));
  const tokenUrl = client.tokenUrl ?? fill(preset?.tokenUrl);
  if (!tokenUrl) throw new Error("oauth2: provider custom needs tokenUrl");
  return { tokenUrl, authorizeUrl: fill(preset?.authorizeUrl), deviceUrl: fill(preset?.deviceUrl), scope: client.scope ?? preset?.scope ?? "" };
}

export interface TokenResponse {
  access_token?: string;
  refresh_token?: string;
  expires_in?: number;
  error?: string;
  error_description?: string;
  interval?: number;
}

/** POSTs a form to a token endpoint and returns its JSON, whatever the status (OAuth errors are JSON 400s). */
export async function postForm(url: string, form: Record<string, string>, fetchImpl: typeof fetch = fetch, timeoutMs = 15_000): Promise<{ status: number; json: TokenResponse & Record<string, unknown> }> {
  const res = await fetchImpl(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams(form).toString(),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json: TokenResponse & Record<string, unknown>;
  try {
    json = JSON.parse(text) as TokenResponse & Record<string, unknown>;
  } catch {
    json = { error: "invalid_response", error_description: `HTTP ${res.status}, not JSON: ${text.slice(0, 120)}` };
  }
  return { status: res.status, json };
}

/**
 * Access tokens from a refresh token, cached until shortly before they expire. `invalidate()`
 * after a refused login makes the next call fetch a fresh one: a provider may revoke a token
 * before its stated expiry.
 */
export class OAuth2TokenSource {
  readonly #client: OAuth2Client;
  readonly #refreshToken: string;
  readonly #account: string;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  #cached: { token: string; expiresAt: number } | undefined;
  #inFlight: Promise<string> | undefined;
  readonly #store: RefreshTokenStore | undefined;

  constructor(options: { account: string; client: OAuth2Client; refreshToken: string; fetch?: typeof fetch; now?: () => number; store?: RefreshTokenStore }) {
    this.#client = options.client;
    this.#refreshToken = options.refreshToken;
    this.#account = options.account;
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
    this.#store = options.store;
  }

  /**
   * Providers may answer a refresh with a new refresh token and retire the old one. The newest is
   * kept in the store, tied to the token in the config: after a new `mailbell auth`, the config's
   * token wins again.
   */
  #currentRefreshToken(): string {
    const saved = this.#store?.get(`refresh:${this.#account}`);
    if (!saved) return this.#refreshToken;
    const { from, token } = JSON.parse(saved) as { from: string; token: string };
    return from === fingerprint(this.#refreshToken) ? token : this.#refreshToken;
  }

  /** Refreshes this long before expiry, so a token never runs out during a login. */
  static readonly skewMs = 60_000;

  async accessToken(): Promise<string> {
    if (this.#cached && this.#now() < this.#cached.expiresAt - OAuth2TokenSource.skewMs) return this.#cached.token;
    // One refresh at a time, however many mailboxes of the account reconnect at once.
    this.#inFlight ??= this.#refresh().finally(() => (this.#inFlight = undefined));
    return this.#inFlight;
  }

  invalidate(): void {
    this.#cached = undefined;
  }

  async #refresh(): Promise<string> {
    const { tokenUrl, scope } = endpoints(this.#client);
    const refreshToken = this.#currentRefreshToken();
    const form: Record<string, string> = { grant_type: "refresh_token", refresh_token: refreshToken, client_id: this.#client.clientId };
    if (this.#client.clientSecret) form.client_secret = this.#client.clientSecret;
    if (scope && this.#client.provider === "microsoft") form.scope = scope;
    let reply: Awaited<ReturnType<typeof postForm>>;
    try {
      reply = await postForm(tokenUrl, form, this.#fetch);
    } catch (err) {
      throw new ImapError("IMAP_CONNECT", this.#account, undefined, `account "${this.#account}": cannot reach the OAuth2 token endpoint ${new URL(tokenUrl).host} (${(err as Error).message}); will retry.`, { cause: err });
    }
    const { status, json } = reply;
    if (status >= 200 && status < 300 && typeof json.access_token === "string") {
      const lifetimeMs = (typeof json.expires_in === "number" ? json.expires_in : 3600) * 1000;
      this.#cached = { token: json.access_token, expiresAt: this.#now() + lifetimeMs };
      if (typeof json.refresh_token === "string" && json.refresh_token !== refreshToken) {
        this.#store?.set(`refresh:${this.#account}`, JSON.stringify({ from: fingerprint(this.#refreshToken), token: json.refresh_token }));
      }
      return json.access_token;
    }
    const reason = `${json.error ?? `HTTP ${status}`}${json.error_description ? `: ${json.error_description}` : ""}`;
    if (json.error === "invalid_grant" || json.error === "invalid_client" || json.error === "unauthorized_client") {
      throw new ImapError(
        "IMAP_AUTH",
        this.#account,
        undefined,
        `account "${this.#account}": the OAuth2 provider refused the refresh token (${reason}). Run \`mailbell auth ${this.#client.provider === "custom" ? "<provider>" : this.#client.provider}\` again and put the new refreshToken in the config.`,
      );
    }
    throw new ImapError("IMAP_CONNECT", this.#account, undefined, `account "${this.#account}": the OAuth2 token endpoint answered ${reason}; will retry.`);
  }
}

function fingerprint(token: string): string {
  return createHash("sha256").update(token).digest("hex").slice(0, 16);
}
