import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { startReceiver, type Reply } from "../../test/support/receiver.ts";
import { amountField, assertFailure, gmailLink, notificationWith, sendResult, type NotificationOverrides } from "../../test/support/targets.ts";
import type { TargetError } from "../errors.ts";
import { memoryTargetState } from "./state.ts";
import { TargetUrlError } from "./module.ts";
import { escapeTeams, teamsModule } from "./teams.ts";
import type { DigestEntry, Notification, Target } from "./types.ts";

const hostile = "@everyone <@123> [x](https://evil) <!channel> **bold**";
const workflowUrl = "https://prod-161.westeurope.logic.azure.com/workflows/643e69f8/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=S3cretSig";

const notification = notificationWith({
  from: "_Eve_ [boss](https://evil) <eve@evil.example>",
  subject: hostile,
  fields: { amount: amountField, item: { text: hostile, raw: hostile }, shop: null },
  link: gmailLink,
  render: (escape) => `**New:** ${escape(hostile)}`,
});

function create(url = workflowUrl): Target {
  return teamsModule.create(teamsModule.schema.parse({ name: "team", type: "teams", url }), { state: memoryTargetState() });
}

interface Card {
  type: string;
  version: string;
  body: { type: string; text?: string; facts?: { title: string; value: string }[] }[];
  actions?: { type: string; url: string }[];
}
interface Body {
  type: string;
  attachments: { contentType: string; content: Card }[];
}
const cardOf = (t: Target, n: Notification) => (JSON.parse(t.render(n).body) as Body).attachments[0]!.content;


describe("escapeTeams", () => {
  const cases: [string, string][] = [
    [hostile, "@everyone <@123> \\[x\\]\\(https://evil\\) <!channel> \\*\\*bold\\*\\*"],
    ["_it_ `c` ~s~ a\\b", "\\_it\\_ \\`c\\` \\~s\\~ a\\\\b"],
    ["- li\n1. one\n# h\n> q\n+ p", "\\- li\n1\\. one\n\\# h\n\\> q\n\\+ p"],
    ["see https://shop.example/a_b(1)*x* now", "see https://shop.example/a%5Fb%281%29%2Ax%2A now"],
    ["¥480 (Monthly pass) — 2026-11-23", "¥480 \\(Monthly pass\\) — 2026-11-23"],
  ];
  for (const [input, expected] of cases) it(`escapes ${JSON.stringify(input).slice(0, 40)}`, () => assert.equal(escapeTeams(input), expected));
});

describe("teams payload", () => {
  const t = create();

  it("is a message with one Adaptive Card 1.4: title, text, facts, and a link action", () => {
    const body = JSON.parse(t.render(notification()).body) as Body;
    assert.equal(body.type, "message");
    assert.equal(body.attachments.length, 1);
    assert.equal(body.attachments[0]!.contentType, "application/vnd.microsoft.card.adaptive");
    const card = body.attachments[0]!.content;
    assert.equal(card.type, "AdaptiveCard");
    assert.equal(card.version, "1.4");
    assert.deepEqual(
      card.body.map((b) => b.type),
      ["TextBlock", "TextBlock", "FactSet"],
    );
    assert.equal(card.body[0]!.text, escapeTeams(hostile));
    assert.equal(card.body[1]!.text, `**New:** ${escapeTeams(hostile)}`, "template markup kept, mail text escaped");
    assert.deepEqual(
      card.body[2]!.facts!.map((f) => f.title),
      ["From", "amount", "item", "shop"],
    );
    assert.equal(card.body[2]!.facts![3]!.value, "\\[shop missing\\]");
    assert.deepEqual(card.actions, [{ type: "Action.OpenUrl", title: "Open mail", url: "https://mail.google.com/mail/u/0/#search/rfc822msgid%3Am%40x" }]);
  });


  it("drops a link that is not http(s)", () => {
    assert.equal(cardOf(t, notification({ link: "javascript:alert(1)" })).actions, undefined);
  });

  const sizes: { name: string; n: NotificationOverrides }[] = [
    { name: "a 100,000-character message", n: { render: (e) => e("x".repeat(100_000)) } },
    { name: "a message of 3-byte characters", n: { render: (e) => e("あ".repeat(20_000)) } },
    { name: "a message of characters JSON escapes", n: { render: (e) => e('"\\'.repeat(20_000)) } },
    { name: "200 long fields", n: { fields: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`f${i}`, { text: "v".repeat(2000), raw: "" }])) } },
    { name: "a huge subject", n: { subject: "s".repeat(50_000) } },
  ];
  for (const c of sizes) {
    it(`keeps ${c.name} under the 28 KB message limit, as valid JSON`, () => {
      const payload = t.render(notification(c.n));
      assert.ok(Buffer.byteLength(payload.body) <= 24 * 1024, `${Buffer.byteLength(payload.body)} bytes`);
      const card = (JSON.parse(payload.body) as Body).attachments[0]!.content;
      assert.ok(card.body[0]!.text!.length <= 500);
      assert.ok(card.body[1]!.text!.length > 0);
      assert.doesNotMatch(card.body[1]!.text!, /[\ud800-\udbff]$/);
    });
  }

  it("summarize is one escaped line", () => {
    assert.equal(t.summarize(notification({ render: (e) => `a\n${e("[x](y)")}\n b` })), "a \\[x\\]\\(y\\) b");
  });

  it("a digest is valid: within the size limit, one line per mail, naming what was left out", () => {
    const entries: DigestEntry[] = Array.from({ length: 20 }, (_, i) => ({ rule: "r", subject: hostile, summary: t.summarize(notification({ render: (e) => e(`${i} ${hostile}`) })), body: "{}" }));
    const payload = t.renderDigest(entries, 57);
    assert.ok(Buffer.byteLength(payload.body) <= 24 * 1024);
    const card = (JSON.parse(payload.body) as Body).attachments[0]!.content;
    assert.equal(card.body.length, 1 + 20 + 1);
    assert.match(card.body[0]!.text!, /^\*\*57 mails\*\*/);
    assert.equal(card.body.at(-1)!.text, "…and 37 more");
    const huge = entries.map((e) => ({ ...e, summary: "あ".repeat(3000) }));
    const fitted = t.renderDigest(huge, 20);
    assert.ok(Buffer.byteLength(fitted.body) <= 24 * 1024);
    assert.match((JSON.parse(fitted.body) as Body).attachments[0]!.content.body.at(-1)!.text!, /^…and \d+ more$/);
  });
});

const receiver = await startReceiver({ headers: { "content-type": "application/json" } });
// Workflows queues the run and answers 202 Accepted with an empty body.
receiver.setDefault({ status: 202 });
after(() => receiver.close());

describe("teams sending", () => {
  const path = "/workflows/643e69f8/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=S3cretSig";
  async function attempt(reply?: Reply): Promise<TargetError | undefined> {
    if (reply) receiver.reply(reply);
    return sendResult(create(receiver.url(path)), notification());
  }

  it("202 Accepted is success; the card is posted to the workflow URL as is", async () => {
    assert.equal(await attempt(), undefined);
    assert.equal(receiver.requests.at(-1)!.path, path);
    assert.equal((receiver.requests.at(-1)!.json as Body).type, "message");
    assert.match(String(receiver.requests.at(-1)!.headers["content-type"]), /^application\/json/);
  });

  const error = (code: string, message: string) => JSON.stringify({ error: { code, message } });
  const cases: { name: string; reply: Reply; retryable: boolean; retryAfter?: number; message: RegExp }[] = [
    { name: "400 bad content", reply: { status: 400, body: error("InvalidRequestContent", "The request content is not valid and could not be deserialized.") }, retryable: false, message: /answered 400: InvalidRequestContent: The request content is not valid/ },
    { name: "401 bad signature", reply: { status: 401, body: error("DirectApiInvalidAuthorizationSignature", "The provided authorization signature is not valid.") }, retryable: false, message: /signature \(sig=\) is wrong/ },
    { name: "403", reply: { status: 403, body: error("AuthorizationFailed", "Forbidden.") }, retryable: false, message: /copy the URL again/ },
    { name: "404 deleted flow", reply: { status: 404, body: error("WorkflowNotFound", "The workflow '643e69f8' could not be found.") }, retryable: false, message: /WorkflowNotFound: .*create a Workflows webhook again and update url/ },
    { name: "409 flow turned off", reply: { status: 409, body: error("WorkflowTriggerIsNotEnabled", "The workflow trigger is not enabled.") }, retryable: false, message: /turn it on/ },
    { name: "413 too large", reply: { status: 413, body: "Request Entity Too Large" }, retryable: false, message: /answered 413: Request Entity Too Large; the card is larger/ },
    { name: "429 throttled", reply: { status: 429, body: error("WorkflowRequestsThrottled", "Number of requests exceeded the limit."), headers: { "retry-after": "17" } }, retryable: true, retryAfter: 17, message: /answered 429: WorkflowRequestsThrottled: .*; will retry\./ },
    { name: "500", reply: { status: 500, body: error("InternalServerError", "Encountered an internal server error.") }, retryable: true, message: /answered 500/ },
  ];
  for (const c of cases) {
    it(`${c.name} is ${c.retryable ? "retryable" : "final"}`, async () => {
      assertFailure(await attempt(c.reply), { ...c, status: c.reply.status }, "S3cretSig", "the signature is masked");
    });
  }
});

describe("teams URL form", () => {
  const expand = (url: string) => teamsModule.schema.parse({ name: "t", type: "teams", ...teamsModule.fromUrl(new URL(url)) }).url;
  const valid: [string, string][] = [
    ["workflows://prod-161.westeurope.logic.azure.com:443/643e69f8/S3cretSig", workflowUrl],
    ["workflow://prod-161.westeurope.logic.azure.com/643e69f8?sig=S3cretSig", workflowUrl],
    [
      "workflows://prod-161.westeurope.logic.azure.com/643e69f8/S3cretSig?pa=yes",
      "https://prod-161.westeurope.logic.azure.com/powerautomate/automations/direct/workflows/643e69f8/triggers/manual/paths/invoke?api-version=2022-03-01-preview&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=S3cretSig",
    ],
    [
      "workflows://default0a1b.c2.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/abc/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=XyZ",
      "https://default0a1b.c2.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/abc/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=XyZ",
    ],
  ];
  for (const [url, expected] of valid) it(`reads ${url.slice(0, 60)}…`, () => assert.equal(expand(url), expected));

  const invalid: [string, RegExp][] = [
    ["workflows://host.example/onlyone", /workflows:\/\/\{host\}\/\{workflow_id\}\/\{signature\}/],
    ["workflows://host.example/workflows/abc/triggers/manual/paths/invoke?api-version=1", /no sig= parameter/],
    ["workflows://host.example/a b/c", /workflows:\/\/\{host\}\/\{workflow_id\}\/\{signature\}/],
  ];
  for (const [url, message] of invalid) {
    it(`refuses ${url}, saying what a valid one looks like`, () => {
      assert.throws(
        () => teamsModule.fromUrl(new URL(url)),
        (err: unknown) => err instanceof TargetUrlError && message.test(err.message),
      );
    });
  }
  it("registers both Apprise schemes", () => assert.deepEqual(teamsModule.schemes, ["workflows", "workflow"]));

  it("refuses a retired Office 365 connector URL at load time, naming the replacement", () => {
    const r = teamsModule.schema.safeParse({ name: "t", type: "teams", url: "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456" });
    assert.ok(!r.success);
    assert.match(r.error.issues[0]!.message, /retired.*Workflows/);
  });

});
