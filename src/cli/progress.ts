/**
 * Progress of a long read (backfill, rebuild) on stderr: on a terminal a bar (cli-progress) with
 * done/total, mails per second and time left; otherwise (a log file, a pipe, systemd) one plain
 * line at the start, every few seconds, and at the end, so a log is not filled with redraws.
 */
import cliProgress from "cli-progress";

export interface Progress {
  onFound(total: number): void;
  onRead(done: number): void;
  /** The last line; again does nothing. */
  stop(): void;
}

export interface ProgressOptions {
  /** Where stderr goes is a terminal. */
  tty: boolean;
  /** Writes a line to stderr (the plain form). */
  line(text: string): void;
  /** The plain form's interval; default 5 s. */
  everyMs?: number;
  /** The bar's stream; default process.stderr. */
  stream?: NodeJS.WritableStream;
  now?: () => number;
}

export function createProgress(what: string, options: ProgressOptions): Progress {
  return options.tty ? barProgress(what, options) : plainProgress(what, options);
}

function barProgress(what: string, options: ProgressOptions): Progress {
  const bar = new cliProgress.SingleBar(
    { format: `${what} [{bar}] {value}/{total} mails | {speed} mails/s | {eta_formatted} left`, stream: options.stream ?? process.stderr, hideCursor: true, etaBuffer: 50, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  const now = options.now ?? Date.now;
  let startedAt = now();
  const speed = (done: number) => (done / Math.max((now() - startedAt) / 1000, 0.001)).toFixed(0);
  return {
    onFound(total) {
      startedAt = now();
      bar.start(total, 0, { speed: "0" });
    },
    onRead(done) {
      bar.update(done, { speed: speed(done) });
    },
    stop() {
      bar.stop();
    },
  };
}

function plainProgress(what: string, options: ProgressOptions): Progress {
  const now = options.now ?? Date.now;
  const everyMs = options.everyMs ?? 5000;
  let total = 0;
  let done = 0;
  let startedAt = now();
  let lastAt = 0;
  let saidDone = -1;
  let stopped = false;
  const say = () => {
    lastAt = now();
    saidDone = done;
    const seconds = (lastAt - startedAt) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const left = rate > 0 && total > done ? `, about ${Math.ceil((total - done) / rate)} s left` : "";
    options.line(`${what}: ${done}/${total} mails read (${rate.toFixed(0)} mails/s${left})`);
  };
  return {
    onFound(found) {
      total = found;
      startedAt = now();
      say();
    },
    onRead(n) {
      done = n;
      if (now() - lastAt >= everyMs) say();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (saidDone !== done) say();
    },
  };
}
