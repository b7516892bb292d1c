import type { Logger } from "../log.ts";
import type { OutboxWriter } from "../outbox/store.ts";
import type { Notification, Target } from "../targets/types.ts";

/** The rule name set-aside announcements are queued under; not a valid rule name, so it cannot clash. */
export const unreadableRule = "(unreadable)";

export interface SetAsideAnnouncement {
  account: string;
  mailbox: string;
  uidValidity: number;
  uid: number;
  reason: string;
  attempts: number;
}

/**
 * Tells watch.announceUnreadable's targets that a mail was set aside ("1 mail could not be read"),
 * through the outbox like any notification: queued once per mail and target, sent and retried by
 * the dispatcher. Returns the targets it queued for. The text is mailbell's own, not the mail's.
 */
export function announceSetAside(event: SetAsideAnnouncement, deps: { names: readonly string[]; targets: ReadonlyMap<string, Target>; outbox: OutboxWriter; logger: Logger }): Set<string> {
  const notification = setAsideNotification(event);
  const { rule, account, mailbox, uidValidity, uid, messageId, subject } = notification;
  const queued = new Set<string>();
  const rows = deps.names.flatMap((name) => {
    const target = deps.targets.get(name);
    if (!target) return [];
    queued.add(name);
    return [{ target: name, rule, account, mailbox, uidValidity, uid, messageId, subject, notification }];
  });
  deps.outbox.enqueue(rows);
  deps.logger.info({ account: event.account, mailbox: event.mailbox, uid: event.uid, targets: [...queued] }, "announced the mail set aside");
  return queued;
}

/** The notification for a mail set aside: no fields, no total; the message says what happened and what to do. */
export function setAsideNotification(event: SetAsideAnnouncement): Notification {
  const where = `${event.account}/${event.mailbox}`;
  return {
    rule: unreadableRule,
    account: event.account,
    mailbox: event.mailbox,
    uidValidity: event.uidValidity,
    uid: event.uid,
    messageId: undefined,
    from: "",
    subject: `1 mail could not be read in ${where}`,
    date: undefined,
    fields: {},
    total: null,
    link: undefined,
    message: [
      { literal: "1 mail could not be read in " },
      { fromMail: where },
      { literal: ` (UID ${event.uid}) after ${event.attempts} attempts: ` },
      { fromMail: event.reason },
      { literal: ". It was set aside so the mail after it goes on; `mailbell unreadable` lists it and can read it again." },
    ],
  };
}
