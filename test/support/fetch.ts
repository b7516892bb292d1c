import { ImapFlow } from "imapflow";
import { fetchMessages, type FetchedMessage, type FetchOptions } from "../../src/imap/fetch.ts";
import type { Dovecot } from "./dovecot.ts";

/**
 * Appends `mails` (a name each) to `user`'s `mailbox`, then fetches them read-only as the daemon
 * does (fetchMessages); returns what was fetched by the mail's name.
 */
export async function appendAndFetch(dovecot: Dovecot, user: string, mailbox: string, mails: ReadonlyMap<string, Buffer | string>, options: FetchOptions): Promise<Map<string, FetchedMessage>> {
  const names = [...mails.keys()];
  const uids = await dovecot.appendMany(user, mailbox, [...mails.values()]);
  const nameOf = new Map(uids.map((uid, i) => [uid, names[i]!]));
  const byName = new Map<string, FetchedMessage>();
  const client = new ImapFlow(dovecot.clientOptions(user));
  await client.connect();
  try {
    await client.mailboxOpen(mailbox, { readOnly: true });
    for await (const fetched of fetchMessages(client, uids, options)) byName.set(nameOf.get(fetched.uid)!, fetched);
  } finally {
    await client.logout();
  }
  return byName;
}
