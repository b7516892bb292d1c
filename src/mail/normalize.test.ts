import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { rawHeaderCases, readRawHeaderFixture } from "../../test/support/raw-headers.ts";
import { splitHeaderFields } from "./header-block.ts";
import { buildMail, normalizeMail } from "./normalize.ts";

const fixtures = path.resolve(import.meta.dirname, "../../test/fixtures");
const fixture = (name: string): Buffer => readFileSync(path.join(fixtures, name));
const mail = (...lines: string[]): Buffer => Buffer.from(lines.join("\r\n"), "utf8");

describe("fixtures decode exactly", () => {
  test("google-play-ja-iso2022jp.eml: ISO-2022-JP body and B-encoded subject", async () => {
    const m = await normalizeMail(fixture("google-play-ja-iso2022jp.eml"));
    assert.equal(m.subject, "Google Play のご注文明細（2026/11/23）");
    assert.deepEqual(m.from, [{ name: "Google Play", address: "googleplay-noreply@google.com" }]);
    assert.deepEqual(m.to, [{ name: "山田 太郎", address: "taro@example.jp" }]);
    assert.ok(m.text.includes("\n商品名: マンスリーパス (Monthly pass)\n"), m.text);
    assert.ok(m.text.includes("\n合計: ￥480（税込）\n"));
    assert.ok(m.text.includes("\n注文番号: GPA.3391-4821-7719-20553\n"));
    assert.equal(m.messageId, "0000000000005c3a1d0641f2b7e9@google.com");
    assert.equal(m.date?.toISOString(), "2026-11-23T10:04:11.000Z");
    assert.equal(m.html, undefined);
    assert.deepEqual(m.warnings, []);
  });

  test("google-play-en-utf8.eml: quoted-printable text/plain wins over its HTML alternative", async () => {
    const m = await normalizeMail(fixture("google-play-en-utf8.eml"));
    assert.equal(m.subject, "Your Google Play Order Receipt from Nov 23, 2026");
    assert.equal(m.from[0]?.address, "googleplay-noreply@google.com");
    assert.ok(m.text.includes("\nTotal: $4.99\n"));
    assert.ok(m.text.includes("Item: Monthly pass – Dragon Tactics (Example Games Inc.)"));
    // A soft line break in the middle of the URL must be joined again.
    assert.ok(m.text.includes("You can cancel anytime at https://play.google.com/store/account/subscriptions."));
    assert.ok(m.text.includes("© 2026 Google LLC"));
    assert.ok(!m.text.includes("<td"), "text is the plain part, not HTML");
    assert.ok(m.html?.includes("<b>$4.99</b>"));
    assert.deepEqual(m.warnings, []);
  });

  test("apple-receipt-ja-utf8.eml: HTML-only base64 becomes text with table cells apart", async () => {
    const m = await normalizeMail(fixture("apple-receipt-ja-utf8.eml"));
    assert.equal(m.subject, "Apple からの領収書です。");
    assert.deepEqual(m.from, [{ name: "Apple", address: "no_reply@email.apple.com" }]);
    assert.ok(m.html?.includes('<td class="total">合計</td>'));
    const lines = m.text.split("\n");
    assert.ok(lines.includes("合計 ¥1,300"), m.text);
    assert.ok(lines.includes("ご注文番号 MQ4X7Y2Z9K"));
    assert.ok(lines.includes("（消費税 ¥118 を含む）"), "&nbsp; becomes a plain space");
    assert.ok(m.text.includes("Copyright © 2026 Apple Inc."));
    assert.deepEqual(m.warnings, []);
  });

  test("apple-receipt-en-multipart.eml: text/plain of the alternative, PDF attachment dropped", async () => {
    const m = await normalizeMail(fixture("apple-receipt-en-multipart.eml"));
    assert.equal(m.subject, "Your receipt from Apple.");
    assert.equal(m.from[0]?.address, "no_reply@email.apple.com");
    assert.ok(m.text.includes("\nTOTAL  $15.14\n"));
    assert.ok(m.text.includes("\nSome App Pro (Monthly)  $14.15\n"));
    assert.ok(!m.text.includes("%PDF") && !m.text.includes("JVBER"), "attachment content is not in the text");
    assert.ok(!JSON.stringify([...m.headers]).includes("JVBER"));
    assert.deepEqual(Object.keys(m).sort(), ["attachments", "cc", "date", "from", "headers", "html", "messageId", "subject", "text", "to", "warnings"]);
    // Named and sized from the structure; the content itself is discarded.
    assert.deepEqual(m.attachments, [{ filename: "Receipt_MQ4X7Y2Z9.pdf", contentType: "application/pdf", size: m.attachments[0]?.size }]);
    assert.ok(m.attachments[0]!.size > 0);
    assert.deepEqual(m.warnings, []);
  });

  test("shift-jis-notice.eml: raw 8-bit Shift_JIS body (0x5C trail bytes) and encoded subject and name", async () => {
    const m = await normalizeMail(fixture("shift-jis-notice.eml"));
    assert.equal(m.subject, "【重要】ご利用代金確定のお知らせ（2026年11月分）");
    assert.deepEqual(m.from, [{ name: "エグザンプルカード", address: "info@card.example.co.jp" }]);
    assert.ok(m.text.includes("\n■お支払い金額: 12,345円\n"), m.text);
    assert.ok(m.text.includes("■お支払い日: 2026年12月10日（木）"));
    assert.ok(m.text.includes("※明細表は会員サイトの「ご利用明細」機能でご確認いただけます。"));
    assert.ok(m.text.includes("※ソフトウェア利用料などの継続課金も含まれます。"));
    assert.ok(m.text.includes("〒100-0005 東京都千代田区丸の内1-1-1"));
    assert.deepEqual(m.warnings, []);
  });

  test("euc-jp-notice.eml: EUC-JP body with half-width katakana, encoded subject", async () => {
    const m = await normalizeMail(fixture("euc-jp-notice.eml"));
    assert.equal(m.subject, "【サンプル書店】商品発送のお知らせ");
    assert.deepEqual(m.from, [{ name: "サンプル書店", address: "shop@books.example.jp" }]);
    assert.ok(m.text.includes("\nお支払い金額合計: 1,166円\n"), m.text);
    assert.ok(m.text.includes("\n吾輩は猫である（新潮文庫） 1点 693円\n"));
    assert.ok(m.text.includes("\n配送方法: ﾈｺﾎﾟｽ\n"));
    assert.ok(m.text.includes("お届け予定日: 2026年11月25日（水）"));
    assert.deepEqual(m.warnings, []);
  });

  test("latin1-qp.eml: ISO-8859-1 quoted-printable body, Q-encoded subject and names", async () => {
    const m = await normalizeMail(fixture("latin1-qp.eml"));
    assert.equal(m.subject, "Ihre Bestellbestätigung Nr. 2026-1123");
    assert.deepEqual(m.from, [{ name: "Bäckerei Müller", address: "bestellung@baeckerei-mueller.example" }]);
    assert.deepEqual(m.to, [{ name: "Sabine Schröder", address: "kundin@example.de" }]);
    assert.ok(m.text.includes("\nTotal: 15,14 EUR\n"));
    assert.ok(m.text.includes("1 x Crème brûlée"));
    assert.ok(m.text.includes("1 x Käsekuchen, groß"));
    assert.ok(m.text.includes('2 x Brötchen "Kürbiskern"'));
    assert.ok(m.text.includes("Ihre Bestellung ist bei uns eingegangen und wird für Sie frisch zubereitet."), "soft line break joined");
    assert.ok(m.text.includes("Mit freundlichen Grüßen"));
    assert.deepEqual(m.warnings, []);
  });

  test("hostile-slack.eml: Slack markup survives decoding verbatim (escaping is the target's job)", async () => {
    const m = await normalizeMail(fixture("hostile-slack.eml"));
    assert.equal(m.subject, "<!channel> @here Invoice &amp; refund ✓ <@U012ABCDEF> <https://evil.example|click me>");
    assert.deepEqual(m.from, [{ name: "Billing <!channel>", address: "billing@evil.example" }]);
    for (const needle of ["<!here>", "@here", "<@U012ABCDEF>", "<https://evil.example|click me>", "&amp;", "<!everyone>", "Grüße ✓"]) {
      assert.ok(m.text.includes(needle), needle);
    }
    assert.deepEqual(m.warnings, []);
  });
});

describe("headers", () => {
  test("every header, lower-cased, decoded and unfolded, repeated ones in order", async () => {
    const m = await normalizeMail(
      mail(
        "Received: from a.example",
        "\tby b.example; Mon, 23 Nov 2026 10:00:00 +0000",
        "Received: from c.example by d.example; Mon, 23 Nov 2026 09:59:00 +0000",
        "X-Original-Subject: =?UTF-8?B?5ZCI6KiI?= =?UTF-8?Q?_=C2=A51,300?=",
        "List-Id: Receipts <receipts.example.com>",
        "Subject: hello",
        "   world",
        "",
        "body",
      ),
    );
    assert.deepEqual([...m.headers.keys()], ["received", "x-original-subject", "list-id", "subject"]);
    assert.deepEqual(m.headers.get("received"), ["from a.example by b.example; Mon, 23 Nov 2026 10:00:00 +0000", "from c.example by d.example; Mon, 23 Nov 2026 09:59:00 +0000"]);
    assert.deepEqual(m.headers.get("x-original-subject"), ["合計 ¥1,300"]);
    assert.deepEqual(m.headers.get("list-id"), ["Receipts <receipts.example.com>"]);
    assert.equal(m.subject, "hello world");
  });

  test("subject: folded encoded words and whitespace runs collapse", async () => {
    const m = await normalizeMail(mail("Subject:  Re:\t TEST", " \t=?UTF-8?B?44OG44K544OI?=", "\t=?UTF-8?B?44OG44K544OI?=  ", "", "x"));
    assert.equal(m.subject, "Re: TEST テストテスト");
  });

  test("raw 8-bit Latin-1 in a header is read as Latin-1, not replaced (nor taken for Shift_JIS, which it also is)", async () => {
    const raw = Buffer.concat([Buffer.from("Subject: Forma"), Buffer.from([0xe7, 0xe3]), Buffer.from("o\r\n\r\nx")]);
    const m = await normalizeMail(raw);
    assert.equal(m.subject, "Formação");
    assert.deepEqual(m.warnings, ["header Subject in raw 8-bit bytes without RFC 2047 encoding: read as ISO-8859-1 (not UTF-8, Shift_JIS or EUC-JP)"]);
  });

  test("RFC 6532 UTF-8 headers", async () => {
    const m = await normalizeMail(mail("From: Jöhn <jdöe@mächine.example>", "Subject: Säying Hello", "", "body"));
    assert.deepEqual(m.from, [{ name: "Jöhn", address: "jdöe@mächine.example" }]);
    assert.equal(m.subject, "Säying Hello");
  });

  test("no Subject gives an empty subject; absent Message-ID and Date give undefined", async () => {
    const m = await normalizeMail(mail("From: a@example.com", "", "body"));
    assert.equal(m.subject, "");
    assert.equal(m.messageId, undefined);
    assert.equal(m.date, undefined);
    assert.deepEqual(m.warnings, []);
  });
});

describe("header values in raw bytes of a legacy charset (no RFC 2047)", () => {
  for (const c of rawHeaderCases) {
    test(c.file, async () => {
      const m = await normalizeMail(readRawHeaderFixture(c));
      assert.equal(m.subject, c.subject);
      assert.deepEqual(m.from, c.from);
      for (const [name, value] of Object.entries(c.headers ?? {})) assert.equal(m.headers.get(name)?.[0], value);
      assert.equal(m.headers.get("subject")?.[0], c.subject);
      assert.deepEqual(m.warnings, c.warnings);
    });
  }

  test("the charset of the first text part that declares one, past a UTF-8 part", async () => {
    const sjisSubject = Buffer.from("836583588367", "hex"); // テスト
    const raw = Buffer.concat([
      Buffer.from("Subject: "),
      sjisSubject,
      Buffer.from("\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--b\r\nContent-Type: text/plain; charset=Shift_JIS\r\n\r\n"),
      sjisSubject,
      Buffer.from("\r\n--b--\r\n"),
    ]);
    const m = await normalizeMail(raw);
    assert.equal(m.subject, "テスト");
    assert.deepEqual(m.warnings, ["header Subject in raw 8-bit bytes without RFC 2047 encoding: read as Shift_JIS (the charset the body declares)"]);
  });

  test("raw bytes and an encoded word in one value: both decoded", async () => {
    const raw = Buffer.concat([Buffer.from("Subject: "), Buffer.from("836583588367", "hex"), Buffer.from(" =?UTF-8?B?44GK55+l44KJ44Gb?=\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\nx")]);
    assert.equal((await normalizeMail(raw)).subject, "テスト お知らせ");
  });
});

describe("fixes on top of mailparser", () => {
  test("obsolete 'From  :' on the first line is not lost as an mbox separator; comments leave the addr-spec", async () => {
    const m = await normalizeMail(mail("From  : John Doe <jdoe@machine(comment).  example>", "Subject     : Saying Hello", "", "hello"));
    assert.deepEqual(m.from, [{ name: "John Doe", address: "jdoe@machine.example" }]);
    assert.deepEqual(m.headers.get("from"), ["John Doe <jdoe@machine(comment).  example>"]);
    assert.equal([...m.headers.keys()][0], "from");
    assert.equal(m.subject, "Saying Hello");
  });

  test("a real mbox 'From ' line is still skipped", async () => {
    const m = await normalizeMail(mail("From MAILER-DAEMON Mon Nov 23 10:00:00 2026", "From: a@example.com", "", "x"));
    assert.deepEqual(m.headers.get("from"), ["a@example.com"]);
    assert.deepEqual(
      m.from.map((a) => a.address),
      ["a@example.com"],
    );
  });

  test("groups are flattened; comments standing alone do not become recipients", async () => {
    const m = await normalizeMail(
      mail(
        "From: Pete(A wonderful \\) chap) <pete(his account)@silly.test(his host)>",
        "To:A Group(Some people)",
        "     :Chris Jones <c@(Chris's host.)public.example>,",
        "         joe@example.org,",
        "  John <jdoe@one.test> (my dear friend); (the end of the group)",
        "Cc:(Empty list)(start)Undisclosed recipients  :(nobody(that I know))  ;",
        "",
        "Testing.",
      ),
    );
    assert.deepEqual(m.from, [{ name: "Pete", address: "pete@silly.test" }]);
    assert.deepEqual(m.to, [
      { name: "Chris Jones", address: "c@public.example" },
      { name: "", address: "joe@example.org" },
      { name: "John", address: "jdoe@one.test" },
    ]);
    assert.deepEqual(m.cc, []);
  });

  test("a comment used as the display name is kept", async () => {
    const m = await normalizeMail(mail("From: MAILER-DAEMON@example.com (Mail Delivery System)", "", "x"));
    assert.deepEqual(m.from, [{ name: "Mail Delivery System", address: "MAILER-DAEMON@example.com" }]);
  });

  test("only the first From header counts; To and Cc headers add up", async () => {
    const m = await normalizeMail(mail("From: first@example.com", "From: second@example.com", "To: a@example.com", "To: b@example.com, c@example.com", "Cc: =?UTF-8?B?5bGx55Sw?= <d@example.com>", "", "x"));
    assert.deepEqual(m.from, [{ name: "", address: "first@example.com" }]);
    assert.deepEqual(
      m.to.map((a) => a.address),
      ["a@example.com", "b@example.com", "c@example.com"],
    );
    assert.deepEqual(m.cc, [{ name: "山田", address: "d@example.com" }]);
  });

  test("a name without an address is dropped with a warning", async () => {
    const m = await normalizeMail(mail("To: Mary Smith", "", "x"));
    assert.deepEqual(m.to, []);
    assert.ok(m.warnings.some((w) => w.includes("Mary Smith")), String(m.warnings));
  });

  test("obsolete Date syntax parses; an unparseable Date is undefined with a warning, not 'now'", async () => {
    const old = await normalizeMail(mail("Date  : Fri, 21 Nov 1997 09(comment):   55  :  06 -0600", "", "x"));
    assert.equal(old.date?.toISOString(), "1997-11-21T15:55:06.000Z");
    const bad = await normalizeMail(mail("Date: sometime last week", "", "x"));
    assert.equal(bad.date, undefined);
    assert.ok(bad.warnings.some((w) => w.startsWith("Date header is not a valid date")));
  });

  test("Message-ID loses its brackets, comments and obsolete whitespace", async () => {
    const m = await normalizeMail(mail("Message-ID  : <1234   @   local(blah)  .machine .example>", "", "x"));
    assert.equal(m.messageId, "1234@local.machine.example");
  });

  test("HTML-only mail inside multipart/mixed still gets text", async () => {
    const m = await normalizeMail(
      mail(
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "<table><tr><td>Total</td><td>=C2=A51,200</td></tr></table>",
        "--b",
        "Content-Type: application/pdf; name=r.pdf",
        "Content-Transfer-Encoding: base64",
        "",
        "JVBERi0xLjQK",
        "--b--",
        "",
      ),
    );
    assert.equal(m.text.trim(), "Total ¥1,200");
    assert.ok(m.html?.includes("<td>Total</td>"));
  });

  test("an empty text/plain alternative falls back to the HTML", async () => {
    const m = await normalizeMail(
      mail("Content-Type: multipart/alternative; boundary=b", "", "--b", "Content-Type: text/plain", "", " ", "--b", "Content-Type: text/html", "", "<p>Total: <b>$4.99</b></p>", "--b--", ""),
    );
    assert.equal(m.text.trim(), "Total: $4.99");
  });

  test("HTML next to a non-empty text/plain is not added to the text", async () => {
    const m = await normalizeMail(
      mail("Content-Type: multipart/mixed; boundary=b", "", "--b", "Content-Type: text/plain", "", "plain body", "--b", "Content-Type: text/html", "", "<p>html body</p>", "--b--", ""),
    );
    assert.equal(m.text.trim(), "plain body");
    assert.equal(m.html, "<p>html body</p>");
  });

  test("attachments: RFC 2231 and RFC 2047 names decoded, octet-stream typed by its name, inline images too, sizes decoded", async () => {
    const pdf = Buffer.alloc(1000, 0x25).toString("base64");
    const m = await normalizeMail(
      mail(
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "Invoice attached.",
        "--b",
        "Content-Type: application/octet-stream",
        "Content-Disposition: attachment; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf",
        "Content-Transfer-Encoding: base64",
        "",
        pdf,
        "--b",
        'Content-Type: image/png; name="=?UTF-8?B?44Ot44K0LnBuZw==?="',
        "Content-Disposition: inline",
        "Content-Transfer-Encoding: base64",
        "",
        "iVBORw0KGgo=",
        "--b--",
        "",
      ),
    );
    assert.equal(m.text.trim(), "Invoice attached.");
    assert.deepEqual(m.attachments, [
      { filename: "請求書.pdf", contentType: "application/pdf", size: 1000 },
      { filename: "ロゴ.png", contentType: "image/png", size: 8 },
    ]);
  });

  test("message/delivery-status stays out of the text, as on the IMAP path", async () => {
    const m = await normalizeMail(
      mail(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b",
        "",
        "--b",
        "Content-Type: text/plain",
        "",
        "Your message could not be delivered.",
        "--b",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example.com",
        "",
        "Final-Recipient: rfc822; nobody@example.com",
        "Status: 5.1.1",
        "--b--",
        "",
      ),
    );
    assert.equal(m.text.trim(), "Your message could not be delivered.");
  });

  test("Japanese bodies decode as on the IMAP path: the NEC and IBM extensions kept under every label; other charsets as before", async () => {
    const text = async (charset: string, body: Buffer, encoding = "8bit"): Promise<string> =>
      (await normalizeMail(Buffer.concat([Buffer.from(`From: a@example.com\r\nContent-Type: text/plain; charset=${charset}\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\n`), body]))).text;
    const sjis = Buffer.from([0x87, 0x40, 0x8d, 0x87, 0x8c, 0x76, 0xfa, 0x4a, 0x81, 0x60]); // ①合計Ⅰ～ (0x8740 NEC row 13, 0xFA4A IBM)
    for (const label of ["Shift_JIS", "shift-jis", "SJIS", "x-sjis", "Windows-31J", "ms932", "cp932"]) assert.equal(await text(label, sjis), "①合計Ⅰ～", label);
    // libmime gave "???" for the first three; the line that ends inside JIS X 0208 keeps its break.
    assert.equal(await text("ISO-2022-JP", Buffer.from("\x1b$B-!-p-z\x1b(B 1\r\n\x1b$B9g7W\r\n9g7W\x1b(B\r\n", "latin1"), "7bit"), "①≒∵ 1\n合計\n合計\n");
    assert.equal(await text("iso-2022-jp", Buffer.from("=1B$B9g7W=1B(B: 480", "latin1"), "quoted-printable"), "合計: 480");
    assert.equal(await text("EUC-JP", Buffer.from([0xad, 0xa1, 0xb9, 0xe7, 0x8e, 0xb1])), "①合ｱ");
    // Not Japanese: libmime's decode stream, as without the hook (mailparser renames this one to CP949 first).
    assert.equal(await text("ks_c_5601-1987", Buffer.from([0xc7, 0xd1, 0xb1, 0xdb])), "한글");
    assert.equal(await text("windows-1252", Buffer.from([0x80, 0x20, 0xe9])), "€ é");
    assert.equal(await text("no-such-charset", Buffer.from("plain")), "plain");
  });

  test("undecodable bytes are reported", async () => {
    const raw = Buffer.concat([Buffer.from("Content-Type: text/plain; charset=utf-8\r\n\r\nDrachenk"), Buffer.from([0xf6]), Buffer.from("pfe\r\n")]);
    const m = await normalizeMail(raw);
    assert.ok(m.text.startsWith("Drachenk\uFFFDpfe"));
    assert.ok(m.warnings.some((w) => w.includes("U+FFFD")));
  });
});

describe("never throws", () => {
  test("empty input", async () => {
    const m = await normalizeMail(new Uint8Array(0));
    assert.equal(m.text, "");
    assert.equal(m.headers.size, 0);
    assert.ok(m.warnings.some((w) => w.startsWith("empty input")));
  });

  test("random bytes", async () => {
    for (let i = 0; i < 20; i++) {
      const m = await normalizeMail(randomBytes(1 + i * 997));
      assert.equal(typeof m.text, "string");
      assert.ok(Array.isArray(m.warnings));
    }
    const m = await normalizeMail(Buffer.from([0x00, 0xff, 0xfe, 0x0a, 0x80, 0x3a, 0x0d, 0x0a, 0x0d, 0x0a, 0x01]));
    assert.ok(m.warnings.length > 0, "garbage is flagged");
  });

  test("not a mail at all", async () => {
    const m = await normalizeMail(Buffer.from("just some words\nand more words\n"));
    assert.ok(m.warnings.some((w) => w.startsWith("no header fields found")), String(m.warnings));
  });

  test("header only, no blank line and no body", async () => {
    const m = await normalizeMail(Buffer.from("From: a@example.com\r\nSubject: only a header"));
    assert.equal(m.subject, "only a header");
    assert.deepEqual(m.from, [{ name: "", address: "a@example.com" }]);
    assert.equal(m.text, "");
  });

  test("truncated multipart: no closing boundary, part cut mid-base64", async () => {
    const m = await normalizeMail(mail("Subject: cut", "Content-Type: multipart/mixed; boundary=b", "", "--b", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64", "", "44GT44KT44Gr44Gh44Gv"));
    assert.equal(m.subject, "cut");
    assert.ok(m.text.startsWith("こんにちは"));
  });

  test("a 2 MB line in the body", async () => {
    const m = await normalizeMail(Buffer.from(`Subject: long\r\n\r\n${"a".repeat(2 * 1024 * 1024)}\r\n`));
    assert.equal(m.subject, "long");
    assert.equal(m.text.trim().length, 2 * 1024 * 1024);
  });

  test("a 2 MB header line: the parser refuses it, the header is still read", async () => {
    const m = await normalizeMail(Buffer.from(`From: a@example.com\r\nX-Junk: ${"a".repeat(2 * 1024 * 1024)}\r\nSubject: still here\r\n\r\nbody\r\n`));
    assert.equal(m.subject, "still here");
    assert.equal(m.from[0]?.address, "a@example.com");
    assert.ok(m.warnings.some((w) => w.startsWith("parser:")), String(m.warnings));
  });

  test("a Uint8Array view into a larger buffer is read from its own offset", async () => {
    const whole = Buffer.from("GARBAGESubject: view\r\n\r\nbody\r\nTRAILER");
    const view = new Uint8Array(whole.buffer, whole.byteOffset + 7, whole.length - 7 - 7);
    const m = await normalizeMail(view);
    assert.equal(m.subject, "view");
    assert.equal(m.text.trim(), "body");
  });

  test("a parse that takes too long gives up with a warning", async () => {
    const attachment = randomBytes(6 * 1024 * 1024).toString("base64").replace(/.{76}/g, "$&\r\n");
    const raw = mail("Subject: slow", "Content-Type: multipart/mixed; boundary=b", "", "--b", "Content-Type: text/plain", "", "hi", "--b", "Content-Type: application/octet-stream", "Content-Transfer-Encoding: base64", "", attachment, "--b--", "");
    const m = await normalizeMail(raw, { timeoutMs: 1 });
    assert.equal(m.subject, "slow");
    assert.ok(m.warnings.some((w) => w.includes("gave up after 1 ms")), String(m.warnings));
  });

  test("a large attachment is skipped quickly and never kept", async () => {
    const attachment = randomBytes(3 * 1024 * 1024).toString("base64").replace(/.{76}/g, "$&\r\n");
    const raw = mail("Subject: big", "Content-Type: multipart/mixed; boundary=b", "", "--b", "Content-Type: text/plain", "", "hi", "--b", "Content-Type: application/zip; name=x.zip", "Content-Transfer-Encoding: base64", "", attachment, "--b--", "");
    const m = await normalizeMail(raw);
    assert.equal(m.text.trim(), "hi");
    assert.deepEqual(m.warnings, []);
    assert.ok(JSON.stringify({ ...m, headers: [...m.headers] }).length < 1000);
  });
});

describe("header values seen before (remembered, not parsed again)", () => {
  const head = (from: string, to: string): string => `From: ${from}\r\nTo: ${to}\r\nSubject: =?UTF-8?B?44GK55+l44KJ44Gb?=\r\n`;
  const read = (from: string, to: string) => buildMail(splitHeaderFields(head(from, to)), { text: undefined, html: undefined }, []);

  test("each mail gets its own address objects: changing one mail's does not change the next's", () => {
    const first = read("Shop <shop@example.com>", "me@example.com");
    first.from[0]!.name = "changed";
    const second = read("Shop <shop@example.com>", "me@example.com");
    assert.deepEqual(second.from, [{ name: "Shop", address: "shop@example.com" }]);
    assert.notEqual(second.from[0], first.from[0]);
    assert.equal(second.subject, "お知らせ");
  });

  test("a warning about the same value names the field each mail has it in", () => {
    const asFrom = read("\"Just a name\"", "me@example.com");
    const asTo = read("shop@example.com", "\"Just a name\"");
    assert.ok(asFrom.warnings.some((w) => w.startsWith("From: no usable address")), asFrom.warnings.join("; "));
    assert.ok(asTo.warnings.some((w) => w.startsWith("To: no usable address")), asTo.warnings.join("; "));
    assert.ok(!asTo.warnings.some((w) => w.startsWith("From:")));
  });
});
