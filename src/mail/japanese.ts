import { TextDecoder } from "node:util";

/**
 * Decodes a text body declared in a Japanese charset, or returns undefined when the charset is not
 * one of them (or this Node has no ICU converter for it) and libmime should decode it. Both ways
 * in use it, the IMAP path (parts.ts) and whole messages through mailparser (normalize.ts), so a
 * mail reads the same in `mailbell test` as in the daemon.
 */
export function decodeJapanese(bytes: Buffer, charset: string): string | undefined {
  const decoder = japaneseDecoder(charset);
  if (!decoder) return undefined;
  return decoder.decode(decoder.encoding === "iso-2022-jp" ? mendIso2022jp(bytes) : bytes);
}

/** Whether decodeJapanese() decodes this charset (rather than leaving it to libmime). */
export function decodesJapanese(charset: string): boolean {
  return japaneseDecoder(charset) !== undefined;
}

/**
 * ISO-2022-JP, Shift_JIS and EUC-JP bodies are decoded by Node's TextDecoder (ICU's converters for
 * the WHATWG encodings, whose tables are Windows-31J's) instead of libmime. On every assigned JIS X
 * 0208 code both give the same text (checked code by code); TextDecoder also decodes the NEC and
 * IBM extensions that libmime turns into "?" in ISO-2022-JP (≒ ≡ ∫ √ ⊥ ∠ ∵ ∩ ∪ ￢), and it is 2–3×
 * faster: with every body read, Japanese text was ~9 % of the decoding thread. Unassigned or broken
 * codes become U+FFFD in both, only not always as many of them.
 */
const japaneseLabels = new Set(["iso-2022-jp", "csiso2022jp", "shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "csshiftjis", "windows-31j", "ms932", "cp932", "euc-jp", "x-euc-jp", "cseucpkdfmtjapanese"]);
const japaneseDecoders = new Map<string, TextDecoder | undefined>();

function japaneseDecoder(charset: string): TextDecoder | undefined {
  const label = charset.trim().toLowerCase();
  if (!japaneseLabels.has(label)) return undefined;
  if (!japaneseDecoders.has(label)) {
    let decoder: TextDecoder | undefined;
    try {
      decoder = new TextDecoder(label === "shift-jis" || label === "cp932" ? "shift_jis" : label);
    } catch {
      // A Node built without full ICU knows only UTF-8 and UTF-16: libmime it is, every time.
      decoder = undefined;
    }
    japaneseDecoders.set(label, decoder);
  }
  return japaneseDecoders.get(label);
}

/**
 * Mends two things in ISO-2022-JP that TextDecoder would read differently from what the sender
 * meant. A line that ends while still in JIS X 0208 or half-width katakana (RFC 1468 forbids it,
 * some mailers do it): TextDecoder returns to ASCII there and turns the next line into "9g7W"
 * garbage (libmime kept the text but lost the line break), so the switch back to ASCII is written
 * before the line break and the mode again after it. And JIS-Roman (ESC ( J), where TextDecoder
 * makes "~" an overline and "\\" a yen sign, which breaks URLs: read as ASCII, as libmime did.
 * Bytes that need neither are returned as they are.
 */
export function mendIso2022jp(bytes: Buffer): Buffer {
  // Jumps from escape to escape with indexOf: a body is mostly text between them, and looking at
  // every byte in JS was 3 % of the decoding thread in a catch-up that reads every body.
  const pieces: Uint8Array[] = []; // what replaces bytes[0, copied), when anything needs mending
  let copied = 0;
  let mode: Buffer | undefined; // the escape sequence in force unless ASCII: ESC $ B, ESC $ @ or ESC ( I
  // The first LF and the first CR at or after pos, each looked for again only once passed (or
  // bytes.length when there is none): one shared min would search to the end for the missing
  // kind of break at every step, quadratic on a body with LF line ends only.
  let nextLf = -1;
  let nextCr = -1;
  for (let pos = 0; pos < bytes.length; ) {
    const escape = bytes.indexOf(0x1b, pos);
    const segmentEnd = escape < 0 ? bytes.length : escape;
    while (mode) {
      if (nextLf < pos) nextLf = indexOrEnd(bytes, 0x0a, pos);
      if (nextCr < pos) nextCr = indexOrEnd(bytes, 0x0d, pos);
      const lineBreak = Math.min(nextLf, nextCr);
      if (lineBreak >= segmentEnd) break;
      let after = lineBreak;
      while (after < segmentEnd && (bytes[after] === 0x0a || bytes[after] === 0x0d)) after++;
      pieces.push(bytes.subarray(copied, lineBreak), toAscii, bytes.subarray(lineBreak, after), mode);
      copied = pos = after;
    }
    if (escape < 0) break;
    const [a, b] = [bytes[escape + 1], bytes[escape + 2]];
    if (b === undefined) {
      // An escape cut off by the end of the body designates nothing.
    } else if (a === 0x28 && b === 0x4a) {
      pieces.push(bytes.subarray(copied, escape), toAscii);
      copied = escape + 3;
      mode = undefined;
    } else if (a === 0x24 && b === 0x42) {
      mode = toJisX0208;
    } else if (a === 0x24 && b === 0x40) {
      mode = toJisC6226;
    } else if (a === 0x28 && b === 0x49) {
      mode = toKatakana;
    } else if (a === 0x28) {
      mode = undefined;
    }
    pos = escape + 1;
  }
  if (pieces.length === 0) return bytes;
  pieces.push(bytes.subarray(copied));
  return Buffer.concat(pieces);
}

function indexOrEnd(bytes: Buffer, byte: number, from: number): number {
  const at = bytes.indexOf(byte, from);
  return at < 0 ? bytes.length : at;
}

const toAscii = Buffer.from("\x1b(B", "latin1");
const toJisX0208 = Buffer.from("\x1b$B", "latin1");
const toJisC6226 = Buffer.from("\x1b$@", "latin1");
const toKatakana = Buffer.from("\x1b(I", "latin1");
