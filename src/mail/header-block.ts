/**
 * Byte-level helpers for RFC 5322 header blocks, shared by normalize.ts (fallbacks when the parser
 * drops or never reaches a header) and parts.ts (rewriting the header of an assembled message).
 *
 * Everything works on "binary" strings (one char per byte, latin1), the same representation
 * mailsplit uses for header lines, so a header can be split and joined again without changing a byte.
 */

/** One header field: `key` lower-cased and trimmed ("" when the line has no colon), `line` the field with its folding. */
export interface RawHeaderField {
  key: string;
  line: string;
}

/**
 * Where the header block ends: `headerEnd` is the offset of the line break that ends the last header
 * line, `bodyStart` the offset just past the empty line. Without an empty line the whole input is header.
 */
export function findHeaderEnd(raw: Uint8Array): { headerEnd: number; bodyStart: number } {
  if (raw[0] === 0x0a) return { headerEnd: 0, bodyStart: 1 };
  if (raw[0] === 0x0d && raw[1] === 0x0a) return { headerEnd: 0, bodyStart: 2 };
  for (let i = raw.indexOf(0x0a); i >= 0 && i < raw.length - 1; i = raw.indexOf(0x0a, i + 1)) {
    const next = raw[i + 1];
    const lineEnd = raw[i - 1] === 0x0d ? i - 1 : i;
    if (next === 0x0a) return { headerEnd: lineEnd, bodyStart: i + 2 };
    if (next === 0x0d && raw[i + 2] === 0x0a) return { headerEnd: lineEnd, bodyStart: i + 3 };
  }
  return { headerEnd: raw.length, bodyStart: raw.length };
}

/** Splits a header block (binary string) into fields; continuation lines stay in their field, joined by CRLF. */
export function splitHeaderFields(block: string): RawHeaderField[] {
  const fields: RawHeaderField[] = [];
  for (const physical of block.split(/\r?\n/)) {
    const last = fields[fields.length - 1];
    if (last && (physical.startsWith(" ") || physical.startsWith("\t"))) {
      last.line += "\r\n" + physical;
      continue;
    }
    if (physical === "") continue;
    const colon = physical.indexOf(":");
    fields.push({ key: colon < 0 ? "" : physical.slice(0, colon).trim().toLowerCase(), line: physical });
  }
  return fields;
}

/** Header names per RFC 5322 ftext: printable ASCII except the colon. */
export function isValidHeaderName(key: string): boolean {
  return /^[\x21-\x39\x3b-\x7e]+$/.test(key);
}

/**
 * A header read up to `limit` bytes (BODY.PEEK[HEADER]<0.limit>) that filled the limit without
 * reaching its end was cut: the last field may be incomplete, so it is dropped with everything after
 * it, and the warning says where. A header that ended within the limit comes back as it is.
 */
/** How the warning on a mail whose header was cut begins. */
export const headerCutWarning = "the message header is longer than";

export function capHeader(header: Uint8Array, limit: number | undefined): { header: Uint8Array; warning?: string } {
  if (limit === undefined || header.length < limit) return { header };
  const { headerEnd } = findHeaderEnd(header);
  if (headerEnd < header.length) return { header };
  let cut = 0;
  for (let i = header.lastIndexOf(0x0a); i >= 0; i = i > 0 ? header.lastIndexOf(0x0a, i - 1) : -1) {
    const next = header[i + 1];
    if (i + 1 < header.length && next !== 0x20 && next !== 0x09) {
      cut = i + 1;
      break;
    }
  }
  const field = fieldName(header.subarray(cut, cut + 80));
  return {
    header: header.subarray(0, cut),
    warning: `${headerCutWarning} ${limit} bytes; it was read up to there and the rest left out${field ? ` (from the field ${field} on)` : ""}`,
  };
}

/** A field's name for a message, safe to log: printable ASCII only, at most 40 characters. */
function fieldName(start: Uint8Array): string | undefined {
  const text = Buffer.from(start.buffer, start.byteOffset, start.byteLength).toString("latin1");
  const colon = text.indexOf(":");
  const name = colon > 0 ? text.slice(0, colon).trim() : "";
  return name && isValidHeaderName(name) ? JSON.stringify(name.slice(0, 40)) : undefined;
}
