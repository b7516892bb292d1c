/**
 * The few pieces of IMAP syntax the lean IDLE connection (lean-idle.ts) needs, pure: a reader that
 * cuts the server's bytes into response lines with bounded memory, the few responses it acts on, and
 * how a login's strings are written. Not a general IMAP parser: what a quiet mailbox waits for is a
 * tagged status, a continuation, EXISTS, EXPUNGE, BYE and the response codes of EXAMINE.
 */
import { encodePath } from "imapflow/lib/tools.js";

/** Longest response line kept; the answers we act on are short (a CAPABILITY line is ~1 kB). */
export const maxLeanLineBytes = 64 * 1024;
/** Largest literal skipped over (not kept): an IDLE-only session asks for no literal at all. */
export const maxLeanLiteralBytes = 1024 * 1024;

/** The server sent more than an IDLE-only connection ever needs: the connection is dropped. */
export class LineTooLong extends Error {
  readonly code = "LEAN_REPLY_TOO_LONG";
}

/**
 * Cuts a byte stream into lines (without CRLF, latin1). A literal announced at a line's end
 * (`{n}` or `{n+}`) is skipped, its bytes never held, and the line goes on after it with the
 * literal's place marked by `{n}`, so a response keeps its shape. Memory stays under maxLineBytes
 * whatever the server sends; a longer line or literal throws LineTooLong.
 */
export class LineReader {
  #partial = "";
  #skip = 0;
  /** Where the text after the last skipped literal starts: only it can announce another literal. */
  #after = 0;
  readonly #maxLine: number;
  readonly #maxLiteral: number;

  constructor(maxLine = maxLeanLineBytes, maxLiteral = maxLeanLiteralBytes) {
    this.#maxLine = maxLine;
    this.#maxLiteral = maxLiteral;
  }

  /** The complete lines in `chunk` (with what came before it). */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - at);
        this.#skip -= n;
        at += n;
        continue;
      }
      const nl = chunk.indexOf(10, at);
      const end = nl < 0 ? chunk.length : nl;
      if (this.#partial.length + (end - at) > this.#maxLine) throw new LineTooLong(`the server sent a response line over ${this.#maxLine} bytes`);
      this.#partial += chunk.toString("latin1", at, end);
      if (nl < 0) break;
      at = nl + 1;
      const line = this.#partial.endsWith("\r") ? this.#partial.slice(0, -1) : this.#partial;
      const literal = /\{(\d{1,10})\+?\}$/.exec(line);
      if (literal && literal.index >= this.#after) {
        const size = Number(literal[1]);
        if (size > this.#maxLiteral) throw new LineTooLong(`the server sent a literal of ${size} bytes (over ${this.#maxLiteral})`);
        this.#skip = size;
        this.#partial = line;
        this.#after = line.length;
        continue;
      }
      this.#partial = "";
      this.#after = 0;
      lines.push(line);
    }
    return lines;
  }
}

/** A response line as the lean connection sees it. */
export type LeanResponse =
  | { kind: "tagged"; tag: string; status: "OK" | "NO" | "BAD"; code: string | undefined; args: string; text: string }
  | { kind: "continue"; text: string }
  | { kind: "exists"; count: number }
  | { kind: "expunge" }
  | { kind: "bye"; text: string }
  /** An untagged OK/NO/PREAUTH, with its response code: [UIDVALIDITY n], [UIDNEXT n], [CAPABILITY …]. */
  | { kind: "status"; status: string; code: string | undefined; args: string; text: string }
  | { kind: "capability"; names: string }
  /** STATUS's answer with UIDNEXT (for a server that leaves it out of EXAMINE). */
  | { kind: "uidnext"; uidNext: number }
  | { kind: "other" };

/** What one line says (RFC 3501 §7 for the responses above; anything else is "other"). */
export function parseLine(line: string): LeanResponse {
  if (line.startsWith("+")) return { kind: "continue", text: line.slice(1).trim() };
  const untagged = /^\* (?:(\d+) (EXISTS|EXPUNGE)|(OK|NO|BAD|PREAUTH|BYE)(?: (.*))?|CAPABILITY (.*))$/i.exec(line);
  if (untagged) {
    const [, n, what, status, rest = "", caps] = untagged;
    if (what) return what.toUpperCase() === "EXISTS" ? { kind: "exists", count: Number(n) } : { kind: "expunge" };
    if (caps !== undefined) return { kind: "capability", names: caps };
    if (status!.toUpperCase() === "BYE") return { kind: "bye", text: rest };
    const { code, args, text } = responseCode(rest);
    return { kind: "status", status: status!.toUpperCase(), code, args, text };
  }
  const status = /^\* STATUS .*\(([^()]*)\)$/i.exec(line);
  const uidNext = status ? /(?:^|\s)UIDNEXT (\d+)/i.exec(status[1]!) : null;
  if (uidNext) return { kind: "uidnext", uidNext: Number(uidNext[1]) };
  const tagged = /^([^\s*+]+) (OK|NO|BAD)(?: (.*))?$/i.exec(line);
  if (tagged) {
    const { code, args, text } = responseCode(tagged[3] ?? "");
    return { kind: "tagged", tag: tagged[1]!, status: tagged[2]!.toUpperCase() as "OK" | "NO" | "BAD", code, args, text };
  }
  return { kind: "other" };
}

/** `[CODE args] text` → its parts (RFC 3501 resp-text). */
function responseCode(rest: string): { code: string | undefined; args: string; text: string } {
  const m = /^\[([^\s\]]+)(?: ([^\]]*))?\] ?(.*)$/.exec(rest);
  if (!m) return { code: undefined, args: "", text: rest };
  return { code: m[1]!.toUpperCase(), args: m[2] ?? "", text: m[3] ?? "" };
}

/**
 * A string argument of a command (LOGIN's user and password, EXAMINE's mailbox): a quoted string
 * when it may be one (7-bit, no CR, LF or NUL; RFC 3501 §4.3), else a literal, which the caller
 * sends in two steps unless the server takes LITERAL+ (RFC 7888).
 */
export function imapString(value: string): { quoted: string } | { literal: Buffer } {
  // eslint-disable-next-line no-control-regex -- the characters a quoted string may hold are control characters in part
  if (/^[\x01-\x09\x0b\x0c\x0e-\x7f]*$/.test(value)) return { quoted: `"${value.replace(/["\\]/g, "\\$&")}"` };
  return { literal: Buffer.from(value, "utf8") };
}

/**
 * A mailbox name as EXAMINE takes it, as imapflow writes it (modified UTF-7, RFC 3501 §5.1.3, for
 * anything beyond printable ASCII and "&"): the lean connection opens the path the imapflow session
 * opened, namespace prefix included.
 */
export function mailboxName(path: string): string {
  return encodePath({ enabled: new Set(), capabilities: new Map() } as unknown as Parameters<typeof encodePath>[0], path);
}

/** Whether a capability line (or CAPABILITY code's args) names `name`. */
export function hasCapability(capabilities: string, name: string): boolean {
  return ` ${capabilities.toUpperCase()} `.includes(` ${name.toUpperCase()} `);
}
