import os from "node:os";
import { Worker } from "node:worker_threads";
import type { DecodeParts } from "../imap/fetch.ts";
import type { Logger } from "../log.ts";
import { readFetchedParts, type FetchedParts } from "../mail/parts.ts";
import type { NormalizedMail } from "../mail/types.ts";

/** The worker's entry beside this file: .ts when run from source, .js from dist/. */
const workerFile = new URL(import.meta.url.endsWith(".ts") ? "./decode-worker.ts" : "./decode-worker.js", import.meta.url);

/**
 * Rounds with less text than this are decoded on the calling thread. Headers alone (a catch-up
 * where no rule reads most bodies) and a mail or two from IDLE decode faster here than the hop to
 * the thread and back, and a thread that never starts costs no memory: measured on the 10,000-mail
 * catch-up, starting it for header-only rounds was 0.3 s slower and peaked ~25 MB higher.
 */
const defaultInlineBelowBytes = 256 * 1024;

export interface DecoderOptions {
  workerFile?: URL;
  idleStopMs?: number;
  inlineBelowBytes?: number;
  /**
   * CPUs this process may run on (default os.availableParallelism(), which follows taskset and
   * cpusets). With one, the thread only adds the copies to it and back: with mailbell pinned to
   * one core (taskset), the 10,000-mail catch-up that reads every body took 7.5–8.0 s and peaked at
   * 199–202 MB with it, 5.9–6.6 s and 177–188 MB without.
   */
  cpus?: () => number;
}

export interface Decoder {
  decode: DecodeParts;
  /** Whether the thread is up (it starts with the first round big enough and stops when idle). */
  readonly running: boolean;
  close(): Promise<void>;
}

/**
 * Decoding mail (transfer encodings, charsets, HTML to text) is most of the CPU a catch-up costs;
 * one worker thread takes it off the main thread, so a backlog of thousands decodes on the second
 * core while the main thread fetches, queues and sends. Rounds are decoded in order. If the worker
 * dies, the rounds it held and every later one are decoded on the main thread instead: slower, but
 * nothing is lost and nothing stops.
 */
export function startDecoder(logger: Logger, options: DecoderOptions = {}): Decoder {
  const idleStopMs = options.idleStopMs ?? 30_000;
  const inlineBelowBytes = options.inlineBelowBytes ?? defaultInlineBelowBytes;
  const cpus = options.cpus ?? os.availableParallelism;
  let worker: Worker | undefined;
  let broken = false;
  let nextId = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  const waiting = new Map<number, { round: FetchedParts[]; resolve: (mails: NormalizedMail[]) => void }>();

  const fallBack = (reason: string): void => {
    if (broken) return;
    broken = true;
    worker = undefined;
    logger.error({ err: reason }, "the mail decoding thread failed; decoding on the main thread from now on");
    for (const { round, resolve } of waiting.values()) resolve(round.map(readFetchedParts));
    waiting.clear();
  };

  const start = (): Worker => {
    // It holds a few rounds at a time: without a cap its old generation grows with a long
    // catch-up's garbage (+270 MB peak RSS over 10,000 mails). The young generation is where
    // decoding's garbage dies; at 4 MB scavenges took a third of the thread (10,000 mails queued in
    // 7.0 s), at 32 MB 5.3 s for +30 MB.
    const started = new Worker(options.workerFile ?? workerFile, { resourceLimits: { maxYoungGenerationSizeMb: 32, maxOldGenerationSizeMb: 96 } });
    started.on("message", ({ id, mails }: { id: number; mails: NormalizedMail[] }) => {
      waiting.get(id)?.resolve(mails);
      waiting.delete(id);
      if (waiting.size > 0) return;
      // An idle worker must not keep a stopping process alive, nor its heap a quiet one's memory.
      started.unref();
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        if (worker !== started || waiting.size > 0) return;
        worker = undefined;
        void started.terminate();
      }, idleStopMs);
      idleTimer.unref();
    });
    started.on("error", (err) => fallBack(err.message));
    started.on("exit", (code) => {
      if (worker === started) fallBack(`exited with code ${code}`);
    });
    return started;
  };

  return {
    get running() {
      return worker !== undefined;
    },
    decode: async (round) => {
      if (broken || textBytes(round) < inlineBelowBytes || (!worker && cpus() < 2)) return round.map(readFetchedParts);
      clearTimeout(idleTimer);
      worker ??= start();
      worker.ref();
      const id = nextId++;
      return new Promise<NormalizedMail[]>((resolve) => {
        waiting.set(id, { round, resolve });
        try {
          const { compact, transfer } = compactRound(round);
          worker!.postMessage({ id, round: compact }, transfer);
        } catch (err) {
          fallBack(`could not hand mail to it: ${(err as Error).message}`);
        }
      });
    },
    async close() {
      clearTimeout(idleTimer);
      const stopping = worker;
      worker = undefined;
      await stopping?.terminate();
    },
  };
}

function textBytes(round: FetchedParts[]): number {
  let bytes = 0;
  for (const fetched of round) for (const body of fetched.bodies.values()) bytes += body.length;
  return bytes;
}

/**
 * Copies each buffer of the round into one of its own and hands those over instead of copying
 * again: a Buffer from imapflow is often a view into a much larger chunk of the socket stream, and
 * postMessage would otherwise copy the whole chunk for every message.
 */
function compactRound(round: FetchedParts[]): { compact: FetchedParts[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = [];
  const own = (bytes: Uint8Array): Uint8Array => {
    const copy = new Uint8Array(bytes);
    transfer.push(copy.buffer);
    return copy;
  };
  const compact = round.map((fetched) => ({
    uid: fetched.uid,
    plan: fetched.plan,
    header: own(fetched.header),
    bodies: new Map([...fetched.bodies].map(([key, value]) => [key, own(value)])),
  }));
  return { compact, transfer };
}
