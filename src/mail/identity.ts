import { createHash } from "node:crypto";
import type { NormalizedMail } from "./types.ts";

/** What a mail's identity is made of: facts of its header and its size, never its body. */
export interface IdentityFacts {
  mail: Pick<NormalizedMail, "messageId" | "date" | "from" | "subject" | "headers">;
  /** RFC822.SIZE: the size of the whole message as the server reports it. */
  size: number;
  /** INTERNALDATE; stands in for the Date header of a mail that has none. */
  receivedAt: Date;
}

/**
 * Names one mail wherever it is: moved (MOVE keeps its bytes and arrival time), copied, shown in
 * two folders (Gmail's labels) or renumbered by the server all give the same identity, while two
 * mails a sender gave one Message-ID get two, unless they have the same Date, From, Subject and
 * size. `<Message-ID> digest`, or the digest alone (32 hex digits) for a mail without a Message-ID.
 *
 * The facts are taken decoded, as normalizeMail gives them (header folding, encoded words and
 * whitespace runs do not matter), and the size is the server's: RFC822.SIZE counts the message
 * with CRLF line ends however the server stores it, so a server that keeps LF files reports the
 * same size. What changes the bytes changes the identity: a mail delivered to two accounts (each
 * copy gets its own Received lines), or re-appended by a client that rewrote a header.
 */
export function mailIdentity(facts: IdentityFacts): string {
  const { mail } = facts;
  const canonical = JSON.stringify([dateFact(mail, facts.receivedAt), fromFact(mail), mail.subject.trim(), facts.size]);
  const digest = sha256(canonical);
  if (mail.messageId === undefined) return digest;
  // Anyone can send a Message-ID of any length; past what a real one needs, its own digest stands
  // in, so an identity (stored, indexed and logged) stays short.
  return mail.messageId.length <= maxMessageIdLength ? `<${mail.messageId}> ${digest}` : `<#${sha256(mail.messageId)}> ${digest}`;
}

const maxMessageIdLength = 250;

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

/** The Date header as an instant; as written when it is not a valid date; the arrival time when absent. */
function dateFact(mail: IdentityFacts["mail"], receivedAt: Date): string {
  if (mail.date) return mail.date.toISOString();
  const written = mail.headers.get("date")?.[0];
  if (written !== undefined) return `written:${collapse(written)}`;
  return `arrived:${receivedAt.toISOString()}`;
}

/** The From addresses (case does not tell mails apart); the header as written when it has none. */
function fromFact(mail: IdentityFacts["mail"]): string {
  if (mail.from.length > 0) return mail.from.map((a) => a.address.toLowerCase()).join(",");
  return collapse(mail.headers.get("from")?.[0] ?? "");
}

function collapse(s: string): string {
  return s.replace(/\s+/g, " ").trim();
}

/**
 * RFC822.SIZE of a message held as a file: its size with every line ending in CRLF, as an IMAP
 * server counts it. A saved .eml often has LF line ends; `mailbell test` uses this to find the
 * identity the daemon gave the same mail.
 */
export function rfc822Size(raw: Uint8Array): number {
  let bareLf = 0;
  for (let i = raw.indexOf(0x0a); i >= 0; i = raw.indexOf(0x0a, i + 1)) {
    if (i === 0 || raw[i - 1] !== 0x0d) bareLf++;
  }
  return raw.length + bareLf;
}
