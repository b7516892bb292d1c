import { compile as compileHtmlToText } from "html-to-text";
import { MailParser, parseAddressHeader } from "mailparser";
import type { AttachmentStream, EmailAddress, HeaderLines, MailParserOptions } from "mailparser";
import libmime from "libmime";
import { createDecodeStream, decode as decodeCharset } from "libmime/lib/charset.js";
import { Transform, type TransformCallback } from "node:stream";
import { findHeaderEnd, isValidHeaderName, splitHeaderFields } from "./header-block.ts";
import type { RawHeaderField } from "./header-block.ts";
import { decodeRawHeaderValues } from "./header-charset.ts";
import { decodeJapanese, decodesJapanese } from "./japanese.ts";
import { StringMemo } from "./memo.ts";
import { emptyMail, type MailAddress, type MailAttachment, type NormalizedMail } from "./types.ts";

export interface NormalizeOptions {
  /**
   * Give up on a parse that has not finished after this many milliseconds and return what was read,
   * with a warning. The timer is unref'd, so it never keeps the process alive on its own.
   */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

// html-to-text is synchronous, so no timer can stop it; this caps one conversion at well under a
// second (2 MB of tag-dense HTML measured ~0.7 s). Receipts are far smaller.
const MAX_HTML_TO_TEXT_CHARS = 2_000_000;

const PARSER_OPTIONS: MailParserOptions = {
  // We never render HTML, so inlining cid: images as data: URLs and building textAsHtml is wasted work.
  skipImageLinks: true,
  skipTextLinks: true,
  skipTextToHtml: true,
  // HTML becomes text in htmlToText() below, still with mailparser's html-to-text, but only when
  // there is no plain text and after separating table cells (see there).
  skipHtmlToText: true,
  // Attachment content is discarded unread; hashing it would be the only reason to look at it.
  checksumAlgo: false,
  // The IMAP path (parts.ts) fetches only text/plain and text/html, so DSN status fields must not
  // reach `text` here either, or the same mail would read differently depending on how it arrived.
  keepDeliveryStatus: true,
  // Japanese bodies decode as on the IMAP path (japanese.ts), every other charset as without it;
  // normalize() wraps it to note the charsets.
  Iconv: bodyCharsetDecoder as unknown as NonNullable<MailParserOptions["Iconv"]>,
};

/**
 * mailparser's `Iconv` hook, the one way to choose how it decodes a body's charset: called with
 * `new` for every text part not in UTF-8 or ASCII (UTF-7, base64 and hex never reach it), and the
 * stream returned stands in for the object. Japanese charsets are collected and decoded whole by
 * decodeJapanese(), the same function the daemon's IMAP path uses, so `mailbell test` and the
 * daemon read a mail alike; everything else gets libmime's decode stream, exactly what mailparser
 * uses without the hook.
 */
function bodyCharsetDecoder(charset: string): NodeJS.ReadWriteStream {
  return decodesJapanese(charset) ? new WholeBodyDecoder(charset) : createDecodeStream(charset);
}

/** Collects a body and decodes it at its end, as libmime does for these charsets: ISO-2022-JP is stateful. */
class WholeBodyDecoder extends Transform {
  private readonly chunks: Buffer[] = [];
  private readonly charset: string;

  constructor(charset: string) {
    super();
    this.charset = charset;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.chunks.push(chunk);
    done();
  }

  override _flush(done: TransformCallback): void {
    const body = Buffer.concat(this.chunks);
    done(null, Buffer.from(decodeJapanese(body, this.charset) ?? decodeCharset(body, this.charset), "utf8"));
  }
}

/**
 * The converter mailparser itself uses, with its options, compiled once: html-to-text's htmlToText()
 * recompiles its selectors on every call, which was a fifth of the time spent on HTML mail.
 */
const convertHtml = compileHtmlToText({ limits: { maxDepth: 1000 } });

interface ParseOutcome {
  headerLines: HeaderLines | undefined;
  text: string | undefined;
  html: string | undefined;
  conversionError: Error | undefined;
  /** The attachments as the parser announced them; their size is known once their content has flowed past. */
  attachments: AttachmentStream[];
  /** The parser reached its end; false after a fatal error or a timeout. */
  finished: boolean;
  errors: string[];
}

/**
 * Decodes a raw RFC 5322 message into what rules need. Never throws and never rejects: whatever can
 * be read is returned, and everything that could not be read cleanly is described in `warnings`.
 */
export async function normalizeMail(raw: Uint8Array, options: NormalizeOptions = {}): Promise<NormalizedMail> {
  const warnings: string[] = [];
  try {
    return await normalize(raw, options.timeoutMs ?? DEFAULT_TIMEOUT_MS, warnings);
  } catch (err) {
    warnings.push(`could not normalize the message: ${describe(err)}`);
    return { ...emptyMail(), warnings };
  }
}

async function normalize(raw: Uint8Array, timeoutMs: number, warnings: string[]): Promise<NormalizedMail> {
  const input = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (input.length === 0) {
    warnings.push("empty input: no header and no body");
    return { ...emptyMail(), warnings };
  }

  // The hook sees the charset of each text part mailparser decodes, past UTF-8, US-ASCII and the
  // ones it refuses: the first is the hint for header values in raw 8-bit bytes.
  const charsets: string[] = [];
  const Iconv = function (charset: string): NodeJS.ReadWriteStream {
    charsets.push(charset);
    return bodyCharsetDecoder(charset);
  } as unknown as NonNullable<MailParserOptions["Iconv"]>;
  const parsed = await runParser(input, { ...PARSER_OPTIONS, Iconv }, timeoutMs);
  for (const error of parsed.errors) warnings.push(`parser: ${error}`);
  if (!parsed.finished && parsed.errors.length === 0) warnings.push("parser: stopped before the end of the message");

  let fields: RawHeaderField[];
  if (parsed.headerLines) {
    fields = [...parsed.headerLines];
  } else {
    // The parser failed before it got the header (a header over its 1 MB limit, say); read it ourselves.
    const { headerEnd } = findHeaderEnd(input);
    fields = splitHeaderFields(input.subarray(0, headerEnd).toString("latin1"));
    if (fields.length) warnings.push("header read without the MIME parser; body not decoded");
  }
  restoreLeadingFrom(input, fields);
  return buildMail(fields, { ...parsed, charset: charsets[0], attachments: parsed.attachments.map(describeAttachment) }, warnings);
}

/** The decoded body as mailparser leaves it: text and HTML parts joined, before our own clean-up. */
export interface DecodedBody {
  text: string | undefined;
  /**
   * The charset the first text part declares, past UTF-8 and US-ASCII: how header values in raw
   * 8-bit bytes are read first (header-charset.ts). Without it, the message's Content-Type charset.
   */
  charset?: string | undefined;
  html: string | undefined;
  conversionError?: Error | undefined;
  /** What the MIME structure says of the attached files; none when left out. */
  attachments?: MailAttachment[];
}

/**
 * The last step of every way in: header fields and the decoded body become a NormalizedMail.
 * normalizeMail() gets them from mailparser, readTextParts() (parts.ts) from the parts fetched over IMAP.
 */
export function buildMail(fields: readonly RawHeaderField[], parsed: DecodedBody, warnings: string[]): NormalizedMail {
  const headers = new Map<string, string[]>();
  const unfolded = new Map<string, string[]>();
  const named = fields.filter((field) => isValidHeaderName(field.key));
  const badLines = fields.length - named.length;
  const raw = named.map((field) => ({ name: field.line.slice(0, field.line.indexOf(":")).trim(), binary: libmime.decodeHeader(field.line).value }));
  const decoded = decodeRawHeaderValues(raw, parsed.charset ?? declaredCharset(named, raw));
  warnings.push(...decoded.warnings);
  named.forEach((field, i) => {
    const value = decoded.values[i]!;
    pushTo(unfolded, field.key, value);
    pushTo(headers, field.key, decodeWords(value));
  });
  if (badLines) warnings.push(`${badLines} header line(s) without a valid field name ignored`);
  if (headers.size === 0) warnings.push("no header fields found: the input may not be a mail message");

  const subject = collapse(headers.get("subject")?.[0] ?? "");
  const date = parseDate(unfolded.get("date")?.[0], warnings);
  const messageId = parseMessageId(unfolded.get("message-id")?.[0]);
  // Only the first From counts, as in every mail client; To and Cc may legally repeat.
  const from = parseAddresses("From", unfolded.get("from")?.slice(0, 1), warnings);
  const to = parseAddresses("To", unfolded.get("to"), warnings);
  const cc = parseAddresses("Cc", unfolded.get("cc"), warnings);

  // With skipTextToHtml, each text/plain part outside an alternative leaves an empty entry in
  // mailparser's list of HTML parts, which it joins with "<br/>\n".
  const trimmedHtml = parsed.html?.replace(/^(?:<br\/>\n)+|(?:<br\/>\n)+$/g, "");
  const html = trimmedHtml !== undefined && trimmedHtml.trim() !== "" ? trimmedHtml : undefined;
  let text = (parsed.text ?? "").replace(/^\uFEFF/, "");
  let textFromHtml = false;
  if (parsed.conversionError) {
    warnings.push(`HTML not converted to text: ${parsed.conversionError.message}`);
  } else if (text.trim() === "" && html !== undefined) {
    text = htmlToText(html, warnings);
    textFromHtml = true;
  }

  const replaced = countReplacementChars(text) + countReplacementChars(subject);
  if (replaced) warnings.push(`${replaced} undecodable character(s) replaced by U+FFFD (wrong or missing charset?)`);

  const authenticationResults = unfolded.get("authentication-results");
  return { messageId, from, to, cc, subject, date, headers, ...(authenticationResults ? { authenticationResults } : {}), text, html, ...(textFromHtml ? { textFromHtml } : {}), attachments: parsed.attachments ?? [], warnings };
}

/** htmlText() conversions, once per mail: a rule that falls back to the HTML and another that reads it pay one conversion. */
const htmlTexts = new WeakMap<NormalizedMail, string>();

/**
 * The text of the mail's HTML body, made as for HTML-only mail (the same html-to-text settings, the
 * same table-cell spacing), so a rule reads an amount from it as it would from an HTML-only receipt.
 * For HTML-only mail that is `text` itself; undefined when the mail has no HTML, or its HTML
 * alternative was not read (over IMAP it is fetched only when a rule needs it). Converted lazily and
 * once: most mail with an HTML alternative is matched on its plain part alone.
 */
export function htmlText(mail: NormalizedMail): string | undefined {
  if (mail.textFromHtml) return mail.text;
  if (mail.html === undefined) return undefined;
  let converted = htmlTexts.get(mail);
  if (converted === undefined) {
    // Its warnings (an HTML body cut before conversion) are the ones the same HTML gives as the only body.
    converted = htmlToText(mail.html, []);
    htmlTexts.set(mail, converted);
  }
  return converted;
}

/**
 * Whether the mail has HTML beside its plain text, whose text may say more than the plain part does
 * ("view this mail in a browser"): then a body rule that finds nothing in `text` looks there too.
 */
export function hasHtmlAlternative(mail: NormalizedMail): boolean {
  return mail.html !== undefined && !mail.textFromHtml;
}

/**
 * An attachment as the parser saw it: its name and type from the part's header, its size counted
 * as its (discarded) content flowed past. The same fields parts.ts reads from BODYSTRUCTURE.
 */
function describeAttachment(item: AttachmentStream): MailAttachment {
  return { filename: item.filename ?? "", contentType: (item.contentType || "application/octet-stream").toLowerCase(), size: item.size ?? 0 };
}

/**
 * Runs MailParser (not simpleParser, which buffers every attachment and inlines cid: images) and
 * settles exactly once: on `end`, on `close` after a fatal error, or on timeout. Never rejects.
 */
function runParser(input: Buffer, options: MailParserOptions, timeoutMs: number): Promise<ParseOutcome> {
  return new Promise((resolve) => {
    const outcome: ParseOutcome = { headerLines: undefined, text: undefined, html: undefined, conversionError: undefined, attachments: [], finished: false, errors: [] };
    let settled = false;
    let timer: NodeJS.Timeout | undefined = undefined;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };

    let parser: MailParser;
    try {
      parser = new MailParser(options);
    } catch (err) {
      outcome.errors.push(describe(err));
      settle();
      return;
    }
    parser.on("headerLines", (lines: HeaderLines) => {
      outcome.headerLines = lines;
    });
    // Some errors are not fatal and the parser still reaches `end`, so only note them here.
    parser.on("error", (err: unknown) => {
      if (!settled) outcome.errors.push(describe(err));
    });
    parser.on("readable", () => {
      for (let item = parser.read(); item !== null; item = parser.read()) {
        if (item.type === "attachment") {
          outcome.attachments.push(item);
          // An unhandled 'error' on the content stream (bad base64…) would crash the process.
          item.content.on("error", (err: unknown) => outcome.errors.push(`attachment: ${describe(err)}`));
          // Flowing with no listener discards the content; the parser waits for release() before going on.
          item.content.resume();
          item.release?.();
        } else {
          outcome.text = item.text;
          outcome.html = item.html;
          outcome.conversionError = item.textConversionError;
        }
      }
    });
    parser.on("end", () => {
      outcome.finished = true;
      settle();
    });
    parser.on("close", settle);

    timer = setTimeout(() => {
      outcome.errors.push(`gave up after ${timeoutMs} ms; the message may be incomplete`);
      settle();
      parser.destroy();
    }, timeoutMs);
    timer.unref();

    try {
      parser.end(input);
    } catch (err) {
      outcome.errors.push(describe(err));
      settle();
    }
  });
}

/**
 * Text for mail whose only body is HTML (or whose text/plain part is empty). mailparser itself
 * converts only a root text/html part, not HTML-only mail wrapped in multipart/mixed or /related
 * (nor any multipart message assembled by parts.ts), so the conversion is done here, through
 * mailparser's own html-to-text by parsing the HTML as a root part.
 *
 * html-to-text renders table cells and rows inline, so the minified tables of receipts came out
 * as "合計¥1,300DATENov 23"; a space after each cell and a line break after each row give
 * "合計 ¥1,300" on a line of its own.
 */
function htmlToText(html: string, warnings: string[]): string {
  if (html.length > MAX_HTML_TO_TEXT_CHARS) {
    warnings.push(`HTML body of ${html.length} characters cut to ${MAX_HTML_TO_TEXT_CHARS} before conversion to text`);
    html = html.slice(0, MAX_HTML_TO_TEXT_CHARS);
  }
  const separated = html.replace(/<\/t[dh]\s*>/gi, "$& ").replace(/<\/tr\s*>/gi, "$&<br>");
  try {
    // &nbsp; is layout in HTML mail ("合計&nbsp;¥1,300"); as U+00A0 it would defeat rules written with spaces.
    return convertHtml(separated).replace(/\u00a0/g, " ");
  } catch (err) {
    warnings.push(`HTML not converted to text: ${describe(err)}`);
    return "";
  }
}

/**
 * mailsplit takes any first line starting with "From " for an mbox separator and drops it, which
 * loses an obsolete-syntax `From  : …` header (RFC 5322 §4.5.1 allows WSP before the colon).
 */
function restoreLeadingFrom(input: Buffer, fields: RawHeaderField[]): void {
  const head = input.subarray(0, Math.min(input.length, 64 * 1024)).toString("latin1");
  if (!/^From[ \t]+:/i.test(head)) return;
  const first = splitHeaderFields(head.slice(0, findHeaderEnd(input.subarray(0, 64 * 1024)).headerEnd))[0];
  if (first && first.key === "from" && fields[0]?.line !== first.line) fields.unshift(first);
}

/** The charset parameter of the message's own Content-Type, for a message whose text parts are not known. */
function declaredCharset(named: readonly RawHeaderField[], raw: ReadonlyArray<{ binary: string }>): string | undefined {
  const at = named.findIndex((field) => field.key === "content-type");
  if (at < 0) return undefined;
  const charset = libmime.parseHeaderValue(raw[at]!.binary).params.charset;
  return typeof charset === "string" && charset.trim() !== "" ? charset.trim() : undefined;
}

function decodeWords(value: string): string {
  // Most fields (Received, DKIM-Signature, …) hold no encoded word: libmime would run five regular
  // expressions over each to find none (~0.2 s of a 10,000-mail catch-up). Its join marker is
  // looked for too, because libmime removes that text wherever it is.
  if (!value.includes("=?") && !value.includes("JOIN")) return value;
  return decodedWords.get(value);
}

/** Encoded words of values seen before (a sender's display name) are not decoded again. */
const decodedWords = new StringMemo((value) => {
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
});

function pushTo(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function collapse(value: string): string {
  return value.replace(/\s+/g, " ").trim();
}

/**
 * mailparser turns an unparseable Date into the current time, which would silently misdate the
 * mail; parse it ourselves, accepting the obsolete syntax (comments, spaces around colons).
 */
function parseDate(value: string | undefined, warnings: string[]): Date | undefined {
  if (value === undefined) return undefined;
  const cleaned = collapse(stripComments(value));
  for (const candidate of [cleaned, cleaned.replace(/\s*:\s*/g, ":")]) {
    const date = new Date(candidate);
    if (!Number.isNaN(date.getTime())) return date;
  }
  warnings.push(`Date header is not a valid date: ${JSON.stringify(value.slice(0, 100))}`);
  return undefined;
}

function parseMessageId(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const cleaned = stripComments(value);
  const bracketed = /<([^>]*)>/.exec(cleaned);
  // Obsolete msg-id syntax allows CFWS around the dot-atoms: "<1234 @ local(blah) .machine .example>".
  const id = (bracketed ? bracketed[1]! : cleaned).replace(/\s+/g, "");
  return id === "" ? undefined : id;
}

/**
 * Flattens groups and keeps only entries with an address. mailparser misreads comments and
 * whitespace inside an angle-addr (`John Doe <jdoe@machine(comment).  example>` gives
 * "jdoe@machine") and turns a comment standing alone into a name-only entry, so such a header is
 * read again with comments removed everywhere and whitespace removed inside angle brackets.
 */
function parseAddresses(label: string, values: string[] | undefined, warnings: string[]): MailAddress[] {
  const result: MailAddress[] = [];
  for (const value of values ?? []) {
    const { usable, unusable } = addressListOf.get(value);
    // Fresh objects: the list is remembered for the next mail with the same value.
    for (const entry of usable) result.push({ name: entry.name, address: entry.address });
    for (const entry of unusable) warnings.push(`${label}: no usable address in ${entry}`);
  }
  return result;
}

/** One address header value read (see parseAddresses); values seen before (To: the owner, a sender's From:) are not read again. */
const addressListOf = new StringMemo((value): { usable: readonly MailAddress[]; unusable: readonly string[] } => {
  let entries = readAddresses(value);
  if (/<[^<>]*[\s(][^<>]*>/.test(value) || entries.some((entry) => !isUsableAddress(entry.address))) {
    const repaired = readAddresses(cleanAddressList(value));
    if (repaired.length === entries.length) {
      // A comment is the only name some senders give ("x@y (Mail Delivery System)"); keep it then.
      entries = repaired.map((entry, i) => ({ ...entry, name: entry.name || entries[i]!.name }));
    } else if (countUsable(repaired) >= countUsable(entries)) {
      entries = repaired;
    }
  }
  const usable: MailAddress[] = [];
  const unusable: string[] = [];
  for (const entry of entries) {
    if (isUsableAddress(entry.address)) usable.push({ name: entry.name, address: entry.address });
    else if (entry.name || entry.address) unusable.push(JSON.stringify(entry.name || entry.address));
  }
  return { usable, unusable };
});

function countUsable(entries: EmailAddress[]): number {
  return entries.filter((entry) => isUsableAddress(entry.address)).length;
}

function readAddresses(value: string): EmailAddress[] {
  try {
    return parseAddressHeader(value, { flatten: true }).value;
  } catch {
    return [];
  }
}

function isUsableAddress(address: string | undefined): address is string {
  return address !== undefined && address !== "" && !/[\s()<>]/.test(address);
}

/** Removes comments everywhere and whitespace inside angle brackets, leaving quoted strings alone. */
function cleanAddressList(value: string): string {
  const input = stripComments(value);
  let out = "";
  let quoted = false;
  let angle = false;
  for (let i = 0; i < input.length; i++) {
    const ch = input[i]!;
    if (quoted) {
      out += ch;
      if (ch === "\\" && i + 1 < input.length) out += input[++i];
      else if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '"') quoted = true;
    else if (ch === "<") angle = true;
    else if (ch === ">") angle = false;
    else if (angle && /\s/.test(ch)) continue;
    out += ch;
  }
  return out;
}

/** Replaces RFC 5322 comments (nested, with quoted-pairs) by a space; quoted strings are kept. */
function stripComments(value: string): string {
  // Nearly every Date and Message-ID has no comment: the value itself, not a copy built char by char.
  if (!value.includes("(")) return value;
  let out = "";
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (depth > 0) {
      if (ch === "\\") i++;
      else if (ch === "(") depth++;
      else if (ch === ")" && --depth === 0) out += " ";
      continue;
    }
    if (quoted) {
      out += ch;
      if (ch === "\\" && i + 1 < value.length) out += value[++i];
      else if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '"') quoted = true;
    else if (ch === "(") {
      depth = 1;
      continue;
    }
    out += ch;
  }
  return out;
}

function countReplacementChars(value: string): number {
  let count = 0;
  for (let i = value.indexOf("\uFFFD"); i >= 0; i = value.indexOf("\uFFFD", i + 1)) count++;
  return count;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
