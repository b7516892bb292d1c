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
