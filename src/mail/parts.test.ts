import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import type { MessageStructureObject } from "imapflow";
import { findHeaderEnd, splitHeaderFields } from "./header-block.ts";
import { normalizeMail } from "./normalize.ts";
import { assembleMessage, planTextParts } from "./parts.ts";
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
  test("single-part text/plain: part 1, no .MIME (the message header describes it)", () => {
    const plan = planTextParts(leaf("text/plain", undefined, { size: 500 }), 4096);
    assert.equal(plan.singlePart, true);
    assert.deepEqual(plan.fetch, [{ key: "1", maxLength: 4096 }]);
    assert.deepEqual(
      plan.parts.map((p) => [p.part, p.type, p.mimeKey, p.size, p.truncated]),
      [["1", "text/plain", undefined, 500, false]],
    );
  });

  test("multipart/alternative plain + html: only the plain part", () => {
    const plan = planTextParts(multi("multipart/alternative", undefined, [leaf("text/plain", "1"), leaf("text/html", "2")]), 4096);
    assert.equal(plan.singlePart, false);
    assert.deepEqual(plan.fetch, [{ key: "1", maxLength: 4096 }, "1.MIME"]);
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
    assert.deepEqual(keysOf(plan.fetch), ["1.1", "1.1.MIME"]);
  });

  test("multipart/mixed: PDF attachment and a text/plain attachment skipped, inline text kept", () => {
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
    assert.deepEqual(keysOf(plan.fetch), ["1", "1.MIME", "3", "3.MIME"]);
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
    assert.deepEqual(keysOf(plan.fetch), ["1.1", "1.1.MIME", "2", "2.MIME"]);
  });

  test("alternative whose HTML sits in a related part, no plain text: the HTML is fetched", () => {
    const plan = planTextParts(multi("multipart/alternative", undefined, [multi("multipart/related", "1", [leaf("text/html", "1.1"), leaf("image/png", "1.2")])]), 4096);
    assert.deepEqual(keysOf(plan.fetch), ["1.1", "1.1.MIME"]);
  });

  test("attached message/rfc822: nothing inside it is requested", () => {
    const inner = multi("multipart/alternative", "2", [leaf("text/plain", "2.1"), leaf("text/html", "2.2")]);
    const plan = planTextParts(
      multi("multipart/mixed", undefined, [leaf("text/plain", "1"), { type: "message/rfc822", part: "2", size: 5000, disposition: "attachment", childNodes: [inner] }, { type: "message/rfc822", part: "3", size: 300, childNodes: [leaf("text/plain", "3")] }]),
      4096,
    );
    assert.deepEqual(keysOf(plan.fetch), ["1", "1.MIME"]);
  });

  test("attachment-only and non-text roots plan nothing", () => {
    assert.deepEqual(planTextParts(leaf("application/pdf", undefined, { encoding: "base64" }), 4096).fetch, []);
    assert.deepEqual(planTextParts(multi("multipart/mixed", undefined, [leaf("application/pdf", "1", { disposition: "attachment" })]), 4096).fetch, []);
    assert.deepEqual(planTextParts({ type: "message/rfc822", size: 10, childNodes: [leaf("text/plain", undefined)] }, 4096).fetch, []);
  });

  test("part numbers are derived when the tree does not carry them", () => {
    const plan = planTextParts({ type: "multipart/mixed", childNodes: [{ type: "image/png" }, { type: "multipart/alternative", childNodes: [{ type: "text/plain" }, { type: "text/html" }] }] }, 100);
    assert.deepEqual(keysOf(plan.fetch), ["2.1", "2.1.MIME"]);
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

describe("assembleMessage", () => {
  test("several parts become a fresh multipart/mixed under the original header", async () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1"), leaf("application/pdf", "2", { disposition: "attachment" }), leaf("text/plain", "3")]), 4096);
    const fetched = new Map([
      ["1", Buffer.from("First =E2=82=AC part\r\n")],
      ["1.mime", Buffer.from("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")],
      ["3", Buffer.from("Second part")],
      ["3.mime", Buffer.from("Content-Type: text/plain; charset=us-ascii\r\n\r\n")],
    ]);
    const { raw, warnings } = assembleMessage(HEADER, plan, fetched);
    assert.deepEqual(warnings, []);
    const text = raw.toString("latin1");
    assert.ok(text.startsWith("From: Shop <shop@example.com>\r\n"));
    assert.ok(!text.includes("boundary=\"outer\"") && !text.includes("Content-Transfer-Encoding: 7bit"));
    assert.match(text, /^Content-Type: multipart\/mixed; boundary="=_mailbell_0"\r\n\r\n--=_mailbell_0\r\n/m);
    const mail = await normalizeMail(raw);
    assert.deepEqual(mail.warnings, []);
    assert.equal(mail.subject, "Your order");
    assert.equal(mail.text, "First € part\n\nSecond part");
  });

  test("the boundary avoids anything in the parts", () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1")]), 4096);
    const { raw } = assembleMessage(HEADER, plan, new Map([["1", Buffer.from("--=_mailbell_0\r\n")], ["1.MIME", Buffer.from("Content-Type: text/plain\r\n\r\n")]]));
    assert.match(raw.toString(), /boundary="=_mailbell_1"/);
  });

  test("a single-part message keeps its header as it is", async () => {
    const header = Buffer.from("Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    const plan = planTextParts(leaf("text/plain", undefined, { encoding: "base64", size: 12 }), 4096);
    const { raw, warnings } = assembleMessage(header, plan, new Map([["1", Buffer.from("44GT44KT44Gr\r\n")]]));
    assert.deepEqual(warnings, []);
    assert.equal(raw.toString(), "Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n44GT44KT44Gr\r\n");
    assert.equal((await normalizeMail(raw)).text, "こんに");
  });

  test("attachment-only mail: header only, empty text", async () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("application/pdf", "1", { disposition: "attachment" })]), 4096);
    const { raw, warnings } = assembleMessage(HEADER, plan, new Map());
    assert.deepEqual(warnings, []);
    assert.ok(!/content-type/i.test(raw.toString()));
    const mail = await normalizeMail(raw);
    assert.equal(mail.text, "");
    assert.equal(mail.subject, "Your order");
    assert.deepEqual(mail.warnings, []);
  });

  test("a part the server did not return is a warning, not a crash", async () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1"), leaf("text/plain", "2")]), 4096);
    const { raw, warnings } = assembleMessage(HEADER, plan, new Map([["2", Buffer.from("kept")], ["2.MIME", Buffer.from("Content-Type: text/plain\r\n\r\n")]]));
    assert.deepEqual(warnings, ["text part 1 was not returned by the server; left out"]);
    assert.equal((await normalizeMail(raw)).text, "kept");
    const none = assembleMessage(HEADER, plan, new Map());
    assert.equal(none.warnings.length, 2);
    assert.equal((await normalizeMail(none.raw)).text, "");
  });

  test("a missing MIME header is rebuilt from BODYSTRUCTURE", async () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1", { parameters: { charset: "iso-8859-1" }, encoding: "quoted-printable" })]), 4096);
    const { raw, warnings } = assembleMessage(HEADER, plan, new Map([["1", Buffer.from("Gr=FC=DFe")]]));
    assert.deepEqual(warnings, ["MIME header of text part 1 was not returned by the server; rebuilt from BODYSTRUCTURE"]);
    assert.equal((await normalizeMail(raw)).text, "Grüße");
  });

  test("an empty header from the server still gives a parseable message", async () => {
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1")]), 4096);
    const { raw, warnings } = assembleMessage(new Uint8Array(0), plan, new Map([["1", Buffer.from("body")], ["1.MIME", Buffer.from("\r\n")]]));
    assert.deepEqual(warnings, ["message header is empty"]);
    assert.equal((await normalizeMail(raw)).text, "body");
  });

  describe("truncation", () => {
    const body = Buffer.from(["line one ==E2=82=AC", "line two", "line three is long enough to be cut in the middle"].join("\r\n"));
    const plan = planTextParts(multi("multipart/mixed", undefined, [leaf("text/plain", "1.1", { size: body.length, encoding: "quoted-printable" })]), 24);

    test("a body cut at maxTextBytes goes back to the last line break", async () => {
      assert.equal(plan.parts[0]?.truncated, true);
      // What the server sends for BODY.PEEK[1.1]<0.24>: "line one ==E2=82=AC\r\nlin"
      const { raw, warnings } = assembleMessage(HEADER, plan, new Map([["1.1", body.subarray(0, 24)], ["1.1.MIME", Buffer.from("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")]]));
      assert.deepEqual(warnings, [`text part 1.1 truncated at 21 bytes of ${body.length}`]);
      const mail = await normalizeMail(raw);
      assert.equal(mail.text, "line one =€\n");
    });

    test("a server that ignores the partial range is capped here", () => {
      const { warnings } = assembleMessage(HEADER, plan, new Map([["1.1", body], ["1.1.MIME", Buffer.from("Content-Type: text/plain\r\n\r\n")]]));
      assert.deepEqual(warnings, [`text part 1.1 truncated at 21 bytes of ${body.length}`]);
    });

    test("without any line break, base64 keeps whole groups and quoted-printable no half escape", async () => {
      const b64 = Buffer.from("こんにちは世界").toString("base64");
      const b64Plan = planTextParts(leaf("text/plain", undefined, { encoding: "base64", size: b64.length }), 10);
      const header = Buffer.from("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
      const cutB64 = assembleMessage(header, b64Plan, new Map([["1", Buffer.from(b64.slice(0, 10))]]));
      assert.deepEqual(cutB64.warnings, [`text part 1 truncated at 8 bytes of ${b64.length}`]);
      assert.equal((await normalizeMail(cutB64.raw)).text, "こん");

      const qpPlan = planTextParts(leaf("text/plain", undefined, { encoding: "quoted-printable", size: 30 }), 10);
      const qpHeader = Buffer.from("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
      const cutQp = assembleMessage(qpHeader, qpPlan, new Map([["1", Buffer.from("abc=E2=82=AC".slice(0, 10))]]));
      assert.deepEqual(cutQp.warnings, ["text part 1 truncated at 9 bytes of 30"]);
      assert.equal(cutQp.raw.toString().split("\r\n\r\n")[1], "abc=E2=82");
    });

    test("a part whose declared size fits is not cut even at exactly maxTextBytes", () => {
      const exact = planTextParts(leaf("text/plain", undefined, { size: 10 }), 10);
      const { raw, warnings } = assembleMessage(Buffer.from("Subject: x\r\n\r\n"), exact, new Map([["1", Buffer.from("0123456789")]]));
      assert.deepEqual(warnings, []);
      assert.ok(raw.toString().endsWith("\r\n\r\n0123456789"));
    });

    test("ISO-2022-JP cut at a line break never splits a character", async () => {
      const original = readFileSync(path.join(fixtures, "google-play-ja-iso2022jp.eml"));
      const view = imapView(original);
      const small = planTextParts(view.structure, 300);
      const { raw, warnings } = assembleMessage(view.header, small, fetchFrom(view, small));
      assert.match(warnings[0] ?? "", /^text part 1 truncated at \d+ bytes of \d+$/);
      const full = await normalizeMail(original);
      const cut = await normalizeMail(raw);
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
  warnings: mail.warnings,
});

describe("round trip: fetch as planned, assemble, normalize = normalize the whole message", () => {
  const cases: Array<[string, string[]]> = [
    ["google-play-ja-iso2022jp.eml", ["1"]],
    ["google-play-en-utf8.eml", ["1", "1.MIME"]],
    ["apple-receipt-ja-utf8.eml", ["1"]],
    ["apple-receipt-en-multipart.eml", ["1.1", "1.1.MIME"]],
    ["shift-jis-notice.eml", ["1"]],
    ["euc-jp-notice.eml", ["1"]],
    ["latin1-qp.eml", ["1"]],
    ["hostile-slack.eml", ["1"]],
  ];
  for (const [name, keys] of cases) {
    test(name, async () => {
      const original = readFileSync(path.join(fixtures, name));
      const view = imapView(original);
      const plan = planTextParts(view.structure, 256 * 1024);
      assert.deepEqual(keysOf(plan.fetch), keys);
      const { raw, warnings } = assembleMessage(view.header, plan, fetchFrom(view, plan));
      assert.deepEqual(warnings, []);
      assert.ok(raw.length <= original.length);
      assert.deepEqual(comparable(await normalizeMail(raw)), comparable(await normalizeMail(original)));
    });
  }

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
