import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig } from "../config/load.ts";
import { ConfigError } from "../errors.ts";

const load = (status: string, env: NodeJS.ProcessEnv = {}) => parseConfig(`status: ${status}\n`, "mailbell.yaml", env);

describe("status config", () => {
  it("refuses a non-loopback listen without a token at load, at status.token with the fix", () => {
    assert.throws(
      () => load('{ listen: "0.0.0.0:9464" }'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(
          err.issues.map((i) => [i.path, i.line]),
          [["status.token", 1]],
        );
        assert.match(err.issues[0]!.message, /^status\.listen 0\.0\.0\.0:9464 is reachable from other machines, so the status page and \/metrics need a token: set status\.token \(e\.g\. token: \$\{MAILBELL_STATUS_TOKEN\}.*or listen on 127\.0\.0\.1:9464\.$/);
        return true;
      },
    );
  });

  it("takes a non-loopback listen with a token from the environment, and loopback without one", () => {
    const token = "a".repeat(32);
    assert.equal(load('{ listen: "[::]:9464", token: "${STATUS_TOKEN}" }', { STATUS_TOKEN: token }).config.status?.token, token);
    assert.equal(load("{ listen: 9464 }").config.status?.token, undefined);
    assert.equal(load('{ listen: "localhost:9464" }').config.status?.token, undefined);
  });

  it("refuses a token too short to resist guessing", () => {
    assert.throws(() => load('{ listen: 9464, token: "short" }'), /status\.token: .*at least 16 characters; use a long random value/);
  });
});
