import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import type { MessageStructureObject } from "imapflow";
import { findHeaderEnd, splitHeaderFields } from "./header-block.ts";
import { rawHeaderCases, readRawHeaderFixture } from "../../test/support/raw-headers.ts";
import { htmlText, normalizeMail } from "./normalize.ts";
import { htmlAlternativesPlan, planTextParts, readFetchedParts, readTextParts } from "./parts.ts";
import type { NormalizedMail } from "./types.ts";

const fixtures = path.resolve(import.meta.dirname, "../../test/fixtures");

// Trees shaped the way imapflow's parseBodystructure builds them: the root has no `part`, a
// non-multipart root is "1" on the wire, and message/rfc822 children reuse the wrapper's number.
const leaf = (type: string, part: string | undefined, extra: Partial<MessageStructureObject> = {}): MessageStructureObject => ({
  type,
  ...(part ? { part } : {}),
  parameters: type.startsWith("text/") ? { charset: "utf-8" } : {},
  encoding: "quoted-printable",
  size: 1000,
  ...extra,
});
const multi = (type: string, part: string | undefined, childNodes: MessageStructureObject[]): MessageStructureObject => ({
  type,
  ...(part ? { part } : {}),
  parameters: { boundary: `b-${part ?? "root"}` },
  childNodes,
});
const keysOf = (fetch: ReturnType<typeof planTextParts>["fetch"]): string[] => fetch.map((k) => (typeof k === "string" ? k : k.key));

describe("planTextParts", () => {
  test("single-part text/plain: part 1", () => {
    const plan = planTextParts(leaf("text/plain", undefined, { size: 500 }), 4096);
    assert.equal(plan.singlePart, true);
    assert.deepEqual(plan.fetch, [{ key: "1", maxLength: 4096 }]);
    assert.deepEqual(
      plan.parts.map((p) => [p.part, p.type, p.size, p.truncated]),
      [["1", "text/plain", 500, false]],
    );
  });

  test("multipart/alternative plain + html: only the plain part", () => {
    const plan = planTextParts(multi("multipart/alternative", undefined, [leaf("text/plain", "1"), leaf("text/html", "2")]), 4096);
    assert.equal(plan.singlePart, false);
    // No "1.MIME": BODYSTRUCTURE already says how to decode the part.
    assert.deepEqual(plan.fetch, [{ key: "1", maxLength: 4096 }]);
  });

  test("HTML-only single part: the HTML is fetched", () => {
    const plan = planTextParts(leaf("text/html", undefined, { encoding: "base64" }), 4096);
    assert.deepEqual(keysOf(plan.fetch), ["1"]);
    assert.equal(plan.parts[0]?.type, "text/html");
  });

  test("alternative of html only, beside the PDF: the HTML is fetched, the PDF is not", () => {
    const plan = planTextParts(
      multi("multipart/mixed", undefined, [multi("multipart/alternative", "1", [leaf("text/html", "1.1")]), leaf("application/pdf", "2", { encoding: "base64", disposition: "attachment", dispositionParameters: { filename: "r.pdf" } })]),
      4096,
    );
    assert.deepEqual(keysOf(plan.fetch), ["1.1"]);
  });

  test("multipart/mixed: attachments skipped, text/plain without a disposition or inline kept, file name or not (as mailparser)", () => {
    const plan = planTextParts(
      multi("multipart/mixed", undefined, [
        leaf("text/plain", "1"),
        leaf("application/pdf", "2", { encoding: "base64", size: 900_000, disposition: "attachment", dispositionParameters: { filename: "receipt.pdf" } }),
        leaf("text/plain", "3", { disposition: "inline" }),
        leaf("text/plain", "4", { disposition: "attachment" }),
        leaf("text/plain", "5", { disposition: "inline", dispositionParameters: { filename: "log.txt" } }),
        leaf("text/plain", "6", { parameters: { charset: "utf-8", name: "notes.txt" } }),
        leaf("image/png", "7", { disposition: "inline", encoding: "base64" }),
      ]),
      4096,
    );
    assert.deepEqual(keysOf(plan.fetch), ["1", "3", "5", "6"]);
    // Every leaf not fetched as text is an attachment, named or not; base64 sizes are estimated decoded.
    assert.deepEqual(plan.attachments, [
      { filename: "receipt.pdf", contentType: "application/pdf", size: Math.floor((900_000 * 57) / 78) },
      { filename: "", contentType: "text/plain", size: 1000 },
      { filename: "", contentType: "image/png", size: Math.floor((1000 * 57) / 78) },
    ]);
  });

  test("attachments: octet-stream typed by its file name, the name from Content-Type when no disposition names it, an encoded message/rfc822", () => {
    const plan = planTextParts(
      multi("multipart/mixed", undefined, [
        leaf("text/plain", "1"),
        leaf("application/octet-stream", "2", { encoding: "base64", size: 78, disposition: "attachment", dispositionParameters: { filename: "請求書.pdf" } }),
        leaf("Application/Zip", "3", { encoding: "7bit", size: 10, parameters: { name: "logs.zip" } }),
        { type: "message/rfc822", part: "4", encoding: "base64", size: 100, disposition: "attachment", dispositionParameters: { filename: "fwd.eml" }, childNodes: [leaf("text/plain", "4.1")] },
      ]),
      4096,
    );
    assert.deepEqual(keysOf(plan.fetch), ["1"]);
    assert.deepEqual(plan.attachments, [
      { filename: "請求書.pdf", contentType: "application/pdf", size: 57 },
      { filename: "logs.zip", contentType: "application/zip", size: 10 },
      { filename: "fwd.eml", contentType: "message/rfc822", size: 73 },
    ]);
  });

  test("nested mixed → alternative → related: plain from the alternative, nothing else", () => {
    const plan = planTextParts(
      multi("multipart/mixed", undefined, [
        multi("multipart/alternative", "1", [leaf("text/plain", "1.1"), multi("multipart/related", "1.2", [leaf("text/html", "1.2.1"), leaf("image/gif", "1.2.2", { encoding: "base64" })])]),
        leaf("text/plain", "2", { disposition: "inline" }),
        leaf("application/zip", "3", { encoding: "base64" }),
      ]),
      4096,
    );
    assert.deepEqual(keysOf(plan.fetch), ["1.1", "2"]);
  });

  test("alternative whose HTML sits in a related part, no plain text: the HTML is fetched", () => {
    const plan = planTextParts(multi("multipart/alternative", undefined, [multi("multipart/related", "1", [leaf("text/html", "1.1"), leaf("image/png", "1.2")])]), 4096);
    assert.deepEqual(keysOf(plan.fetch), ["1.1"]);
  });

  test("message/rfc822: read only when marked inline and not encoded, as mailsplit does (single-part body: n.1)", () => {
    const alternative = (part: string) => multi("multipart/alternative", part, [leaf("text/plain", `${part}.1`), leaf("text/html", `${part}.2`)]);
    const plan = planTextParts(
      multi("multipart/mixed", undefined, [
        leaf("text/plain", "1"),
        { type: "message/rfc822", part: "2", size: 5000, disposition: "attachment", childNodes: [alternative("2")] },
        { type: "message/rfc822", part: "3", size: 300, childNodes: [leaf("text/plain", "3")] },
        { type: "message/rfc822", part: "4", size: 300, disposition: "inline", childNodes: [leaf("text/plain", "4")] },
        { type: "message/rfc822", part: "5", size: 5000, disposition: "INLINE", encoding: "8bit", childNodes: [alternative("5")] },
        { type: "message/rfc822", part: "6", size: 5000, disposition: "inline", encoding: "base64", childNodes: [alternative("6")] },
        { type: "message/rfc822", part: "7", size: 10, disposition: "inline" },
      ]),
      4096,
    );
    assert.deepEqual(keysOf(plan.fetch), ["1", "4.1", "5.1"]);
  });

  test("attachment-only and non-text roots plan nothing", () => {
    assert.deepEqual(planTextParts(leaf("application/pdf", undefined, { encoding: "base64" }), 4096).fetch, []);
    assert.deepEqual(planTextParts(multi("multipart/mixed", undefined, [leaf("application/pdf", "1", { disposition: "attachment" })]), 4096).fetch, []);
    assert.deepEqual(planTextParts({ type: "message/rfc822", size: 10, disposition: "attachment", childNodes: [leaf("text/plain", undefined)] }, 4096).fetch, []);
  });

  test("part numbers are derived when the tree does not carry them", () => {
    const plan = planTextParts({ type: "multipart/mixed", childNodes: [{ type: "image/png" }, { type: "multipart/alternative", childNodes: [{ type: "text/plain" }, { type: "text/html" }] }] }, 100);
    assert.deepEqual(keysOf(plan.fetch), ["2.1"]);
  });

  test("declared sizes over the cap are marked truncated", () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1", { size: 4096 }), leaf("text/plain", "2", { size: 4097 }), leaf("text/plain", "3", { size: undefined })]), 4096);
    assert.deepEqual(
      plan.parts.map((p) => p.truncated),
      [false, true, false],
    );
    assert.ok(plan.fetch.every((k) => typeof k === "string" || k.maxLength === 4096));
  });

  test("too many text parts: the rest is listed as omitted", () => {
    const children = Array.from({ length: 5 }, (_, i) => leaf("text/plain", String(i + 1)));
    const plan = planTextParts(multi("multipart/mixed", undefined, children), 100, 3);
    assert.deepEqual(
      plan.parts.map((p) => p.part),
      ["1", "2", "3"],
    );
    assert.deepEqual(plan.omitted, ["4", "5"]);
  });

  test("a nonsensical cap is a programming error", () => {
    assert.throws(() => planTextParts(leaf("text/plain", undefined), 0), RangeError);
    assert.throws(() => planTextParts(leaf("text/plain", undefined), Number.NaN), RangeError);
  });
});

const HEADER = Buffer.from(
  [
    "From: Shop <shop@example.com>",
    "To: taro@example.com",
    "Subject: Your order",
    "Date: Mon, 23 Nov 2026 10:00:00 +0000",
    "Message-ID: <order-1@example.com>",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="outer"',
    "Content-Transfer-Encoding: 7bit",
    "",
    "",
  ].join("\r\n"),
);

describe("readTextParts", () => {
  test("several parts are decoded each by its own charset and encoding, and joined as mailparser joins them", () => {
    const plan = planTextParts(
      multi("multipart/mixed", undefined, [leaf("text/plain", "1"), leaf("application/pdf", "2", { disposition: "attachment" }), leaf("text/plain", "3", { parameters: { charset: "us-ascii" }, encoding: "7bit" })]),
      4096,
    );
    const mail = readTextParts(HEADER, plan, new Map([["1", Buffer.from("First =E2=82=AC part\r\n")], ["3", Buffer.from("Second part")]]));
    assert.deepEqual(mail.warnings, []);
    assert.equal(mail.subject, "Your order");
    assert.equal(mail.messageId, "order-1@example.com");
    assert.deepEqual(mail.from, [{ name: "Shop", address: "shop@example.com" }]);
    assert.equal(mail.text, "First € part\n\nSecond part");
  });

  test("a single-part message: the header's part 1, base64", () => {
    const header = Buffer.from("Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    const plan = planTextParts(leaf("text/plain", undefined, { encoding: "base64", size: 12 }), 4096);
    const mail = readTextParts(header, plan, new Map([["1", Buffer.from("44GT44KT44Gr\r\n")]]));
    assert.deepEqual(mail.warnings, []);
    assert.equal(mail.text, "こんに");
  });

  test("Japanese charsets, Latin-1 and format=flowed are decoded from the BODYSTRUCTURE parameters", () => {
    const cases: Array<[Record<string, string>, string, Buffer, string]> = [
      [{ charset: "ISO-2022-JP" }, "7bit", Buffer.from("\x1b$B9g7W\x1b(B: 480\r\n", "latin1"), "合計: 480\n"],
      [{ charset: "Shift_JIS" }, "8bit", Buffer.from([0x8d, 0x87, 0x8c, 0x76]), "合計"],
      [{ charset: "euc-jp" }, "8bit", Buffer.from([0xb9, 0xe7, 0xb7, 0xd7]), "合計"],
      [{ CHARSET: "iso-8859-1" }, "quoted-printable", Buffer.from("Gr=FC=DFe"), "Grüße"],
      [{ charset: "utf-8", format: "flowed", delsp: "yes" }, "7bit", Buffer.from("one lo \r\nng line\r\nnext\r\n"), "one long line\nnext"],
      [{ charset: "x-unknown" }, "8bit", Buffer.from("plain"), "plain"],
    ];
    for (const [parameters, encoding, body, expected] of cases) {
      const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1", { parameters, encoding })]), 4096);
      assert.equal(readTextParts(HEADER, plan, new Map([["1", body]])).text, expected, JSON.stringify(parameters));
    }
  });

  test("Japanese bodies keep the NEC and IBM extensions (①, ≒, ∵, Ⅰ), under every common label", () => {
    const read = (charset: string, body: Buffer): string => {
      const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1", { parameters: { charset }, encoding: "8bit" })]), 4096);
      return readTextParts(HEADER, plan, new Map([["1", body]])).text;
    };
    const sjis = Buffer.from([0x87, 0x40, 0x8d, 0x87, 0x8c, 0x76, 0xfa, 0x4a, 0x81, 0x60]); // ①合計Ⅰ～ (0x8740 NEC row 13, 0xFA4A IBM)
    for (const label of ["Shift_JIS", "shift-jis", "SJIS", "x-sjis", "Windows-31J", "ms932", "cp932"]) assert.equal(read(label, sjis), "①合計Ⅰ～", label);
    assert.equal(read("ISO-2022-JP", Buffer.from("\x1b$B-!-p-z\x1b(B 1\r\n", "latin1")), "①≒∵ 1\n");
    assert.equal(read("EUC-JP", Buffer.from([0xad, 0xa1, 0xb9, 0xe7, 0x8e, 0xb1])), "①合ｱ");
    // Unassigned codes are marked, never dropped or turned into other text.
    assert.equal(read("iso-2022-jp", Buffer.from("a\x1b$B)!\x1b(Bb", "latin1")), "a\ufffdb");
  });

  test("ISO-2022-JP that breaks a line inside JIS X 0208 or katakana, or uses JIS-Roman, still reads as its sender meant", () => {
    const read = (body: string): string => {
      const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1", { parameters: { charset: "iso-2022-jp" }, encoding: "7bit" })]), 4096);
      return readTextParts(HEADER, plan, new Map([["1", Buffer.from(body, "latin1")]])).text;
    };
    // No ESC ( B before the line break: the second line is still Japanese, and the break is kept.
    assert.equal(read("\x1b$B9g7W\r\n9g7W\x1b(B\r\n"), "合計\n合計\n");
    assert.equal(read("\x1b$@9g7W\r\n\r\n9g7W"), "合計\n\n合計");
    assert.equal(read("\x1b(I12\r\n34\x1b(B"), "ｱｲ\nｳｴ"); // half-width katakana, the same way
    // JIS-Roman's "~" and "\\" are the ASCII ones here, not an overline and a yen sign.
    assert.equal(read("\x1b(Jhttps://example.jp/~shop\x1b(B \x1b$B9g7W\x1b(B"), "https://example.jp/~shop 合計");
  });

  test("HTML-only mail becomes text, the HTML is kept", () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [multi("multipart/alternative", "1", [leaf("text/html", "1.1")])]), 4096);
    const mail = readTextParts(HEADER, plan, new Map([["1.1", Buffer.from("<table><tr><td>=E5=90=88=E8=A8=88</td><td>=C2=A5480</td></tr></table>")]]));
    assert.equal(mail.text.trim(), "合計 ¥480");
    assert.equal(mail.html, "<table><tr><td>合計</td><td>¥480</td></tr></table>");
  });

  test("attachment-only mail: the header, empty text", () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("application/pdf", "1", { disposition: "attachment" })]), 4096);
    const mail = readTextParts(HEADER, plan, new Map());
    assert.equal(mail.text, "");
    assert.equal(mail.subject, "Your order");
    assert.deepEqual(mail.warnings, []);
  });

  test("a part the server did not return is a warning, not a crash", () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1"), leaf("text/plain", "2")]), 4096);
    const mail = readTextParts(HEADER, plan, new Map([["2", Buffer.from("kept")]]));
    assert.deepEqual(mail.warnings, ["text part 1 was not returned by the server; left out"]);
    assert.equal(mail.text, "kept");
    const none = readTextParts(HEADER, plan, new Map());
    assert.equal(none.warnings.length, 2);
    assert.equal(none.text, "");
  });

  test("an empty header from the server still gives the text", () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1")]), 4096);
    const mail = readTextParts(new Uint8Array(0), plan, new Map([["1", Buffer.from("body")]]));
    assert.ok(mail.warnings.includes("message header is empty"), mail.warnings.join("; "));
    assert.equal(mail.text, "body");
  });

  test("a broken body is read as far as it goes", () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1", { encoding: "base64" }), leaf("text/plain", "2", { encoding: "quoted-printable" })]), 4096);
    const mail = readTextParts(HEADER, plan, new Map([["1", Buffer.from("aGVsbG8g*!\r\nd29ybGQ=")], ["2", Buffer.from("=ZZ=4")]]));
    assert.equal(mail.text, "hello world\n=ZZ=4");
  });

  describe("truncation", () => {
    const body = Buffer.from(["line one ==E2=82=AC", "line two", "line three is long enough to be cut in the middle"].join("\r\n"));
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1.1", { size: body.length, encoding: "quoted-printable" })]), 24);

    test("a body cut at maxTextBytes goes back to the last line break", () => {
      assert.equal(plan.parts[0]?.truncated, true);
      // What the server sends for BODY.PEEK[1.1]<0.24>: "line one ==E2=82=AC\r\nlin"
      const mail = readTextParts(HEADER, plan, new Map([["1.1", body.subarray(0, 24)]]));
      assert.deepEqual(mail.warnings, [`text part 1.1 truncated at 21 bytes of ${body.length}`]);
      assert.equal(mail.text, "line one =€\n");
    });

    test("a server that ignores the partial range is capped here", () => {
      const mail = readTextParts(HEADER, plan, new Map([["1.1", body]]));
      assert.deepEqual(mail.warnings, [`text part 1.1 truncated at 21 bytes of ${body.length}`]);
    });

    test("without any line break, base64 keeps whole groups and quoted-printable no half escape", () => {
      const b64 = Buffer.from("こんにちは世界").toString("base64");
      const b64Plan = planTextParts(leaf("text/plain", undefined, { encoding: "base64", size: b64.length }), 10);
      const header = Buffer.from("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
      const cutB64 = readTextParts(header, b64Plan, new Map([["1", Buffer.from(b64.slice(0, 10))]]));
      assert.deepEqual(cutB64.warnings, [`text part 1 truncated at 8 bytes of ${b64.length}`]);
      assert.equal(cutB64.text, "こん");

      const qpPlan = planTextParts(leaf("text/plain", undefined, { encoding: "quoted-printable", size: 30 }), 10);
      const cutQp = readTextParts(HEADER, qpPlan, new Map([["1", Buffer.from("abc=E2=82=AC".slice(0, 10))]]));
      assert.equal(cutQp.warnings[0], "text part 1 truncated at 9 bytes of 30");
      assert.equal(cutQp.text.replace(/\uFFFD/g, "?"), "abc?");
    });

    test("a part whose declared size fits is not cut even at exactly maxTextBytes", () => {
      const exact = planTextParts(leaf("text/plain", undefined, { size: 10, encoding: "7bit" }), 10);
      const mail = readTextParts(Buffer.from("Subject: x\r\n\r\n"), exact, new Map([["1", Buffer.from("0123456789")]]));
      assert.deepEqual(mail.warnings, []);
      assert.equal(mail.text, "0123456789");
    });

    test("ISO-2022-JP cut at a line break never splits a character", async () => {
      const original = readFileSync(path.join(fixtures, "google-play-ja-iso2022jp.eml"));
      const view = imapView(original);
      const small = planTextParts(view.structure, 300);
      const cut = readTextParts(view.header, small, fetchFrom(view, small));
      assert.match(cut.warnings[0] ?? "", /^text part 1 truncated at \d+ bytes of \d+$/);
      const full = await normalizeMail(original);
      assert.ok(cut.text.length > 20 && full.text.startsWith(cut.text), cut.text);
      assert.ok(!cut.text.includes("\uFFFD"));
    });
  });
});

// A tiny stand-in for the server: BODYSTRUCTURE, BODY[HEADER], BODY[n] and BODY[n.MIME] of a
// well-formed message, with imapflow's conventions (lower-case keys in the response map).
interface ImapView {
  header: Buffer;
  structure: MessageStructureObject;
  sections: Map<string, Buffer>;
}

function imapView(raw: Buffer): ImapView {
  const sections = new Map<string, Buffer>();
  const { headerEnd, bodyStart } = findHeaderEnd(raw);
  const structure = describeEntity(raw.subarray(0, headerEnd).toString("latin1"), raw.subarray(bodyStart), undefined, sections);
  return { header: raw.subarray(0, bodyStart), structure, sections };
}

function describeEntity(headerText: string, body: Buffer, part: string | undefined, sections: Map<string, Buffer>): MessageStructureObject {
  const field = (name: string): string | undefined =>
    splitHeaderFields(headerText)
      .find((f) => f.key === name)
      ?.line.slice(name.length + 1)
      .replace(/\r\n[ \t]+/g, " ")
      .trim();
  const [type = "text/plain", ...rawParams] = (field("content-type") ?? "text/plain; charset=us-ascii").split(";").map((s) => s.trim());
  const parameters = Object.fromEntries(rawParams.map((p) => p.split("=")).map(([k = "", v = ""]) => [k.toLowerCase(), v.replace(/^"|"$/g, "")]));
  const [disposition, ...rawDisp] = (field("content-disposition") ?? "").split(";").map((s) => s.trim());
  const node: MessageStructureObject = { type: type.toLowerCase(), parameters, ...(part ? { part } : {}) };
  if (disposition) {
    node.disposition = disposition.toLowerCase();
    node.dispositionParameters = Object.fromEntries(rawDisp.map((p) => p.split("=")).map(([k = "", v = ""]) => [k.toLowerCase(), v.replace(/^"|"$/g, "")]));
  }
  if (node.type.startsWith("multipart/")) {
    const text = body.toString("latin1");
    const delimiter = new RegExp(`(?:^|\\r?\\n)--${parameters.boundary!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(--)?[ \\t]*(?:\\r?\\n|$)`, "g");
    const marks = [...text.matchAll(delimiter)];
    node.childNodes = [];
    for (let i = 0; i < marks.length; i++) {
      const mark = marks[i]!;
      if (mark[1]) break; // the close delimiter
      const start = mark.index + mark[0].length;
      const end = marks[i + 1]?.index ?? text.length;
      const entity = Buffer.from(text.slice(start, end), "latin1");
      const childPart = part ? `${part}.${i + 1}` : String(i + 1);
      const bounds = findHeaderEnd(entity);
      sections.set(`${childPart}.mime`, entity.subarray(0, bounds.bodyStart));
      node.childNodes.push(describeEntity(entity.subarray(0, bounds.headerEnd).toString("latin1"), entity.subarray(bounds.bodyStart), childPart, sections));
    }
    return node;
  }
  sections.set(part ?? "1", body);
  node.encoding = field("content-transfer-encoding")?.toLowerCase() ?? "7bit";
  node.size = body.length;
  return node;
}

/** What imapflow puts in `bodyParts` for the plan: partial bodies, lower-case keys. */
function fetchFrom(view: ImapView, plan: ReturnType<typeof planTextParts>): Map<string, Buffer> {
  const result = new Map<string, Buffer>();
  for (const key of plan.fetch) {
    const name = (typeof key === "string" ? key : key.key).toLowerCase();
    const section = view.sections.get(name);
    if (!section) continue;
    result.set(name, typeof key === "string" || key.maxLength === undefined ? section : section.subarray(0, key.maxLength));
  }
  return result;
}

const CONTENT_FIELDS = new Set(["content-type", "content-transfer-encoding", "content-disposition"]);
const comparable = (mail: NormalizedMail) => ({
  messageId: mail.messageId,
  from: mail.from,
  to: mail.to,
  cc: mail.cc,
  subject: mail.subject,
  date: mail.date,
  headers: [...mail.headers].filter(([key]) => !CONTENT_FIELDS.has(key)),
  text: mail.text,
  // Sizes are estimated from the encoded size over IMAP; compared apart, with a tolerance.
  attachments: mail.attachments.map(({ filename, contentType }) => ({ filename, contentType })),
  warnings: mail.warnings,
});

describe("round trip: fetch as planned and read = normalize the whole message", () => {
  const cases: Array<[string, string[]]> = [
    ["google-play-ja-iso2022jp.eml", ["1"]],
    ["google-play-en-utf8.eml", ["1"]],
    ["apple-receipt-ja-utf8.eml", ["1"]],
    ["apple-receipt-en-multipart.eml", ["1.1"]],
    ["shift-jis-notice.eml", ["1"]],
    ["euc-jp-notice.eml", ["1"]],
    ["latin1-qp.eml", ["1"]],
    ["hostile-slack.eml", ["1"]],
    ...rawHeaderCases.map((c): [string, string[]] => [c.file, c.parts]),
  ];
  for (const [name, keys] of cases) {
    test(name, async () => {
      const original = readFileSync(path.join(fixtures, name));
      const view = imapView(original);
      const plan = planTextParts(view.structure, 256 * 1024);
      assert.deepEqual(keysOf(plan.fetch), keys);
      assert.deepEqual(comparable(readTextParts(view.header, plan, fetchFrom(view, plan))), comparable(await normalizeMail(original)));
    });
  }

  // The HTML alternative is fetched in a second step, for the mail a rule needs it for: with it the
  // mail reads as the whole .eml does (html and its text too), without it as before (no html).
  for (const name of ["receipt-short-plain.eml", "receipt-full-plain.eml", "apple-receipt-en-multipart.eml"]) {
    test(`${name}: its HTML alternative, fetched afterwards, reads as in the whole message`, async () => {
      const original = readFileSync(path.join(fixtures, name));
      const whole = await normalizeMail(original);
      const view = imapView(original);
      const plan = planTextParts(view.structure, 256 * 1024);
      const plain = fetchFrom(view, plan);
      const withoutHtml = readTextParts(view.header, plan, plain);
      assert.equal(withoutHtml.html, undefined);
      const htmlPlan = htmlAlternativesPlan(plan);
      assert.ok(htmlPlan);
      assert.deepEqual(keysOf(htmlPlan.fetch), plan.alternatives.map((p) => p.part));
      const withHtml = readTextParts(view.header, plan, new Map([...plain, ...fetchFrom(view, htmlPlan)]));
      assert.deepEqual(comparable(withHtml), comparable(whole));
      assert.equal(withHtml.html, whole.html);
      assert.equal(htmlText(withHtml), htmlText(whole));
    });
  }

  test("the short-plain receipt: the plain part lacks the amount, its HTML alternative has it", () => {
    const view = imapView(readFileSync(path.join(fixtures, "receipt-short-plain.eml")));
    const plan = planTextParts(view.structure, 4096);
    assert.deepEqual(keysOf(plan.fetch), ["1"]);
    assert.deepEqual(plan.alternatives.map((p) => [p.part, p.type]), [["2", "text/html"]]);
    assert.deepEqual(htmlAlternativesPlan(plan)?.fetch, [{ key: "2", maxLength: 4096 }], "capped like every text part");
    const mail = readTextParts(view.header, plan, new Map([...fetchFrom(view, plan), ...fetchFrom(view, htmlAlternativesPlan(plan)!)]));
    assert.doesNotMatch(mail.text, /\$12\.34/);
    assert.match(htmlText(mail) ?? "", /^Total \$12\.34$/m);
  });

  test("mail without an HTML alternative has nothing more to fetch", () => {
    for (const name of ["google-play-ja-iso2022jp.eml", "latin1-qp.eml"]) {
      assert.equal(htmlAlternativesPlan(planTextParts(imapView(readFileSync(path.join(fixtures, name))).structure, 4096)), undefined, name);
    }
  });

  test("an attachment's size estimated from BODYSTRUCTURE is within a line of the decoded size", async () => {
    const original = readFileSync(path.join(fixtures, "apple-receipt-en-multipart.eml"));
    const view = imapView(original);
    const [overImap] = planTextParts(view.structure, 256 * 1024).attachments;
    const [whole] = (await normalizeMail(original)).attachments;
    assert.ok(overImap && whole);
    assert.ok(Math.abs(overImap.size - whole.size) <= 57, `${overImap.size} vs ${whole.size}`);
  });

  test("the test's IMAP stand-in numbers parts like a server", () => {
    const view = imapView(readFileSync(path.join(fixtures, "apple-receipt-en-multipart.eml")));
    assert.deepEqual(
      view.structure.childNodes?.map((n) => [n.part, n.type, n.childNodes?.map((c) => [c.part, c.type])]),
      [
        ["1", "multipart/alternative", [["1.1", "text/plain"], ["1.2", "text/html"]]],
        ["2", "application/pdf", undefined],
      ],
    );
    assert.equal(view.sections.get("2")?.toString("latin1").slice(0, 8), "JVBERi0x");
  });
});

describe("header values in raw bytes of a legacy charset, as fetched over IMAP", () => {
  for (const c of rawHeaderCases) {
    test(c.file, () => {
      const view = imapView(readRawHeaderFixture(c));
      const plan = planTextParts(view.structure, 256 * 1024);
      const mail = readTextParts(view.header, plan, fetchFrom(view, plan));
      assert.equal(mail.subject, c.subject);
      assert.deepEqual(mail.from, c.from);
      for (const [name, value] of Object.entries(c.headers ?? {})) assert.equal(mail.headers.get(name)?.[0], value);
      assert.deepEqual(mail.warnings, c.warnings);
      // The daemon decodes the header alone first (to ask its rules whether the text is needed):
      // the plan keeps the body's charset, so the subject reads the same before the text is fetched.
      const headerOnly = readTextParts(view.header, { ...plan, parts: [], omitted: [], fetch: [] }, new Map());
      assert.equal(headerOnly.subject, c.subject);
      assert.deepEqual(headerOnly.warnings, c.warnings);
    });
  }

  test("the plan carries the first declared charset past UTF-8 and UTF-7", () => {
    const plan = planTextParts(
      multi("multipart/mixed", undefined, [leaf("text/plain", "1"), leaf("text/plain", "2", { parameters: { charset: "UTF-7" } }), leaf("text/plain", "3", { parameters: { CHARSET: "Shift_JIS" } }), leaf("text/plain", "4", { parameters: { charset: "euc-jp" } })]),
      4096,
    );
    assert.equal(plan.charset, "Shift_JIS");
    assert.equal(planTextParts(leaf("text/plain", undefined), 4096).charset, undefined);
    // As mailparser sees it: the HTML alternative counts though it is not fetched, an attachment does not.
    const alternative = planTextParts(
      multi("multipart/mixed", undefined, [
        leaf("text/plain", "1", { disposition: "attachment", parameters: { charset: "koi8-r" } }),
        multi("multipart/alternative", "2", [leaf("text/plain", "2.1"), leaf("text/html", "2.2", { parameters: { charset: "euc-jp" } })]),
      ]),
      4096,
    );
    assert.deepEqual(keysOf(alternative.fetch), ["2.1"]);
    assert.equal(alternative.charset, "euc-jp");
  });

  test("a UTF-8 plain part and an EUC-JP HTML alternative: EUC-JP on both ways in", async () => {
    const subject = Buffer.from("a5c6a5b9a5c8", "hex"); // テスト in EUC-JP
    const raw = Buffer.concat([
      Buffer.from("Subject: "),
      subject,
      Buffer.from("\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--b\r\nContent-Type: text/html; charset=euc-jp\r\n\r\n<p>"),
      subject,
      Buffer.from("</p>\r\n--b--\r\n"),
    ]);
    const view = imapView(raw);
    const plan = planTextParts(view.structure, 4096);
    const overImap = readTextParts(view.header, plan, fetchFrom(view, plan));
    const whole = await normalizeMail(raw);
    assert.equal(overImap.subject, "テスト");
    assert.equal(whole.subject, "テスト");
    assert.deepEqual(overImap.warnings, ["header Subject in raw 8-bit bytes without RFC 2047 encoding: read as euc-jp (the charset the body declares)"]);
    assert.deepEqual(whole.warnings, overImap.warnings);
  });

  test("without BODYSTRUCTURE: the message's own Content-Type charset, else detection", () => {
    const read = (file: string) => {
      const view = imapView(readFileSync(path.join(fixtures, file)));
      return readFetchedParts({ uid: 7, header: view.header, plan: undefined, bodies: new Map() });
    };
    const euc = read("raw-header-euc-jp.eml");
    assert.equal(euc.subject, "会議のお知らせ（第3回）");
    assert.match(euc.warnings.at(-1) ?? "", /read as EUC-JP \(the charset the body declares\)$/);
    // multipart/alternative: the charset is on the parts, which are not known here.
    const sjis = read("raw-header-shift-jis.eml");
    assert.equal(sjis.subject, "【重要】ご注文確認 合計 1,280円");
    assert.match(sjis.warnings.at(-1) ?? "", /read as Shift_JIS \(detected; the body declares no legacy charset\)$/);
  });
});
