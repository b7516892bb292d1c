import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Claim, NotificationLog, SeenMail } from "../../plan/store.ts";

export class SqliteNotified implements NotificationLog {
  readonly #byIdentity: StatementSync;
  readonly #byPlace: StatementSync;
  readonly #byMessageIdBefore: StatementSync;
  readonly #insert: StatementSync;

  constructor(db: DatabaseSync) {
    this.#byIdentity = db.prepare("SELECT place FROM notified WHERE rule = ? AND target = ? AND identity = ?");
    this.#byPlace = db.prepare("SELECT place FROM notified WHERE rule = ? AND target = ? AND place = ?");
    // Rows copied from the outbox of schema 5, which have no identity (see SeenMail).
    this.#byMessageIdBefore = db.prepare(
      "SELECT place FROM notified WHERE rule = ? AND target = ? AND message_id = ? AND identity IS NULL AND (mailbox_key IS NOT ? OR created_at >= ?) LIMIT 1",
    );
    this.#insert = db.prepare("INSERT OR IGNORE INTO notified (rule, target, place, mailbox_key, identity, message_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
  }

  claim(rule: string, target: string, mail: SeenMail, now: number = Date.now()): Claim {
    const earlier = this.notifiedAt(rule, target, mail);
    if (earlier !== undefined) return { claimed: false, earlier };
    return this.record(rule, target, mail, now) ? { claimed: true } : { claimed: false, earlier: mail.place };
  }

  record(rule: string, target: string, mail: SeenMail, now: number = Date.now()): boolean {
    return Number(this.#insert.run(rule, target, mail.place, mail.mailboxKey, mail.identity, mail.messageId ?? null, now).changes) > 0;
  }

  notifiedAt(rule: string, target: string, mail: SeenMail): string | undefined {
    const row = (this.#byIdentity.get(rule, target, mail.identity) ??
      this.#byPlace.get(rule, target, mail.place) ??
      (mail.messageId === undefined ? undefined : this.#byMessageIdBefore.get(rule, target, mail.messageId, mail.mailboxKey, mail.receivedAt.getTime()))) as { place: string } | undefined;
    return row?.place;
  }
}
