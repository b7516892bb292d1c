import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, it } from "node:test";
import { readFetchedParts, planTextParts, type FetchedParts } from "../mail/parts.ts";
import { CaptureLogger } from "../../test/support/logger.ts";
import { startDecoder } from "./decoder.ts";

const header = Buffer.from("From: Shop <shop@example.com>\r\nSubject: =?ISO-2022-JP?B?GyRCOWc3VxsoQg==?=\r\nMessage-ID: <r1@example.com>\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n");
const round = (n: number): FetchedParts[] =>
  Array.from({ length: n }, (_, i) => ({
    uid: i + 1,
    header,
    plan: planTextParts({ type: "text/plain", parameters: { charset: "ISO-2022-JP" }, encoding: "7bit", size: 20 }, 4096),
    bodies: new Map([["1", Buffer.from(`\x1b$B9g7W\x1b(B: ${i}\r\n`, "latin1")]]),
  }));

describe("decoder thread", () => {
  it("decodes rounds in a worker exactly as on the main thread, in order", async () => {
    const decoder = startDecoder(new CaptureLogger(), { inlineBelowBytes: 0, cpus: () => 2 });
    try {
      const [a, b] = await Promise.all([decoder.decode(round(3)), decoder.decode(round(5))]);
      assert.deepEqual(a, round(3).map(readFetchedParts));
      assert.deepEqual(b, round(5).map(readFetchedParts));
      assert.equal(a[2]!.text, "合計: 2\n");
      assert.equal(a[0]!.subject, "合計");
      assert.ok(a[0]!.headers instanceof Map);
    } finally {
      await decoder.close();
    }
  });

  it("decodes rounds with little text on the calling thread and starts no thread for them", async () => {
    const decoder = startDecoder(new CaptureLogger(), { inlineBelowBytes: 64 * 1024, cpus: () => 2 });
    try {
      const small = round(40); // 40 short ISO-2022-JP texts
      assert.deepEqual(await decoder.decode(small), small.map(readFetchedParts));
      assert.equal(decoder.running, false);
      const bigText = round(3).map((m) => ({ ...m, bodies: new Map([["1", Buffer.alloc(30 * 1024, "a")]]) }));
      assert.deepEqual(await decoder.decode(bigText), bigText.map(readFetchedParts));
      assert.equal(decoder.running, true, "90 KiB of text goes to the thread");
    } finally {
      await decoder.close();
    }
  });

  it("on one CPU decodes everything on the calling thread: a second thread would only add copying", async () => {
    const decoder = startDecoder(new CaptureLogger(), { inlineBelowBytes: 0, cpus: () => 1 });
    try {
      assert.deepEqual(await decoder.decode(round(5)), round(5).map(readFetchedParts));
      assert.equal(decoder.running, false);
    } finally {
      await decoder.close();
    }
  });

  it("stops the thread after idleStopMs without work, and starts it again when work comes", async () => {
    const logger = new CaptureLogger();
    const decoder = startDecoder(logger, { idleStopMs: 50, inlineBelowBytes: 0, cpus: () => 2 });
    try {
      assert.deepEqual(await decoder.decode(round(3)), round(3).map(readFetchedParts));
      assert.equal(decoder.running, true);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(decoder.running, false, "stopped when idle");
      assert.deepEqual(await decoder.decode(round(4)), round(4).map(readFetchedParts));
      assert.equal(decoder.running, true, "started again");
      assert.equal(logger.entries.filter((e) => e.level === "error").length, 0, "a thread stopped when idle is not a failure");
    } finally {
      await decoder.close();
    }
  });

  it("when the worker dies, decodes what it held and everything after on the main thread, and says so", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "mailbell-decoder-"));
    const dying = path.join(dir, "dying.mjs");
    writeFileSync(dying, 'import { parentPort } from "node:worker_threads"; parentPort.on("message", () => process.exit(3));');
    const logger = new CaptureLogger();
    const decoder = startDecoder(logger, { workerFile: pathToFileURL(dying), inlineBelowBytes: 0, cpus: () => 2 });
    try {
      assert.deepEqual(await decoder.decode(round(4)), round(4).map(readFetchedParts));
      assert.deepEqual(await decoder.decode(round(3)), round(3).map(readFetchedParts));
      const errors = logger.entries.filter((l) => l.level === "error");
      assert.equal(errors.length, 1, JSON.stringify(logger.entries));
      assert.match(String(errors[0]!.fields.err), /exited with code 3/);
    } finally {
      await decoder.close();
    }
  });
});
