/**
 * Builds raw RFC 5322 messages for tests: unique Message-IDs by default, CRLF line ends, MIME
 * bodies in quoted-printable or base64, RFC 2047 headers for non-ASCII text. 7-bit clean output.
 */
import { randomBytes } from "node:crypto";

export type Charset = "utf-8" | "iso-8859-1" | "us-ascii";

export interface Attachment {
  filename: string;
  contentType?: string;
  content: Buffer | string;
}

export interface MailInput {
  /** "addr@example.com" or "Display Name <addr@example.com>"; non-ASCII names are encoded. */
  from: string;
  to: string | readonly string[];
  cc?: string | readonly string[];
  subject: string;
  text: string;
  html?: string;
  /** With or without angle brackets; default a fresh unique one. */
  messageId?: string;
  /** Default now. */
  date?: Date;
  /** Charset for the body parts and encoded headers; default utf-8. */
  charset?: Charset;
  /** Transfer encoding of text bodies; default quoted-printable. */
  encoding?: "quoted-printable" | "base64";
  /** Extra headers, emitted as given after the standard ones (values must already be 7-bit). */
  headers?: Readonly<Record<string, string>> | readonly (readonly [string, string])[];
  attachments?: readonly Attachment[];
}

let counter = 0;

/** `<unique@domain>`: a random part plus a counter, so even a tight loop never repeats. */
export function uniqueMessageId(domain = "mailbell.test"): string {
  counter += 1;
  return `<${Date.now().toString(36)}.${counter}.${randomBytes(6).toString("hex")}@${domain}>`;
}

function charsetBytes(s: string, charset: Charset): Buffer {
  if (charset === "utf-8") return Buffer.from(s, "utf8");
  const max = charset === "us-ascii" ? 0x7f : 0xff;
  for (const ch of s) {
    if (ch.codePointAt(0)! > max) throw new Error(`buildMail: ${JSON.stringify(ch)} cannot be written in ${charset}`);
  }
  return Buffer.from(s, "latin1");
}

const isAscii = (s: string): boolean => /^[\x20-\x7e\t]*$/.test(s);

/** RFC 2047 B-words of at most 75 characters, split only between whole characters. */
function encodeWords(s: string, charset: Charset): string[] {
  const prefix = `=?${charset.toUpperCase()}?B?`;
  const maxBytes = Math.floor((75 - prefix.length - 2) / 4) * 3;
  const words: string[] = [];
  let chunk = "";
  for (const ch of s) {
    if (chunk && charsetBytes(chunk + ch, charset).length > maxBytes) {
      words.push(`${prefix}${charsetBytes(chunk, charset).toString("base64")}?=`);
      chunk = "";
    }
    chunk += ch;
  }
  if (chunk) words.push(`${prefix}${charsetBytes(chunk, charset).toString("base64")}?=`);
  return words;
}

/** Folds at spaces so no line exceeds 78 characters where a space allows it. */
function header(name: string, value: string): string {
  const words = `${name}: ${value}`.split(" ");
  const lines: string[] = [];
  let line = "";
  for (const w of words) {
    // never break right after "Name:": some parsers then see an empty first line
    if (line && line !== `${name}:` && line.length + 1 + w.length > 78) {
      lines.push(line);
      line = w;
    } else {
      line = line ? `${line} ${w}` : w;
    }
  }
  lines.push(line);
  return lines.join("\r\n ");
}

function textHeader(value: string, charset: Charset): string {
  return isAscii(value) ? value : encodeWords(value, charset).join(" ");
}

function address(spec: string, charset: Charset): string {
  const m = /^\s*(.*?)\s*<([^>]+)>\s*$/.exec(spec);
  if (!m) return spec.trim();
  const name = m[1]!.replace(/^"(.*)"$/, "$1");
  const addr = m[2]!;
  if (!name) return `<${addr}>`;
  if (!isAscii(name)) return `${encodeWords(name, charset).join(" ")} <${addr}>`;
  return /[()<>[\]:;@\\,."]/.test(name) ? `"${name.replace(/["\\]/g, "\\$&")}" <${addr}>` : `${name} <${addr}>`;
}

function addressList(v: string | readonly string[], charset: Charset): string {
  return (typeof v === "string" ? [v] : v).map((a) => address(a, charset)).join(", ");
}

/** RFC 5322 date-time in UTC, e.g. "Mon, 24 Nov 2025 09:05:00 +0000". */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, "+0000");
}

/** Quoted-printable (RFC 2045 §6.7) of text whose line breaks are already CRLF. */
export function quotedPrintable(bytes: Buffer): string {
  const out: string[] = [];
  const lines = bytes.toString("latin1").split("\r\n");
  for (const line of lines) {
    let cur = "";
    const chars = [...line];
    chars.forEach((ch, i) => {
      const c = ch.charCodeAt(0);
      const last = i === chars.length - 1;
      let enc: string;
      if ((c === 0x20 || c === 0x09) && last) enc = `=${c.toString(16).toUpperCase().padStart(2, "0")}`;
      else if ((c >= 33 && c <= 126 && c !== 61) || c === 0x20 || c === 0x09) enc = ch;
      else enc = `=${c.toString(16).toUpperCase().padStart(2, "0")}`;
      // 76 characters per line including the "=" of a soft break
      if (cur.length + enc.length > 75) {
        out.push(`${cur}=`);
        cur = "";
      }
      cur += enc;
    });
    out.push(cur);
  }
  return out.join("\r\n");
}

function base64Lines(bytes: Buffer): string {
  return (bytes.toString("base64").match(/.{1,76}/g) ?? [""]).join("\r\n");
}

function textPart(kind: "plain" | "html", body: string, charset: Charset, encoding: "quoted-printable" | "base64"): string {
  const bytes = charsetBytes(body.replace(/\r?\n/g, "\r\n"), charset);
  const encoded = encoding === "base64" ? base64Lines(bytes) : quotedPrintable(bytes);
  return `Content-Type: text/${kind}; charset=${charset}\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\n${encoded}`;
}

function multipart(subtype: string, parts: string[]): string {
  const boundary = `=_mb_${randomBytes(9).toString("hex")}`;
  return `Content-Type: multipart/${subtype}; boundary="${boundary}"\r\n\r\n${parts.map((p) => `--${boundary}\r\n${p}\r\n`).join("")}--${boundary}--`;
}

/** A complete message (headers, blank line, body) as a 7-bit string with CRLF line ends. */
export function buildMail(input: MailInput): string {
  const charset = input.charset ?? "utf-8";
  const encoding = input.encoding ?? "quoted-printable";
  const messageId = input.messageId ? (input.messageId.startsWith("<") ? input.messageId : `<${input.messageId}>`) : uniqueMessageId();
  const head = [
    header("From", addressList(input.from, charset)),
    header("To", addressList(input.to, charset)),
    ...(input.cc ? [header("Cc", addressList(input.cc, charset))] : []),
    header("Subject", textHeader(input.subject, charset)),
    `Date: ${rfc5322Date(input.date ?? new Date())}`,
    `Message-ID: ${messageId}`,
    "MIME-Version: 1.0",
  ];
  const extra = input.headers ? (Array.isArray(input.headers) ? input.headers : Object.entries(input.headers)) : [];
  for (const [k, v] of extra as [string, string][]) head.push(header(k, v));

  let body = input.html
    ? multipart("alternative", [textPart("plain", input.text, charset, encoding), textPart("html", input.html, charset, encoding)])
    : textPart("plain", input.text, charset, encoding);
  if (input.attachments?.length) {
    const atts = input.attachments.map((a) => {
      const bytes = typeof a.content === "string" ? Buffer.from(a.content, "utf8") : a.content;
      const name = isAscii(a.filename) ? `"${a.filename}"` : `"${encodeWords(a.filename, "utf-8").join(" ")}"`;
      return `Content-Type: ${a.contentType ?? "application/octet-stream"}; name=${name}\r\nContent-Disposition: attachment; filename=${name}\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64Lines(bytes)}`;
    });
    body = multipart("mixed", [body, ...atts]);
  }
  return `${head.join("\r\n")}\r\n${body}\r\n`;
}
