import { existsSync } from "node:fs";
import { loadConfig, type LoadedConfig } from "../config/load.ts";
import { MailbellError } from "../errors.ts";
import { State } from "../store/sqlite/state.ts";
import type { CliIO } from "./io.ts";

/**
 * Runs a command that looks at (or asks things of) a daemon's state file: the config is read
 * without its secrets (unset `${VAR}`s become placeholders), and a state file that does not exist
 * yet is an error rather than a new empty one. `readOnly` (a listing) opens it without asking to
 * write it, so a user who may only read the daemon's state can still look.
 */
export async function withState<T>(config: string, io: CliIO, fn: (state: State, loaded: LoadedConfig) => T | Promise<T>, options: { readOnly?: boolean } = {}): Promise<T> {
  const loaded = await loadConfig(config, io.env, { missingEnv: "placeholder" });
  if (!existsSync(loaded.statePath)) {
    throw new MailbellError("STATE", `no state database at ${loaded.statePath} yet: mailbell has not run with this config (or state: points elsewhere).`);
  }
  const state = State.open(loaded.statePath, { readOnly: options.readOnly });
  try {
    return await fn(state, loaded);
  } finally {
    state.close();
  }
}
