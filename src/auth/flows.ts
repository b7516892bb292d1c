import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { MailbellError } from "../errors.ts";
import { postForm } from "./oauth2.ts";

export interface FlowEndpoints {
  tokenUrl: string;
  authorizeUrl?: string;
  deviceUrl?: string;
  scope: string;
}

export interface FlowOptions {
  clientId: string;
  clientSecret?: string;
  endpoints: FlowEndpoints;
  /** Tells the user what to do (open this URL, enter this code). */
  say: (line: string) => void;
  fetch?: typeof fetch;
  /** Gives up after this long (default 10 minutes). */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

function authError(message: string): MailbellError {
  return new MailbellError("IMAP_AUTH", message);
}

/**
 * RFC 8628 device authorization: the user opens a URL on any device and types a short code, while
 * we poll the token endpoint. Microsoft 365 supports it for IMAP.
 */
export async function deviceCodeFlow(o: FlowOptions): Promise<string> {
  if (!o.endpoints.deviceUrl) throw new MailbellError("USAGE", "this provider has no device-code endpoint; use --flow redirect.");
  const form = { client_id: o.clientId, scope: o.endpoints.scope, ...(o.clientSecret ? { client_secret: o.clientSecret } : {}) };
  const start = await postForm(o.endpoints.deviceUrl, form, o.fetch);
  const d = start.json as Record<string, unknown>;
  if (start.status !== 200 || typeof d.device_code !== "string") {
    throw authError(`the device-code request was refused: ${String(d.error ?? start.status)}${d.error_description ? `: ${String(d.error_description)}` : ""}. Check --client-id and that the app allows public client flows.`);
  }
  o.say(`Open ${String(d.verification_uri ?? d.verification_url)} and enter the code ${String(d.user_code)}`);
  let intervalMs = (typeof d.interval === "number" ? d.interval : 5) * 1000;
  const deadline = Date.now() + Math.min(o.timeoutMs ?? 600_000, (typeof d.expires_in === "number" ? d.expires_in : 900) * 1000);
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  while (Date.now() < deadline) {
    await sleep(intervalMs);
    const poll = await postForm(o.endpoints.tokenUrl, { grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: d.device_code, client_id: o.clientId, ...(o.clientSecret ? { client_secret: o.clientSecret } : {}) }, o.fetch);
    if (poll.status === 200 && typeof poll.json.refresh_token === "string") return poll.json.refresh_token;
    if (poll.status === 200) throw authError("the provider granted access but sent no refresh token; the scope must include offline access (Microsoft: offline_access).");
    const error = poll.json.error;
    if (error === "authorization_pending") continue;
    if (error === "slow_down") {
      intervalMs += 5000;
      continue;
    }
    throw authError(`sign-in did not complete: ${error ?? poll.status}${poll.json.error_description ? `: ${poll.json.error_description}` : ""}.`);
  }
  throw authError("the code expired before sign-in completed; run mailbell auth again.");
}

/**
 * Authorization code with PKCE and a loopback redirect (RFC 8252): the user opens a URL in a
 * browser on this machine, and the provider sends the code back to a port we listen on, on
 * 127.0.0.1 only. Google requires this for the Gmail scope.
 */
export async function loopbackRedirectFlow(o: FlowOptions): Promise<string> {
  if (!o.endpoints.authorizeUrl) throw new MailbellError("USAGE", "this provider has no authorization endpoint; use --flow device.");
  const state = randomBytes(16).toString("hex");
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  let resolveCode!: (code: string) => void;
  let rejectCode!: (err: Error) => void;
  const codePromise = new Promise<string>((resolve, reject) => {
    resolveCode = resolve;
    rejectCode = reject;
  });
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname !== "/callback") {
      res.writeHead(404).end();
      return;
    }
    const params = url.searchParams;
    if (params.get("state") !== state) {
      res.writeHead(400, { "content-type": "text/plain" }).end("state does not match; start mailbell auth again");
      return;
    }
    const error = params.get("error");
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end(error ? `Sign-in failed: ${error}. You can close this tab.` : "mailbell is signed in. You can close this tab.");
    if (error) rejectCode(authError(`sign-in failed: ${error}${params.get("error_description") ? `: ${params.get("error_description")}` : ""}.`));
    else if (params.get("code")) resolveCode(params.get("code")!);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`;
  try {
    const authorize = new URL(o.endpoints.authorizeUrl);
    for (const [k, v] of Object.entries({
      response_type: "code",
      client_id: o.clientId,
      redirect_uri: redirectUri,
      scope: o.endpoints.scope,
      state,
      code_challenge: challenge,
      code_challenge_method: "S256",
      // Google issues a refresh token only with offline access, and again only on a fresh consent.
      access_type: "offline",
      prompt: "consent",
    })) {
      authorize.searchParams.set(k, v);
    }
    o.say(`Open this URL in a browser on this machine and sign in:\n${authorize.href}`);
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(authError("no sign-in within the time limit; run mailbell auth again.")), o.timeoutMs ?? 600_000).unref());
    const code = await Promise.race([codePromise, timeout]);
    const exchange = await postForm(
      o.endpoints.tokenUrl,
      { grant_type: "authorization_code", code, redirect_uri: redirectUri, client_id: o.clientId, code_verifier: verifier, ...(o.clientSecret ? { client_secret: o.clientSecret } : {}) },
      o.fetch,
    );
    if (exchange.status === 200 && typeof exchange.json.refresh_token === "string") return exchange.json.refresh_token;
    throw authError(`the code exchange failed: ${exchange.json.error ?? exchange.status}${exchange.json.error_description ? `: ${exchange.json.error_description}` : ""}${exchange.status === 200 ? " (no refresh token: revoke mailbell's access in your account and try again)" : ""}.`);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}
