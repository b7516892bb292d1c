import type { TargetConfig } from "../targets/index.ts";
import { createTargets } from "../targets/index.ts";
import { TargetError } from "../errors.ts";
import type { Notification } from "../targets/types.ts";
import type { CliIO } from "./io.ts";

/** How long one service may take to answer the sample. */
const answerTimeoutMs = 15_000;

/**
 * `mailbell check --send`: posts one sample notification to each target, one after another, and
 * prints each service's answer (its error text when it refused; secrets masked, as every
 * TargetError is). Returns how many refused.
 */
export async function sendSamples(targetConfigs: readonly TargetConfig[], io: CliIO): Promise<number> {
  let failures = 0;
  const sample = sampleNotification(new Date());
  for (const target of createTargets(targetConfigs).values()) {
    try {
      await target.send(target.render(sample), { signal: AbortSignal.timeout(answerTimeoutMs) });
      io.out(`✓ target ${target.name}: ${target.describe()}: sent a sample; the service accepted it`);
    } catch (err) {
      failures++;
      const answer = err instanceof TargetError ? withoutRetryPromise(err.message) : `could not send: ${(err as Error).message}`;
      io.out(`✗ target ${target.name}: ${target.describe()}: ${answer}`);
    }
  }
  return failures;
}

/** A target's error says "; will retry." for the daemon's outbox; check sends once and does not. */
function withoutRetryPromise(message: string): string {
  return message.replace(/; will retry(?=\.)/, "");
}

/** What the sample says: that it is one, and from where. No mail is read for it. Pure. */
export function sampleNotification(now: Date): Notification {
  const text = "mailbell check --send: a sample notification, to show that this target works. No mail was read for it.";
  return {
    rule: "mailbell-check",
    account: "mailbell",
    mailbox: "INBOX",
    uidValidity: 0,
    uid: 0,
    messageId: undefined,
    from: "mailbell <mailbell@localhost>",
    subject: "mailbell test notification",
    date: now.toISOString(),
    fields: {},
    attachments: [],
    total: null,
    link: undefined,
    message: [{ literal: text }],
  };
}
