import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { after, beforeEach, describe, it } from "node:test";
import { startReceiver, type Reply } from "../../test/support/receiver.ts";
import { failureOf, notificationWith } from "../../test/support/targets.ts";
import { targetSchema } from "./index.ts";
import type { TargetError } from "../errors.ts";
import { memoryTargetState, type TargetStateStore } from "./state.ts";
import { createTargets } from "./index.ts";
import { TargetUrlError } from "./module.ts";
import { escapeSlack, slackModule, slackSchema, threadField } from "./slack.ts";
import type { DigestEntry, Notification, NotificationTotal, Target } from "./types.ts";

const token = "xoxb-_fake_test_token_0987654321";

const notification = notificationWith({ subject: "<!channel> hi & bye", render: (escape) => `*New:* ${escape("<@U1> & <https://evil|x>")}` });

function total(period: string): NotificationTotal {
  return { amount: "480", currency: "JPY", text: "¥480", period, periodLabel: period };
}

/** Answers as the Slack Web API documents: JSON bodies, HTTP 200 even for most errors. */
interface ApiReply {
  status?: number;
  json?: unknown;
  raw?: string;
  headers?: Record<string, string>;
}

function webApi(reply: ApiReply): Reply {
  const isJson = reply.json !== undefined;
  return {
    status: reply.status ?? 200,
    headers: { "content-type": isJson ? "application/json; charset=utf-8" : "text/plain", ...reply.headers },
    body: isJson ? JSON.stringify(reply.json) : (reply.raw ?? ""),
  };
}

interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  /** The ts a successful reply handed out. */
  ts: string | undefined;
}

const receiver = await startReceiver();
const api = receiver.url("/api");
/** The ts each successful chat.postMessage handed out, by request index. */
const issued = new Map<number, string>();
let tsCounter = 0;
// Unless a test queued an answer: chat.postMessage posts, anything else is an incoming webhook.
receiver.setDefault((req) => {
  if (!req.path.endsWith("/chat.postMessage")) return webApi({ raw: "ok" });
  const ts = `1700000000.${String(++tsCounter).padStart(6, "0")}`;
  issued.set(req.index, ts);
  return webApi({ json: { ok: true, channel: "C0RECEIPTS", ts, message: { type: "message", text: (req.json as { text?: unknown } | undefined)?.text, ts } } });
});
after(() => receiver.close());
beforeEach(() => receiver.clear());

/** What Slack received in this test; a body that is not JSON reads as {}, so assertions on it fail visibly. */
function seen(): Seen[] {
  return receiver.requests.map((r) => ({ method: r.method, path: r.path, headers: r.headers, body: (r.json ?? {}) as Record<string, unknown>, ts: issued.get(r.index) }));
}

function apiTarget(options: Record<string, unknown> = {}, state: TargetStateStore = memoryTargetState()): Target {
  const config = targetSchema.parse({ name: "team", type: "slack", token, channel: "#receipts", apiUrl: api, ...options });
  return createTargets([config], { stateFor: () => state }).get("team")!;
}

async function sendError(target: Target, n: Notification = notification()): Promise<TargetError> {
  return (await failureOf(target.send(target.render(n)))) ?? assert.fail("expected the send to fail");
}

describe("slack Web API: posting", () => {
  it("posts chat.postMessage with the bearer token and the documented body", async () => {
    const t = apiTarget({ username: "mailbell", icon_emoji: ":bell:", icon_url: "https://example.test/i.png" });
    await t.send(t.render(notification()));
    assert.equal(seen().length, 1);
    const [req] = seen();
    assert.equal(req!.method, "POST");
    assert.equal(req!.path, "/api/chat.postMessage");
    assert.equal(req!.headers.authorization, `Bearer ${token}`);
    assert.equal(req!.headers["content-type"], "application/json; charset=utf-8");
    assert.deepEqual(Object.keys(req!.body).sort(), ["blocks", "channel", "icon_emoji", "icon_url", "text", "unfurl_links", "unfurl_media", "username"]);
    assert.equal(req!.body.channel, "#receipts");
    assert.equal(req!.body.text, "*New:* &lt;@U1&gt; &amp; &lt;https://evil|x&gt;");
    assert.equal(req!.body.unfurl_links, false);
    assert.equal(req!.body.unfurl_media, false);
    assert.equal(req!.body.username, "mailbell");
    const blocks = req!.body.blocks as { type: string }[];
    assert.deepEqual(blocks.map((b) => b.type), ["section", "context"]);
  });

  it("a trailing slash on apiUrl and the optional keys left out", async () => {
    const t = apiTarget({ apiUrl: `${api}/` });
    await t.send(t.render(notification()));
    assert.equal(seen()[0]!.path, "/api/chat.postMessage");
    assert.deepEqual(Object.keys(seen()[0]!.body).sort(), ["blocks", "channel", "text", "unfurl_links", "unfurl_media"]);
  });

  it("posts to the configured channel even if the queued row named another", async () => {
    const t = apiTarget();
    const payload = t.render(notification());
    const old = { ...(JSON.parse(payload.body) as Record<string, unknown>), channel: "#old" };
    await t.send({ contentType: payload.contentType, body: JSON.stringify(old) });
    assert.equal(seen()[0]!.body.channel, "#receipts");
  });

  it("paces at one message per second with a small burst", () => {
    assert.deepEqual(apiTarget().defaultPacing, { perSecond: 1, burst: 3 });
  });

  it("renders a digest with the same body shape", async () => {
    const t = apiTarget();
    const entry = { rule: "r", subject: "s", summary: "one &amp; two", body: t.render(notification()).body };
    await t.send(t.renderDigest([entry], 3));
    assert.equal(seen()[0]!.body.channel, "#receipts");
    assert.match(String(seen()[0]!.body.text), /^\*3 mails\*.*\n• one &amp; two\n…and 2 more$/s);
  });
});

describe("slack Web API: errors", () => {
  const retryable = ["ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"];
  const final = [
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "msg_too_long",
    "no_text",
    "invalid_blocks",
    "invalid_arguments",
    "restricted_action",
    "thread_not_found",
    "something_slack_adds_later",
  ];
  const cases = [...retryable.map((error) => ({ error, retryable: true })), ...final.map((error) => ({ error, retryable: false }))];
  for (const c of cases) {
    it(`HTTP 200 ok:false "${c.error}" is ${c.retryable ? "retryable" : "final"}`, async () => {
      receiver.reply(webApi({ json: { ok: false, error: c.error } }));
      const err = await sendError(apiTarget());
      assert.equal(err.retryable, c.retryable);
      assert.equal(err.status, 200);
      assert.match(err.message, new RegExp(`^target "team" \\(${api}/chat\\.postMessage\\) answered ok:false "${c.error}"`));
      assert.equal(err.message.endsWith("; will retry."), c.retryable);
      assert.ok(!err.message.includes(token.slice(5)), "the token stays out of messages");
    });
  }

  it("HTTP 429 with Retry-After is retryable and carries the wait", async () => {
    receiver.reply(webApi({ status: 429, headers: { "retry-after": "30" }, json: { ok: false, error: "ratelimited" } }));
    const err = await sendError(apiTarget());
    assert.equal(err.retryable, true);
    assert.equal(err.status, 429);
    assert.equal(err.retryAfterSeconds, 30);
    assert.match(err.message, /answered 429: ratelimited; will retry\./);
  });

  const httpCases = [
    { status: 500, json: { ok: false, error: "internal_error" }, retryable: true, shows: "500: internal_error" },
    { status: 503, raw: "<html>Service Unavailable</html>", retryable: true, shows: "503: <html>Service Unavailable</html>" },
    { status: 404, json: { ok: false, error: "unknown_method" }, retryable: false, shows: "404: unknown_method" },
  ];
  for (const c of httpCases) {
    it(`HTTP ${c.status} is ${c.retryable ? "retryable" : "final"}`, async () => {
      receiver.reply(webApi({ status: c.status, json: c.json, raw: c.raw }));
      const err = await sendError(apiTarget());
      assert.equal(err.retryable, c.retryable);
      assert.ok(err.message.includes(`answered ${c.shows}`), err.message);
    });
  }

  it("a 200 that is not the Web API's JSON is retried", async () => {
    receiver.reply(webApi({ raw: "" }));
    const err = await sendError(apiTarget());
    assert.equal(err.retryable, true);
    assert.match(err.message, /without the Web API's JSON reply \(empty\); will retry/);
  });

  it("names the scope Slack says is missing and Slack's own explanation", async () => {
    receiver.reply(webApi({ json: { ok: false, error: "missing_scope", needed: "chat:write", provided: "channels:read" } }));
    assert.match((await sendError(apiTarget())).message, /needed: chat:write/);
    receiver.reply(webApi({ json: { ok: false, error: "invalid_blocks", response_metadata: { messages: ["[ERROR] must be more than 0 characters [json-pointer:/blocks/0/text]"] } } }));
    assert.match((await sendError(apiTarget())).message, /must be more than 0 characters/);
    receiver.reply(webApi({ json: { ok: false, error: "not_in_channel" } }));
    assert.match((await sendError(apiTarget())).message, /\/invite/);
  });

  it("ok:true without ts still counts as delivered", async () => {
    receiver.reply(webApi({ json: { ok: true, warning: "missing_charset" } }));
    const t = apiTarget({ thread: true });
    await t.send(t.render(notification()));
  });
});

describe("slack Web API: threads", () => {
  /** Sends one notification and returns what Slack received for it. */
  async function post(t: Target, n: Notification): Promise<Seen[]> {
    const before = seen().length;
    await t.send(t.render(n));
    return seen().slice(before);
  }

  it("carries the thread key beside the body, never in it, and never sends it", async () => {
    const t = apiTarget({ thread: true });
    const payload = t.render(notification({ total: total("2026-11") }));
    assert.equal(payload.thread, "receipts/2026-11");
    assert.equal((JSON.parse(payload.body) as Record<string, unknown>)[threadField], undefined);
    assert.equal(t.render(notification()).thread, "receipts");
    assert.equal(apiTarget().render(notification()).thread, undefined, "no key without thread: true");
    const [req] = await post(t, notification({ total: total("2026-11") }));
    assert.equal(req!.body[threadField], undefined);
    assert.equal(req!.body.thread_ts, undefined);
  });

  it("follow-ups of one rule and period reply to the first; a new period or rule starts its own thread", async () => {
    const state = memoryTargetState();
    const t = apiTarget({ thread: true }, state);
    const steps: { n: Notification; parentOf?: number }[] = [
      { n: notification({ total: total("2026-11") }) },
      { n: notification({ total: total("2026-11") }), parentOf: 0 },
      { n: notification({ total: total("2026-11") }), parentOf: 0 },
      { n: notification({ total: total("2026-12") }) },
      { n: notification({ total: total("2026-12") }), parentOf: 3 },
      { n: notification({ rule: "alerts" }) },
      { n: notification({ rule: "alerts" }), parentOf: 5 },
      { n: notification({ total: total("2026-11") }), parentOf: 0 },
    ];
    const posted: Seen[] = [];
    for (const step of steps) {
      const reqs = await post(t, step.n);
      assert.equal(reqs.length, 1);
      posted.push(reqs[0]!);
    }
    steps.forEach((step, i) => {
      assert.equal(posted[i]!.body.thread_ts, step.parentOf === undefined ? undefined : posted[step.parentOf]!.ts, `send #${i}`);
    });
    assert.equal(state.get("thread:#receipts:receipts/2026-11"), posted[0]!.ts);
    assert.equal(state.get("thread:#receipts:receipts/2026-12"), posted[3]!.ts);
    assert.equal(state.get("thread:#receipts:alerts"), posted[5]!.ts);
  });

  it("a mail whose amount is missing still joins its period's thread", async () => {
    const state = memoryTargetState();
    const t = apiTarget({ thread: true }, state);
    const [first] = await post(t, notification({ total: total("2026-11") }));
    const [missing] = await post(t, notification({ total: null, period: "2026-11" }));
    assert.equal(missing!.body.thread_ts, first!.ts);
  });

  it("the thread survives a restart (a new target on the same state) and a channel change starts a new one", async () => {
    const state = memoryTargetState();
    const [first] = await post(apiTarget({ thread: true }, state), notification());
    const [again] = await post(apiTarget({ thread: true }, state), notification());
    assert.equal(again!.body.thread_ts, first!.ts);
    const [moved] = await post(apiTarget({ thread: true, channel: "C0OTHER" }, state), notification());
    assert.equal(moved!.body.channel, "C0OTHER");
    assert.equal(moved!.body.thread_ts, undefined);
  });

  for (const gone of ["thread_not_found", "message_not_found"]) {
    it(`${gone} for a saved parent starts a new thread instead of failing`, async () => {
      const state = memoryTargetState();
      state.set("thread:#receipts:receipts", "1600000000.000001");
      const t = apiTarget({ thread: true }, state);
      receiver.reply(webApi({ json: { ok: false, error: gone } }));
      const reqs = await post(t, notification());
      assert.equal(reqs.length, 2);
      assert.equal(reqs[0]!.body.thread_ts, "1600000000.000001");
      assert.equal(reqs[1]!.body.thread_ts, undefined);
      assert.equal(state.get("thread:#receipts:receipts"), reqs[1]!.ts);
      const [next] = await post(t, notification());
      assert.equal(next!.body.thread_ts, reqs[1]!.ts);
    });
  }

  it("other refusals of a reply are not retried without the thread", async () => {
    const state = memoryTargetState();
    state.set("thread:#receipts:receipts", "1600000000.000001");
    receiver.reply(webApi({ json: { ok: false, error: "is_archived" } }));
    const err = await sendError(apiTarget({ thread: true }, state));
    assert.equal(err.retryable, false);
    assert.equal(seen().length, 1);
    assert.equal(state.get("thread:#receipts:receipts"), "1600000000.000001");
  });

  it("a failed first message saves nothing, so the next one is the parent", async () => {
    const state = memoryTargetState();
    const t = apiTarget({ thread: true }, state);
    receiver.reply(webApi({ json: { ok: false, error: "internal_error" } }));
    await sendError(t);
    assert.equal(state.get("thread:#receipts:receipts"), undefined);
    const [req] = await post(t, notification());
    assert.equal(req!.body.thread_ts, undefined);
    assert.equal(state.get("thread:#receipts:receipts"), req!.ts);
  });

  it("a state store that fails to save does not fail the delivered message", async () => {
    const broken: TargetStateStore = {
      get: () => undefined,
      set: () => {
        throw new Error("disk full");
      },
    };
    const t = apiTarget({ thread: true }, broken);
    await t.send(t.render(notification()));
    assert.equal(seen().length, 1);
  });

  it("rows queued with a thread key post top-level once thread is turned off", async () => {
    const state = memoryTargetState();
    state.set("thread:#receipts:receipts", "1600000000.000001");
    const queued = apiTarget({ thread: true }, state).render(notification());
    await apiTarget({}, state).send(queued);
    assert.equal(seen()[0]!.body.thread_ts, undefined);
    assert.equal(seen()[0]!.body[threadField], undefined);
  });

  it("a digest joins a thread only when all its rows share it", () => {
    const t = apiTarget({ thread: true });
    const entry = (n: Notification): DigestEntry => {
      const payload = t.render(n);
      return { rule: n.rule, subject: n.subject, summary: "x", body: payload.body, thread: payload.thread };
    };
    const nov = entry(notification({ total: total("2026-11") }));
    const dec = entry(notification({ total: total("2026-12") }));
    // A row queued before schema 7: its key inside its stored body.
    const novQueuedBefore = { ...nov, thread: undefined, body: JSON.stringify({ ...(JSON.parse(nov.body) as object), [threadField]: "receipts/2026-11" }) };
    const key = (entries: DigestEntry[]) => t.renderDigest(entries, entries.length).thread;
    assert.equal(key([nov, nov]), "receipts/2026-11");
    assert.equal(key([nov, dec]), undefined);
    assert.equal(key([nov, novQueuedBefore]), "receipts/2026-11");
    assert.equal(key([nov, { ...nov, thread: undefined, body: "not json" }]), undefined);
  });

  it("a row queued before schema 7, its key inside its body, joins its thread and the key is not sent", async () => {
    const state = memoryTargetState();
    const t = apiTarget({ thread: true }, state);
    const [first] = await post(t, notification());
    const rendered = t.render(notification());
    const queuedBefore = { contentType: rendered.contentType, body: JSON.stringify({ ...(JSON.parse(rendered.body) as object), [threadField]: "receipts" }) };
    await t.send(queuedBefore);
    const req = seen().at(-1)!;
    assert.equal(req.body.thread_ts, first!.ts);
    assert.equal(req.body[threadField], undefined);
  });
});

describe("slack webhook mode next to the Web API", () => {
  it("strips a thread key left in a row queued under the Web API before schema 7", async () => {
    const rendered = apiTarget({ thread: true }).render(notification());
    const queued = { contentType: rendered.contentType, body: JSON.stringify({ ...(JSON.parse(rendered.body) as object), [threadField]: "receipts" }) };
    const hook = createTargets([targetSchema.parse({ name: "hook", type: "slack", url: receiver.url("/services/T/B/x") })]).get("hook")!;
    await hook.send(queued);
    assert.equal(seen()[0]!.path, "/services/T/B/x");
    assert.equal(seen()[0]!.body[threadField], undefined);
    assert.equal(seen()[0]!.headers.authorization, undefined);
  });
});

describe("slack config", () => {
  const issues = (entry: Record<string, unknown>) => {
    const r = slackSchema.safeParse({ name: "team", type: "slack", ...entry });
    assert.ok(!r.success, "expected a config error");
    return r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
  };
  const cases: { what: string; entry: Record<string, unknown>; path: string; message: RegExp }[] = [
    { what: "both url and token", entry: { url: "https://hooks.slack.com/services/T/B/x", token, channel: "#c" }, path: "", message: /either url .* or token .* not both/ },
    { what: "neither url nor token", entry: { channel: "#c" }, path: "", message: /give url .* or token/ },
    { what: "token without channel", entry: { token }, path: "channel", message: /is required with token/ },
    { what: "thread with url", entry: { url: "https://hooks.slack.com/services/T/B/x", thread: true }, path: "thread", message: /needs token \+ channel/ },
    { what: "apiUrl with url", entry: { url: "https://hooks.slack.com/services/T/B/x", apiUrl: "https://slack.com/api" }, path: "apiUrl", message: /is for the Web API/ },
    { what: "a webhook URL as token", entry: { token: "https://hooks.slack.com/services/T/B/x", channel: "#c" }, path: "token", message: /goes in url/ },
    { what: "an app-level token", entry: { token: "xapp-1-A1-123-abc", channel: "#c" }, path: "token", message: /xoxb-/ },
    { what: "a Bearer prefix", entry: { token: `Bearer ${token}`, channel: "#c" }, path: "token", message: /without spaces/ },
    { what: "thread not a boolean", entry: { token, channel: "#c", thread: "yes" }, path: "thread", message: /boolean/ },
  ];
  for (const c of cases) {
    it(`rejects ${c.what}`, () => {
      const found = issues(c.entry);
      assert.ok(
        found.some((i) => i.path === c.path && c.message.test(i.message)),
        JSON.stringify(found),
      );
    });
  }

  it("accepts the Web API form and the webhook form, with nothing added by default", () => {
    const api = slackSchema.parse({ name: "team", type: "slack", token, channel: "C0123456789", thread: true });
    assert.equal(api.token, token);
    assert.equal(api.url, undefined);
    const hook = slackSchema.parse({ name: "team", type: "slack", url: "https://hooks.slack.com/services/T/B/x" });
    assert.equal(hook.thread, undefined);
    assert.equal(hook.apiUrl, undefined);
  });

  it("the config loader reports the mix-up through the target union", () => {
    const r = targetSchema.safeParse({ name: "team", type: "slack", url: "https://hooks.slack.com/services/T/B/x", token, channel: "#c" });
    assert.ok(!r.success);
    assert.match(r.error.issues[0]!.message, /url .* token/);
  });

  it("marks token as a secret", () => {
    assert.deepEqual([...slackModule.secrets].sort(), ["token", "url"]);
  });
});

describe("slack one-line URL form", () => {
  const parse = (url: string) => slackModule.fromUrl(new URL(url));
  const cases: { url: string; expect: Record<string, unknown> }[] = [
    { url: `slack://${token}/#receipts`, expect: { token, channel: "#receipts" } },
    { url: `slack://${token}/#receipts?thread=yes`, expect: { token, channel: "#receipts", thread: true } },
    { url: `slack://${token}/%23receipts?thread=no&icon_emoji=:bell:`, expect: { token, channel: "#receipts", thread: false, icon_emoji: ":bell:" } },
    { url: `slack://bot@${token}/C0123456789`, expect: { token, channel: "C0123456789", username: "bot" } },
    { url: "slack://xoxp-1-2-3-abc/#general?username=me", expect: { token: "xoxp-1-2-3-abc", channel: "#general", username: "me" } },
    { url: "slack://T_000/B_000/X_XXX/#receipts", expect: { url: "https://hooks.slack.com/services/T_000/B_000/X_XXX", channel: "#receipts" } },
  ];
  for (const c of cases) {
    it(`reads ${c.url.replace(token, "xoxb-…")}`, () => assert.deepEqual(parse(c.url), c.expect));
  }

  const bad: { url: string; message: RegExp }[] = [
    { url: `slack://${token}`, message: /slack:\/\/xoxb-…\/#channel .*the channel is missing/ },
    { url: `slack://${token}/C1/C2`, message: /got 2 channels/ },
    { url: `slack://${token}/#c?thread=maybe`, message: /thread=yes or thread=no/ },
    { url: "slack://xoxz-1/#c", message: /TokenA\/TokenB\/TokenC.*slack:\/\/xoxb-…\/#channel/ },
  ];
  for (const c of bad) {
    it(`rejects ${c.url.replace(token, "xoxb-…")}`, () => assert.throws(() => parse(c.url), (err: unknown) => err instanceof TargetUrlError && c.message.test(err.message)));
  }

  it("expands through the config schema into a Web API target", () => {
    const r = targetSchema.safeParse({ name: "team", url: `slack://${token}/#receipts?thread=yes` });
    assert.ok(r.success, JSON.stringify(r.error?.issues));
    assert.equal((r.data as { token?: string }).token, token);
    assert.equal((r.data as { thread?: boolean }).thread, true);
  });

  it("?thread=yes on a webhook URL is a config error", () => {
    const r = targetSchema.safeParse({ name: "team", url: "slack://T_000/B_000/X_XXX?thread=yes" });
    assert.ok(!r.success);
    assert.match(r.error.issues[0]!.message, /needs token \+ channel/);
  });
});

describe("slack Web API: escaping and masking", () => {
  it("escapes mail content with escapeSlack in text, blocks and context", () => {
    const t = apiTarget();
    const n = notification({ render: (e) => `Bill from ${e("<!here> A&B")}` });
    const body = JSON.parse(t.render(n).body) as { text: string; blocks: { text?: { text: string }; elements?: { text: string }[] }[] };
    assert.equal(body.text, `Bill from ${escapeSlack("<!here> A&B")}`);
    assert.equal(body.text, "Bill from &lt;!here&gt; A&amp;B");
    assert.equal(body.blocks[0]!.text!.text, body.text);
    assert.equal(body.blocks[1]!.elements![0]!.text, "*From:* Eve &lt;eve@evil.example&gt;  ·  *Subject:* &lt;!channel&gt; hi &amp; bye");
  });

  it("describe() shows the token's first characters only", () => {
    const d = apiTarget({ thread: true }).describe();
    assert.ok(!d.includes(token.slice(5)), d);
    assert.match(d, /^slack Web API token xoxb\*\*\*\* channel #receipts \(threads per rule and period\) via http:\/\/127\.0\.0\.1:\d+$/);
    const plain = createTargets([targetSchema.parse({ name: "t", type: "slack", token, channel: "#c" })]).get("t")!.describe();
    assert.equal(plain, "slack Web API token xoxb**** channel #c");
  });

  it("a token from the one-line form prints masked", () => {
    const [t] = createTargets([targetSchema.parse({ name: "team", url: `slack://${token}/#receipts` })]).values();
    assert.ok(!t!.describe().includes(token.slice(5)));
  });
});
