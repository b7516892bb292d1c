import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { it } from "node:test";
import { targetSchema } from "../targets/index.ts";
import { sendSamples } from "./check-send.ts";

it("check --send prints a service's refusal without promising a retry (check sends once)", async () => {
  const server = createServer((_req, res) => res.writeHead(503).end("busy"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    let out = "";
    const failures = await sendSamples([targetSchema.parse({ name: "hook", type: "webhook", url })], { out: (t) => void (out += `${t}\n`), err: () => {}, env: {} });
    assert.equal(failures, 1);
    assert.match(out, /✗ target hook: .*answered 503.*\.\n$/);
    assert.doesNotMatch(out, /will retry/);
  } finally {
    server.close();
  }
});
