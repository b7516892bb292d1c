import { TextDecoder } from "node:util";
import { decode as decodeCharset } from "libmime/lib/charset.js";
import { decodeJapanese } from "./japanese.ts";

/**
 * Header values written in raw bytes of a legacy charset, without RFC 2047 encoded words: Japanese
 * mail software still puts Shift_JIS, EUC-JP or ISO-2022-JP straight into Subject and From. Each
 * value (a "binary" string, one char per byte, unfolded) is read by the first of these that holds:
 *
 * 1. only ASCII and no escape sequence: as it is;
 * 2. ISO-2022-JP escape sequences in 7-bit bytes: ISO-2022-JP (it needs no 8th bit, so it is
 *    told apart from ASCII by the escapes alone);
 * 3. valid UTF-8: UTF-8 (RFC 6532 allows it; a mistaken label elsewhere does not change that);
 * 4. otherwise one charset for all such values of the mail, chosen once from all their bytes:
 *    the charset the body declares, if the bytes decode in it without error; else Shift_JIS or
 *    EUC-JP when detectJapanese() finds Japanese; else ISO-8859-1, what mailsplit assumes too.
 *
 * One choice per mail, not per value: a display name of four characters says little on its own,
 * and a mailer writes all its header fields in one charset. Encoded words are decoded afterwards.
 */
export interface RawHeaderValue {
  /** The field name as written ("Subject"), for the warning. */
  name: string;
  /** The unfolded value, one char per byte. */
  binary: string;
}

export interface DecodedHeaderValues {
  values: string[];
  /** Which charset was assumed for which fields, when any value was neither ASCII nor UTF-8. */
  warnings: string[];
}

export function decodeRawHeaderValues(raw: readonly RawHeaderValue[], bodyCharset: string | undefined): DecodedHeaderValues {
  const values: Array<string | undefined> = [];
  const legacy: number[] = [];
  const iso2022jp: string[] = [];
  for (const [i, { name, binary }] of raw.entries()) {
    if (!/[\x80-\xff]/.test(binary)) {
      if (!iso2022jpEscape.test(binary)) {
        values.push(binary);
      } else {
        values.push(decodeJapanese(Buffer.from(binary, "latin1"), "iso-2022-jp") ?? binary);
        iso2022jp.push(name);
      }
      continue;
    }
    const utf8 = readUtf8(Buffer.from(binary, "latin1"));
    if (utf8 !== undefined) {
      values.push(utf8);
    } else {
      values.push(undefined);
      legacy.push(i);
    }
  }
  const warnings: string[] = [];
  if (iso2022jp.length) warnings.push(`${names(iso2022jp)} in raw ISO-2022-JP without RFC 2047 encoding: read as ISO-2022-JP (its escape sequences)`);
  if (legacy.length) {
    const joined = Buffer.from(legacy.map((i) => raw[i]!.binary).join("\n"), "latin1");
    const choice = chooseLegacyCharset(joined, bodyCharset);
    for (const i of legacy) values[i] = choice.decode(Buffer.from(raw[i]!.binary, "latin1"));
    warnings.push(`${names(legacy.map((i) => raw[i]!.name))} in raw 8-bit bytes without RFC 2047 encoding: read as ${choice.charset} (${choice.why})`);
  }
  return { values: values.map((v, i) => v ?? raw[i]!.binary), warnings };
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
// ESC $ B (JIS X 0208-1983), ESC $ @ (JIS C 6226), ESC ( J (JIS-Roman), ESC ( I (half-width katakana).
// eslint-disable-next-line no-control-regex -- the escape character is what ISO-2022-JP is known by
const iso2022jpEscape = /\x1b(?:\$[B@]|\([JI])/;

function names(list: string[]): string {
  const unique = [...new Set(list)];
  return `header${unique.length > 1 ? "s" : ""} ${unique.join(", ")}`;
}

interface LegacyChoice {
  charset: string;
  why: string;
  decode: (bytes: Buffer) => string;
}

function chooseLegacyCharset(bytes: Buffer, bodyCharset: string | undefined): LegacyChoice {
  const declared = charsetHint(bodyCharset);
  let rejected = "";
  if (declared) {
    if (decodesCleanly(bytes, declared)) return { charset: declared, why: "the charset the body declares", decode: (b) => decodeDeclared(b, declared) };
    rejected = `; not ${declared}, which the body declares`;
  }
  const detected = detectJapanese(bytes);
  if (detected) return { charset: detected === "shift_jis" ? "Shift_JIS" : "EUC-JP", why: `detected${rejected || "; the body declares no legacy charset"}`, decode: (b) => readJapanese(b, detected) ?? decodeJapanese(b, detected) ?? b.toString("latin1") };
  return { charset: "ISO-8859-1", why: `not UTF-8, Shift_JIS or EUC-JP${rejected}`, decode: (b) => b.toString("latin1") };
}

/**
 * A body part's declared charset as a hint for header bytes: undefined for UTF-8 and US-ASCII
 * (raw bytes that are not UTF-8 already failed it) and for those mailparser refuses to decode
 * (UTF-7, base64, hex), so both ways in take the same part's charset.
 */
export function charsetHint(charset: string | undefined): string | undefined {
  const name = charset?.toLowerCase().replace(/[^a-z0-9]/g, "");
  if (!name || isUtf8Label(name) || /^(?:(?:cs)?unicode11)?utf7(?:imap)?$|^base64$|^hex$/.test(name)) return undefined;
  return charset!.trim();
}

function isUtf8Label(charset: string): boolean {
  return ["ascii", "usascii", "utf8"].includes(charset.toLowerCase().replace(/[^a-z0-9]+/g, ""));
}

function decodeDeclared(bytes: Buffer, charset: string): string {
  return decodeJapanese(bytes, charset) ?? decodeCharset(bytes, charset);
}

/**
 * The declared charset reads these bytes: for the Japanese ones, every byte sequence is valid and
 * assigned; for others, nothing is replaced by U+FFFD (libmime falls back to UTF-8 for a charset
 * it does not know, which these bytes are not).
 */
function decodesCleanly(bytes: Buffer, charset: string): boolean {
  const family = japaneseFamily(charset);
  if (family) return readJapanese(bytes, family) !== undefined;
  return !decodeDeclared(bytes, charset).includes("\uFFFD");
}

type JapaneseCharset = "shift_jis" | "euc-jp" | "iso-2022-jp";

function japaneseFamily(charset: string): JapaneseCharset | undefined {
  const label = charset.toLowerCase();
  if (["shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "csshiftjis", "windows-31j", "ms932", "cp932"].includes(label)) return "shift_jis";
  if (["euc-jp", "x-euc-jp", "cseucpkdfmtjapanese"].includes(label)) return "euc-jp";
  if (["iso-2022-jp", "csiso2022jp"].includes(label)) return "iso-2022-jp";
  return undefined;
}

/**
 * The text, when the bytes are valid sequences of that charset and decode to assigned characters.
 * The byte check is ours: ICU's EUC-JP converter skips invalid bytes silently even with
 * `fatal: true` (83 65 83 58 reads as "eX"), so TextDecoder's own errors cannot be relied on.
 */
function readJapanese(bytes: Buffer, charset: JapaneseCharset): string | undefined {
  const valid = charset === "shift_jis" ? validShiftJis(bytes) : charset === "euc-jp" ? validEucJp(bytes) : !bytes.some((b) => b >= 0x80);
  if (!valid) return undefined;
  const text = decodeJapanese(bytes, charset);
  return text === undefined || text.includes("\uFFFD") ? undefined : text;
}

/** Shift_JIS as Windows-31J: ASCII, half-width katakana A1–DF, or a lead 81–9F / E0–FC and a trail 40–7E / 80–FC. */
function validShiftJis(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 0x80 || (b >= 0xa1 && b <= 0xdf)) continue;
    const trail = bytes[i + 1];
    if (!((b >= 0x81 && b <= 0x9f) || (b >= 0xe0 && b <= 0xfc)) || trail === undefined || trail < 0x40 || trail === 0x7f || trail > 0xfc) return false;
    i++;
  }
  return true;
}

/** EUC-JP: ASCII, JIS X 0208 as two bytes A1–FE, half-width katakana as 8E A1–DF, JIS X 0212 as 8F and two bytes A1–FE. */
function validEucJp(bytes: Buffer): boolean {
  const high = (b: number | undefined): boolean => b !== undefined && b >= 0xa1 && b <= 0xfe;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 0x80) continue;
    const next = bytes[i + 1];
    if (high(b) && high(next)) i += 1;
    else if (b === 0x8e && next !== undefined && next >= 0xa1 && next <= 0xdf) i += 1;
    else if (b === 0x8f && high(next) && high(bytes[i + 2])) i += 2;
    else return false;
  }
  return true;
}

function readUtf8(bytes: Buffer): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Shift_JIS or EUC-JP, when the bytes read as Japanese in one of them better than as Latin-1
 * words; undefined otherwise. A small scoring heuristic, not a general detector:
 * - a candidate must be valid byte sequences of its charset, decoding to assigned characters;
 * - it scores 2 per kana, CJK punctuation or full-width character, 1 per kanji, and loses 2 per
 *   any other non-ASCII character (half-width katakana, private use, Greek…), which is what
 *   Latin-1 or the other Japanese charset mostly turns into;
 * - Latin-1 scores 1 per byte of an accented letter (0xC0–0xFF) standing in a run of one or two
 *   such bytes next to an ASCII letter, as in "Formação" or "Verão", which also happen to be
 *   valid Shift_JIS (two rare kanji), and 1 per Windows-1252 punctuation byte (0x80–0x9F) alone
 *   between two ASCII letters ("it’s", one kanji in Shift_JIS).
 * The best Japanese candidate must score above 0 and above Latin-1. Real Japanese Shift_JIS text
 * is mostly bytes 0x81–0x9F (kana and common kanji), which are no letters in Latin-1; EUC-JP text
 * is runs of high bytes, never one or two between letters.
 */
export function detectJapanese(bytes: Buffer): "shift_jis" | "euc-jp" | undefined {
  const latin = latinScore(bytes);
  let best: { charset: "shift_jis" | "euc-jp"; score: number } | undefined;
  for (const charset of ["shift_jis", "euc-jp"] as const) {
    const text = readJapanese(bytes, charset);
    if (text === undefined) continue;
    const score = japaneseScore(text);
    if (score > 0 && score > latin && (!best || score > best.score)) best = { charset, score };
  }
  return best?.charset;
}

function japaneseScore(text: string): number {
  let score = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (code < 0x80) continue;
    if ((code >= 0x3000 && code <= 0x30ff) || (code >= 0xff01 && code <= 0xff60) || (code >= 0xffe0 && code <= 0xffe6)) score += 2;
    else if (code >= 0x4e00 && code <= 0x9fff) score += 1;
    else score -= 2;
  }
  return score;
}

function latinScore(bytes: Buffer): number {
  let score = 0;
  for (let i = 0; i < bytes.length; ) {
    if (bytes[i]! < 0x80) {
      i++;
      continue;
    }
    let end = i;
    while (end < bytes.length && bytes[end]! >= 0x80) end++;
    const run = bytes.subarray(i, end);
    const letters = run.every((b) => b >= 0xc0 && b !== 0xd7 && b !== 0xf7);
    if (run.length <= 2 && letters && (isAsciiLetter(bytes[i - 1]) || isAsciiLetter(bytes[end]))) score += run.length;
    // Windows-1252 punctuation between letters, as the apostrophe in "it’s" (0x92).
    else if (run.length === 1 && run[0]! <= 0x9f && isAsciiLetter(bytes[i - 1]) && isAsciiLetter(bytes[end])) score += 1;
    i = end;
  }
  return score;
}

function isAsciiLetter(byte: number | undefined): boolean {
  return byte !== undefined && ((byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a));
}
