/**
 * Attachments are the same on both ways in: every mail of the shared corpus, appended to a real
 * Dovecot and read as the daemon reads it (header and BODYSTRUCTURE; no text, no attachment
 * fetched), lists the attachments normalizeMail() finds in the whole .eml — the same file names
 * and types, sizes within a few percent. What cannot agree is listed, with why.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { FetchedMessage } from "../src/imap/fetch.ts";
import { normalizeMail } from "../src/mail/normalize.ts";
import type { MailAttachment } from "../src/mail/types.ts";
import { loadCorpus } from "./support/corpus.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { appendAndFetch } from "./support/fetch.ts";

const corpus = loadCorpus();

/** Where Dovecot's BODYSTRUCTURE and mailparser read a part's MIME header differently. */
const knownDifferences = new Map([
  // Two Content-Disposition fields on test.txt: mailparser takes the first (inline), Dovecot the last (attachment).
  ["enmime-multiple-address-headers.eml", "Dovecot takes the last of two Content-Disposition fields"],
]);

const names = (list: readonly MailAttachment[]): string[] => list.map((a) => `${a.filename} (${a.contentType})`);

if ("missing" in corpus) {
  if (process.env.CI) test("attachments over IMAP", () => assert.fail(`${corpus.missing}, but CI is set and it is missing`));
  else test("attachments over IMAP", { skip: corpus.missing }, () => {});
} else {
  describe("attachments over IMAP = attachments of the whole .eml", () => {
    let dovecot: Dovecot;
    let byFile = new Map<string, FetchedMessage>();

    before(async () => {
      dovecot = await startDovecot();
      const mails = new Map(corpus.entries.map((entry) => [entry.file, corpus.read(entry)]));
      // needsBody: never, as for mail no rule reads the body of: the structure alone must tell.
      byFile = await appendAndFetch(dovecot, "alice", "Corpus", mails, { maxTextBytes: 256 * 1024, needsBody: () => false });
    });
    after(async () => {
      await dovecot?.dispose();
    });

    for (const entry of corpus.entries) {
      test(entry.file, async () => {
        const fetched = byFile.get(entry.file);
        assert.ok(fetched, "fetched from the server");
        const whole = (await normalizeMail(corpus.read(entry))).attachments;
        const known = knownDifferences.get(entry.file);
        if (known) {
          assert.notDeepEqual(names(fetched.mail.attachments), names(whole), `${entry.file} now agrees; remove it from knownDifferences`);
          return;
        }
        assert.deepEqual(names(fetched.mail.attachments), names(whole));
        fetched.mail.attachments.forEach((a, i) => {
          // The server counts every line break as CRLF and base64 line breaks in; an estimate, within a few percent.
          const slack = Math.max(100, whole[i]!.size * 0.05);
          assert.ok(Math.abs(a.size - whole[i]!.size) <= slack, `${a.filename}: ${a.size} over IMAP, ${whole[i]!.size} in the file`);
        });
      });
    }
  });
}
