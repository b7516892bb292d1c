import { loadConfig } from "../config/load.ts";
import { startDaemon } from "../daemon/run.ts";
import type { Logger } from "../log.ts";
import { createLogger, resolveLogFormat, type LogFormat } from "../pino-logger.ts";

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
  /** Each "reload" event on it reads the config file again and applies it (SIGHUP). */
  reloads?: EventTarget;
}

/** `mailbell run`: watch until SIGINT/SIGTERM; a "reload" (SIGHUP) applies the edited config. */
export async function runCommand(options: RunCommandOptions): Promise<number> {
  // Listening before the config is read: a SIGHUP sent while mailbell starts is not lost.
  let asked = false;
  let reload = (): void => void (asked = true);
  const onReload = (): void => reload();
  options.reloads?.addEventListener("reload", onReload);
  try {
    const loaded = await loadConfig(options.config, options.env);
    // Decided here, on the main thread (a worker cannot tell whether fd 2 is a terminal), so the
    // delivery thread's own logger on fd 2 writes lines exactly like this one.
    const format = resolveLogFormat(options.logFormat ?? loaded.config.log.format, process.stderr.isTTY === true);
    const level = options.logLevel ?? loaded.config.log.level;
    const logger = options.logger ?? createLogger({ level, format });
    options.onLogger?.(logger);
    const deliveryLog = options.logger ? undefined : ({ to: "fd", fd: 2, level, format } as const);
    const daemon = startDaemon(loaded, { logger, signal: options.signal, reloadConfig: () => loadConfig(options.config, options.env), ...(deliveryLog ? { deliveryLog } : {}) });
    // The outcome is logged by the daemon, refused or applied.
    reload = () => void daemon.reload();
    if (asked) reload();
    await daemon.done;
    return 0;
  } finally {
    options.reloads?.removeEventListener("reload", onReload);
  }
}
