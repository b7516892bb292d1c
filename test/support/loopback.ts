/** Small socket chores the test servers, proxies and benchmarks share; everything on 127.0.0.1. */
import type net from "node:net";

/** Listens on a port of 127.0.0.1 the kernel picks; resolves with it. */
export async function listenOnLoopback(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

/**
 * The first line a server sends on a fresh connection (a greeting), trimmed; then LOGOUT and
 * close. Resolves with "" on any failure or after `timeoutMs`, with what came if the server closed first.
 */
export function readFirstLine(connect: () => net.Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    let buf = "";
    const sock = connect();
    const done = (line: string): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(line);
    };
    const timer = setTimeout(() => done(""), timeoutMs);
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        sock.write("x LOGOUT\r\n");
        done(buf.slice(0, nl).trim());
      }
    });
    sock.on("error", () => done(""));
    sock.on("close", () => done(buf.trim()));
  });
}
