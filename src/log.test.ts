import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { createLogger } from "./log.ts";

describe("createLogger", () => {
  it("never writes a password, token, webhook URL or auth header, at the top level or one level down", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger({ level: "debug", destination: sink });
    log.info({ pass: "hunter2", token: "xoxb-1", url: "https://hooks.example/services/T/B/secret", account: "a" }, "top");
    log.warn({ target: { url: "https://hooks.example/services/T/B/secret2", password: "pw2" }, headers: { authorization: "Bearer abc" } }, "nested");
    log.child({ account: "personal" }).error({ accessToken: "ya29.x" }, "child");
    const out = lines.join("");
    for (const secret of ["hunter2", "xoxb-1", "secret", "secret2", "pw2", "Bearer abc", "ya29.x"]) assert.ok(!out.includes(secret), `${secret} leaked: ${out}`);
    assert.equal((out.match(/\*\*\*\*/g) ?? []).length, 7);
    assert.match(out, /"account":"a"/);
    assert.match(out, /"account":"personal"/);
  });
});
