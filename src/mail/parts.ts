import type { FetchBodyPartQuery, MessageStructureObject } from "imapflow";
import libbase64 from "libbase64";
import libmime from "libmime";
import { decode as decodeCharset } from "libmime/lib/charset.js";
import libqp from "libqp";
import { capHeader, findHeaderEnd, splitHeaderFields } from "./header-block.ts";
import { charsetHint } from "./header-charset.ts";
import { decodeJapanese } from "./japanese.ts";
import { buildMail } from "./normalize.ts";
import type { MailAttachment, NormalizedMail } from "./types.ts";

/**
 * Fetching only what rules read: the message header, its text parts (capped) and never an
 * attachment. planTextParts() picks the parts from BODYSTRUCTURE, readTextParts() decodes what the
 * server returned into the same NormalizedMail that normalizeMail() makes of the whole message.
 *
 * Typical use with imapflow:
 *   const plan = planTextParts(msg.bodyStructure, 256 * 1024);
 *   const got = await client.fetchOne(uid, { headers: true, bodyParts: plan.fetch }, { uid: true });
 *   const mail = readTextParts(got.headers, plan, got.bodyParts ?? new Map());
 * Never fetch with `binary: true`: the transfer encoding named in BODYSTRUCTURE is undone here, so
 * a body the server had already decoded would be decoded twice.
 */

export interface PlannedTextPart {
  /** IMAP part number: "1" for the body of a single-part message, "1.2" and so on inside a multipart one. */
  part: string;
  /** "text/plain" or "text/html". */
  type: string;
  /** Size from BODYSTRUCTURE, in transfer-encoded bytes; undefined when the server gave none. */
  size: number | undefined;
  /** The declared size is over maxTextBytes, so only the first maxTextBytes bytes are fetched. */
  truncated: boolean;
  /** From BODYSTRUCTURE: charset, format and delsp say how to decode the body. */
  parameters: Readonly<Record<string, string>>;
  encoding: string | undefined;
}

export interface TextPartPlan {
  /** The message is not multipart: its only body is part "1", described by the message header. */
  singlePart: boolean;
  maxTextBytes: number;
  parts: PlannedTextPart[];
  /** Text parts left out because the message has more than maxParts of them. */
  omitted: string[];
  /** Keys for imapflow's fetch query `bodyParts` (alongside `headers: true` for the message header). */
  fetch: Array<string | FetchBodyPartQuery>;
  /**
   * HTML parts left out of `parts` because their multipart/alternative has text/plain too. Their
   * text may say more than the plain part (a receipt's "view this mail in a browser"): they are
   * fetched, after the plain text, only for mail a rule needs them for (htmlAlternativesPlan()), and
   * readTextParts() decodes them into `html` when they were.
   */
  alternatives: PlannedTextPart[];
  /**
   * The charset of the first text part (plain or HTML, fetched or not) that declares one past
   * UTF-8 (charsetHint): how header values in raw 8-bit bytes are read first. Part of the plan, so
   * a header decoded before (or without) its text parts reads the same as with them.
   */
  charset?: string | undefined;
  /** What BODYSTRUCTURE says of the attached files (never fetched), for `NormalizedMail.attachments`. */
  attachments: MailAttachment[];
}

export const DEFAULT_MAX_TEXT_PARTS = 50;

/**
 * Picks the parts rules need, by the rules mailparser reads a whole message with, so a mail reads
 * the same either way: text/plain leaves not marked as attachment (a file name alone does not make
 * one), text/html leaves only where the enclosing multipart/alternative offers no text/plain
 * (HTML-only mail), and the same inside a forwarded message/rfc822 marked inline.
 *
 * Known differences: in a multipart/alternative with text/plain the HTML is not fetched with it
 * (it is listed in `alternatives`, fetched later when a rule needs it), so `html` stays empty until
 * then and a broken text/plain is not made up for by it; and the
 * From/Subject lines mailparser writes before a forwarded message's text are not added.
 */
export function planTextParts(structure: MessageStructureObject, maxTextBytes: number, maxParts = DEFAULT_MAX_TEXT_PARTS): TextPartPlan {
  if (!Number.isSafeInteger(maxTextBytes) || maxTextBytes <= 0) {
    throw new RangeError(`maxTextBytes must be a positive integer, got ${maxTextBytes}`);
  }
  const singlePart = !isMultipart(structure);
  const parts: PlannedTextPart[] = [];
  const omitted: string[] = [];
  const alternatives: PlannedTextPart[] = [];
  let charset: string | undefined;
  const attachments: MailAttachment[] = [];

  const take = (node: MessageStructureObject, part: string, into = parts): void => {
    if (into.length >= maxParts) {
      // Alternatives are a fallback, fetched only on demand: one too many is simply not offered.
      if (into === parts) omitted.push(part);
      return;
    }
    into.push({
      part,
      type: node.type,
      size: node.size,
      truncated: node.size !== undefined && node.size > maxTextBytes,
      parameters: { ...node.parameters },
      encoding: node.encoding,
    });
  };

  const visit = (node: MessageStructureObject, part: string, alternative: MessageStructureObject | undefined): void => {
    if (node.type === "message/rfc822") {
      const inner = node.childNodes?.[0];
      // mailsplit reads a forwarded message as part of this one only when it is marked inline and
      // not transfer-encoded; anything else is an attachment.
      const encoding = (node.encoding ?? "7bit").toLowerCase();
      if (node.disposition?.toLowerCase() !== "inline" || !["7bit", "8bit", "binary"].includes(encoding) || !inner) {
        attachments.push(describeAttachment(node));
        return;
      }
      // imapflow numbers the encapsulated message like its wrapper ("2"); a single-part one's body is "2.1".
      visit(inner, isMultipart(inner) ? part : `${part}.1`, undefined);
      return;
    }
    if (isMultipart(node)) {
      const enclosing = node.type === "multipart/alternative" ? node : alternative;
      (node.childNodes ?? []).forEach((child, i) => visit(child, child.part ?? childPart(part, i), enclosing));
      return;
    }
    // mailparser's rule: any leaf but an inline text/plain or text/html is an attachment.
    if (isAttachment(node) || (node.type !== "text/plain" && node.type !== "text/html")) {
      attachments.push(describeAttachment(node));
      return;
    }
    // Every text part mailparser decodes counts, fetched or not (an HTML alternative), as its Iconv hook sees them.
    charset ??= charsetHint(param(node.parameters ?? {}, "charset"));
    if (node.type === "text/plain") take(node, part);
    else if (node.type === "text/html") take(node, part, alternative && hasPlainText(alternative) ? alternatives : parts);
  };
  visit(structure, singlePart ? "1" : "", undefined);

  const fetch: Array<string | FetchBodyPartQuery> = [];
  // No "1.2.MIME" headers: BODYSTRUCTURE already carries each part's charset and encoding.
  for (const planned of parts) fetch.push({ key: planned.part, maxLength: maxTextBytes });
  return { singlePart, maxTextBytes, parts, omitted, fetch, alternatives, attachments, ...(charset ? { charset } : {}) };
}

/** The plan for fetching a mail's HTML alternatives alone (its plain text was read already); undefined when it has none. */
export function htmlAlternativesPlan(plan: TextPartPlan): TextPartPlan | undefined {
  if (plan.alternatives.length === 0) return undefined;
  const fetch = plan.alternatives.map((p) => ({ key: p.part, maxLength: plan.maxTextBytes }));
  return { ...plan, parts: plan.alternatives, omitted: [], fetch, alternatives: [] };
}

/**
 * An attachment as mailparser describes it, from BODYSTRUCTURE alone: imapflow has already decoded
 * the RFC 2231 / RFC 2047 file name; a generic type is guessed from the name, as mailparser does.
 */
function describeAttachment(node: MessageStructureObject): MailAttachment {
  const filename = param(node.dispositionParameters ?? {}, "filename") ?? param(node.parameters ?? {}, "name") ?? "";
  let contentType = (node.type || "application/octet-stream").toLowerCase();
  if (contentType === "application/octet-stream" && filename !== "") contentType = libmime.detectMimeType(filename) || contentType;
  return { filename, contentType, size: decodedSize(node.size ?? 0, node.encoding) };
}

/**
 * The decoded size from the encoded one BODYSTRUCTURE gives: base64 lines of 76 characters and
 * CRLF (78 bytes) carry 57 bytes each. Other encodings are taken as they are.
 */
function decodedSize(encodedSize: number, encoding: string | undefined): number {
  return encoding?.toLowerCase() === "base64" ? Math.floor((encodedSize * 57) / 78) : encodedSize;
}

function childPart(parent: string, index: number): string {
  return parent === "" ? String(index + 1) : `${parent}.${index + 1}`;
}

function isMultipart(node: MessageStructureObject): boolean {
  return node.type.startsWith("multipart/");
}

/** mailparser's rule: any disposition but "inline" is an attachment; no disposition is inline. */
function isAttachment(node: MessageStructureObject): boolean {
  return node.disposition !== undefined && node.disposition !== null && node.disposition.toLowerCase() !== "inline";
}

function hasPlainText(node: MessageStructureObject): boolean {
  if (node.type === "message/rfc822") return false; // its text belongs to the forwarded mail, not this alternative
  if (isMultipart(node)) return (node.childNodes ?? []).some(hasPlainText);
  return node.type === "text/plain" && !isAttachment(node);
}

/**
 * Decodes the header (BODY.PEEK[HEADER]) and the parts fetched per `plan` into a NormalizedMail,
 * synchronously and without a MIME parser: BODYSTRUCTURE already says each part's type, charset
 * and transfer encoding, so each body goes straight through base64 / quoted-printable, format=flowed
 * and its charset (libmime, as mailparser does). Joining the parts follows mailparser, so the result
 * is what normalizeMail() gives for the same message. Parts the server did not return are left out
 * with a warning; never throws.
 */
export function readTextParts(header: Uint8Array, plan: TextPartPlan, fetched: ReadonlyMap<string, Buffer>, warnings: string[] = []): NormalizedMail {
  // imapflow lower-cases the keys of the response ("1.2.mime"), whatever case was asked for.
  const got = new Map<string, Buffer>();
  for (const [key, value] of fetched) got.set(key.toLowerCase(), value);

  const headerBytes = Buffer.from(header.buffer, header.byteOffset, header.byteLength);
  const fields = splitHeaderFields(headerBytes.subarray(0, findHeaderEnd(headerBytes).headerEnd).toString("latin1"));
  if (fields.length === 0) warnings.push("message header is empty");

  const bodies: Array<{ type: string; content: string }> = [];
  for (const planned of plan.parts) {
    const body = got.get(planned.part.toLowerCase());
    if (!body) {
      warnings.push(`text part ${planned.part} was not returned by the server; left out`);
      continue;
    }
    bodies.push({ type: planned.type, content: decodePart(planned, capBody(planned, body, plan.maxTextBytes, warnings), warnings) });
  }
  // An HTML alternative is decoded when it was fetched (a rule needed it), and silently left out when not.
  const alternativeHtml: string[] = [];
  for (const planned of plan.alternatives) {
    const body = got.get(planned.part.toLowerCase());
    if (body) alternativeHtml.push(decodePart(planned, capBody(planned, body, plan.maxTextBytes, warnings), warnings));
  }
  if (plan.omitted.length) {
    warnings.push(`${plan.omitted.length} more text part(s) not fetched (${plan.omitted.slice(0, 5).join(", ")}${plan.omitted.length > 5 ? ", …" : ""})`);
  }

  // mailparser's way of joining (getTextContent), so both ways in read a mail alike: the fetched
  // parts sit side by side as in a multipart/mixed, an HTML part leaves an empty text entry when
  // there is text too (or it is the whole message), a text part an empty HTML entry when there is HTML.
  const hasText = bodies.some((b) => b.type === "text/plain");
  const hasHtml = bodies.some((b) => b.type === "text/html");
  const text: string[] = [];
  const html: string[] = [];
  for (const { type, content } of bodies) {
    if (content === "") continue;
    if (type === "text/plain") {
      text.push(content);
      if (hasHtml) html.push("");
    } else {
      if (hasText || plan.singlePart) text.push("");
      html.push(content);
    }
  }
  // mailparser puts an alternative's HTML in `html` only, never in `text`: so here.
  html.unshift(...alternativeHtml.filter((content) => content !== ""));
  return buildMail(fields, { text: text.length ? text.join("\n") : undefined, html: html.length ? html.join("<br/>\n") : undefined, charset: plan.charset, attachments: plan.attachments }, warnings);
}

/** What one message's FETCH brought back, ready to decode (anywhere: it is plain data, so it can cross to a worker thread). */
export interface FetchedParts {
  uid: number;
  header: Uint8Array;
  /** undefined when the server sent no usable BODYSTRUCTURE: the header is all there is. */
  plan: TextPartPlan | undefined;
  /** The header was read up to this many bytes: one that fills it was cut (see capHeader). */
  headerLimit?: number;
  /** Why there is no plan, when the reader knows better than "no usable BODYSTRUCTURE". */
  structureWarning?: string;
  bodies: ReadonlyMap<string, Uint8Array>;
}

/** readTextParts() for a FetchedParts, including the one without a plan. */
export function readFetchedParts(fetched: FetchedParts): NormalizedMail {
  const bodies = new Map<string, Buffer>();
  for (const [key, value] of fetched.bodies) bodies.set(key, Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  const capped = capHeader(fetched.header, fetched.headerLimit);
  const warnings = capped.warning ? [capped.warning] : [];
  if (fetched.plan) return readTextParts(capped.header, fetched.plan, bodies, warnings);
  const header = Buffer.from(capped.header.buffer, capped.header.byteOffset, capped.header.byteLength);
  warnings.push(fetched.structureWarning ?? `the server sent no usable BODYSTRUCTURE for UID ${fetched.uid}; only the header was read`);
  return buildMail(splitHeaderFields(header.subarray(0, findHeaderEnd(header).headerEnd).toString("latin1")), { text: undefined, html: undefined }, warnings);
}

/** Transfer encoding, format=flowed and charset undone, line ends made "\n": as mailparser reads a text part. */
function decodePart(planned: PlannedTextPart, body: Buffer, warnings: string[]): string {
  let bytes: Buffer;
  try {
    const encoding = (planned.encoding ?? "").toLowerCase();
    if (encoding === "base64") bytes = libbase64.decode(body.toString("latin1"));
    else if (encoding === "quoted-printable") bytes = libqp.decode(body);
    else bytes = body;
  } catch (err) {
    warnings.push(`text part ${planned.part}: could not undo its ${planned.encoding} encoding (${(err as Error).message}); read as it is`);
    bytes = body;
  }
  if (planned.type === "text/plain" && param(planned.parameters, "format")?.toLowerCase().trim() === "flowed") {
    const delSp = param(planned.parameters, "delsp")?.toLowerCase().trim() === "yes";
    bytes = Buffer.from(libmime.decodeFlowed(bytes.toString("binary"), delSp), "binary");
  }
  const charset = param(planned.parameters, "charset") || "utf-8";
  const utf8 = ["ascii", "usascii", "utf8"].includes(charset.toLowerCase().replace(/[^a-z0-9]+/g, ""));
  // libmime falls back to UTF-8 for a charset it does not know (or refuses, as UTF-7).
  const decoded = utf8 ? bytes.toString() : (decodeJapanese(bytes, charset) ?? decodeCharset(bytes, charset));
  return decoded.replaceAll("\r\n", "\n");
}

/** A BODYSTRUCTURE parameter by name, whatever case the server used. */
function param(parameters: Readonly<Record<string, string>>, name: string): string | undefined {
  if (name in parameters) return parameters[name];
  for (const [key, value] of Object.entries(parameters)) if (key.toLowerCase() === name) return value;
  return undefined;
}

/**
 * Cuts a body that reached maxTextBytes back to its last line break, so that base64 keeps whole
 * 4-character groups, quoted-printable no half escape, and no multi-byte character is split.
 */
function capBody(planned: PlannedTextPart, body: Buffer, maxTextBytes: number, warnings: string[]): Buffer {
  const declaredWhole = planned.size !== undefined && planned.size <= maxTextBytes;
  if (body.length < maxTextBytes || (declaredWhole && body.length <= maxTextBytes)) return body;
  let cut = body.subarray(0, maxTextBytes);
  const lastLineBreak = cut.lastIndexOf(0x0a);
  if (lastLineBreak >= 0) {
    cut = cut.subarray(0, lastLineBreak + 1);
  } else if (planned.encoding === "base64") {
    cut = cut.subarray(0, cut.length - (cut.length % 4));
  } else if (planned.encoding === "quoted-printable") {
    const escape = cut.subarray(-2).lastIndexOf(0x3d); // "="
    if (escape >= 0) cut = cut.subarray(0, cut.length - 2 + escape);
  }
  const of = planned.size !== undefined ? ` of ${planned.size}` : "";
  warnings.push(`text part ${planned.part} truncated at ${cut.length} bytes${of}`);
  return cut;
}
