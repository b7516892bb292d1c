/** Pieces of mailbell.yaml that the integration tests and the benchmarks write alike. */

export interface AccountYaml {
  name: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** An implicit-TLS port: the server's, or a proxy's in front of it. */
  port: number;
  /** The server's certificate, trusted as the only CA. */
  caFile: string;
  user: string;
  /** Literal, or a `${VAR}` reference the process's environment fills in. */
  pass: string;
  /** Default [INBOX]. */
  mailboxes?: readonly string[];
}

/** One entry under `accounts:`, implicit TLS. */
export function accountYaml(a: AccountYaml): string {
  return `  - name: ${a.name}
    host: ${a.host ?? "127.0.0.1"}
    port: ${a.port}
    tls: implicit
    ca: ${JSON.stringify(a.caFile)}
    user: ${a.user}
    pass: ${a.pass}
    mailboxes: [${(a.mailboxes ?? ["INBOX"]).join(", ")}]
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
