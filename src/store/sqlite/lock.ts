import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { MailbellError } from "../../errors.ts";
import { notWritable, stateWriteProblem } from "./db.ts";

/**
 * One daemon per state file: two would both send every queued notification. The lock is a file
 * next to the database holding the owner's pid; one left by a process that died is taken over.
 */
export function lockState(statePath: string): { release(): void } {
  const file = `${statePath}.lock`;
  const problem = stateWriteProblem(statePath);
  if (problem) throw notWritable(statePath, problem);
  mkdirSync(path.dirname(file), { recursive: true });
  try {
    const fd = openSync(file, "wx");
    writeSync(fd, String(process.pid));
    closeSync(fd);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new MailbellError("STATE", `cannot create the lock file ${file}: ${(err as Error).message}.`);
    const owner = Number(readFileSync(file, "utf8").trim());
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      throw new MailbellError("STATE", `another mailbell (pid ${owner}) is using the state file ${statePath}. Stop it first, or give this one its own state: file. (If no mailbell is running, delete ${file}.)`);
    }
    writeFileSync(file, String(process.pid));
  }
  return {
    release() {
      try {
        if (readFileSync(file, "utf8").trim() === String(process.pid)) unlinkSync(file);
      } catch {
        // already gone
      }
    },
  };
}

/** The pid of another live process holding the state lock (a running daemon), without taking it. */
export function stateLockOwner(statePath: string): number | undefined {
  let owner: number;
  try {
    owner = Number(readFileSync(`${statePath}.lock`, "utf8").trim());
  } catch {
    return undefined;
  }
  return Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner) ? owner : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
