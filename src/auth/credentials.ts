import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import type { AccountConfig } from "../imap/config.ts";
import { ImapError } from "../errors.ts";
import type { Credentials } from "../imap/client.ts";
import { OAuth2TokenSource, type RefreshTokenStore } from "./oauth2.ts";

const execFileP = promisify(execFile);

/**
 * How an account gets its secret at each login: a fixed password, a file or program read every
 * time (so rotated passwords work without a restart), or an OAuth2 access token refreshed as needed.
 */
export function credentialsFor(account: AccountConfig, configDir: string, deps: { fetch?: typeof fetch; tokens?: RefreshTokenStore } = {}): (refused: boolean) => Promise<Credentials> {
  const name = account.name;
  if (account.oauth2) {
    const o = account.oauth2;
    const source = new OAuth2TokenSource({
      account: name,
      client: { provider: o.provider, clientId: o.clientId, clientSecret: o.clientSecret, tokenUrl: o.tokenUrl, scope: o.scope, tenant: o.tenant },
      refreshToken: o.refreshToken,
      fetch: deps.fetch,
      store: deps.tokens,
    });
    return async (refused) => {
      if (refused) source.invalidate();
      return { accessToken: await source.accessToken() };
    };
  }
  if (account.passFile) {
    const file = path.resolve(configDir, account.passFile);
    return async () => {
      try {
        return { pass: firstLine(await readFile(file, "utf8")) };
      } catch (err) {
        throw new ImapError("IMAP_AUTH", name, undefined, `account "${name}": cannot read passFile ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Check the path (relative to the config file) and its permissions.`);
      }
    };
  }
  if (account.passCommand) {
    const [program, ...args] = account.passCommand;
    return async () => {
      try {
        // No shell: the config's words are the program and its arguments, nothing is interpreted.
        const { stdout } = await execFileP(program!, args, { timeout: 30_000, maxBuffer: 64 * 1024, shell: false });
        const pass = firstLine(stdout);
        if (!pass) throw new Error("it printed nothing");
        return { pass };
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { stderr?: string; killed?: boolean };
        const why = e.code === "ENOENT" ? `program "${program}" not found` : e.killed ? "it took longer than 30 s" : (e.stderr?.trim().split("\n").at(-1) ?? e.message);
        throw new ImapError("IMAP_AUTH", name, undefined, `account "${name}": passCommand failed (${why}). Run it by hand to check: ${account.passCommand!.join(" ")}`);
      }
    };
  }
  const pass = account.pass ?? "";
  return async () => ({ pass });
}

function firstLine(text: string): string {
  return text.split(/\r?\n/, 1)[0]!.trim();
}
