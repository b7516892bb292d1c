/**
 * A mail as the stores remember it, to count it once per rule and post it once per rule and
 * target. The same mail is recognised
 * - by its identity (src/mail/identity.ts) wherever it shows up again: moved out and back, copied,
 *   appended again, in two folders, renumbered;
 * - by its place, when the same UID is read again (a crash before the checkpoint moved);
 * - by its Message-ID alone, for what was recorded before identities existed (schema 5 and older):
 *   such a record blocks the same Message-ID in another mailbox or under another UIDVALIDITY, as it
 *   always did, and also in its own mailbox when the mail arrived before the record was written
 *   (a mail moved out and back keeps its arrival time). A new mail from a sender that reuses its
 *   Message-ID arrives later, so it is not taken for the old one.
 */
export interface SeenMail {
  /** account/mailbox/UIDVALIDITY/UID */
  place: string;
  /** account/mailbox/UIDVALIDITY */
  mailboxKey: string;
  /** mailIdentity() of the mail. */
  identity: string;
  messageId: string | undefined;
  /** INTERNALDATE: when the server received it. */
  receivedAt: Date;
}

/** The place of a mail, and of its mailbox, as the stores write them. */
export function placeOf(mail: { account: string; mailbox: string; uidValidity: number; uid: number }): Pick<SeenMail, "place" | "mailboxKey"> {
  const mailboxKey = `${mail.account}/${mail.mailbox}/${mail.uidValidity}`;
  return { place: `${mailboxKey}/${mail.uid}`, mailboxKey };
}
