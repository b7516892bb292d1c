// Shared test data. Named *.test.ts so the build (which excludes tests) leaves it out; it has no tests.
import type { MailAddress, NormalizedMail } from "../mail/types.ts";
import type { RuleInput } from "./types.ts";

export function mail(overrides: Partial<Omit<NormalizedMail, "headers">> & { headers?: Record<string, string[]> } = {}): NormalizedMail {
  const { headers, ...rest } = overrides;
  return {
    messageId: "abc@example.com",
    from: [],
    to: [],
    cc: [],
    subject: "",
    date: undefined,
    text: "",
    html: undefined,
    attachments: [],
    warnings: [],
    ...rest,
    headers: new Map(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
  };
}

export function input(m: NormalizedMail, over: Partial<Omit<RuleInput, "mail">> = {}): RuleInput {
  return { mail: m, account: "personal", mailbox: "INBOX", receivedAt: new Date("2026-11-23T10:00:00Z"), ...over };
}

export const addr = (address: string, name = ""): MailAddress => ({ address, name });

export const googlePlayBody = [
  "Google Play",
  "ご注文ありがとうございます。",
  "注文番号: GPA.3391-4821-7719-20553",
  "注文日: 2026/11/23 19:04:11 JST",
  "商品名: マンスリーパス (Monthly pass)",
  "合計: ￥480（税込）",
  "お支払い方法: Google Pay 残高",
].join("\n");

export const googlePlayMail = mail({
  from: [addr("googleplay-noreply@google.com", "Google Play")],
  to: [addr("taro@example.jp", "山田 太郎")],
  subject: "Google Play のご注文明細（2026/11/23）",
  date: new Date("2026-11-23T10:04:11Z"),
  text: googlePlayBody,
  headers: { "List-Id": ["<receipts.google.com>"], Received: ["from a", "from b"] },
});

export const appleBody = [
  "Apple",
  "Receipt",
  "APPLE ID  taro@example.com",
  "BILLED TO",
  "Visa .... 1234",
  "DATE  Nov 23, 2026",
  "ORDER ID  MQ4X7Y2Z9",
  "iCloud+ with 50 GB storage  Monthly  $0.99",
  "Some App Pro (Monthly)  $14.15",
  "Subtotal  $15.14",
  "TOTAL  $15.14",
].join("\n");

export const appleMail = mail({
  from: [addr("no_reply@email.apple.com", "Apple")],
  to: [addr("taro@example.com")],
  subject: "Your receipt from Apple.",
  text: appleBody,
});

export const germanBody = "Vielen Dank für Ihre Bestellung.\nArtikel: Hörbuch (Download)\nGesamt: 15,14 €\nMwSt. 19 %: 2,42 €";
