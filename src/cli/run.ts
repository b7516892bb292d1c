import { loadConfig } from "../config/load.ts";
import { runDaemon } from "../daemon/run.ts";
import type { Logger } from "../log.ts";
import { createLogger, type LogFormat } from "../pino-logger.ts";

export interface RunCommandOptions {
  config: string;
  /** From the command line; wins over the config's log.level. */
  logLevel?: string;
  /** From the command line; wins over the config's log.format. */
  logFormat?: LogFormat;
  signal: AbortSignal;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
  /** Told the logger once the config has chosen it, so the CLI logs signals and failures in the same stream. */
  onLogger?: (logger: Logger) => void;
}

/** `mailbell run`: watch until SIGINT/SIGTERM. */
export async function runCommand(options: RunCommandOptions): Promise<number> {
  const loaded = await loadConfig(options.config, options.env);
  const logger = options.logger ?? createLogger({ level: options.logLevel ?? loaded.config.log.level, format: options.logFormat ?? loaded.config.log.format });
  options.onLogger?.(logger);
  await runDaemon(loaded, { logger, signal: options.signal });
  return 0;
}
