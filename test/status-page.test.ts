/**
 * The status page in a real browser (headless Chromium from the Debian package, driven by
 * playwright-core) against a running mailbell on a real Dovecot: the mailbox, a notification
 * after a mail arrives, the totals chart with its numbers, a hostile subject shown as text, and
 * the token asked for once. A screenshot is kept in test-artifacts/status-page.png.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { startStatusServer } from "../src/daemon/status-server.ts";
import type { StatusView } from "../src/daemon/status-view.ts";
import { State } from "../src/store/sqlite/state.ts";
import { startMailbell, waitUntilWatching, writeConfig } from "./support/daemon.ts";
import { startDovecot, type Dovecot } from "./support/dovecot.ts";
import { CaptureLogger } from "./support/logger.ts";
import { buildMail } from "./support/mail.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";

const chromiumPath = "/usr/bin/chromium";
const artifacts = path.resolve(import.meta.dirname, "..", "test-artifacts");

let dovecot: Dovecot;
let receiver: Receiver;
let browser: Browser;

before(async () => {
  // Fails rather than skips: npm test installs Chromium (scripts/preflight.js) as it installs Dovecot.
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: the status page is tested in headless Chromium. Run node scripts/preflight.js as root (it installs the Debian package chromium), or apt-get install chromium`);
  [dovecot, receiver, browser] = await Promise.all([startDovecot(), startReceiver(), chromium.launch({ executablePath: chromiumPath })]);
});

after(async () => {
  await Promise.all([browser?.close(), receiver?.close(), dovecot?.dispose()]);
});

/** A page that records any dialog (an alert from injected markup would open one) and any script error. */
async function openPage(url: string): Promise<{ page: Page; dialogs: string[]; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1100 } });
  const dialogs: string[] = [];
  const errors: string[] = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  page.on("pageerror", (err) => errors.push(err.message));
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(msg.text());
  });
  await page.goto(url);
  return { page, dialogs, errors };
}

/** The text of each row of a table's body, cell by cell. */
function tableRows(page: Page, selector: string): Promise<string[][]> {
  return page.$$eval(`${selector} tbody tr, ${selector} > tr`, (rows) => rows.map((r) => [...r.children].map((c) => c.textContent ?? "")));
}

function monthOf(date: Date): string {
  return date.toISOString().slice(0, 7);
}

describe("status page in Chromium", () => {
  it("shows the mailbox, the notification of a mail that arrived, the totals chart with its numbers, and a hostile subject as text", async () => {
    const user = "statuspage";
    await dovecot.addUser(user, "statuspagepw");
    const dir = mkdtempSync(path.join(tmpdir(), "mailbell-status-page-"));
    const now = new Date();
    const thisMonth = monthOf(now);
    const lastMonth = monthOf(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 15)));
    // Two months counted before this run, straight into the store.
    const seeded = State.open(path.join(dir, "state.db"));
    const seen = (n: number) => ({ place: `seed/INBOX/1/${n}`, mailboxKey: "seed/INBOX/1", identity: `seed-${n}`, messageId: undefined, receivedAt: now });
    seeded.totals.add("purchases", seen(1), lastMonth, { units: 700n, scale: 0, currency: "JPY" });
    seeded.totals.add("purchases", seen(2), lastMonth, { units: 500n, scale: 0, currency: "JPY" });
    seeded.totals.add("purchases", seen(3), lastMonth, { units: 1514n, scale: 2, currency: "USD" });
    seeded.totals.add("purchases", seen(4), thisMonth, { units: 300n, scale: 0, currency: "JPY" });
    seeded.close();

    const yaml = `state: ${dir}/state.db
status: { listen: "127.0.0.1:0" }
outbox: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2 }
accounts:
  - { name: shopper, host: 127.0.0.1, port: ${dovecot.imapsPort}, tls: implicit, ca: ${dovecot.caFile}, user: ${user}, pass: statuspagepw, mailboxes: [INBOX] }
targets:
  - { name: hook, type: webhook, url: "${receiver.url("/status-page")}" }
rules:
  - name: purchases
    match: { from: shop@example.com }
    extract:
      amount: { regex: "Total: (?<value>.+)", as: money }
    total: { sum: amount, per: month, timezone: UTC }
    notify: [hook]
    template: "{{subject}}: {{amount}}"
`;
    const mailbell = startMailbell(writeConfig(yaml, dir), yaml);
    try {
      await waitUntilWatching(mailbell.logger);
      const url = String((await mailbell.logger.waitFor(/status server listening/)).fields.address);
      const { page, dialogs, errors } = await openPage(`${url}/`);

      await page.waitForSelector("#mailboxes tbody tr td");
      const [mailboxRow] = await tableRows(page, "#mailboxes");
      assert.deepEqual(mailboxRow!.slice(0, 3), ["shopper", "INBOX", "yes"]);
      assert.match(mailboxRow![5]!, /^UIDVALIDITY \d+, UID 0$|^none yet$/);
      assert.equal(mailboxRow![6], "0", "no reconnects");

      const hostile = "<img src=x onerror=alert(1)> receipt";
      await dovecot.append(user, "INBOX", buildMail({ from: "shop@example.com", to: `${user}@example.com`, subject: hostile, text: "Total: 480 JPY\r\n" }));
      await receiver.waitFor((r) => r.path === "/status-page");

      // The page refreshes itself every 5 s, without a reload.
      await page.locator("#notifications tbody td:nth-child(5)", { hasText: /^sent$/ }).waitFor({ timeout: 12_000 });
      const [notification] = await tableRows(page, "#notifications");
      assert.deepEqual(notification!.slice(1), ["purchases", hostile, "hook", "sent"]);
      assert.equal(await page.locator("#notifications img").count(), 0, "the subject's markup is text, not an element");
      await assert.doesNotReject(page.getByText(hostile).waitFor({ timeout: 2000 }), "the subject is visible as written");
      assert.match((await tableRows(page, "#mailboxes"))[0]![5]!, /^UIDVALIDITY \d+, UID 1$/, "the checkpoint moved past the mail");
      assert.deepEqual((await tableRows(page, "#outbox"))[0], ["hook", "0", "0", "1", "—"]);

      // The chart: one per currency, its bars the exact amounts, also in the table beside it.
      const rule = page.locator('section.rule-total[data-rule="purchases"]');
      assert.equal(await rule.locator("h3").textContent(), "purchases (per month)");
      assert.equal(await rule.locator(".chart canvas").count(), 2, "a uPlot chart for JPY and one for USD");
      const charts = await rule.locator(".chart").evaluateAll((boxes) => boxes.map((b) => [b.getAttribute("data-periods"), b.getAttribute("data-amounts")]));
      assert.deepEqual(charts, [
        [`${lastMonth} ${thisMonth}`, "1200 780"],
        [lastMonth, "15.14"],
      ]);
      const tables = await rule.locator("table").evaluateAll((ts) => ts.map((t) => [...t.querySelectorAll("tr")].map((r) => [...r.children].map((c) => c.textContent))));
      assert.deepEqual(tables, [
        [
          ["Period", "JPY", "Mails"],
          [lastMonth, "1200", "2"],
          [thisMonth, "780", "2"],
        ],
        [
          ["Period", "USD", "Mails"],
          [lastMonth, "15.14", "1"],
        ],
      ]);

      mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: path.join(artifacts, "status-page.png"), fullPage: true });
      assert.deepEqual(dialogs, [], "no script from the mail ran");
      assert.deepEqual(errors, [], "no script error, no CSP violation");
      await page.close();
    } finally {
      await mailbell.stop();
    }
  });

  it("asks for the token once, sends it as a bearer header (never in the URL), and asks again when it is refused", async () => {
    const token = "page-token-0123456789abcdef";
    const view: StatusView = { generatedAt: Date.now(), healthy: true, mailboxes: [], outbox: [{ target: "team", waiting: 0, dead: 2, sent: 9, oldestWaitingAt: null }], notifications: [], totals: [] };
    const server = await startStatusServer({ listen: "127.0.0.1:0", token, health: () => ({ healthy: true, mailboxes: [] }), metrics: () => "", status: () => view, logger: new CaptureLogger() });
    try {
      const { page, errors } = await openPage(`${server.url}/`);
      const requests: { url: string; authorization: string | undefined }[] = [];
      page.on("request", (req) => requests.push({ url: req.url(), authorization: req.headers().authorization }));
      await page.locator("#login").waitFor({ state: "visible" });
      assert.equal(await page.locator("#status").isVisible(), false, "nothing shown without the token");

      await page.fill("#token", "wrong-token-0123456789");
      await page.click("#login button");
      await page.locator("#login-error", { hasText: "refused" }).waitFor();

      await page.fill("#token", token);
      await page.click("#login button");
      await page.waitForSelector("#outbox tbody tr td");
      assert.deepEqual((await tableRows(page, "#outbox"))[0], ["team", "0", "2", "9", "—"]);

      // A reload keeps the token for the session: the page does not ask again.
      await page.reload();
      await page.waitForSelector("#outbox tbody tr td");
      assert.equal(await page.locator("#login").isVisible(), false);
      const dataRequests = requests.filter((r) => r.url.includes("status.json"));
      assert.ok(dataRequests.some((r) => r.authorization === `Bearer ${token}`));
      assert.ok(
        requests.every((r) => !r.url.includes(token)),
        "the token never appears in a URL",
      );
      assert.deepEqual(
        errors.filter((e) => !/401/.test(e)),
        [],
        "only the refused fetches are reported by the browser",
      );
      await page.close();
    } finally {
      await server.close();
    }
  });
});
