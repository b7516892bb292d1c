import type { CliIO } from "../../src/cli/io.ts";
import { main } from "../../src/cli/main.ts";

/** Runs `mailbell ARGS` in this process, as bin/mailbell.js would, and collects what it printed. */
export async function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: CliIO = { out: (t) => void (out += `${t}\n`), err: (t) => void (err += `${t}\n`), env };
  return { code: await main(args, io), out, err };
}
