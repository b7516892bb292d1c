/**
 * Socket and TLS failures in words: what went wrong between mailbell and host:port, and which
 * setting fixes it. Pure: the error (its code and message) and the endpoint go in, a sentence comes
 * out. Used by classifyImapError (client.ts), so `mailbell check` and the watchers say the same.
 */

/** Where a connection went, as configured. */
export interface Endpoint {
  host: string;
  port: number;
  tls: "implicit" | "starttls" | "none";
}

export interface TransportProblem {
  /** What is wrong and which setting fixes it, without the account's name. */
  message: string;
  /** The config is wrong (not the network): a new connection meets the same answer. */
  settled: boolean;
}

const tlsPort = 993;

/**
 * Asked for plain text, a TLS port says nothing and waits for our ClientHello, where a healthy IMAP
 * server greets within milliseconds. On port 993, known to expect TLS, 5 s is enough to tell;
 * elsewhere imapflow's 16 s stays, as a server greeting slowly (saturated login processes, a
 * reverse DNS lookup first) would otherwise fail every attempt.
 */
export const plainGreetingTimeoutMs = 5000;

/** imapflow's own wait for the greeting. */
const defaultGreetingTimeoutMs = 16_000;

/** The greeting wait for this endpoint: the short one only on the TLS port without implicit TLS; undefined keeps imapflow's. */
export function greetingTimeoutFor(at: Endpoint): number | undefined {
  return at.tls !== "implicit" && at.port === tlsPort ? plainGreetingTimeoutMs : undefined;
}

/** The failure described, or undefined when it is none of the transport failures known here. */
export function describeTransportError(err: { code?: string; message?: string }, at: Endpoint): TransportProblem | undefined {
  const code = err.code ?? "";
  const text = err.message ?? "";
  const hostPort = `${at.host}:${at.port}`;
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || /wrong version number/i.test(text)) {
    const fix = at.tls !== "implicit" ? "check the port and the tls: setting" : at.port === tlsPort ? "use tls: starttls, or check the port" : `use tls: starttls, or port ${tlsPort}`;
    return { message: `port ${at.port} does not speak TLS from the first byte (${hostPort} answered in plain text): ${fix}`, settled: true };
  }
  if (code === "GREETING_TIMEOUT") return greetingTimeout(at, hostPort);
  switch (code) {
    case "ECONNREFUSED":
      return { message: `nothing listens on ${hostPort} (connection refused): check host and port`, settled: false };
    case "ENOTFOUND":
      return { message: `the host name "${at.host}" was not found (DNS: ENOTFOUND): check host`, settled: false };
    case "EAI_AGAIN":
      return { message: `the host name "${at.host}" could not be looked up just now (DNS: EAI_AGAIN): check the network and DNS`, settled: false };
    case "ETIMEDOUT":
    case "CONNECT_TIMEOUT":
      return { message: `no answer from ${hostPort} (timed out): check host and port, and that no firewall drops the connection`, settled: false };
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return { message: `${hostPort} cannot be reached (${code}): check the network and host`, settled: false };
    default:
      return undefined;
  }
}

function greetingTimeout(at: Endpoint, hostPort: string): TransportProblem {
  if (at.tls === "implicit") return { message: `${hostPort} accepted TLS but sent no IMAP greeting: check that port ${at.port} is the server's IMAP port`, settled: false };
  const waited = (greetingTimeoutFor(at) ?? defaultGreetingTimeoutMs) / 1000;
  if (at.port === tlsPort) return { message: `${hostPort} sent no IMAP greeting within ${waited} s: port ${tlsPort} expects TLS: use tls: implicit`, settled: false };
  return { message: `${hostPort} sent no IMAP greeting within ${waited} s: if port ${at.port} expects TLS from the first byte, use tls: implicit; else the server is slow to greet (overloaded?)`, settled: false };
}

/** The certificate failure in words, for the OpenSSL codes a user meets; undefined for the rest. */
export function describeCertificateError(code: string, at: Endpoint): string | undefined {
  if (code === "CERT_HAS_EXPIRED") return `the certificate of ${at.host}:${at.port} has expired (CERT_HAS_EXPIRED): the server must renew it; tlsVerify: false works around it (not recommended)`;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return `the certificate of ${at.host}:${at.port} is not for "${at.host}" (ERR_TLS_CERT_ALTNAME_INVALID): set host: to a name the certificate lists`;
  return undefined;
}
