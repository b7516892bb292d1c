import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { addMoney, currencyMinorDigits, findMoney, formatMoney, moneyFromDecimalString, moneyToDecimalString, parseMoney, readAmount } from "./money.ts";
import type { Money } from "./types.ts";

const money = (units: bigint, scale: number, currency: string): Money => ({ units, scale, currency });

describe("parseMoney", () => {
  const cases: [text: string, expected: Money][] = [
    // yen in its many spellings
    ["￥1,200", money(1200n, 0, "JPY")],
    ["¥480", money(480n, 0, "JPY")],
    ["480円", money(480n, 0, "JPY")],
    ["480 円", money(480n, 0, "JPY")],
    ["JPY 480", money(480n, 0, "JPY")],
    ["480 JPY", money(480n, 0, "JPY")],
    ["¥ 480", money(480n, 0, "JPY")],
    ["￥４８０", money(480n, 0, "JPY")],
    ["￥１，２００", money(1200n, 0, "JPY")],
    ["合計: ￥480 (税込)", money(480n, 0, "JPY")],
    ["￥480（税込）", money(480n, 0, "JPY")],
    ["¥480.00", money(48000n, 2, "JPY")],
    ["JP¥480", money(480n, 0, "JPY")],
    ["CN¥48.50", money(4850n, 2, "CNY")],
    ["RMB 48.50", money(4850n, 2, "CNY")],
    ["48.50元", money(4850n, 2, "CNY")],
    // dollars
    ["$15.14", money(1514n, 2, "USD")],
    ["US$15.14", money(1514n, 2, "USD")],
    ["TOTAL $15.14", money(1514n, 2, "USD")],
    ["USD 3.00", money(300n, 2, "USD")],
    ["$15.14 USD", money(1514n, 2, "USD")],
    ["CA$20.00", money(2000n, 2, "CAD")],
    ["A$9.95", money(995n, 2, "AUD")],
    ["$1,234.56", money(123456n, 2, "USD")],
    ["$1,234,567.89", money(123456789n, 2, "USD")],
    ["$0.99", money(99n, 2, "USD")],
    ["$5", money(5n, 0, "USD")],
    // euro and other European formats
    ["15,14 €", money(1514n, 2, "EUR")],
    ["€15.14", money(1514n, 2, "EUR")],
    ["€ 15,14", money(1514n, 2, "EUR")],
    ["1.234,56 EUR", money(123456n, 2, "EUR")],
    ["EUR 1.234,56", money(123456n, 2, "EUR")],
    ["Gesamt: 15,14 €", money(1514n, 2, "EUR")],
    ["1 234,56 €", money(123456n, 2, "EUR")],
    ["1\u00a0234,56\u00a0€", money(123456n, 2, "EUR")],
    ["1\u202f234,56\u202f€", money(123456n, 2, "EUR")],
    ["1 234 567,89 €", money(123456789n, 2, "EUR")],
    ["1.200 €", money(1200n, 0, "EUR")],
    ["1.234.567 €", money(1234567n, 0, "EUR")],
    ["CHF 12.50", money(1250n, 2, "CHF")],
    ["12.50 CHF", money(1250n, 2, "CHF")],
    ["CHF 1'234.50", money(123450n, 2, "CHF")],
    ["12,99 zł", money(1299n, 2, "PLN")],
    ["£7.99", money(799n, 2, "GBP")],
    ["￡7.99", money(799n, 2, "GBP")],
    ["₩5,000", money(5000n, 0, "KRW")],
    ["5,000원", money(5000n, 0, "KRW")],
    ["₹1,23,456.78", money(12345678n, 2, "INR")],
    // three minor digits: a lone "." + 3 digits is decimal
    ["KWD 1.500", money(1500n, 3, "KWD")],
    ["KWD 1,500.250", money(1500250n, 3, "KWD")],
    ["0.125 USD", money(125n, 3, "USD")],
    // refunds
    ["-$3.00", money(-300n, 2, "USD")],
    ["$-3.00", money(-300n, 2, "USD")],
    ["- $3.00", money(-300n, 2, "USD")],
    ["Refund: -3,00 €", money(-300n, 2, "EUR")],
    ["\u22123,00 €", money(-300n, 2, "EUR")],
    ["－￥480", money(-480n, 0, "JPY")],
    ["-JPY 480", money(-480n, 0, "JPY")],
    // text around, several numbers: the first with a currency wins
    ["Order 12345, 2 items: $15.14", money(1514n, 2, "USD")],
    ["SKU-$5.00", money(500n, 2, "USD")],
    ["Qty 2 USD 3.00", money(300n, 2, "USD")],
    // the cost of the rule above, documented in money.ts
    ["480 JPY 500 JPY", money(500n, 0, "JPY")],
    ["ID 77-480円", money(480n, 0, "JPY")],
    ["注文番号: GPA.3391-4821 合計: ￥480", money(480n, 0, "JPY")],
    ["No. 1234 ¥480", money(480n, 0, "JPY")],
    ["Total 15.14 USD.", money(1514n, 2, "USD")],
    ["VAT 19% EUR 2,42", money(242n, 2, "EUR")],
    // an ISO code beats a symbol
    ["JPY ¥480", money(480n, 0, "JPY")],
    ["¥480 CNY", money(480n, 0, "CNY")],
    // very large, exact
    ["$123,456,789,012,345,678.91", money(12345678901234567891n, 2, "USD")],
  ];
  for (const [text, expected] of cases) {
    test(JSON.stringify(text), () => {
      assert.deepEqual(parseMoney(text), expected);
    });
  }

  const none: [text: string, defaultCurrency: string | undefined][] = [
    ["", undefined],
    ["no number here", undefined],
    ["¥", "JPY"],
    ["480", undefined],
    ["1,200", undefined],
    ["GPA.3391-4821", undefined],
    ["TOTAL 15.14", undefined],
  ];
  for (const [text, defaultCurrency] of none) {
    test(`nothing in ${JSON.stringify(text)} (default ${defaultCurrency ?? "none"})`, () => {
      assert.equal(parseMoney(text, defaultCurrency), undefined);
    });
  }

  const withDefault: [text: string, defaultCurrency: string, expected: Money][] = [
    ["480", "JPY", money(480n, 0, "JPY")],
    ["1,200", "JPY", money(1200n, 0, "JPY")],
    ["15,14", "EUR", money(1514n, 2, "EUR")],
    ["TOTAL 15.14", "USD", money(1514n, 2, "USD")],
    ["-3.00", "USD", money(-300n, 2, "USD")],
    // ¥ and $ are ambiguous: a default in the same family wins…
    ["¥48.50", "CNY", money(4850n, 2, "CNY")],
    ["480円", "CNY", money(480n, 0, "JPY")],
    ["$20.00", "CAD", money(2000n, 2, "CAD")],
    // …one outside it does not, and an explicit sign or code is never overridden
    ["¥480", "USD", money(480n, 0, "JPY")],
    ["€15.14", "USD", money(1514n, 2, "EUR")],
    ["US$15.14", "CAD", money(1514n, 2, "USD")],
    ["JPY 480", "CNY", money(480n, 0, "JPY")],
    // a number with a currency wins over an earlier bare one
    ["2 items, ¥480", "USD", money(480n, 0, "JPY")],
  ];
  for (const [text, defaultCurrency, expected] of withDefault) {
    test(`${JSON.stringify(text)} with default ${defaultCurrency}`, () => {
      assert.deepEqual(parseMoney(text, defaultCurrency), expected);
    });
  }

  test("a hyphen inside an identifier is not a minus", () => {
    assert.deepEqual(parseMoney("ref A-100 $5.00"), money(500n, 2, "USD"));
    assert.deepEqual(parseMoney("GPA.3391-480", "JPY"), money(3391n, 0, "JPY"));
  });

  test("a malformed default currency is a programming error", () => {
    assert.throws(() => parseMoney("480", "yen"), /ISO 4217/);
  });
});

describe("findMoney", () => {
  test("says where the amount is", () => {
    const text = "合計: ￥480（税込）";
    const found = findMoney(text);
    assert.ok(found.ok);
    assert.equal(text.slice(found.index, found.index + found.length), "￥480");
  });

  test("span covers a minus and a suffix", () => {
    const text = "Refund -3,00 € today";
    const found = findMoney(text);
    assert.ok(found.ok);
    assert.equal(text.slice(found.index, found.index + found.length), "-3,00 €");
  });

  test("tells a missing number from a missing currency", () => {
    assert.deepEqual(findMoney("free!"), { ok: false, problem: "no-number" });
    assert.deepEqual(findMoney("480"), { ok: false, problem: "no-currency" });
  });
});

describe("readAmount", () => {
  const cases: [token: string, minorDigits: number, expected: { digits: string; scale: number } | undefined][] = [
    ["1,234.56", 2, { digits: "123456", scale: 2 }],
    ["1.234,56", 2, { digits: "123456", scale: 2 }],
    ["15,14", 2, { digits: "1514", scale: 2 }],
    ["1,200", 2, { digits: "1200", scale: 0 }],
    ["1.200", 2, { digits: "1200", scale: 0 }],
    ["1.200", 0, { digits: "1200", scale: 0 }],
    ["1.200", 3, { digits: "1200", scale: 3 }],
    ["0.125", 2, { digits: "0125", scale: 3 }],
    ["1234.567", 2, { digits: "1234567", scale: 3 }],
    ["480.5", 0, { digits: "4805", scale: 1 }],
    ["1,2", 2, { digits: "12", scale: 1 }],
    ["1 234", 2, { digits: "1234", scale: 0 }],
    ["1.2.3", 2, undefined],
    ["1,234.56.78", 2, undefined],
    ["1234,567,890", 2, undefined],
  ];
  for (const [token, minor, expected] of cases) {
    test(`${JSON.stringify(token)} with ${minor} minor digits`, () => {
      assert.deepEqual(readAmount(token, minor), expected);
    });
  }
});

describe("currencyMinorDigits", () => {
  test("follows ISO 4217", () => {
    assert.deepEqual(["JPY", "KRW", "USD", "EUR", "KWD"].map(currencyMinorDigits), [0, 0, 2, 2, 3]);
  });
});

describe("addMoney", () => {
  test("aligns scales exactly", () => {
    assert.deepEqual(addMoney(money(48000n, 2, "JPY"), money(480n, 0, "JPY")), money(96000n, 2, "JPY"));
    assert.deepEqual(addMoney(money(1n, 1, "USD"), money(2n, 1, "USD")), money(3n, 1, "USD"));
  });

  test("0.1 + 0.2 is 0.3, unlike floats", () => {
    assert.equal(moneyToDecimalString(addMoney(money(1n, 1, "USD"), money(2n, 1, "USD"))), "0.3");
  });

  test("a refund lowers the sum", () => {
    assert.deepEqual(addMoney(money(1514n, 2, "USD"), money(-300n, 2, "USD")), money(1214n, 2, "USD"));
  });

  test("mixing currencies throws", () => {
    assert.throws(() => addMoney(money(1n, 0, "JPY"), money(1n, 0, "USD")), /cannot add USD to JPY/);
  });
});

describe("decimal strings", () => {
  const cases: [Money, string][] = [
    [money(123456n, 2, "EUR"), "1234.56"],
    [money(480n, 0, "JPY"), "480"],
    [money(-300n, 2, "USD"), "-3.00"],
    [money(5n, 2, "USD"), "0.05"],
    [money(-5n, 3, "KWD"), "-0.005"],
    [money(48000n, 2, "JPY"), "480.00"],
    [money(0n, 2, "USD"), "0.00"],
    [money(12345678901234567891n, 2, "USD"), "123456789012345678.91"],
  ];
  for (const [m, s] of cases) {
    test(`${s} round-trips`, () => {
      assert.equal(moneyToDecimalString(m), s);
      assert.deepEqual(moneyFromDecimalString(s, m.currency), m);
    });
  }

  test("anything else is refused", () => {
    for (const bad of ["", "1,234.56", "1e3", "+3", ".5", "5.", "abc", " 1"]) {
      assert.throws(() => moneyFromDecimalString(bad, "USD"), /not a plain decimal/, bad);
    }
  });
});

describe("formatMoney", () => {
  const cases: [Money, string, string][] = [
    [money(3200n, 0, "JPY"), "en-US", "¥3,200"],
    [money(3200n, 0, "JPY"), "ja-JP", "￥3,200"],
    [money(48000n, 2, "JPY"), "en-US", "¥480"],
    [money(48050n, 2, "JPY"), "en-US", "¥480.5"],
    [money(1514n, 2, "USD"), "en-US", "$15.14"],
    [money(5n, 0, "USD"), "en-US", "$5.00"],
    [money(-300n, 2, "USD"), "en-US", "-$3.00"],
    [money(123456n, 2, "EUR"), "en-US", "€1,234.56"],
    [money(123456n, 2, "EUR"), "de-DE", "1.234,56\u00a0€"],
    [money(5000n, 0, "KRW"), "ko-KR", "₩5,000"],
    [money(1500n, 3, "KWD"), "en-US", "KWD\u00a01.500"],
    [money(1234n, 4, "USD"), "en-US", "$0.1234"],
  ];
  for (const [m, locale, expected] of cases) {
    test(`${moneyToDecimalString(m)} ${m.currency} in ${locale}`, () => {
      assert.equal(formatMoney(m, locale), expected);
    });
  }

  test("huge amounts are not rounded through a float", () => {
    assert.equal(formatMoney(money(12345678901234567891n, 2, "USD"), "en-US"), "$123,456,789,012,345,678.91");
  });
});
