import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodeJapanese, mendIso2022jp } from "./japanese.ts";

/** mendIso2022jp() written the obvious way, a byte at a time: the optimised one must agree with it. */
function mendByteByByte(bytes: Buffer): Buffer {
  const out: number[] = [];
  let mode: number[] | undefined;
  for (let i = 0; i < bytes.length; i++) {
    const [byte, a, b] = [bytes[i]!, bytes[i + 1], bytes[i + 2]];
    if (byte === 0x1b && a === 0x28 && b === 0x4a) {
      out.push(0x1b, 0x28, 0x42);
      mode = undefined;
      i += 2;
      continue;
    }
    if (byte === 0x1b && a !== undefined && b !== undefined) {
      if ((a === 0x24 && (b === 0x42 || b === 0x40)) || (a === 0x28 && b === 0x49)) mode = [0x1b, a, b];
      else if (a === 0x28) mode = undefined;
    } else if (mode && (byte === 0x0a || byte === 0x0d)) {
      out.push(0x1b, 0x28, 0x42);
      while (bytes[i] === 0x0a || bytes[i] === 0x0d) out.push(bytes[i++]!);
      out.push(...mode);
      i--;
      continue;
    }
    out.push(byte);
  }
  return Buffer.from(out);
}

describe("mendIso2022jp", () => {
  test("agrees with the byte-by-byte version on 20,000 random strings of escapes, designations, line breaks and text", () => {
    const alphabet = Buffer.from("\x1b($BJI@\r\na9gD", "latin1");
    let seed = 20261124;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n; // fixed seed: the same cases every run
    for (let n = 0; n < 20_000; n++) {
      const input = Buffer.from(Array.from({ length: random(28) }, () => alphabet[random(alphabet.length)]!));
      assert.deepEqual(mendIso2022jp(input).toString("latin1"), mendByteByByte(input).toString("latin1"), JSON.stringify(input.toString("latin1")));
    }
  });

  test("returns well-formed text as it is, the same Buffer", () => {
    const body = Buffer.from("\x1b$B9g7W\x1b(B: 480\r\n\x1b(I12\x1b(B\r\n", "latin1");
    assert.equal(mendIso2022jp(body), body);
  });

  test("decodeJapanese reads the mended text; other charsets are left to libmime", () => {
    assert.equal(decodeJapanese(Buffer.from("\x1b$B9g7W\r\n9g7W\x1b(B", "latin1"), " ISO-2022-JP "), "合計\r\n合計");
    assert.equal(decodeJapanese(Buffer.from("abc"), "iso-8859-1"), undefined);
  });
});
