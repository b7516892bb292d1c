import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { charsetHint, decodeRawHeaderValues, detectJapanese } from "./header-charset.ts";

/** Bytes given in hex, as buildMail hands a header value over: one char per byte. */
const h = (hex: string): string => Buffer.from(hex, "hex").toString("latin1");
const utf8 = (text: string): string => Buffer.from(text, "utf8").toString("latin1");

// Bytes written out so no encoder is needed: Shift_JIS (cp932) and EUC-JP of the same text.
const sjis = { notice: "94ad91978aae97b982cc82a8926d82e782b9", order: "82b2928d95b68a6d9446", test: "836583588367", news: "905692858fee95f1", yamada: "8e529363" };
const eucjp = { notice: "c8afc1f7b4b0cebba4cea4aac3cea4e9a4bb", order: "a4b4c3edcab8b3cec7a7", test: "a5c6a5b9a5c8", news: "bfb7c3e5bef0caf3", yamada: "bbb3c5c4" };

describe("decodeRawHeaderValues", () => {
  const cases: Array<{ name: string; values: Array<[string, string]>; body?: string; expected: string[]; warnings: RegExp[] }> = [
    { name: "ASCII stays as it is, no warning", values: [["Subject", "Receipt #123"]], body: "shift_jis", expected: ["Receipt #123"], warnings: [] },
    { name: "valid UTF-8 stays UTF-8 whatever the body declares", values: [["Subject", utf8("ご注文 ¥3,300")]], body: "shift_jis", expected: ["ご注文 ¥3,300"], warnings: [] },
    { name: "Shift_JIS declared by the body", values: [["Subject", h(sjis.order) + " #12"], ["From", '"' + h(sjis.yamada) + '" <y@example.jp>']], body: "Shift_JIS", expected: ["ご注文確認 #12", '"山田" <y@example.jp>'], warnings: [/^headers Subject, From in raw 8-bit bytes without RFC 2047 encoding: read as Shift_JIS \(the charset the body declares\)$/] },
    { name: "EUC-JP declared by the body", values: [["Subject", h(eucjp.notice)]], body: "euc-jp", expected: ["発送完了のお知らせ"], warnings: [/read as euc-jp \(the charset the body declares\)/] },
    { name: "ISO-2022-JP by its escapes, 7-bit, whatever the body declares", values: [["Subject", "Re: \x1b$B8+@Q=q\x1b(B"]], body: "iso-8859-1", expected: ["Re: 見積書"], warnings: [/^header Subject in raw ISO-2022-JP without RFC 2047 encoding: read as ISO-2022-JP \(its escape sequences\)$/] },
    { name: "an escape that is no ISO-2022-JP designation stays", values: [["Subject", "a\x1b[0mb"]], expected: ["a\x1b[0mb"], warnings: [] },
    { name: "Shift_JIS detected when the body declares nothing", values: [["Subject", h(sjis.notice)]], expected: ["発送完了のお知らせ"], warnings: [/read as Shift_JIS \(detected; the body declares no legacy charset\)/] },
    { name: "EUC-JP detected when the body declares nothing", values: [["Subject", h(eucjp.notice)]], expected: ["発送完了のお知らせ"], warnings: [/read as EUC-JP \(detected; the body declares no legacy charset\)/] },
    { name: "kanji only, Shift_JIS", values: [["Subject", h(sjis.news)]], expected: ["新着情報"], warnings: [/Shift_JIS \(detected/] },
    { name: "kanji only, EUC-JP", values: [["Subject", h(eucjp.news)]], expected: ["新着情報"], warnings: [/EUC-JP \(detected/] },
    { name: "body charset that cannot read the bytes: detection, and the warning says so", values: [["Subject", h(sjis.test)]], body: "euc-jp", expected: ["テスト"], warnings: [/read as Shift_JIS \(detected; not euc-jp, which the body declares\)/] },
    { name: "ISO-2022-JP body and 8-bit header bytes: detection", values: [["Subject", h(sjis.test)]], body: "ISO-2022-JP", expected: ["テスト"], warnings: [/Shift_JIS \(detected; not ISO-2022-JP/] },
    { name: "UTF-8 body and bytes that are not UTF-8: detection", values: [["Subject", h(eucjp.test)]], body: "utf-8", expected: ["テスト"], warnings: [/EUC-JP \(detected; the body declares no legacy charset\)/] },
    { name: "Latin-1 declared by the body", values: [["Subject", "Caf" + h("e9") + " " + h("53747261df65")]], body: "iso-8859-1", expected: ["Café Straße"], warnings: [/read as iso-8859-1 \(the charset the body declares\)/] },
    { name: "Latin-1 words that are also valid Shift_JIS stay Latin-1", values: [["Subject", "Forma" + h("e7e3") + "o Ver" + h("e3") + "o"]], expected: ["Formação Verão"], warnings: [/read as ISO-8859-1 \(not UTF-8, Shift_JIS or EUC-JP\)/] },
    { name: "Latin-1 capitals (half-width katakana in Shift_JIS) stay Latin-1", values: [["Subject", h("c9") + "COLE"]], expected: ["ÉCOLE"], warnings: [/ISO-8859-1/] },
    { name: "another declared charset (GB2312) is used as declared", values: [["Subject", h("d7a2cec4")]], body: "gb2312", expected: ["注文"], warnings: [/read as gb2312/] },
    { name: "one choice for the whole mail: a short name goes with the subject", values: [["From", h(sjis.yamada) + " <y@example.jp>"], ["Subject", h(sjis.notice)], ["X-Note", "plain"]], expected: ["山田 <y@example.jp>", "発送完了のお知らせ", "plain"], warnings: [/^headers From, Subject in raw 8-bit bytes .* read as Shift_JIS \(detected/] },
    { name: "UTF-8, ISO-2022-JP and Shift_JIS side by side", values: [["A", utf8("é")], ["B", "\x1b$B%F%9%H\x1b(B"], ["C", h(sjis.test)]], body: "shift_jis", expected: ["é", "テスト", "テスト"], warnings: [/^header B in raw ISO-2022-JP/, /^header C in raw 8-bit bytes .* read as shift_jis \(the charset the body declares\)$/] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = decodeRawHeaderValues(
        c.values.map(([name, binary]) => ({ name, binary })),
        c.body,
      );
      assert.deepEqual(got.values, c.expected);
      assert.equal(got.warnings.length, c.warnings.length, got.warnings.join("\n"));
      c.warnings.forEach((pattern, i) => assert.match(got.warnings[i]!, pattern));
    });
  }
});

describe("detectJapanese", () => {
  const cases: Array<[string, string, "shift_jis" | "euc-jp" | undefined]> = [
    ["Shift_JIS kana and kanji", sjis.notice, "shift_jis"],
    ["EUC-JP kana and kanji", eucjp.notice, "euc-jp"],
    ["Shift_JIS katakana", sjis.test, "shift_jis"],
    ["EUC-JP katakana", eucjp.test, "euc-jp"],
    ["Shift_JIS two kanji", sjis.yamada, "shift_jis"],
    ["EUC-JP two kanji", eucjp.yamada, "euc-jp"],
    ["Latin-1 'Formação'", Buffer.from("Formação", "latin1").toString("hex"), undefined],
    ["Latin-1 'Straße'", "53747261df65", undefined],
    ["half-width katakana alone", "b1b2b3", undefined],
    ["Latin-1 'Réservation confirmée'", Buffer.from("Réservation confirmée", "latin1").toString("hex"), undefined],
    ["Latin-1 'Größe Müller'", Buffer.from("Größe Müller", "latin1").toString("hex"), undefined],
    ["Latin-1 'Ñandú'", Buffer.from("Ñandú", "latin1").toString("hex"), undefined],
    ["Windows-1252 'it’s'", "6974927320", undefined],
    ["Shift_JIS 'PDFファイル' (a kana after an ASCII letter)", "504446837483408343838b", "shift_jis"],
    ["Shift_JIS 'Re: 山田様'", "52653a208e529363976c", "shift_jis"],
    ["invalid in both", "ff80ff", undefined],
  ];
  for (const [name, hex, expected] of cases) test(name, () => assert.equal(detectJapanese(Buffer.from(hex, "hex")), expected));
});

describe("charsetHint", () => {
  const cases: Array<[string | undefined, string | undefined]> = [
    [undefined, undefined],
    ["", undefined],
    ["UTF-8", undefined],
    ["us-ascii", undefined],
    ["utf-7", undefined],
    ["UNICODE-1-1-UTF-7", undefined],
    [" Shift_JIS ", "Shift_JIS"],
    ["iso-8859-1", "iso-8859-1"],
  ];
  for (const [charset, expected] of cases) test(String(charset), () => assert.equal(charsetHint(charset), expected));
});
