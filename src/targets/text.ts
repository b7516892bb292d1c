import type { MessageSegment, Notification } from "./types.ts";

/**
 * Cuts text to at most `max` UTF-16 units without splitting a surrogate pair or an HTML-style
 * entity such as `&amp;`, which services would then show half-escaped.
 */
export function truncate(text: string, max: number, ellipsis = "…"): string {
  if (text.length <= max) return text;
  let end = Math.max(0, max - ellipsis.length);
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  const amp = text.lastIndexOf("&", end);
  if (amp !== -1 && amp > end - 10) {
    const semi = text.indexOf(";", amp);
    if (semi === -1 || semi >= end) end = amp;
  }
  return text.slice(0, end) + ellipsis;
}

/**
 * Cuts plain text (no entities to keep whole: a terminal line, an environment value) to at most
 * `max` UTF-16 units without splitting a surrogate pair.
 */
export function truncatePlain(text: string, max: number, ellipsis = "…"): string {
  if (text.length <= max) return text;
  let end = Math.max(0, max - ellipsis.length);
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return text.slice(0, end) + ellipsis;
}

/**
 * As many whole lines as fit in `max` characters, followed by "…and N more" for the rest of
 * `total`: a digest never ends in the middle of a mail's line.
 */
export function fitLines(lines: readonly string[], total: number, max: number): string {
  for (let k = lines.length; k >= 0; k--) {
    const more = total - k;
    const text = [...lines.slice(0, k), ...(more > 0 ? [`…and ${more} more`] : [])].join("\n");
    if (text.length <= max) return text;
  }
  return truncate(`…${total} mails`, max);
}

/* eslint-disable no-control-regex -- matching control characters is the point */
/** Anything readable() changes; most text has none of it and is returned as it is. */
const unreadable = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const lineBreaks = /\r\n?|[\u2028\u2029]/g;
// C0 controls but tab and LF, DEL, and C1 controls (0x85 is NEL, 0x9b a one-byte CSI on some terminals).
const controls = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
// Embeddings, overrides and isolates (LRE…RLO, LRI…PDI): they reorder the characters after them.
const bidiControls = /[\u202a-\u202e\u2066-\u2069]/g;
/* eslint-enable no-control-regex */

/**
 * Mail text as every target that shows it to a person gets it: the one convention, applied
 * before the service's own escaping (notificationForPeople does it for a whole notification).
 * - Controls (NUL, BEL, ESC as in ESC[2J, DEL, C1 such as NEL and CSI) become U+FFFD: visible
 *   that something was there, inert everywhere (a terminal, a phone's notification, an env value).
 * - A line break is LF, whichever it was (CRLF, CR, U+2028, U+2029), so a CR cannot make a
 *   terminal or log overwrite a line; LF and tab stay, and a service that wants one line makes
 *   them spaces itself.
 * - Bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) are removed: they
 *   reorder what follows them, so "moc.evil" can read "live.com". The marks U+200E and U+200F
 *   stay: Arabic and Hebrew mail uses them, and they only set the direction of neutral characters
 *   next to them, which cannot make one word read as another.
 */
export function readable(text: string): string {
  if (!unreadable.test(text)) return text;
  return text.replace(lineBreaks, "\n").replace(controls, "\uFFFD").replace(bidiControls, "");
}

/**
 * The notification with everything from the mail made readable(): subject, sender, fields, and
 * every value its template fills in. Each target that shows text to people renders from this.
 */
export function notificationForPeople(n: Notification): Notification {
  const fields: Notification["fields"] = {};
  for (const [name, field] of Object.entries(n.fields)) fields[name] = field && { ...field, text: readable(field.text), raw: readable(field.raw) };
  const message = n.message.map((s) => ("fromMail" in s ? { fromMail: readable(s.fromMail) } : s));
  return { ...n, from: readable(n.from), subject: readable(n.subject), fields, message };
}

/** The message as text: literal segments as written, every mail-derived one through `escape`. */
export function renderMessage(message: readonly MessageSegment[], escape: (text: string) => string): string {
  let out = "";
  for (const s of message) out += "literal" in s ? s.literal : escape(s.fromMail);
  return out;
}

/**
 * Terminal text (the stdout target, the CLI): readable(), and each line break a space, so mail
 * text cannot fake a second notification line; nothing is markup on a terminal.
 */
export function escapeTerminal(text: string): string {
  return readable(text).replace(/\n/g, " ");
}

/**
 * The link only if it is a well-formed http(s) URL. Discord refuses a whole message over a bad
 * embed url; ntfy and Teams would open other schemes (intents, tel:, javascript:) on a tap.
 */
export function httpLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  try {
    const u = new URL(link);
    return u.protocol === "https:" || u.protocol === "http:" ? u.href : undefined;
  } catch {
    return undefined;
  }
}
