import type { ImapFlow, MailboxObject } from "imapflow";
import { ServerReplyError } from "../errors.ts";

/** What SELECT/EXAMINE told of the mailbox, as imapflow hands it over. */
export type OpenedMailbox = Pick<MailboxObject, "path" | "uidValidity" | "uidNext" | "exists">;

/** The few commands the look-ups below need, so a test can hand in a stand-in. */
export type EndProbe = Pick<ImapFlow, "status" | "fetchOne">;

/**
 * UIDVALIDITY of the opened mailbox as a number. A server that leaves it out (or sends garbage)
 * gives us no way to keep a checkpoint: every UID we stored could mean another mail tomorrow.
 */
export function uidValidityOf(opened: OpenedMailbox, where: { account: string; mailbox: string }): number {
  const value = Number(opened.uidValidity);
  if (isUid(value) && value > 0) return value;
  throw new ServerReplyError(
    where.account,
    where.mailbox,
    `account "${where.account}": the server's answer to EXAMINE "${where.mailbox}" has no usable UIDVALIDITY (${String(opened.uidValidity)}). Without it no checkpoint can be kept; this is a server bug to report to its operator.`,
  );
}

/**
 * The highest UID the mailbox has handed out, so that mail above it counts as new. From the
 * UIDNEXT that SELECT/EXAMINE usually carries; Courier never sends it (RFC 3501 §6.3.1 lets a
 * server leave it out), so then STATUS is asked, and failing that the last message's UID.
 */
export async function lastUidOf(client: EndProbe, opened: OpenedMailbox, where: { account: string; mailbox: string }): Promise<number> {
  const fromSelect = uidNextToLast(opened.uidNext);
  if (fromSelect !== undefined) return fromSelect;
  // Nothing in it: any mail that comes is new, whatever UID it gets.
  if (opened.exists === 0) return 0;
  const status = await client.status(opened.path, { uidNext: true });
  const fromStatus = uidNextToLast(status ? status.uidNext : undefined);
  if (fromStatus !== undefined) return fromStatus;
  // UID FETCH * names the message with the highest sequence number, which has the highest UID.
  const last = await client.fetchOne("*", { uid: true });
  if (last && isUid(last.uid)) return last.uid;
  throw new ServerReplyError(
    where.account,
    where.mailbox,
    `account "${where.account}": mailbox "${where.mailbox}" holds ${opened.exists} messages, but the server told its next UID neither on EXAMINE nor on STATUS, nor the UID of its last message. mailbell cannot tell new mail from old there; report this server bug to its operator.`,
  );
}

function uidNextToLast(uidNext: unknown): number | undefined {
  const value = typeof uidNext === "bigint" ? Number(uidNext) : uidNext;
  return typeof value === "number" && isUid(value) && value >= 1 ? value - 1 : undefined;
}

/** A UID is a 32-bit unsigned integer (RFC 3501 §2.3.1.1). */
export function isUid(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}
