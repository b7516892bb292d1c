/**
 * A deterministic corpus of realistic mail for the catch-up benchmark: the same seed gives the same
 * bytes on every machine, mail i depends only on (seed, i), and 10,000 mails take a few seconds.
 *
 * Each mail is 4 KB to 200 KB with CRLF line ends and a unique Message-ID. The mix, roughly:
 *   plain English (UTF-8, quoted-printable)       plain Japanese (UTF-8 base64, ISO-2022-JP 7bit)
 *   multipart/alternative text + HTML (UTF-8 QP, Shift_JIS base64 or 8bit)
 *   HTML-only newsletters (UTF-8 base64)          Latin-1 quoted-printable
 *   Google Play receipts ("合計: ￥480（税込）", UTF-8 QP or ISO-2022-JP) that the receipt rule matches
 * and about 10% carry an attachment (a PDF-like or JPEG-like base64 blob of 20–150 KB encoded),
 * wrapped in multipart/mixed. Headers look like delivered mail: Received, DKIM-Signature,
 * List-Unsubscribe, RFC 2047 names and subjects in the body's charset.
 *
 * Charsets are encoded without any dependency: Shift_JIS from a reverse table built with Node's own
 * TextDecoder("shift_jis"), ISO-2022-JP arithmetically from Shift_JIS. Every word used is checked
 * to be encodable when the module loads.
 *
 *   node bench/corpus-gen.ts [--count 10000] [--seed 1] [--check]
 *     prints size statistics and timing; --check also parses a sample with mailparser and checks
 *     the decoded subject and text against what was generated.
 */
import { parseArgs } from "node:util";

// --- seeded PRNG ---------------------------------------------------------------------------------

/** mulberry32: tiny, fast, good enough for test data. Returns floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit hash of (seed, index) so every mail has its own stream. */
function mix(seed: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.next() * list.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  hex(bytes: number): string {
    let s = "";
    for (let i = 0; i < bytes; i++) s += ((this.next() * 256) | 0).toString(16).padStart(2, "0");
    return s;
  }
  /** Pseudo-random bytes, 4 per PRNG step. */
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) out.writeUInt32LE((this.next() * 4294967296) >>> 0, i);
    for (; i < n; i++) out[i] = (this.next() * 256) | 0;
    return out;
  }
}

// --- charsets ------------------------------------------------------------------------------------

/**
 * UTF-16 code unit → Shift_JIS code (two bytes as one number; 0 = none), JIS X 0208 rows only
 * (lead bytes up to 0xEA, without the NEC special characters of row 13, which ISO-2022-JP lacks).
 */
const sjisTable: Uint16Array = (() => {
  const table = new Uint16Array(65536);
  const decoder = new TextDecoder("shift_jis", { fatal: true });
  const pair = Buffer.alloc(2);
  for (let lead = 0x81; lead <= 0xea; lead++) {
    if ((lead >= 0xa0 && lead <= 0xdf) || lead === 0x87) continue;
    for (let trail = 0x40; trail <= 0xfc; trail++) {
      if (trail === 0x7f) continue;
      pair[0] = lead;
      pair[1] = trail;
      let ch: string;
      try {
        ch = decoder.decode(pair);
      } catch {
        continue;
      }
      const c = ch.charCodeAt(0);
      if (ch.length === 1 && c >= 0x80 && table[c] === 0) table[c] = (lead << 8) | trail;
    }
  }
  return table;
})();

function sjisCode(text: string, i: number): number {
  const code = sjisTable[text.charCodeAt(i)]!;
  if (code === 0) throw new Error(`corpus-gen: ${JSON.stringify(text[i])} (U+${text.charCodeAt(i).toString(16)}) has no Shift_JIS / JIS X 0208 code`);
  return code;
}

function encodeShiftJis(text: string): Buffer {
  const out = Buffer.allocUnsafe(text.length * 2);
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) out[o++] = c;
    else {
      const code = sjisCode(text, i);
      out[o++] = code >> 8;
      out[o++] = code & 0xff;
    }
  }
  return out.subarray(0, o);
}

/** Shift_JIS code → JIS X 0208 bytes (as used after ESC $ B). */
function sjisToJis(code: number): [number, number] {
  let s1 = code >> 8;
  let s2 = code & 0xff;
  s1 = s1 <= 0x9f ? s1 - 0x71 : s1 - 0xb1;
  s1 = s1 * 2 + 1;
  if (s2 > 0x7f) s2 -= 1;
  if (s2 >= 0x9e) {
    s2 -= 0x7d;
    s1 += 1;
  } else s2 -= 0x1f;
  return [s1, s2];
}

/** ISO-2022-JP (RFC 1468): every line starts and ends in ASCII. Line breaks are kept as given. */
function encodeIso2022Jp(text: string): Buffer {
  const out = Buffer.allocUnsafe(text.length * 2 + 64 + text.length);
  let o = 0;
  let kanji = false;
  const toAscii = (): void => {
    out[o++] = 0x1b;
    out[o++] = 0x28;
    out[o++] = 0x42;
    kanji = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      if (kanji) toAscii();
      out[o++] = c;
    } else {
      if (!kanji) {
        out[o++] = 0x1b;
        out[o++] = 0x24;
        out[o++] = 0x42;
        kanji = true;
      }
      const [j1, j2] = sjisToJis(sjisCode(text, i));
      out[o++] = j1;
      out[o++] = j2;
    }
  }
  if (kanji) toAscii();
  return out.subarray(0, o);
}

function latin1(text: string): Buffer {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) throw new Error(`corpus-gen: ${JSON.stringify(text[i])} is not Latin-1`);
  return Buffer.from(text, "latin1");
}

type Charset = "UTF-8" | "ISO-2022-JP" | "Shift_JIS" | "ISO-8859-1";

function encodeCharset(text: string, charset: Charset): Buffer {
  switch (charset) {
    case "UTF-8":
      return Buffer.from(text, "utf8");
    case "ISO-2022-JP":
      return encodeIso2022Jp(text);
    case "Shift_JIS":
      return encodeShiftJis(text);
    case "ISO-8859-1":
      return latin1(text);
  }
}

// --- transfer encodings --------------------------------------------------------------------------

/** Quoted-printable (RFC 2045 §6.7) of bytes whose line breaks are CRLF; lines of at most 76. */
function quotedPrintable(src: Buffer): Buffer {
  const out = Buffer.allocUnsafe(src.length * 3 + Math.ceil(src.length / 24) * 3 + 8);
  const hexd = "0123456789ABCDEF";
  let o = 0;
  let col = 0;
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const b = src[i]!;
    if (b === 0x0d && src[i + 1] === 0x0a) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      col = 0;
      i++;
      continue;
    }
    const atEnd = i + 1 === n || (src[i + 1] === 0x0d && src[i + 2] === 0x0a);
    const literal = (b >= 33 && b <= 126 && b !== 61) || ((b === 0x20 || b === 0x09) && !atEnd);
    const need = literal ? 1 : 3;
    // 76 characters per line including the "=" of a soft break
    if (col + need > 75) {
      out[o++] = 0x3d;
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      col = 0;
    }
    if (literal) out[o++] = b;
    else {
      out[o++] = 0x3d;
      out[o++] = hexd.charCodeAt(b >> 4);
      out[o++] = hexd.charCodeAt(b & 15);
    }
    col += need;
  }
  return out.subarray(0, o);
}

/** Base64 in lines of 76 characters, CRLF separated. */
function base64Lines(src: Buffer): Buffer {
  const b64 = src.toString("base64");
  const lines = Math.ceil(b64.length / 76);
  const out = Buffer.allocUnsafe(b64.length + lines * 2);
  let o = 0;
  for (let i = 0; i < b64.length; i += 76) {
    o += out.write(b64.slice(i, i + 76), o, "latin1");
    out[o++] = 0x0d;
    out[o++] = 0x0a;
  }
  return out.subarray(0, Math.max(0, o - 2));
}

type Transfer = "quoted-printable" | "base64" | "7bit" | "8bit";

function encodeTransfer(bytes: Buffer, transfer: Transfer): Buffer {
  if (transfer === "quoted-printable") return quotedPrintable(bytes);
  if (transfer === "base64") return base64Lines(bytes);
  return bytes;
}

/** RFC 2047 B-words, each a whole number of characters, at most ~75 columns. */
function encodedWords(text: string, charset: Charset): string {
  if (/^[\x20-\x7e]*$/.test(text)) return text;
  const words: string[] = [];
  const maxBytes = charset === "ISO-2022-JP" ? 36 : 42;
  let chunk = "";
  const flush = (): void => {
    if (chunk) words.push(`=?${charset}?B?${encodeCharset(chunk, charset).toString("base64")}?=`);
    chunk = "";
  };
  for (const ch of text) {
    const next = chunk + ch;
    if (encodeCharset(next, charset).length > maxBytes) flush();
    chunk += ch;
  }
  flush();
  return words.join("\r\n ");
}

// --- words ---------------------------------------------------------------------------------------

const EN = (
  "the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part order account delivery update shipping invoice payment service team support review customer weekly digest offer sale price free return product member points reward coupon schedule meeting project report status release security notice password device login confirm subscription renewal plan monthly annual storage photo music video app store receipt total tax"
).split(" ");

const JA = [
  "いつも", "ご利用", "いただき", "ありがとう", "ございます", "お客様", "ご注文", "内容", "確認", "お知らせ", "配送", "予定日", "商品", "発送", "完了", "しました",
  "会員", "ポイント", "キャンペーン", "期間限定", "セール", "開催中", "詳細", "こちら", "ログイン", "パスワード", "変更", "手続き", "お問い合わせ", "窓口", "営業時間",
  "平日", "東京都", "渋谷区", "株式会社", "サービス", "アプリ", "更新", "新機能", "追加", "安全", "セキュリティ", "設定", "メール", "配信", "停止", "ご案内",
  "今月", "来月", "請求", "金額", "支払い", "方法", "クレジットカード", "領収書", "発行", "本日", "明日", "週末", "天気", "会議", "資料", "共有", "よろしく",
  "お願い", "いたします", "担当者", "部署", "報告", "進捗", "予算", "見積", "承認", "申請", "締切", "対応", "完了報告", "東京", "大阪", "京都", "北海道",
];

const LATIN = ["café", "naïve", "Größe", "señor", "Zürich", "garçon", "über", "façade", "Ångström", "smörgåsbord", "crème", "brûlée", "déjà", "vu", "Straße", "niño"];

const SENDERS_EN = [
  "Acme Store <orders@shop.example.com>", "Weekly Digest <digest@news.example.org>", "Project Bot <noreply@ci.example.net>",
  "Jane Doe <jane.doe@example.com>", "Security Team <security@accounts.example.com>", "Travel Deals <deals@travel.example.net>",
];
const SENDERS_JA = [
  ["楽しい通販", "info@shop.example.jp"], ["山田 太郎", "taro.yamada@example.jp"], ["会員サービス事務局", "member@service.example.jp"],
  ["東京ニュース", "news@tokyo.example.jp"], ["経理部", "keiri@corp.example.co.jp"],
] as const;
const SENDERS_LATIN = ["Müller GmbH <info@mueller.example.de>", "Librería Pérez <ventas@libreria.example.es>", "Café de Flore <contact@cafe.example.fr>"];
/** Every domain a corpus mail comes from (its From address's), e.g. to sign each mail as its sender would. */
export const SENDER_DOMAINS: readonly string[] = [
  ...new Set([...SENDERS_EN, ...SENDERS_JA.map((s) => s[1]), ...SENDERS_LATIN, "googleplay-noreply@google.com"].map((a) => /@([^>]+)>?$/.exec(a)![1]!)),
];
const ITEMS = [["マンスリーパス", "Monthly pass"], ["追加ストレージ 100 GB", "100 GB storage"], ["プレミアム会員", "Premium membership"], ["ジェムパック", "Gem pack"], ["電子書籍", "E-book"]] as const;
const PRICES = [120, 250, 300, 480, 610, 980, 1200, 1500, 2400, 3200, 4800, 9800];

/** Fails at load time if a word cannot be written in the charsets it is used with. */
for (const w of [...JA, ...ITEMS.map((i) => i[0]), ...SENDERS_JA.map((s) => s[0]), "合計", "（税込）", "￥", "注文番号", "のご注文明細", "お支払い方法"]) encodeShiftJis(w);
for (const w of LATIN) latin1(w);

// --- text ----------------------------------------------------------------------------------------

type Lang = "en" | "ja" | "latin";

function sentence(rng: Rng, lang: Lang): string {
  if (lang === "ja") {
    const n = rng.int(4, 10);
    let s = "";
    for (let i = 0; i < n; i++) s += rng.pick(JA) + (rng.chance(0.25) ? "、" : "");
    return `${s}。`;
  }
  const n = rng.int(6, 16);
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(lang === "latin" && rng.chance(0.2) ? rng.pick(LATIN) : rng.pick(EN));
  const s = words.join(" ");
  return `${s[0]!.toUpperCase()}${s.slice(1)}${rng.pick([".", ".", ".", "!", "?"])}`;
}

/** Wraps a paragraph into lines (72 columns for Latin text, 36 characters for Japanese). */
function wrap(paragraph: string, lang: Lang): string[] {
  if (lang === "ja") {
    const lines: string[] = [];
    for (let i = 0; i < paragraph.length; i += 36) lines.push(paragraph.slice(i, i + 36));
    return lines;
  }
  const lines: string[] = [];
  let line = "";
  for (const w of paragraph.split(" ")) {
    if (line && line.length + 1 + w.length > 72) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines;
}

function paragraph(rng: Rng, lang: Lang): string {
  const n = rng.int(2, 6);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(sentence(rng, lang));
  return parts.join(lang === "ja" ? "" : " ");
}

/** About the bytes a paragraph costs after charset and transfer encoding (enough to size a body). */
function encodedSize(text: string, charset: Charset, transfer: Transfer): number {
  let wide = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) wide++;
  const ascii = text.length - wide;
  // bytes, and how many of them are 8-bit (QP writes those as =XX)
  const [bytes, high] = charset === "UTF-8" ? [ascii + 3 * wide, 3 * wide] : charset === "ISO-8859-1" ? [text.length, wide] : [ascii + 2 * wide, 1.5 * wide];
  const lines = bytes / 70;
  if (transfer === "base64") return bytes * (4 / 3) * (78 / 76);
  if (transfer === "quoted-printable") return (bytes + 2 * high) * (78 / 75);
  return bytes + 2 * lines + (charset === "ISO-2022-JP" ? 6 * lines : 0);
}

/** Paragraphs of text until the encoded size reaches `targetBytes`. */
function paragraphs(rng: Rng, lang: Lang, charset: Charset, transfer: Transfer, targetBytes: number): string[] {
  const out: string[] = [];
  let size = 0;
  while (size < targetBytes || out.length === 0) {
    const p = paragraph(rng, lang);
    out.push(p);
    size += encodedSize(p, charset, transfer) + 4;
  }
  return out;
}

function textBody(paras: readonly string[], lang: Lang, greeting: string, signature: string): string {
  return [greeting, "", ...paras.flatMap((p) => [...wrap(p, lang), ""]), "-- ", signature].join("\r\n");
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

const CSS = `body{margin:0;padding:0;background:#f4f4f4}table{border-collapse:collapse}td{font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.5;color:#333}.btn{display:inline-block;padding:10px 18px;background:#0b5fff;color:#fff;border-radius:4px;text-decoration:none}.footer td{font-size:12px;color:#888}@media only screen and (max-width:600px){.container{width:100%!important}.col{display:block!important;width:100%!important}}`;

/** Newsletter-style HTML around the paragraphs, padded with product cards up to `targetChars`. */
function htmlBody(rng: Rng, paras: readonly string[], lang: Lang, charset: Charset, title: string, targetChars: number): string {
  const rows: string[] = [];
  for (const p of paras) rows.push(`<tr><td style="padding:0 24px 16px 24px">${escapeHtml(p)}</td></tr>`);
  let html = rows.join("\r\n");
  let card = 0;
  while (html.length < targetChars) {
    const id = rng.int(10000, 99999);
    html += `\r\n<tr><td class="col" style="padding:8px 24px;border-top:1px solid #eee"><a href="https://shop.example.com/p/${id}?utm_source=mail&amp;utm_medium=email&amp;utm_campaign=c${card}"><img src="https://img.example.com/p/${id}.jpg" width="120" height="120" alt="" style="float:left;margin-right:12px"></a><b>${escapeHtml(sentence(rng, lang))}</b><br>${escapeHtml(sentence(rng, lang))}<br><a class="btn" href="https://shop.example.com/p/${id}">${lang === "ja" ? "詳細を見る" : "View"}</a></td></tr>`;
    card++;
  }
  return `<!DOCTYPE html>\r\n<html><head><meta http-equiv="Content-Type" content="text/html; charset=${charset}"><title>${escapeHtml(title)}</title><style type="text/css">${CSS}</style></head>\r\n<body><table class="container" width="600" align="center" cellpadding="0" cellspacing="0" role="presentation">\r\n<tr><td style="padding:24px"><h1 style="font-size:22px">${escapeHtml(title)}</h1></td></tr>\r\n${html}\r\n<tr class="footer"><td style="padding:24px"><a href="https://example.com/unsubscribe">unsubscribe</a> &middot; <a href="https://example.com/privacy">privacy</a></td></tr>\r\n</table><img src="https://t.example.com/open/${rng.hex(12)}.gif" width="1" height="1" alt=""></body></html>`;
}

// --- MIME assembly -------------------------------------------------------------------------------

interface Part {
  headers: string[];
  body: Buffer;
}

/** `flowed`: label the plain text format=flowed (RFC 3676), as Apple Mail and Thunderbird do. */
function textPart(kind: "plain" | "html", text: string, charset: Charset, transfer: Transfer, flowed = false): Part {
  const format = kind === "plain" && flowed && charset !== "ISO-2022-JP" ? "; format=flowed" : "";
  return {
    headers: [`Content-Type: text/${kind}; charset="${charset}"${format}`, `Content-Transfer-Encoding: ${transfer}`],
    body: encodeTransfer(encodeCharset(text, charset), transfer),
  };
}

function multipart(rng: Rng, subtype: string, parts: readonly Part[]): Part {
  const boundary = `----=_Part_${rng.int(100000, 999999)}_${rng.hex(6)}.${rng.int(1000000000, 1999999999)}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\n${p.headers.join("\r\n")}\r\n\r\n`, "latin1"), p.body, Buffer.from("\r\n", "latin1"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`, "latin1"));
  return { headers: [`Content-Type: multipart/${subtype};\r\n boundary="${boundary}"`], body: Buffer.concat(chunks) };
}

function attachmentPart(rng: Rng, encodedBytes: number): { part: Part; filename: string } {
  const pdf = rng.chance(0.7);
  const rawBytes = Math.max(1024, Math.floor((encodedBytes * 76) / 78 / 4) * 3);
  const blob = rng.bytes(rawBytes);
  let filename: string;
  if (pdf) {
    filename = rng.pick(["invoice", "statement", "receipt", "report", "ticket"]) + `-${rng.int(1000, 99999)}.pdf`;
    const head = Buffer.from(`%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Length ${rawBytes} /Filter /FlateDecode >>\nstream\n`, "latin1");
    head.copy(blob, 0);
    Buffer.from("\nendstream\nendobj\n%%EOF\n", "latin1").copy(blob, rawBytes - 24);
  } else {
    filename = `IMG_${rng.int(1000, 9999)}.jpg`;
    Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00]).copy(blob, 0);
    blob[rawBytes - 2] = 0xff;
    blob[rawBytes - 1] = 0xd9;
  }
  const type = pdf ? "application/pdf" : "image/jpeg";
  return {
    filename,
    part: {
      headers: [`Content-Type: ${type}; name="${filename}"`, `Content-Disposition: attachment; filename="${filename}"`, "Content-Transfer-Encoding: base64"],
      body: base64Lines(blob),
    },
  };
}

function rfc5322Date(d: Date, offsetMinutes: number): string {
  const local = new Date(d.getTime() + offsetMinutes * 60_000);
  const sign = offsetMinutes >= 0 ? "+" : "-";
  const abs = Math.abs(offsetMinutes);
  const zone = `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}${String(abs % 60).padStart(2, "0")}`;
  return local.toUTCString().replace(/GMT$/, zone);
}

function fold(name: string, value: string): string {
  // already folded (encoded words) or short enough
  if (value.includes("\r\n") || name.length + value.length < 76) return `${name}: ${value}`;
  const words = value.split(" ");
  const lines: string[] = [];
  let line = `${name}:`;
  for (const w of words) {
    if (line.length + 1 + w.length > 76 && line !== `${name}:`) {
      lines.push(line);
      line = ` ${w}`;
    } else line += ` ${w}`;
  }
  lines.push(line);
  return lines.join("\r\n");
}

// --- mails ---------------------------------------------------------------------------------------

export type MailKind = "plain-en" | "plain-ja-utf8" | "plain-ja-jis" | "alt-utf8" | "alt-sjis" | "html-only" | "latin1" | "receipt";

const KINDS: readonly [MailKind, number][] = [
  ["plain-en", 12],
  ["plain-ja-utf8", 8],
  ["plain-ja-jis", 12],
  ["alt-utf8", 25],
  ["alt-sjis", 9],
  ["html-only", 11],
  ["latin1", 5],
  ["receipt", 5],
];
const KIND_WEIGHT = KINDS.reduce((n, [, w]) => n + w, 0);

export interface CorpusMail {
  index: number;
  /** With angle brackets, as in the header. */
  messageId: string;
  raw: Buffer;
  kind: MailKind;
  charset: Charset;
  subject: string;
  /** The receipt's amount in yen, for receipts. */
  receiptYen?: number;
  /** File name of the attachment, when the mail has one. */
  attachment?: string;
}

export interface CorpusOptions {
  /** Default 1. Mail i depends only on (seed, i). */
  seed?: number;
  /** Recipient address; default alice@bench.test. */
  to?: string;
  /** Share of mails with an attachment; default 0.1. */
  attachmentRate?: number;
}

const MIN_BYTES = 4 * 1024;
const MAX_BYTES = 200 * 1024;
/** Dates spread over the 30 days before this instant (fixed, so output is deterministic). */
const BASE_TIME = Date.UTC(2026, 2, 1, 0, 0, 0);

/** Mail `index` of the corpus for `seed`: always the same bytes. */
export function generateMail(index: number, options: CorpusOptions = {}): CorpusMail {
  const seed = options.seed ?? 1;
  // Rarely a body comes out below 4 KB: try again with a larger target (still deterministic).
  for (let attempt = 0; ; attempt++) {
    const mail = buildOne(index, seed, options, attempt);
    if ((mail.raw.length >= MIN_BYTES && mail.raw.length <= MAX_BYTES) || attempt >= 5) return mail;
  }
}

function buildOne(index: number, seed: number, options: CorpusOptions, attempt: number): CorpusMail {
  const rng = new Rng(mix(seed, index) ^ Math.imul(attempt, 0x5bd1e995));
  let roll = rng.next() * KIND_WEIGHT;
  let kind: MailKind = "alt-utf8";
  for (const [k, w] of KINDS) {
    if (roll < w) {
      kind = k;
      break;
    }
    roll -= w;
  }
  const hasAttachment = rng.chance(options.attachmentRate ?? 0.1);
  const attachmentBytes = hasAttachment ? rng.int(20 * 1024, 150 * 1024) : 0;
  // Log-uniform sizes: most mail is small, a few newsletters are large.
  const total = rng.chance(0.03) ? rng.int(64 * 1024, 190 * 1024) : Math.round(MIN_BYTES * 1.1 * Math.pow(16, rng.next()));
  const bodyTarget = Math.max(1500, Math.min(total, MAX_BYTES - attachmentBytes - 12 * 1024) - 3000) * (1 + attempt * 0.5);

  const date = new Date(BASE_TIME - Math.floor(rng.next() * 30 * 86_400_000));
  const messageId = `<${seed.toString(36)}.${index}.${rng.hex(8)}@bench.mailbell.test>`;
  const to = options.to ?? "alice@bench.test";

  let from: string;
  let subject: string;
  let charset: Charset;
  let content: Part;
  let receiptYen: number | undefined;
  let offset = 0;

  const jaFrom = (cs: Charset): string => {
    const [name, addr] = rng.pick(SENDERS_JA);
    return `${encodedWords(name, cs)} <${addr}>`;
  };

  switch (kind) {
    case "plain-en": {
      charset = "UTF-8";
      from = rng.pick(SENDERS_EN);
      subject = sentence(rng, "en").slice(0, 70).trimEnd();
      offset = rng.pick([-300, -480, 0, 60]);
      const paras = paragraphs(rng, "en", charset, "quoted-printable", bodyTarget);
      content = textPart("plain", textBody(paras, "en", "Hello,", "The Example Team"), charset, "quoted-printable", rng.chance(0.25));
      break;
    }
    case "plain-ja-utf8":
    case "plain-ja-jis": {
      const jis = kind === "plain-ja-jis";
      charset = jis ? "ISO-2022-JP" : "UTF-8";
      const transfer: Transfer = jis ? "7bit" : "base64";
      from = jaFrom(charset);
      subject = `【${rng.pick(JA)}】${sentence(rng, "ja").slice(0, 24)}`;
      offset = 540;
      const paras = paragraphs(rng, "ja", charset, transfer, bodyTarget);
      content = textPart("plain", textBody(paras, "ja", "お客様各位", "株式会社サンプル 会員サービス事務局"), charset, transfer, rng.chance(0.25));
      break;
    }
    case "alt-utf8":
    case "alt-sjis": {
      const sjis = kind === "alt-sjis";
      const lang: Lang = sjis || rng.chance(0.3) ? "ja" : "en";
      charset = sjis ? "Shift_JIS" : "UTF-8";
      const transfer: Transfer = sjis ? rng.pick<Transfer>(["base64", "8bit"]) : "quoted-printable";
      from = lang === "ja" ? jaFrom(charset) : rng.pick(SENDERS_EN);
      subject = lang === "ja" ? `${rng.pick(JA)}${rng.pick(JA)}のお知らせ` : sentence(rng, "en").slice(0, 60).trimEnd();
      offset = lang === "ja" ? 540 : -300;
      const paras = paragraphs(rng, lang, charset, transfer, bodyTarget * 0.35);
      const plain = textPart("plain", textBody(paras, lang, lang === "ja" ? "いつもご利用ありがとうございます。" : "Hi there,", "Example Inc."), charset, transfer, rng.chance(0.25));
      const htmlChars = (bodyTarget * 0.65) / (lang === "ja" && transfer === "quoted-printable" ? 3 : 1.2);
      const html = textPart("html", htmlBody(rng, paras, lang, charset, subject, htmlChars), charset, transfer);
      content = multipart(rng, "alternative", [plain, html]);
      break;
    }
    case "html-only": {
      charset = "UTF-8";
      const lang: Lang = rng.chance(0.4) ? "ja" : "en";
      from = lang === "ja" ? jaFrom(charset) : rng.pick(SENDERS_EN);
      subject = lang === "ja" ? `週末限定${rng.pick(JA)}セール開催中` : `Weekly deals: ${sentence(rng, "en").slice(0, 50).trimEnd()}`;
      offset = lang === "ja" ? 540 : 0;
      const paras = paragraphs(rng, lang, charset, "base64", bodyTarget * 0.3);
      content = textPart("html", htmlBody(rng, paras, lang, charset, subject, bodyTarget / 1.4), charset, "base64");
      break;
    }
    case "latin1": {
      charset = "ISO-8859-1";
      from = rng.pick(SENDERS_LATIN);
      subject = `${rng.pick(LATIN)} ${sentence(rng, "latin").slice(0, 50).trimEnd()}`;
      offset = 60;
      const paras = paragraphs(rng, "latin", charset, "quoted-printable", bodyTarget);
      content = textPart("plain", textBody(paras, "latin", "Grüße,", "Müller & Söhne"), charset, "quoted-printable", rng.chance(0.25));
      break;
    }
    case "receipt": {
      const jis = rng.chance(0.4);
      charset = jis ? "ISO-2022-JP" : "UTF-8";
      const transfer: Transfer = jis ? "7bit" : "quoted-printable";
      from = "Google Play <googleplay-noreply@google.com>";
      subject = "Google Play のご注文明細";
      offset = 540;
      const [item, english] = rng.pick(ITEMS);
      receiptYen = rng.pick(PRICES);
      const yen = receiptYen.toLocaleString("en-US");
      const lines = [
        "Google Play のご注文明細",
        "",
        `注文番号: GPA.${rng.int(1000, 9999)}-${rng.int(1000, 9999)}-${rng.int(1000, 9999)}-${rng.int(10000, 99999)}`,
        `注文日: ${date.toISOString().slice(0, 10)}`,
        "",
        `商品名: ${item} (${english})`,
        `価格: ￥${yen}`,
        `合計: ￥${yen}（税込）`,
        `お支払い方法: Visa-${rng.int(1000, 9999)}`,
        "",
      ];
      const paras = paragraphs(rng, "ja", charset, transfer, Math.min(bodyTarget, 6000));
      content = textPart("plain", [...lines, ...paras.flatMap((p) => [...wrap(p, "ja"), ""])].join("\r\n"), charset, transfer);
      break;
    }
  }

  let attachment: string | undefined;
  if (hasAttachment) {
    const att = attachmentPart(rng, attachmentBytes);
    attachment = att.filename;
    content = multipart(rng, "mixed", [content, att.part]);
  }

  const relay = `mx${rng.int(1, 9)}.relay.example.net`;
  const ip = `192.0.2.${rng.int(1, 254)}`;
  const received = (hops: number): string[] => {
    const out: string[] = [];
    for (let h = 0; h < hops; h++) {
      const at = new Date(date.getTime() + (hops - h) * 1000);
      out.push(`Received: from ${relay} (${relay} [${ip}])\r\n\tby mail.bench.test (Postfix) with ESMTPS id ${rng.hex(5).toUpperCase()}\r\n\tfor <${to.replace(/^.*<|>$/g, "")}>; ${rfc5322Date(at, 0)}`);
    }
    return out;
  };
  const domain = /@([^>]+)>?$/.exec(from)?.[1] ?? "example.com";
  const dkim = `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=${domain}; s=s${rng.int(1, 3)}; t=${Math.floor(date.getTime() / 1000)};\r\n\th=from:to:subject:date:message-id:mime-version:content-type;\r\n\tbh=${Buffer.from(rng.bytes(32)).toString("base64")};\r\n\tb=${base64Lines(rng.bytes(256)).toString("latin1").replace(/\r\n/g, "\r\n\t  ")}`;
  const headers = [
    `Return-Path: <bounce-${rng.hex(6)}@${domain}>`,
    `Delivered-To: ${to}`,
    ...received(rng.int(1, 3)),
    dkim,
    `From: ${from}`,
    `To: ${to}`,
    fold("Subject", encodedWords(subject, charset)),
    `Date: ${rfc5322Date(date, offset)}`,
    `Message-ID: ${messageId}`,
    "MIME-Version: 1.0",
    ...content.headers,
    ...(kind === "html-only" || kind === "alt-utf8" ? [`List-Unsubscribe: <https://${domain}/unsubscribe/${rng.hex(10)}>, <mailto:unsubscribe@${domain}>`, "List-Unsubscribe-Post: List-Unsubscribe=One-Click"] : []),
    `X-Mailer: ${rng.pick(["Example Mailer 4.2", "Microsoft Outlook 16.0", "Apple Mail (2.3654)", "PHPMailer 6.9.1"])}`,
  ];
  const head = Buffer.from(`${headers.join("\r\n")}\r\n\r\n`, "latin1");
  const body = content.body;
  const endsWithCrlf = body.length >= 2 && body[body.length - 2] === 0x0d && body[body.length - 1] === 0x0a;
  const raw = Buffer.concat(endsWithCrlf ? [head, body] : [head, body, Buffer.from("\r\n")]);
  return { index, messageId, raw, kind, charset, subject, ...(receiptYen !== undefined ? { receiptYen } : {}), ...(attachment ? { attachment } : {}) };
}

/** Mails `from` … `from + count - 1`, one at a time (nothing is kept). */
export function* corpus(count: number, options: CorpusOptions = {}, from = 0): Generator<CorpusMail> {
  for (let i = from; i < from + count; i++) yield generateMail(i, options);
}

/** The raw bytes of `count` mails. */
export function generateMails(count: number, options: CorpusOptions = {}): Buffer[] {
  const out: Buffer[] = [];
  for (const m of corpus(count, options)) out.push(m.raw);
  return out;
}

// --- standalone ----------------------------------------------------------------------------------

async function check(sample: readonly CorpusMail[]): Promise<number> {
  const { simpleParser } = await import("mailparser");
  let bad = 0;
  for (const m of sample) {
    const parsed = await simpleParser(m.raw);
    const problems: string[] = [];
    if (parsed.messageId !== m.messageId) problems.push(`Message-ID ${parsed.messageId} ≠ ${m.messageId}`);
    if (parsed.subject !== m.subject) problems.push(`subject ${JSON.stringify(parsed.subject)} ≠ ${JSON.stringify(m.subject)}`);
    const text = parsed.text || (typeof parsed.html === "string" ? parsed.html.replace(/<[^>]*>/g, " ") : "");
    if (text.length < 100) problems.push(`text only ${text.length} chars`);
    if (text.includes("\uFFFD") || text.includes("\u001b")) problems.push("text has replacement characters or raw escape sequences");
    if (m.receiptYen !== undefined && !text.includes(`合計: ￥${m.receiptYen.toLocaleString("en-US")}（税込）`)) problems.push("receipt total line not found in text");
    const atts = parsed.attachments.filter((a) => a.contentDisposition === "attachment");
    if ((m.attachment !== undefined) !== (atts.length === 1)) problems.push(`attachments: expected ${m.attachment ?? "none"}, got ${atts.length}`);
    if (problems.length) {
      bad++;
      console.log(`mail ${m.index} (${m.kind}, ${m.charset}): ${problems.join("; ")}`);
    }
  }
  return bad;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { count: { type: "string", default: "10000" }, seed: { type: "string", default: "1" }, check: { type: "boolean", default: false } } });
  const count = Number(values.count);
  const seed = Number(values.seed);
  const t0 = performance.now();
  const sizes: number[] = [];
  const kinds = new Map<string, number>();
  const ids = new Set<string>();
  let attachments = 0;
  let receipts = 0;
  const sample: CorpusMail[] = [];
  for (const m of corpus(count, { seed })) {
    sizes.push(m.raw.length);
    kinds.set(`${m.kind} ${m.charset}`, (kinds.get(`${m.kind} ${m.charset}`) ?? 0) + 1);
    ids.add(m.messageId);
    if (m.attachment) attachments++;
    if (m.receiptYen !== undefined) receipts++;
    if (values.check && (m.index % Math.max(1, Math.floor(count / 400)) === 0 || m.attachment || m.receiptYen !== undefined) && sample.length < 1500) sample.push(m);
  }
  const ms = performance.now() - t0;
  sizes.sort((a, b) => a - b);
  const total = sizes.reduce((a, b) => a + b, 0);
  const q = (p: number): string => `${(sizes[Math.min(sizes.length - 1, Math.floor((p / 100) * sizes.length))]! / 1024).toFixed(1)} KB`;
  console.log(`${count} mails (seed ${seed}) in ${(ms / 1000).toFixed(2)} s: ${(total / 2 ** 20).toFixed(1)} MB, ${(count / (ms / 1000)).toFixed(0)} mails/s`);
  console.log(`size min ${q(0)}, p50 ${q(50)}, p90 ${q(90)}, p99 ${q(99)}, max ${(sizes.at(-1)! / 1024).toFixed(1)} KB; ${attachments} with attachments, ${receipts} receipts; ${ids.size} distinct Message-IDs`);
  for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(28)} ${n}`);
  if (values.check) {
    const bad = await check(sample);
    console.log(`checked ${sample.length} mails with mailparser: ${bad} with problems`);
    if (bad > 0) process.exitCode = 1;
  }
  if (ids.size !== count || sizes[0]! < MIN_BYTES || sizes.at(-1)! > MAX_BYTES) {
    console.log("FAILED: duplicate Message-IDs or sizes outside 4 KB … 200 KB");
    process.exitCode = 1;
  }
}

if (import.meta.main) await main();
