import { z } from "zod";
import { maskUrl, postPayload, summarize } from "./http.ts";
import { httpUrl, query, segments, targetBase, TargetUrlError, type TargetModule } from "./module.ts";
import { ServiceTarget } from "./service.ts";
import { httpLink, notificationForPeople, truncate } from "./text.ts";
import type { DigestEntry, Notification, SendOptions, TargetPayload } from "./types.ts";

const bareUrl = /https?:\/\/[^\s<]+[^<.,:;"')\]\s]/g;

/**
 * Makes mail text literal in an Adaptive Card TextBlock, whose markdown subset is emphasis (* _),
 * links [text](url) and lists (- 1.) at the start of a line. Teams clients do not agree on
 * backslash escapes (the shared C++ renderer on mobile honours them only before * and _), so the
 * escapes are chosen to break the syntax even where the backslash itself is shown: `\]\(` can
 * never be the `](` a link needs. Bare URLs stay clickable — their visible text is their target —
 * with the markdown characters in them percent-encoded, which means the same to a web server.
 */
export function escapeTeams(text: string): string {
  let out = "";
  let last = 0;
  for (const m of text.matchAll(bareUrl)) {
    out += escapeMarkdown(text.slice(last, m.index));
    out += m[0].replace(/[()[\]*_~`\\]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
    last = m.index + m[0].length;
  }
  return out + escapeMarkdown(text.slice(last));
}

function escapeMarkdown(text: string): string {
  return text
    .replace(/[\\*_[\]()`~]/g, "\\$&")
    .replace(/^([^\S\n]*)([#>+-])/gm, "$1\\$2")
    .replace(/^([^\S\n]*\d+)\./gm, "$1\\.");
}

// Office 365 connector webhooks (…webhook.office.com/webhookb2/…) stopped working when
// Microsoft retired connectors; their payload (MessageCard) is not what Workflows takes either.
const retiredConnector = /(^|\.)webhook\.office\.com$|^outlook\.office(365)?\.com$/i;

export const teamsSchema = z.strictObject({
  ...targetBase,
  type: z.literal("teams"),
  url: httpUrl("the Workflows webhook URL (in Teams: channel … → Workflows → \"Post to a channel when a webhook request is received\"; it ends in …&sig=…)").refine(
    (u) => !URL.canParse(u) || !retiredConnector.test(new URL(u).hostname),
    "this is an Office 365 connector URL, and Microsoft retired those; create a Workflows webhook (channel … → Workflows → \"Post to a channel when a webhook request is received\") and use its URL",
  ),
});
export type TeamsTargetConfig = z.infer<typeof teamsSchema>;

type Block = Record<string, unknown>;

export class TeamsWorkflowTarget extends ServiceTarget<TeamsTargetConfig> {
  constructor(config: TeamsTargetConfig) {
    super(teamsModule, config);
  }

  render(notification: Notification): TargetPayload {
    const n = notificationForPeople(notification);
    const title = this.fit("title", escapeTeams(n.subject || "(no subject)"));
    let text = this.ruleText(notification).trim() || "(empty message)";
    const facts = [{ title: "From", value: this.fit("fact", escapeTeams(n.from || "(unknown sender)")) }];
    // Field names come from the rule's config, not the mail.
    for (const [name, field] of Object.entries(n.fields)) facts.push({ title: name, value: this.fit("fact", escapeTeams(field ? field.text || "(empty)" : `[${name} missing]`)) });
    const link = httpLink(n.link);
    const actions = link ? [{ type: "Action.OpenUrl", title: "Open mail", url: link }] : undefined;
    const build = () =>
      card(
        [
          { type: "TextBlock", text: title, weight: "Bolder", size: "Medium", wrap: true },
          { type: "TextBlock", text, wrap: true },
          { type: "FactSet", facts },
        ],
        actions,
      );
    const maxBytes = this.limit("cardBytes");
    let body = build();
    // Shrink the message first, then drop trailing facts: each pass removes at least the excess.
    while (Buffer.byteLength(body) > maxBytes) {
      const excess = Buffer.byteLength(body) - maxBytes;
      if (text.length > 200) text = truncate(text, Math.max(200, text.length - excess - 1));
      else if (facts.length > 1) facts.pop();
      else break;
      body = build();
    }
    return { contentType: "application/json; charset=utf-8", body };
  }

  renderDigest(entries: readonly DigestEntry[], total: number): TargetPayload {
    const heading = { type: "TextBlock", text: `**${total} mails** (sent as one message to stay within Teams' rate limit)`, wrap: true };
    for (let k = entries.length; k >= 0; k--) {
      const more = total - k;
      const lines: Block[] = entries.slice(0, k).map((e) => ({ type: "TextBlock", text: `• ${e.summary}`, wrap: true, spacing: "Small" }));
      if (more > 0) lines.push({ type: "TextBlock", text: `…and ${more} more`, wrap: true, spacing: "Small", isSubtle: true });
      const body = card([heading, ...lines]);
      if (Buffer.byteLength(body) <= this.limit("cardBytes") || k === 0) return { contentType: "application/json; charset=utf-8", body };
    }
    throw new Error("unreachable");
  }

  // A Workflows trigger takes no idempotency key: a resend after a lost 202 posts twice. The 202
  // is all a trigger ever says (the flow runs after it), so the status decides.
  async send(payload: TargetPayload, options: SendOptions = {}): Promise<void> {
    await postPayload(payload, {
      target: this.name,
      url: this.config.url,
      maskedUrl: maskUrl(this.config.url),
      signal: options.signal,
      describeError: describeWorkflowsError,
    });
  }
}

function card(body: Block[], actions?: Block[]): string {
  const content: Record<string, unknown> = {
    $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
    type: "AdaptiveCard",
    version: "1.4",
    body,
    msteams: { width: "Full" },
  };
  if (actions) content.actions = actions;
  return JSON.stringify({ type: "message", attachments: [{ contentType: "application/vnd.microsoft.card.adaptive", contentUrl: null, content }] });
}

const hints: Record<number, string> = {
  400: "the flow did not accept the card; check the flow's trigger still expects a Teams webhook (adaptive card) payload",
  401: "the URL's signature (sig=) is wrong, or the flow's trigger no longer lets anyone with the URL run it; copy the URL again from the flow's trigger",
  403: "the URL's signature (sig=) is wrong, or the flow's trigger no longer lets anyone with the URL run it; copy the URL again from the flow's trigger",
  404: "the flow was deleted or the URL is wrong; create a Workflows webhook again and update url",
  409: "the flow is turned off; turn it on in Teams → Workflows (or Power Automate)",
  413: "the card is larger than Teams accepts",
};

/** Power Automate answers errors as `{"error": {"code": "…", "message": "…"}}`. */
function describeWorkflowsError(status: number, body: string): string {
  let reason = summarize(body, 150);
  try {
    const e = (JSON.parse(body) as { error?: { code?: string; message?: string } }).error;
    if (e?.code || e?.message) reason = summarize([e.code, e.message].filter(Boolean).join(": "), 200);
  } catch {
    // not JSON: keep the text
  }
  const hint = hints[status];
  return [reason, hint].filter(Boolean).join("; ");
}

/**
 * Two one-line forms, both `workflows://` (or `workflow://`, as Apprise accepts):
 * - Apprise's short form `workflows://{host}[:{port}]/{workflow_id}/{signature}[?pa=yes&ver=…]`,
 *   rebuilt into …/workflows/{id}/triggers/manual/paths/invoke?api-version=…&sig=… (pa=yes adds
 *   the /powerautomate/automations/direct prefix);
 * - the whole webhook URL with `https` replaced by `workflows`, taken as is — the form to use for
 *   URLs Apprise's rebuild does not match (e.g. *.environment.api.powerplatform.com).
 */
export const teamsModule: TargetModule<TeamsTargetConfig> = {
  type: "teams",
  schemes: ["workflows", "workflow"],
  schema: teamsSchema,
  secrets: ["url"],
  // Teams throttles a webhook sending more than 4 requests in a second, and the Workflows Teams
  // connector allows about 100 calls a minute per connection: 1/s with bursts of 4 fits both.
  pacing: { perSecond: 1, burst: 4 },
  concurrency: 1,
  // Teams documents about 28 KB per message, counted on what Teams builds from the card; the JSON
  // we send (cardBytes, in UTF-8 bytes) is kept well under that so its own wrapping still fits.
  limits: { summary: 300, title: 500, fact: 1000, cardBytes: 24 * 1024 },
  escape: escapeTeams,
  describe: (c) => `teams (Workflows) ${maskUrl(c.url)}`,
  fromUrl(url) {
    const shape =
      "a Teams URL is workflows://{host}/{workflow_id}/{signature} (Apprise's form), or the Workflows webhook URL with https:// replaced by workflows:// (workflows://{host}/…/paths/invoke?api-version=…&sig=…)";
    const host = url.hostname;
    if (!host) throw new TargetUrlError(`${shape}; the host is missing`);
    const authority = `https://${host}${url.port ? `:${url.port}` : ""}`;
    const parts = segments(url);
    const q = query(url);
    if (parts.length > 2) {
      if (!q.sig) throw new TargetUrlError(`${shape}; this one has no sig= parameter, which carries the webhook's signature — copy the whole URL from the flow's trigger`);
      return { url: new URL(`${authority}${url.pathname}${url.search}`).href };
    }
    const [workflow, signature = q.sig] = parts;
    if (!workflow || !signature || !/^[\w-]+$/.test(workflow) || !/^[\w-]+$/.test(signature)) throw new TargetUrlError(shape);
    const powerAutomate = /^(1|yes|true|on)$/i.test(q.pa ?? q.powerautomate ?? "");
    const version = q.ver ?? q["api-version"] ?? (powerAutomate ? "2022-03-01-preview" : "2016-06-01");
    const target = new URL(`${authority}${powerAutomate ? "/powerautomate/automations/direct" : ""}/workflows/${workflow}/triggers/manual/paths/invoke`);
    target.searchParams.set("api-version", version);
    target.searchParams.set("sp", "/triggers/manual/run");
    target.searchParams.set("sv", "1.0");
    target.searchParams.set("sig", signature);
    return { url: target.href };
  },
  create: (config) => new TeamsWorkflowTarget(config),
};
