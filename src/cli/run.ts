import { loadConfig } from "../config/load.ts";
import { runDaemon } from "../daemon/run.ts";
import type { Logger } from "../log.ts";
import { createLogger } from "../pino-logger.ts";

export interface RunCommandOptions {
  config: string;
  logLevel?: string;
  signal: AbortSignal;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
}

/** `mailbell run`: watch until SIGINT/SIGTERM. */
export async function runCommand(options: RunCommandOptions): Promise<number> {
  const loaded = await loadConfig(options.config, options.env);
  const logger = options.logger ?? createLogger({ level: options.logLevel ?? loaded.config.log.level });
  await runDaemon(loaded, { logger, signal: options.signal });
  return 0;
}
