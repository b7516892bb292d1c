import { z } from "zod";
import { segments, targetBase, TargetUrlError, type TargetModule } from "./module.ts";
import { ServiceTarget } from "./service.ts";
import { escapeTerminal, truncatePlain } from "./text.ts";
import type { DigestEntry, Notification, TargetPayload } from "./types.ts";
import { notificationBody } from "./webhook.ts";

/*
 * Prints each notification as one line, for trying rules out (`mailbell test`, a first run).
 * `format: text` (default) prints the rendered message; `format: json` the webhook target's JSON.
 */


/** JSON.stringify escapes C0 but not C1 or bidi controls: escape those too, still valid JSON. */
function terminalSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The template's own line breaks, shown inline so one notification stays one line. */
function oneLine(text: string): string {
  return text.replace(/\s*(?:\r\n|[\r\n\u2028\u2029])\s*/g, " ⏎ ");
}

export const stdoutSchema = z.strictObject({
  ...targetBase,
  type: z.literal("stdout"),
  format: z.enum(["text", "json"], { error: "use text (the message as one line) or json (the webhook JSON, one object per line)" }).default("text"),
});
export type StdoutTargetConfig = z.infer<typeof stdoutSchema>;

export class StdoutTarget extends ServiceTarget<StdoutTargetConfig> {
  readonly #write: (line: string) => void;

  constructor(config: StdoutTargetConfig, write: (line: string) => void) {
    super(stdoutModule, config);
    this.#write = write;
  }

  render(n: Notification): TargetPayload {
    if (this.config.format === "json") return { contentType: "application/json; charset=utf-8", body: terminalSafeJson(notificationBody(n)) };
    return { contentType: "text/plain; charset=utf-8", body: oneLine(this.ruleText(n)) };
  }

  override summarize(n: Notification): string {
    return this.fit("summary", oneLine(this.ruleText(n)));
  }

  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const more = total - entries.length;
    if (this.config.format === "json") {
      const items = entries.map((e) => {
        try {
          return JSON.parse(e.body) as unknown;
        } catch {
          return { rule: e.rule, subject: e.subject, text: e.summary };
        }
      });
      return { contentType: "application/json; charset=utf-8", body: terminalSafeJson({ digest: { count: total, listed: items.length, items } }) };
    }
    const parts = entries.map((e) => e.summary);
    if (more > 0) parts.push(`…and ${more} more`);
    return { contentType: "text/plain; charset=utf-8", body: `${total} mails: ${parts.join(" | ")}` };
  }

  async send(payload: TargetPayload): Promise<void> {
    this.#write(payload.body);
  }
}

/** `stdout://`, optionally `stdout://?format=json`. */
export const stdoutModule: TargetModule<StdoutTargetConfig> = {
  type: "stdout",
  schemes: ["stdout"],
  schema: stdoutSchema,
  secrets: [],
  // A local stream has no service limit; this only keeps a flood readable.
  pacing: { perSecond: 100, burst: 100 },
  concurrency: 1,
  limits: { summary: 300 },
  cut: truncatePlain,
  // A terminal reads no markup, but controls and line breaks would act on it.
  escape: escapeTerminal,
  describe: (c) => `stdout (${c.format})`,
  fromUrl(url) {
    if (url.host || segments(url).length > 0) throw new TargetUrlError("a stdout URL is just stdout:// (or stdout://?format=json); it takes no host or path");
    const format = url.searchParams.get("format");
    for (const key of url.searchParams.keys()) if (key !== "format") throw new TargetUrlError(`stdout:// knows only ?format=text|json, not "${key}"`);
    return format !== null ? { format } : {};
  },
  create: (config, deps) => new StdoutTarget(config, deps.stdout ?? ((line) => void process.stdout.write(`${line}\n`))),
};
