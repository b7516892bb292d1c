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

// C0 controls (but tab), DEL, C1 controls (0x9b is a one-byte CSI on some terminals) and the
// bidi overrides/isolates.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const unsafe = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Terminal text (the stdout target, the CLI): nothing is markup on a terminal, but mail text could carry escape sequences that
 * recolour, retitle or rewrite the terminal, or line breaks that fake a second notification.
 * Controls become U+FFFD so they stay visible, line breaks spaces.
 */
export function escapeTerminal(text: string): string {
  return text.replace(/\r\n|[\r\n\u2028\u2029]/g, " ").replace(unsafe, "\uFFFD");
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
