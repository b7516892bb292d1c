/** One address from a From/To/Cc header, decoded. `address` is the bare addr-spec, lower-cased domain kept as sent. */
export interface MailAddress {
  name: string;
  address: string;
}

/**
 * A file attached to the mail, as its MIME structure describes it: the content is never read. Every
 * leaf that is not a text body part counts (mailparser's rule), inline images included.
 */
export interface MailAttachment {
  /** Decoded file name (Content-Disposition filename, else Content-Type name); "" when the part has none. */
  filename: string;
  /** Lower-cased MIME type, e.g. "application/pdf"; application/octet-stream with a known file name extension is guessed from it. */
  contentType: string;
  /**
   * Size in bytes once decoded. On the IMAP path it is estimated from the transfer-encoded size the
   * server reports (base64: ×3/4, less its line breaks), so it may differ by a few percent.
   */
  size: number;
}

/**
 * A message turned into what rules need: decoded headers and one plain-text body. Produced by
 * `normalizeMail` from raw bytes (a whole .eml, or the header and text parts fetched over IMAP).
 */
export interface NormalizedMail {
  /** Message-ID without the angle brackets, or undefined when the mail has none. */
  messageId: string | undefined;
  from: MailAddress[];
  to: MailAddress[];
  cc: MailAddress[];
  /** Decoded Subject, whitespace runs from folding collapsed; "" when absent. */
  subject: string;
  /** The Date header, when present and valid. */
  date: Date | undefined;
  /**
   * The Authentication-Results headers as written, topmost first: unfolded but not RFC 2047-decoded,
   * which they never use (decoding them could turn an encoded word in a sender's address, which the
   * receiving server copies in, into a result of its own).
   */
  authenticationResults?: readonly string[];
  /**
   * Every header, name lower-cased, values decoded and unfolded, in order of appearance: raw 8-bit
   * or ISO-2022-JP bytes by header-charset.ts (with a warning when a charset was assumed), then RFC 2047.
   */
  headers: ReadonlyMap<string, readonly string[]>;
  /** Plain text body: the text/plain parts, or text made from the HTML when the mail has only HTML. */
  text: string;
  /** Decoded HTML body, when the mail has one (over IMAP, an HTML alternative to a plain part only when a rule needed it). */
  html: string | undefined;
  /**
   * True when `text` was made from the HTML because the mail has no plain text: its HTML then says
   * nothing `text` does not. Absent or false when `text` is the plain part (see htmlText() in normalize.ts).
   */
  textFromHtml?: boolean;
  /** Attached files, in MIME order, from the structure alone (BODYSTRUCTURE over IMAP). */
  attachments: MailAttachment[];
  /** What could not be read cleanly (bad charset, truncated part…); the rest is still usable. */
  warnings: string[];
}

/** A mail with nothing in it: what is returned when nothing could be read. */
export function emptyMail(): Omit<NormalizedMail, "warnings"> {
  return { messageId: undefined, from: [], to: [], cc: [], subject: "", date: undefined, headers: new Map(), text: "", html: undefined, attachments: [] };
}
