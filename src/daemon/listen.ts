import { isIP } from "node:net";
import { MailbellError } from "../errors.ts";

/** `status.listen`: where the status server listens, and whether that is reachable from elsewhere. */

export const configKey = "status.listen";

/** Splits `status.listen` into host and port; a bare port means 127.0.0.1. */
export function parseListen(listen: string | number): { host: string; port: number } {
  const text = String(listen).trim();
  const match = /^(\d+)$/.exec(text) ?? /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  const hint = `use host:port such as 127.0.0.1:9464, [::1]:9464, or just a port such as 9464 (which listens on 127.0.0.1)`;
  if (!match) {
    const why = /^:\d+$/.test(text) ? "has no host" : text.split(":").length > 2 ? "looks like an IPv6 address without brackets" : "is not host:port";
    throw new MailbellError("CONFIG", `${configKey}: ${JSON.stringify(String(listen))} ${why}; ${hint}`);
  }
  const host = match.length === 2 ? "127.0.0.1" : match[1]!;
  const port = Number(match.at(-1));
  if (!Number.isInteger(port) || port > 65535) {
    throw new MailbellError("CONFIG", `${configKey}: port ${match.at(-1)} in ${JSON.stringify(String(listen))} is out of range; use a port from 1 to 65535 (0 picks a free one)`);
  }
  if (match[0].startsWith("[") && isIP(host) !== 6) throw new MailbellError("CONFIG", `${configKey}: ${JSON.stringify(host)} in brackets is not an IPv6 address; ${hint}`);
  return { host, port };
}

/** Whether `host` can only be reached from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return /^::ffff:127\./.test(h);
}

/**
 * Whether an HTTP Host header names this machine by a loopback name or address (any port: an SSH
 * tunnel forwards another one). A page whose own name was re-pointed at 127.0.0.1 (DNS rebinding)
 * is sent with that name, so refusing other names keeps such a page from reading the status server.
 * A request without Host is not from a browser, so it is let through.
 */
export function hostHeaderIsLoopback(header: string | undefined): boolean {
  if (header === undefined) return true;
  const match = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/i.exec(header) ?? /^([a-z0-9.-]+?)\.?(?::\d{1,5})?$/i.exec(header);
  return match !== null && isLoopback(match[1]!);
}

/** Why a listen beyond loopback without a token is refused, with the fix; also used at config load. */
export function tokenMissingMessage(host: string, port: number): string {
  return `${configKey} ${hostPort(host, port)} is reachable from other machines, so the status page and /metrics need a token: set status.token (e.g. token: \${MAILBELL_STATUS_TOKEN}, with a long random value such as the output of openssl rand -hex 32), or listen on 127.0.0.1:${port}`;
}

export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
