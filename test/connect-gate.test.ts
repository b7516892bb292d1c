/**
 * The daemon sets up only a few IMAP connections at once (src/imap/connect-gate.ts): against a
 * server that accepts TCP connections and never greets, only the gate's few are ever opened, and
 * stopping does not wait for the ones still queued.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { startMailbell, writeConfig } from "./support/daemon.ts";

let server: net.Server;
const sockets = new Set<net.Socket>();
let accepted = 0;

before(async () => {
  server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

describe("connect gate in the daemon", () => {
  it("opens a few connections at a time, not one per mailbox at once, and stops promptly", async () => {
    const mailboxes = Array.from({ length: 40 }, (_, i) => `F${i}`);
    const { port } = server.address() as net.AddressInfo;
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-gate-"));
    const yaml = `
state: ${dir}/state.db
accounts:
  - { name: silent, host: 127.0.0.1, port: ${port}, tls: none, user: u, pass: p, maxConnections: ${mailboxes.length}, mailboxes: [${mailboxes.join(", ")}] }
targets:
  - { name: out, type: stdout }
rules:
  - { name: all, match: {}, notify: [out], template: "{{subject}}" }
`;
    const mailbell = startMailbell(writeConfig(yaml, dir), yaml);
    try {
      // Long enough for every watcher to have connected if nothing held them back (the server
      // never greets, so each connect stays in flight).
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(accepted >= 1, "some connections were opened");
      assert.ok(accepted <= 16, `${accepted} of ${mailboxes.length} connections opened at once`);
    } finally {
      const stopping = performance.now();
      await mailbell.stop();
      assert.ok(performance.now() - stopping < 5000, "stopping waits for neither queued nor hanging connects");
    }
  });
});
