/** Pieces of mailbell.yaml that the integration tests and the benchmarks write alike. */

export interface AccountYaml {
  name: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** An implicit-TLS port (the server's, or a proxy's in front of it); with tls: none, a plain one. */
  port: number;
  /** Default implicit; none is for a test proxy's plain port in front of the server. */
  tls?: "implicit" | "none";
  /** The server's certificate, trusted as the only CA; left out with tls: none. */
  caFile?: string;
  user: string;
  /** Literal, or a `${VAR}` reference the process's environment fills in. */
  pass: string;
  /** Default [INBOX]. */
  mailboxes?: readonly string[];
  /** Left out by default (10). */
  maxConnections?: number;
}

/** One entry under `accounts:`. */
export function accountYaml(a: AccountYaml): string {
  const ca = a.caFile === undefined ? "" : `\n    ca: ${JSON.stringify(a.caFile)}`;
  return `  - name: ${a.name}
    host: ${a.host ?? "127.0.0.1"}
    port: ${a.port}
    tls: ${a.tls ?? "implicit"}${ca}
    user: ${a.user}
    pass: ${a.pass}
    mailboxes: [${(a.mailboxes ?? ["INBOX"]).map((m) => JSON.stringify(m)).join(", ")}]${a.maxConnections === undefined ? "" : `\n    maxConnections: ${a.maxConnections}`}
`;
}

/**
 * The fields and total of a rule for Google Play receipts, Japanese or English (the fixture
 * google-play-ja-iso2022jp.eml and bench/corpus-gen.ts's receipts): item, amount as money, summed
 * per month in Tokyo. Indented to follow a rule's `match:` line.
 */
export const PLAY_RECEIPT_FIELDS = `    extract:
      amount: { regex: "^(?:合計|Total):?\\\\s*(?<value>[^\\\\r\\\\n]+)", flags: m, as: money }
      item: { regex: "^(?:商品名|Item):\\\\s*(?<value>[^\\\\r\\\\n(]+?)\\\\s*(?:\\\\(|$)", flags: m }
    total: { sum: amount, per: month, timezone: Asia/Tokyo }
`;
