import type { FetchBodyPartQuery, MessageStructureObject } from "imapflow";
import { findHeaderEnd, splitHeaderFields } from "./header-block.ts";

/**
 * Fetching only what rules read: the message header, its text parts (capped) and never an
 * attachment. planTextParts() picks the parts from BODYSTRUCTURE, assembleMessage() turns what the
 * server returned into a small message that normalizeMail() parses like the original.
 *
 * Typical use with imapflow:
 *   const plan = planTextParts(msg.bodyStructure, 256 * 1024);
 *   const got = await client.fetchOne(uid, { headers: true, bodyParts: plan.fetch }, { uid: true });
 *   const { raw, warnings } = assembleMessage(got.headers, plan, got.bodyParts ?? new Map());
 * Never fetch with `binary: true`: the assembled part keeps its Content-Transfer-Encoding header,
 * so a body the server had already decoded would be decoded twice.
 */

export interface PlannedTextPart {
  /** IMAP part number: "1" for the body of a single-part message, "1.2" and so on inside a multipart one. */
  part: string;
  /** "text/plain" or "text/html". */
  type: string;
  /** bodyParts key of the part's MIME header ("1.2.MIME"); undefined when that is the message header itself. */
  mimeKey: string | undefined;
  /** Size from BODYSTRUCTURE, in transfer-encoded bytes; undefined when the server gave none. */
  size: number | undefined;
  /** The declared size is over maxTextBytes, so only the first maxTextBytes bytes are fetched. */
  truncated: boolean;
  /** From BODYSTRUCTURE, to rebuild the MIME header if the server does not return it. */
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
}

export const DEFAULT_MAX_TEXT_PARTS = 50;

/**
 * Picks the parts rules need: text/plain leaves that are not attachments, and text/html leaves
 * only where the enclosing multipart/alternative offers no text/plain (HTML-only mail). Nothing
 * inside an attached message/rfc822 is taken: it is somebody else's mail, not this one's text.
 *
 * So the text can differ from normalizeMail() on the whole message in two rare cases, where
 * mailparser reads more: a text/plain part with a file name that is not marked as attachment,
 * and the text of a message/rfc822 part marked inline.
 */
export function planTextParts(structure: MessageStructureObject, maxTextBytes: number, maxParts = DEFAULT_MAX_TEXT_PARTS): TextPartPlan {
  if (!Number.isSafeInteger(maxTextBytes) || maxTextBytes <= 0) {
    throw new RangeError(`maxTextBytes must be a positive integer, got ${maxTextBytes}`);
  }
  const singlePart = !isMultipart(structure);
  const parts: PlannedTextPart[] = [];
  const omitted: string[] = [];

  const take = (node: MessageStructureObject, part: string): void => {
    if (parts.length >= maxParts) {
      omitted.push(part);
      return;
    }
    parts.push({
      part,
      type: node.type,
      // RFC 3501 §6.4.5: BODY[1.MIME] is not valid for a non-multipart message; its header is the message's.
      mimeKey: singlePart ? undefined : `${part}.MIME`,
      size: node.size,
      truncated: node.size !== undefined && node.size > maxTextBytes,
      parameters: { ...node.parameters },
      encoding: node.encoding,
    });
  };

  const visit = (node: MessageStructureObject, part: string, alternative: MessageStructureObject | undefined): void => {
    if (node.type === "message/rfc822") return;
    if (isMultipart(node)) {
      const enclosing = node.type === "multipart/alternative" ? node : alternative;
      (node.childNodes ?? []).forEach((child, i) => visit(child, child.part ?? childPart(part, i), enclosing));
      return;
    }
    if (isAttachment(node)) return;
    if (node.type === "text/plain") take(node, part);
    else if (node.type === "text/html" && !(alternative && hasPlainText(alternative))) take(node, part);
  };
  visit(structure, singlePart ? "1" : "", undefined);

  const fetch: Array<string | FetchBodyPartQuery> = [];
  for (const planned of parts) {
    fetch.push({ key: planned.part, maxLength: maxTextBytes });
    if (planned.mimeKey) fetch.push(planned.mimeKey);
  }
  return { singlePart, maxTextBytes, parts, omitted, fetch };
}

function childPart(parent: string, index: number): string {
  return parent === "" ? String(index + 1) : `${parent}.${index + 1}`;
}

function isMultipart(node: MessageStructureObject): boolean {
  return node.type.startsWith("multipart/");
}

function isAttachment(node: MessageStructureObject): boolean {
  if (node.disposition === "attachment") return true;
  const named = (params: Record<string, string> | undefined): boolean => Object.keys(params ?? {}).some((key) => /^(?:file)?name(?:\*|$)/.test(key));
  return named(node.dispositionParameters) || named(node.parameters);
}

function hasPlainText(node: MessageStructureObject): boolean {
  if (node.type === "message/rfc822") return false;
  if (isMultipart(node)) return (node.childNodes ?? []).some(hasPlainText);
  return node.type === "text/plain" && !isAttachment(node);
}

const CRLF = "\r\n";
// Replaced by the multipart/mixed wrapper, or dropped when there is no part to describe.
const CONTENT_FIELDS = new Set(["content-type", "content-transfer-encoding", "content-disposition"]);

/**
 * Builds a small RFC 5322 message from the message header (BODY.PEEK[HEADER]) and the parts
 * fetched per `plan`: the header as it was for a single-part message, or with its Content-* fields
 * replaced by a fresh multipart/mixed holding each fetched part under its own MIME header. Parts the
 * server did not return are left out with a warning; a message without text parts becomes header only.
 */
export function assembleMessage(header: Uint8Array, plan: TextPartPlan, fetched: Map<string, Buffer>): { raw: Buffer; warnings: string[] } {
  const warnings: string[] = [];
  // imapflow lower-cases the keys of the response ("1.2.mime"), whatever case was asked for.
  const got = new Map<string, Buffer>();
  for (const [key, value] of fetched) got.set(key.toLowerCase(), value);

  const headerBytes = Buffer.from(header.buffer, header.byteOffset, header.byteLength);
  const headerBlock = headerBytes.subarray(0, findHeaderEnd(headerBytes).headerEnd);
  if (headerBlock.length === 0) warnings.push("message header is empty");

  const pieces: Array<{ mime: Buffer | undefined; body: Buffer }> = [];
  for (const planned of plan.parts) {
    const body = got.get(planned.part.toLowerCase());
    if (!body) {
      warnings.push(`text part ${planned.part} was not returned by the server; left out`);
      continue;
    }
    let mime: Buffer | undefined;
    if (planned.mimeKey) {
      mime = got.get(planned.mimeKey.toLowerCase());
      if (!mime) {
        warnings.push(`MIME header of text part ${planned.part} was not returned by the server; rebuilt from BODYSTRUCTURE`);
        mime = Buffer.from(rebuildMimeHeader(planned), "latin1");
      }
    }
    pieces.push({ mime, body: capBody(planned, body, plan.maxTextBytes, warnings) });
  }
  if (plan.omitted.length) {
    warnings.push(`${plan.omitted.length} more text part(s) not fetched (${plan.omitted.slice(0, 5).join(", ")}${plan.omitted.length > 5 ? ", …" : ""})`);
  }

  const single = pieces[0];
  if (plan.singlePart && single) {
    return { raw: Buffer.concat([headerBlock, Buffer.from(CRLF + CRLF), single.body]), warnings };
  }

  const kept = splitHeaderFields(headerBlock.toString("latin1"))
    .filter((field) => !CONTENT_FIELDS.has(field.key))
    .map((field) => field.line);
  if (pieces.length === 0) {
    return { raw: Buffer.from(kept.join(CRLF) + CRLF + CRLF, "latin1"), warnings };
  }

  const boundary = pickBoundary(pieces.flatMap((piece) => (piece.mime ? [piece.mime, piece.body] : [piece.body])));
  kept.push(`Content-Type: multipart/mixed; boundary="${boundary}"`);
  const chunks: Buffer[] = [Buffer.from(kept.join(CRLF) + CRLF + CRLF, "latin1")];
  for (const piece of pieces) {
    const mime = piece.mime ? trimTrailingLineBreaks(piece.mime) : Buffer.alloc(0);
    chunks.push(Buffer.from(`--${boundary}${CRLF}`), mime, Buffer.from(mime.length ? CRLF + CRLF : CRLF), piece.body, Buffer.from(CRLF));
  }
  chunks.push(Buffer.from(`--${boundary}--${CRLF}`));
  return { raw: Buffer.concat(chunks), warnings };
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

function rebuildMimeHeader(planned: PlannedTextPart): string {
  const params = Object.entries(planned.parameters)
    .filter(([key]) => !/^(?:file)?name/.test(key) && /^[\x21-\x7e]+$/.test(key))
    .map(([key, value]) => `; ${key}="${value.replace(/[\\"]/g, "\\$&").replace(/[^\x20-\x7e]/g, "")}"`)
    .join("");
  const lines = [`Content-Type: ${planned.type}${params}`];
  if (planned.encoding) lines.push(`Content-Transfer-Encoding: ${planned.encoding}`);
  return lines.join(CRLF);
}

/** A boundary that occurs in none of the contents; deterministic so the same input gives the same bytes. */
function pickBoundary(contents: Buffer[]): string {
  for (let n = 0; ; n++) {
    const candidate = `=_mailbell_${n.toString(36)}`;
    if (!contents.some((content) => content.includes(candidate))) return candidate;
  }
}

function trimTrailingLineBreaks(value: Buffer): Buffer {
  let end = value.length;
  while (end > 0 && (value[end - 1] === 0x0a || value[end - 1] === 0x0d)) end--;
  return value.subarray(0, end);
}
