/**
 * The shared real-world corpus (../shared/corpus, outside the repo: its files keep their upstream
 * licences and must not be copied in). One case per MANIFEST.json entry, as its README describes.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { normalizeMail } from "./normalize.ts";

interface ManifestEntry {
  file: string;
  expected:
    | { no_crash: true }
    | {
        subject?: string | null;
        subject_contains?: string;
        from_address: string | null;
        text_contains: string[];
        html_contains?: string[];
      };
}

const repoRoot = path.resolve(import.meta.dirname, "../..");
const corpusDir = path.resolve(repoRoot, "../shared/corpus");
const manifestPath = path.join(corpusDir, "MANIFEST.json");
const collapse = (value: string | undefined): string => (value ?? "").replace(/\s+/g, " ").trim();

if (!existsSync(manifestPath)) {
  const reason = `corpus not found at ${corpusDir}; CI has it`;
  if (process.env.CI) {
    test("MIME corpus", () => assert.fail(`${reason}, but CI is set and it is missing`));
  } else {
    test("MIME corpus", { skip: reason }, () => {});
  }
} else {
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as ManifestEntry[];
  test("MIME corpus manifest is not empty", () => assert.ok(manifest.length > 0));

  for (const entry of manifest) {
    test(entry.file, { timeout: 5000 }, async () => {
      const mail = await normalizeMail(readFileSync(path.join(corpusDir, entry.file)));
      const expected = entry.expected;
      if ("no_crash" in expected) return;

      if (expected.subject !== undefined) {
        assert.equal(collapse(mail.subject), collapse(expected.subject ?? ""), "subject");
        if (expected.subject === null) assert.equal(mail.headers.has("subject"), false, "no Subject header");
      }
      if (expected.subject_contains !== undefined) {
        assert.ok(collapse(mail.subject).includes(collapse(expected.subject_contains)), `subject ${JSON.stringify(mail.subject)}`);
      }
      assert.equal(mail.from[0]?.address ?? null, expected.from_address, "from_address");

      const text = collapse(mail.text);
      for (const needle of expected.text_contains) {
        assert.ok(text.includes(collapse(needle)), `text lacks ${JSON.stringify(needle)}`);
      }
      const html = collapse(mail.html);
      for (const needle of expected.html_contains ?? []) {
        assert.ok(html.includes(collapse(needle)) || text.includes(collapse(needle)), `html and text lack ${JSON.stringify(needle)}`);
      }
    });
  }
}
