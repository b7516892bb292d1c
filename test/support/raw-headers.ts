/**
 * The fixtures with header values in raw bytes of a legacy charset (no RFC 2047), and what each
 * must decode to. Shared by the unit tests of both ways in (normalize.test.ts: the whole .eml;
 * parts.test.ts: header and text parts as fetched over IMAP) and the integration test against
 * Dovecot, so all three hold the mail to the same text.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import type { MailAddress } from "../../src/mail/types.ts";

export interface RawHeaderCase {
  file: string;
  subject: string;
  from: MailAddress[];
  /** Other header values, lower-cased name to first value. */
  headers?: Record<string, string>;
  /** The mail's warnings, exactly. */
  warnings: string[];
  /** IMAP part numbers the plan fetches. */
  parts: string[];
}

const how = "in raw 8-bit bytes without RFC 2047 encoding: read as";

export const rawHeaderCases: RawHeaderCase[] = [
  {
    file: "raw-header-shift-jis.eml",
    subject: "【重要】ご注文確認 合計 1,280円",
    // ソ and 表 end in 0x5C, a backslash in ASCII: inside the quoted name it must not escape the quote.
    from: [{ name: "ソフト表示ショップ", address: "shop@example.jp" }],
    headers: { to: "山田 太郎 <taro@example.jp>", "x-mailer": "秀丸メール" },
    warnings: [`headers From, To, Subject, X-Mailer ${how} Shift_JIS (the charset the body declares)`],
    parts: ["1"],
  },
  {
    file: "raw-header-euc-jp.eml",
    subject: "会議のお知らせ（第3回）",
    from: [{ name: "鈴木", address: "suzuki@example.jp" }],
    warnings: [`headers From, Subject ${how} EUC-JP (the charset the body declares)`],
    parts: ["1"],
  },
  {
    file: "raw-header-iso-2022-jp.eml",
    subject: "Re: 見積書の送付について",
    from: [{ name: "田中", address: "tanaka@example.jp" }],
    warnings: ["headers From, Subject in raw ISO-2022-JP without RFC 2047 encoding: read as ISO-2022-JP (its escape sequences)"],
    parts: ["1"],
  },
  {
    file: "raw-header-shift-jis-undeclared.eml",
    subject: "発送完了のお知らせ",
    from: [{ name: "", address: "noreply@shop.example.jp" }],
    warnings: [`header Subject ${how} Shift_JIS (detected; the body declares no legacy charset)`],
    parts: ["1"],
  },
  {
    file: "raw-header-utf8.eml",
    subject: "ご請求金額のお知らせ ¥3,300",
    from: [{ name: "佐藤", address: "sato@example.jp" }],
    warnings: [],
    parts: ["1"],
  },
  {
    file: "raw-header-latin1.eml",
    subject: "Confirmación de reserva - Señor García",
    from: [{ name: "José Muñoz", address: "jose@example.es" }],
    warnings: [`headers From, Subject ${how} iso-8859-1 (the charset the body declares)`],
    parts: ["1"],
  },
];

export const fixturesDir = path.resolve(import.meta.dirname, "../fixtures");

export function readRawHeaderFixture(c: RawHeaderCase): Buffer {
  return readFileSync(path.join(fixturesDir, c.file));
}
