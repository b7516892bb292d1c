import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig, parseConfig } from "../../src/config/load.ts";
import { startDaemon, type ReloadOutcome } from "../../src/daemon/run.ts";
import { CaptureLogger } from "./logger.ts";

export interface RunningMailbell {
  logger: CaptureLogger;
  /** Resolves when the daemon has returned. */
  done: Promise<void>;
  stop(): Promise<void>;
  /** Reads the config file again, as SIGHUP does. */
  reload(): Promise<ReloadOutcome>;
}

/** A temp folder with mailbell.yaml written from `yaml`; returns its path. */
export function writeConfig(yaml: string, dir = mkdtempSync(path.join(tmpdir(), "mailbell-test-"))): string {
  const file = path.join(dir, "mailbell.yaml");
  writeFileSync(file, yaml);
  return file;
}

/** Runs the daemon in this process, as `mailbell run` would, until stop(). */
export function startMailbell(configFile: string, yaml: string, env: NodeJS.ProcessEnv = {}, logger = new CaptureLogger()): RunningMailbell {
  const loaded = parseConfig(yaml, configFile, env);
  const controller = new AbortController();
  const daemon = startDaemon(loaded, { logger, signal: controller.signal, reloadConfig: () => loadConfig(configFile, env) });
  const done = daemon.done;
  return {
    logger,
    done,
    reload: () => daemon.reload(),
    async stop() {
      controller.abort();
      await done;
    },
  };
}

/** Waits until every watcher logged "watching" (connected and checkpointed). */
export async function waitUntilWatching(logger: CaptureLogger, count = 1, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (logger.find(/^watching$/).length < count) {
    if (Date.now() > deadline) throw new Error(`only ${logger.find(/^watching$/).length} of ${count} mailbox(es) started watching`);
    await new Promise((r) => setTimeout(r, 20));
  }
  // The IDLE command is written right after; give it a moment to reach the server.
  await new Promise((r) => setTimeout(r, 100));
}
