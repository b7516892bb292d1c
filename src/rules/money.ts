import type { Money } from "./types.ts";

/*
 * Money is parsed from text that a stranger wrote (a shop's receipt), so the parser is lenient about
 * layout and strict about the number: it never goes through a float, and it declines rather than
 * guesses when it sees no number, or a number with no currency and no default currency.
 *
 * Decisions, in one place:
 * - Currency comes from an ISO code next to the number ("JPY 480", "12.50 CHF"), else a symbol
 *   ("¥", "$", "€", "円"…), else `defaultCurrency`. An ISO code beats a symbol ("JPY ¥480").
 * - Ambiguous symbols: "¥"/"￥" mean JPY and "$" means USD, unless `defaultCurrency` belongs to
 *   the same family (CNY for ¥; CAD, AUD… for $), which then wins. "円" is always JPY ("元" is
 *   CNY), and prefixed signs ("US$", "CA$", "A$", "CN¥"…) are not ambiguous.
 * - Decimal separator: with both "." and ",", the last one is the decimal separator
 *   ("1,234.56", "1.234,56"). With one kind used several times, it groups thousands ("1.234.567").
 *   A single separator is decimal unless exactly three digits follow it and one to three digits
 *   precede it: "15,14", "15.5" and "1234.567" are decimal, "1,200" and "1.200" are 1200. The
 *   exceptions: "0.125" (a zero is never grouped) and "." in a currency with three minor digits
 *   (KWD 1.500 is 1.5).
 * - Spaces (plain, no-break, narrow no-break, thin) and apostrophes group thousands when exactly
 *   three digits follow: "1 234,56 €", "CHF 1'234.50". So "2 480円" reads as 2480 yen: a quantity
 *   written right before an amount without a currency sign between them is not told apart.
 * - Refunds: a minus right before the number or before its currency sign makes it negative
 *   ("-$3.00", "$-3.00", "−3,00 €"). A hyphen glued to a letter or digit ("GPA.3391-12") is not a
 *   minus. Accounting parentheses "($3.00)" are not read as negative.
 * - Several numbers: the first one with a currency next to it wins; with none, the first number
 *   if a `defaultCurrency` is given. A sign between two numbers belongs to the second when it can
 *   be written before a number ("No. 1234 ¥480" is ¥480), so "480 JPY 500 JPY" reads as 500.
 * - The scale is what was written: "¥480.00" is 48000 units at scale 2, even though yen have no
 *   minor unit; formatMoney drops the zeros.
 */

/** Currency signs that name one currency, longest first so "US$" is tried before "$". */
const prefixSymbols: readonly (readonly [string, string])[] = [
  ["US$", "USD"],
  ["CA$", "CAD"],
  ["AU$", "AUD"],
  ["NZ$", "NZD"],
  ["HK$", "HKD"],
  ["SG$", "SGD"],
  ["NT$", "TWD"],
  ["MX$", "MXN"],
  ["CN¥", "CNY"],
  ["JP¥", "JPY"],
  ["RMB", "CNY"],
  ["C$", "CAD"],
  ["A$", "AUD"],
  ["S$", "SGD"],
  ["R$", "BRL"],
  ["$", "$"],
  ["¥", "¥"],
  ["€", "EUR"],
  ["£", "GBP"],
  ["₩", "KRW"],
  ["₹", "INR"],
  ["₽", "RUB"],
  ["₺", "TRY"],
  ["₪", "ILS"],
  ["₫", "VND"],
  ["₱", "PHP"],
  ["฿", "THB"],
];

/** Signs written after the number ("480円", "15,14 €"). */
const suffixSymbols: readonly (readonly [string, string])[] = [
  ["円", "JPY"],
  ["元", "CNY"],
  ["원", "KRW"],
  ["€", "EUR"],
  ["₫", "VND"],
  ["zł", "PLN"],
  ["¥", "¥"],
  ["$", "$"],
  ["£", "GBP"],
  ["₩", "KRW"],
  ["₹", "INR"],
  ["₽", "RUB"],
  ["₺", "TRY"],
  ["₪", "ILS"],
];

/** Ambiguous signs: the default currency, and the others `defaultCurrency` may pick instead. */
const ambiguousSymbols: ReadonlyMap<string, { fallback: string; family: ReadonlySet<string> }> = new Map([
  ["¥", { fallback: "JPY", family: new Set(["JPY", "CNY"]) }],
  ["$", { fallback: "USD", family: new Set(["USD", "CAD", "AUD", "NZD", "HKD", "SGD", "TWD", "MXN", "ARS", "CLP", "COP", "UYU"]) }],
]);

let isoCodes: ReadonlySet<string> | undefined;
function isIsoCurrency(code: string): boolean {
  // Only codes Intl knows, so words such as "VAT" or "TAX" before a number are not read as currencies.
  isoCodes ??= new Set(Intl.supportedValuesOf("currency"));
  return isoCodes.has(code);
}

const minorDigitsCache = new Map<string, number>();
/** Digits after the decimal point the currency usually has: 0 for JPY, 2 for EUR, 3 for KWD. */
export function currencyMinorDigits(currency: string): number {
  let digits = minorDigitsCache.get(currency);
  if (digits === undefined) {
    digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
    minorDigitsCache.set(currency, digits);
  }
  return digits;
}

/**
 * Maps look-alike characters to ASCII one-for-one, so positions in the result are positions in
 * the input: full-width digits and punctuation from Japanese receipts, the Unicode minus.
 */
function normalizeForMoney(text: string): string {
  let out = "";
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (code >= 0xff10 && code <= 0xff19) out += String.fromCharCode(code - 0xff10 + 0x30);
    else if (ch === "，") out += ",";
    else if (ch === "．") out += ".";
    else if (ch === "－" || ch === "\u2212") out += "-";
    else if (ch === "￥") out += "¥";
    else if (ch === "＄") out += "$";
    else if (ch === "￡") out += "£";
    else if (ch === "￦") out += "₩";
    else if (ch === "\u00a0" || ch === "\u202f" || ch === "\u2009" || ch === "\u3000") out += " ";
    else out += ch;
  }
  return out;
}

// A number with optional grouping: space groups only before exactly three digits, so "3, 480" and
// "12 items" are not glued into one number.
const numberToken = /(?<![\d])(?:\d{1,3}(?: \d{3})+(?!\d)(?:[.,'’]\d+)*|\d+(?:[.,'’]\d+)*)/g;

interface Marker {
  /** ISO code, or "¥" / "$" for an ambiguous sign. */
  currency: string;
  iso: boolean;
  /** Where the marker starts (prefix) or ends (suffix) in the text. */
  at: number;
}

const isAlnum = (ch: string | undefined): boolean => ch !== undefined && /[\p{L}\p{N}]/u.test(ch);

function skipSpacesBack(text: string, i: number): number {
  while (i > 0 && text[i - 1] === " ") i--;
  return i;
}

function skipSpacesForward(text: string, i: number): number {
  while (i < text.length && text[i] === " ") i++;
  return i;
}

function markerBefore(text: string, end: number): Marker | undefined {
  const code = text.slice(Math.max(0, end - 3), end);
  if (end >= 3 && /^[A-Z]{3}$/.test(code) && !isAlnum(text[end - 4]) && isIsoCurrency(code)) {
    return { currency: code, iso: true, at: end - 3 };
  }
  for (const [sign, currency] of prefixSymbols) {
    if (end >= sign.length && text.startsWith(sign, end - sign.length)) {
      // "RMB" and "US$" are words: they must not be the tail of a longer word.
      if (/^[A-Z]/.test(sign) && isAlnum(text[end - sign.length - 1])) continue;
      return { currency, iso: false, at: end - sign.length };
    }
  }
  return undefined;
}

function markerAfter(text: string, start: number): Marker | undefined {
  const code = text.slice(start, start + 3);
  if (/^[A-Z]{3}$/.test(code) && !isAlnum(text[start + 3]) && isIsoCurrency(code)) {
    return startsNextAmount(text, start + 3) ? undefined : { currency: code, iso: true, at: start + 3 };
  }
  for (const [sign, currency] of suffixSymbols) {
    if (text.startsWith(sign, start)) {
      if (/^[a-z]/.test(sign) && isAlnum(text[start + sign.length])) continue;
      if (prefixSymbols.some(([p]) => p === sign) && startsNextAmount(text, start + sign.length)) return undefined;
      return { currency, iso: false, at: start + sign.length };
    }
  }
  return undefined;
}

/**
 * A sign that can go on either side and is followed by a number ("1234 ¥480", "2 USD 3.00") is
 * taken as the next number's prefix: a quantity or an order number before a price is more common
 * than two amounts with the currency written after each.
 */
function startsNextAmount(text: string, i: number): boolean {
  return /^ *-?\d/.test(text.slice(i, i + 8));
}

/** A minus sign at `i - 1` that is not a hyphen inside a word or an identifier. */
function minusBefore(text: string, i: number): boolean {
  return text[i - 1] === "-" && !isAlnum(text[i - 2]);
}

function resolveCurrency(marker: Marker, defaultCurrency: string | undefined): string {
  const ambiguous = ambiguousSymbols.get(marker.currency);
  if (!ambiguous) return marker.currency;
  return defaultCurrency !== undefined && ambiguous.family.has(defaultCurrency) ? defaultCurrency : ambiguous.fallback;
}

/**
 * Reads one number token ("1.234,56", "1 200", "480") as digits and a scale, deciding which
 * separator is the decimal one; `minorDigits` settles "1.500" (see the notes at the top).
 */
export function readAmount(token: string, minorDigits: number): { digits: string; scale: number } | undefined {
  const compact = token.replace(/[ '’]/g, "");
  if (!/^\d+(?:[.,]\d+)*$/.test(compact)) return undefined;
  const lastDot = compact.lastIndexOf(".");
  const lastComma = compact.lastIndexOf(",");
  let decimalAt = -1;
  if (lastDot >= 0 && lastComma >= 0) {
    decimalAt = Math.max(lastDot, lastComma);
  } else if (lastDot >= 0 || lastComma >= 0) {
    const sep = lastDot >= 0 ? "." : ",";
    const at = Math.max(lastDot, lastComma);
    const count = compact.split(sep).length - 1;
    const intPart = compact.slice(0, at);
    const fracLength = compact.length - at - 1;
    const grouped = count > 1 || (fracLength === 3 && !/^0+$/.test(intPart) && intPart.length <= 3 && !(sep === "." && minorDigits === 3));
    if (!grouped) decimalAt = at;
  }
  const intPart = decimalAt >= 0 ? compact.slice(0, decimalAt) : compact;
  const fracPart = decimalAt >= 0 ? compact.slice(decimalAt + 1) : "";
  if (/[.,]/.test(fracPart)) return undefined;
  const groups = intPart.split(/[.,]/);
  // Groups after the first have three digits, or two in Indian lakh style ("1,23,456.78") as long
  // as the last group has three; anything else ("1.2.3") is not a number we understand.
  if (groups.length > 1) {
    const [first, ...rest] = groups;
    if (first === undefined || first.length === 0 || first.length > 3) return undefined;
    if (rest.at(-1)?.length !== 3 || rest.some((g) => g.length !== 2 && g.length !== 3)) return undefined;
  }
  return { digits: groups.join("") + fracPart, scale: fracPart.length };
}

export type FindMoneyResult =
  | { ok: true; money: Money; index: number; length: number }
  | { ok: false; problem: "no-number" | "no-currency" };

/**
 * Like parseMoney, but says why nothing was found and where the amount sits in `text` (index and
 * length of the number with its sign and currency marker).
 */
export function findMoney(text: string, defaultCurrency?: string): FindMoneyResult {
  if (defaultCurrency !== undefined && !/^[A-Z]{3}$/.test(defaultCurrency)) {
    throw new Error(`findMoney: defaultCurrency must be an ISO 4217 code such as JPY, got ${JSON.stringify(defaultCurrency)}`);
  }
  const normalized = normalizeForMoney(text);
  let firstBare: { start: number; end: number; token: string; negative: boolean } | undefined;
  let sawNumber = false;
  for (const m of normalized.matchAll(numberToken)) {
    const token = m[0];
    const start = m.index;
    const end = start + token.length;
    let negative = minusBefore(normalized, start);
    let from = negative ? start - 1 : start;
    const before = markerBefore(normalized, skipSpacesBack(normalized, from));
    if (before) {
      from = before.at;
      if (!negative && minusBefore(normalized, skipSpacesBack(normalized, from))) {
        negative = true;
        from = skipSpacesBack(normalized, from) - 1;
      }
    }
    const after = markerAfter(normalized, skipSpacesForward(normalized, end));
    const marker = before?.iso ? before : after?.iso ? after : (before ?? after);
    const to = after ? after.at : end;
    if (marker) {
      const currency = resolveCurrency(marker, defaultCurrency);
      const amount = readAmount(token, currencyMinorDigits(currency));
      if (!amount) continue;
      return { ok: true, money: toMoney(amount, negative, currency), index: from, length: to - from };
    }
    if (readAmount(token, 2)) {
      sawNumber = true;
      firstBare ??= { start: negative ? start - 1 : start, end, token, negative };
    }
  }
  if (firstBare && defaultCurrency !== undefined) {
    const amount = readAmount(firstBare.token, currencyMinorDigits(defaultCurrency));
    if (amount) {
      return { ok: true, money: toMoney(amount, firstBare.negative, defaultCurrency), index: firstBare.start, length: firstBare.end - firstBare.start };
    }
  }
  return { ok: false, problem: sawNumber ? "no-currency" : "no-number" };
}

function toMoney(amount: { digits: string; scale: number }, negative: boolean, currency: string): Money {
  const units = BigInt(amount.digits);
  return { units: negative ? -units : units, scale: amount.scale, currency };
}

/**
 * Finds and parses the amount in `text` ("合計: ￥480 (税込)", "TOTAL $15.14", "1.234,56 EUR").
 * Returns undefined when there is no number, or no currency can be told and no `defaultCurrency`
 * (an ISO 4217 code) is given. See the notes at the top of this file for the ambiguous cases.
 */
export function parseMoney(text: string, defaultCurrency?: string): Money | undefined {
  const found = findMoney(text, defaultCurrency);
  return found.ok ? found.money : undefined;
}

function rescale(m: Money, scale: number): bigint {
  return m.units * 10n ** BigInt(scale - m.scale);
}

/** Exact sum; the scale is the larger of the two. Mixing currencies is a programming error. */
export function addMoney(a: Money, b: Money): Money {
  if (a.currency !== b.currency) {
    throw new Error(`addMoney: cannot add ${b.currency} to ${a.currency}; keep one total per currency`);
  }
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) + rescale(b, scale), scale, currency: a.currency };
}

/** "1234.56", "480", "-3.00", "0.05": the exact value with the scale it was written with. */
export function moneyToDecimalString(m: Money): string {
  const negative = m.units < 0n;
  const digits = (negative ? -m.units : m.units).toString().padStart(m.scale + 1, "0");
  const intPart = digits.slice(0, digits.length - m.scale);
  const fracPart = digits.slice(digits.length - m.scale);
  return `${negative ? "-" : ""}${intPart}${m.scale > 0 ? `.${fracPart}` : ""}`;
}

/** The inverse of moneyToDecimalString; throws on anything else (it reads what we wrote). */
export function moneyFromDecimalString(s: string, currency: string): Money {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s);
  if (!m) {
    throw new Error(`moneyFromDecimalString: ${JSON.stringify(s)} is not a plain decimal such as "1234.56" or "-3.00"`);
  }
  const [, sign = "", intPart = "", fracPart = ""] = m;
  const units = BigInt(intPart + fracPart);
  return { units: sign === "-" ? -units : units, scale: fracPart.length, currency };
}

const formatters = new Map<string, Intl.NumberFormat>();

/**
 * "¥3,200", "$15.14", "€1,234.56" (en-US), "￥3,200" (ja-JP). Shows the currency's usual minor
 * digits, and more only when the amount really has them (¥480.00 → "¥480", ¥480.50 → "¥480.5"),
 * so no value is rounded away. Formats from the decimal string, so huge amounts stay exact.
 */
export function formatMoney(m: Money, locale: string): string {
  const decimal = moneyToDecimalString(m);
  const significantScale = decimal.includes(".") ? decimal.replace(/0+$/, "").split(".")[1]!.length : 0;
  const usual = currencyMinorDigits(m.currency);
  const maxDigits = Math.min(100, Math.max(usual, significantScale));
  const key = `${locale}\u0000${m.currency}\u0000${maxDigits}`;
  let formatter = formatters.get(key);
  if (!formatter) {
    formatter = new Intl.NumberFormat(locale, { style: "currency", currency: m.currency, minimumFractionDigits: usual, maximumFractionDigits: maxDigits });
    formatters.set(key, formatter);
  }
  // A string is read as an exact decimal (Intl.NumberFormat v3); a Number would round big amounts.
  return formatter.format(decimal as `${number}`);
}
