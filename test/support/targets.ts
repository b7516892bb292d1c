/**
 * Shared pieces of the target unit tests (src/targets/*.test.ts): a sample Notification, a send
 * that hands back the TargetError, and the checks a table of failure answers makes.
 * The HTTP services themselves are played by ./receiver.ts.
 */
import assert from "node:assert/strict";
import { TargetError } from "../../src/errors.ts";
import type { MessageSegment, Notification, NotificationField, SendOptions, Target } from "../../src/targets/types.ts";

/** The extracted amount most sample mails carry. */
export const amountField: NotificationField = { text: "¥480", raw: "￥480", amount: "480", currency: "JPY" };

/** A Gmail search link, as the rules build it for a message ID. */
export const gmailLink = "https://mail.google.com/mail/u/0/#search/rfc822msgid%3Am%40x";

/** A message written as the template's renderer writes it: `escape` marks the mail-derived parts. */
export type MessageWriter = (escape: (text: string) => string) => string;

/**
 * The segments of a message written as a function of `escape`, so a test can say
 * ``(e) => `*New:* ${e(subject)}` `` for [{ literal: "*New:* " }, { fromMail: subject }].
 */
export function segments(write: MessageWriter): MessageSegment[] {
  const values: string[] = [];
  // Private-use markers around each value's index; test text never contains them.
  const text = write((value) => `\uE000${values.push(value) - 1}\uE001`);
  return text
    .split(/\uE000(\d+)\uE001/)
    .flatMap((part, i): MessageSegment[] => (i % 2 === 1 ? [{ fromMail: values[Number(part)]! }] : part === "" ? [] : [{ literal: part }]));
}

/** A notification's keys, with its message also writable as a function of `escape` (`render`). */
export type NotificationOverrides = Partial<Notification> & { render?: MessageWriter };

/** One mail as a rule hands it to the targets; `overrides` replace whole keys. */
export function sampleNotification(overrides: NotificationOverrides = {}): Notification {
  const { render, ...rest } = overrides;
  return {
    rule: "receipts",
    account: "a",
    mailbox: "INBOX",
    uidValidity: 7,
    uid: 42,
    messageId: "m@x",
    from: "Eve <eve@evil.example>",
    subject: "Your receipt",
    date: "2026-11-23T00:00:00.000Z",
    fields: {},
    total: null,
    link: undefined,
    message: [{ literal: "New: " }, { fromMail: "Your receipt" }],
    ...rest,
    ...(render ? { message: segments(render) } : {}),
  };
}

/**
 * A test file's own builder: its sample mail (usually one whose text attacks that service's
 * markup) as `defaults`, and per test `overrides` on top.
 */
export function notificationWith(defaults: NotificationOverrides): (overrides?: NotificationOverrides) => Notification {
  return (overrides = {}) => sampleNotification({ ...defaults, ...overrides, ...(overrides.message ? { render: undefined } : {}) });
}

/** Waits for a send: undefined when it resolved, else the TargetError it failed with (anything else fails the test). */
export async function failureOf(sending: Promise<unknown>): Promise<TargetError | undefined> {
  try {
    await sending;
    return undefined;
  } catch (err) {
    assert.ok(err instanceof TargetError, String(err));
    return err;
  }
}

/** Renders and sends `n`: undefined when it was delivered, else the TargetError it failed with. */
export function sendResult(target: Target, n: Notification, options?: SendOptions): Promise<TargetError | undefined> {
  return failureOf(target.send(target.render(n), options));
}

/** One row of a table of failure answers: what the TargetError must say about it. */
export interface FailureCase {
  status: number;
  retryable: boolean;
  /** The wait the error carries; undefined when it must carry none. */
  retryAfter?: number;
  message: RegExp;
}

/** The checks every failure row makes; `secret` must not show in the message. */
export function assertFailure(err: TargetError | undefined, expected: FailureCase, secret: string, what = "the secret is masked"): asserts err is TargetError {
  assert.ok(err, "must throw");
  assert.equal(err.status, expected.status);
  assert.equal(err.retryable, expected.retryable);
  assert.equal(err.retryAfterSeconds, expected.retryAfter);
  assert.match(err.message, expected.message);
  assert.ok(!err.message.includes(secret), what);
}
