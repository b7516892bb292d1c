/**
 * Types for the parts of mailauth (pinned in package.json) that it ships without them: its RFC 8601
 * header parser and its DMARC alignment helper. Only what mailbell uses.
 */
declare module "mailauth/lib/parse-dkim-headers.js" {
  interface ParsedHeader {
    parsed: Record<string, unknown> & { header?: string; value?: string };
    original: string;
  }
  function headerParser(line: string): ParsedHeader;
  export default headerParser;
}

declare module "mailauth/lib/tools.js" {
  /** The first entry of domainList that is aligned with fromDomain (relaxed unless strict), or false. */
  export function getAlignment(fromDomain: string, domainList: readonly (string | { domain: string })[], strict?: boolean): { domain: string } | false;
}
