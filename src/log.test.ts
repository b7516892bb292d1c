import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { asLogger, type LogSink } from "./log.ts";
import { createLogger, LineHolder, maskSecrets, resolveLogFormat } from "./pino-logger.ts";

function collect(): { sink: Writable; text: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { sink, text: () => chunks.join("") };
}

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

describe("together", () => {
  function writes(): { sink: Writable; chunks: string[] } {
    const chunks: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString());
        done();
      },
    });
    return { sink, chunks };
  }

  it("writes the lines logged inside it in one write when it returns, and each line at once outside it", () => {
    const { sink, chunks } = writes();
    const log = createLogger({ format: "json", destination: sink }).child({ target: "hook" });
    log.info({ uid: 1 }, "alone");
    assert.equal(chunks.length, 1, "a line outside together is written at once");
    const result = log.together!(() => {
      for (const uid of [2, 3, 4]) log.info({ uid }, "delivered");
      assert.equal(chunks.length, 1, "nothing written while fn runs");
      return "done";
    });
    assert.equal(result, "done");
    assert.equal(chunks.length, 2);
    assert.deepEqual(chunks[1]!.trimEnd().split("\n").map((l) => (JSON.parse(l) as { uid: number }).uid), [2, 3, 4]);
  });

  it("still writes what was logged when fn throws, and nested calls write with the outer one", () => {
    const { sink, chunks } = writes();
    const log = createLogger({ format: "json", destination: sink });
    assert.throws(() =>
      log.together!(() => {
        log.info({}, "first");
        log.together!(() => log.info({}, "nested"));
        throw new Error("boom");
      }),
    );
    assert.equal(chunks.length, 1);
    assert.match(chunks[0]!, /"first"[\s\S]*"nested"/);
  });

  it("never writes more than a pipe takes whole (4,096 bytes), whatever the characters", () => {
    const out: string[] = [];
    const holder = new LineHolder({ write: (line: string) => out.push(line) });
    const line = `${"合".repeat(200)}\n`;
    holder.hold(() => {
      for (let i = 0; i < 20; i++) holder.write(line);
    });
    assert.equal(out.join(""), line.repeat(20), "every line, in order");
    assert.ok(out.length > 1 && out.length < 20);
    for (const chunk of out) assert.ok(Buffer.byteLength(chunk) <= 4096, `${Buffer.byteLength(chunk)} bytes in one write`);
  });

  it("is a plain call for readable (pretty) lines", () => {
    const { sink, chunks } = writes();
    const log = createLogger({ format: "pretty", destination: sink });
    log.together!(() => log.info({}, "one"));
    assert.equal(chunks.length, 1);
  });
});

describe("maskSecrets", () => {
  it("returns the very object when it holds no secret, so a line costs no copy", () => {
    const obj = { account: "a", uid: 7, target: { name: "slack" }, list: [{ url: "kept: an array's items are two levels down" }] };
    assert.equal(maskSecrets(obj), obj);
  });

  it("masks a copy and leaves the caller's object as it was", () => {
    const obj = { account: "a", target: { name: "slack", webhook: "https://hooks.example/T/B/x" }, headers: { "x-api-key": "k1", accept: "json" } };
    const masked = maskSecrets(obj);
    assert.deepEqual(masked, { account: "a", target: { name: "slack", webhook: "****" }, headers: { "x-api-key": "****", accept: "****" } });
    assert.equal(obj.target.webhook, "https://hooks.example/T/B/x");
    assert.equal(obj.headers["x-api-key"], "k1");
  });

  it("keeps an Error an Error (its message and stack are not enumerable), and never walks a Buffer", () => {
    const err = Object.assign(new Error("refused"), { url: "https://hooks.example/T/B/secret" });
    const masked = maskSecrets({ err, body: Buffer.from("password") }) as { err: Error & { url: string }; body: Buffer };
    assert.ok(masked.err instanceof Error);
    assert.equal(masked.err.message, "refused");
    assert.equal(masked.err.url, "****");
    assert.equal(err.url, "https://hooks.example/T/B/secret");
    assert.ok(Buffer.isBuffer(masked.body));
  });

  it("masks child bindings and the Error serializer's output", () => {
    const { sink, text } = collect();
    const log = createLogger({ level: "info", format: "json", destination: sink });
    log.child({ url: "https://hooks.example/T/B/bound" }).child({ target: { webhook: "https://hooks.example/T/B/nested" } }).warn({ err: Object.assign(new Error("boom"), { token: "xoxb-2" }) }, "failed");
    const out = text();
    assert.ok(!out.includes("bound") && !out.includes("nested") && !out.includes("xoxb-2"), out);
    const line = JSON.parse(out) as { url: string; err: { message: string; stack: string; token: string } };
    assert.deepEqual([line.url, line.err.message, line.err.token], ["****", "boom", "****"]);
    assert.match(line.err.stack, /^Error: boom\n {4}at /);
  });
});

describe("log formats", () => {
  it("json: one object per line with the level as a word", () => {
    const { sink, text } = collect();
    const log = createLogger({ level: "debug", format: "json", destination: sink });
    log.info({ account: "a" }, "watching");
    log.child({ mailbox: "INBOX" }).error({ pass: "hunter2" }, "failed");
    const lines = text().trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => [l.level, l.msg]), [["info", "watching"], ["error", "failed"]]);
    assert.equal(lines[1]!.pass, "****");
  });

  it("pretty: a readable line per record, not JSON, secrets still masked", () => {
    const { sink, text } = collect();
    const log = createLogger({ format: "pretty", destination: sink });
    log.warn({ account: "a", token: "xoxb-1" }, "slow server");
    const out = text();
    assert.equal(out.trimEnd().split("\n").length, 1, out);
    assert.match(out, /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\] WARN: slow server \{"account":"a","token":"\*\*\*\*"\}\n$/);
    assert.ok(!out.includes("xoxb-1"));
  });

  it("auto is pretty on a terminal and json anywhere else; an explicit format wins", () => {
    assert.deepEqual([resolveLogFormat("auto", true), resolveLogFormat("auto", false)], ["pretty", "json"]);
    assert.deepEqual([resolveLogFormat("json", true), resolveLogFormat("pretty", false)], ["json", "pretty"]);
    const { sink, text } = collect();
    createLogger({ destination: sink }).info({}, "to a pipe");
    assert.equal((JSON.parse(text()) as { level: string }).level, "info", "a stream that is not a terminal gets JSON");
  });
});

describe("asLogger", () => {
  function consoleLike(): { sink: LogSink; said: unknown[][] } {
    const said: unknown[][] = [];
    const at = (level: string) => (...args: unknown[]) => void said.push([level, ...args]);
    return { sink: { error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug"), trace: at("trace") }, said };
  }

  it("passes a logger with child and trace (pino) through untouched", () => {
    const pino = createLogger({ destination: new Writable({ write: (_c, _e, done) => done() }) });
    assert.equal(asLogger(pino), pino);
  });

  const cases: { name: string; log: (l: ReturnType<typeof asLogger>) => void; said: unknown[][] }[] = [
    { name: "a line keeps its object and message", log: (l) => l.warn({ uid: 3 }, "slow"), said: [["warn", { uid: 3 }, "slow"]] },
    { name: "child bindings go into each line's object, nested ones too", log: (l) => l.child({ account: "a" }).child({ mailbox: "INBOX" }).error({ uid: 1 }, "x"), said: [["error", { account: "a", mailbox: "INBOX", uid: 1 }, "x"]] },
    { name: "trace (the IMAP protocol) is dropped, even where the sink has one, like console", log: (l) => l.child({ a: 1 }).trace({ line: "A1 NOOP" }), said: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { sink, said } = consoleLike();
      c.log(asLogger(sink));
      assert.deepEqual(said, c.said);
    });
  }

  it("says trace is off, so imapflow does not build protocol lines nobody sees; asks the sink for the rest", () => {
    const log = asLogger({ ...consoleLike().sink, isLevelEnabled: (level) => level !== "debug" });
    assert.deepEqual(["trace", "debug", "info"].map((level) => log.isLevelEnabled?.(level)), [false, false, true]);
    assert.deepEqual(["trace", "debug"].map((level) => asLogger(console).isLevelEnabled?.(level)), [false, true]);
  });
});
