import { createInterface, type Interface } from "node:readline/promises";
import { UsageError } from "../errors.ts";

/** Asks the user one question at a time on a terminal; Enter takes the default. */
export interface Asker {
  choose<T extends string>(question: string, choices: readonly { value: T; title: string }[], preset: T): Promise<T>;
  /** `problem` says what is wrong with an answer, which is then asked again. */
  text(question: string, preset?: string, problem?: (answer: string) => string | undefined): Promise<string>;
  close(): void;
}

export interface Terminal {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Both ends are a terminal: a person can answer. */
  interactive: boolean;
}

export const processTerminal = (): Terminal => ({ input: process.stdin, output: process.stdout, interactive: Boolean(process.stdin.isTTY && process.stdout.isTTY) });

/**
 * Numbered choices, read with node:readline: a number or the value itself picks one, anything else
 * asks again. Ctrl-C or the end of input stops with a UsageError (nothing is written by then).
 */
export function terminalAsker(terminal: Terminal): Asker {
  const rl = createInterface({ input: terminal.input, output: terminal.output, terminal: true });
  // A pending question does not end when the interface closes (Ctrl-C, end of input): the signal ends it.
  const stopped = new AbortController();
  rl.on("close", () => stopped.abort());
  // Without a listener, Ctrl-C would only pause the input and leave the question waiting forever.
  rl.on("SIGINT", () => rl.close());
  const write = (text: string) => terminal.output.write(text);
  return {
    async choose(question, choices, preset) {
      write(`\n${question}\n${choices.map((c, i) => `  ${i + 1}) ${c.title}`).join("\n")}\n`);
      const presetIndex = choices.findIndex((c) => c.value === preset) + 1;
      for (;;) {
        const answer = (await ask(rl, stopped.signal, `Choose 1-${choices.length} [${presetIndex}]: `)).trim();
        if (answer === "") return preset;
        const byNumber = /^\d+$/.test(answer) ? choices[Number(answer) - 1] : undefined;
        const picked = byNumber ?? choices.find((c) => c.value === answer.toLowerCase());
        if (picked) return picked.value;
        write(`"${answer}" is not one of the choices: type a number from 1 to ${choices.length}, or Enter for ${presetIndex}.\n`);
      }
    },
    async text(question, preset, problem) {
      for (;;) {
        const answer = (await ask(rl, stopped.signal, `\n${question}${preset ? ` [${preset}]` : ""}: `)).trim() || preset;
        const wrong = answer === undefined ? "An answer is needed here." : problem?.(answer);
        if (answer !== undefined && wrong === undefined) return answer;
        write(`${wrong}\n`);
      }
    },
    close: () => rl.close(),
  };
}

async function ask(rl: Interface, signal: AbortSignal, prompt: string): Promise<string> {
  try {
    return await rl.question(prompt, { signal });
  } catch {
    throw new UsageError("mailbell init was stopped before every question was answered; nothing was written. Run it again, or give every answer as a flag (mailbell init --help).");
  }
}
