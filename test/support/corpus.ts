/**
 * The shared real-world corpus (../shared/corpus, outside the repo: its files keep their upstream
 * licences and must not be copied in) and the checks its MANIFEST.json asks for. Used by the unit
 * test of normalizeMail (whole .eml) and by the integration test of the IMAP path (header and text
 * parts fetched from Dovecot), so both ways in are held to the same expectations.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { NormalizedMail } from "../../src/mail/types.ts";

export interface ManifestEntry {
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

export const corpusDir = path.resolve(import.meta.dirname, "../../../shared/corpus");

/** The manifest, or why there is none (CI must have it: the caller fails then instead of skipping). */
export function loadCorpus(): { entries: ManifestEntry[]; read(entry: ManifestEntry): Buffer } | { missing: string } {
  const manifestPath = path.join(corpusDir, "MANIFEST.json");
  if (!existsSync(manifestPath)) return { missing: `corpus not found at ${corpusDir}; CI has it` };
  const entries = JSON.parse(readFileSync(manifestPath, "utf8")) as ManifestEntry[];
  return { entries, read: (entry) => readFileSync(path.join(corpusDir, entry.file)) };
}

const collapse = (value: string | undefined): string => (value ?? "").replace(/\s+/g, " ").trim();

/** Asserts what the manifest expects of one decoded mail. */
export function checkExpected(mail: NormalizedMail, expected: ManifestEntry["expected"]): void {
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
}
