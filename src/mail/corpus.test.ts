/**
 * The shared real-world corpus, whole .eml files through normalizeMail: one case per MANIFEST.json
 * entry. test/corpus-imap.test.ts holds the IMAP path to the same expectations.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkExpected, loadCorpus } from "../../test/support/corpus.ts";
import { normalizeMail } from "./normalize.ts";

const corpus = loadCorpus();
if ("missing" in corpus) {
  if (process.env.CI) test("MIME corpus", () => assert.fail(`${corpus.missing}, but CI is set and it is missing`));
  else test("MIME corpus", { skip: corpus.missing }, () => {});
} else {
  test("MIME corpus manifest is not empty", () => assert.ok(corpus.entries.length > 0));
  for (const entry of corpus.entries) {
    test(entry.file, { timeout: 5000 }, async () => {
      checkExpected(await normalizeMail(corpus.read(entry)), entry.expected);
    });
  }
}
