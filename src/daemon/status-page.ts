import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

/**
 * The status page: a static shell (HTML, CSS, one script) that reads /status.json every few
 * seconds and draws it. Nothing from a mail is ever in the HTML: the script puts every value in
 * with textContent, so a subject like `<img src=x onerror=…>` is shown as text. The chart library
 * (uPlot) is read from node_modules at start and served by mailbell, so the page works offline.
 */

export interface PageAsset {
  contentType: string;
  body: string;
}

/** Served paths, relative to the page, so it also works behind a reverse proxy under a prefix. */
export type PageAssets = Record<"/" | "/status.css" | "/status.js" | "/uplot.js" | "/uplot.css", PageAsset>;

/**
 * No inline script or style at all, and nothing from elsewhere: the page may only load its own
 * files and fetch its own JSON. (uPlot sizes its elements through the style property, which CSP
 * allows; it writes no style attributes or elements.)
 */
export const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const require = createRequire(import.meta.url);

export async function loadPageAssets(): Promise<PageAssets> {
  const [uplotJs, uplotCss] = await Promise.all([readFile(require.resolve("uplot/dist/uPlot.iife.min.js"), "utf8"), readFile(require.resolve("uplot/dist/uPlot.min.css"), "utf8")]);
  return {
    "/": { contentType: "text/html; charset=utf-8", body: pageHtml },
    "/status.css": { contentType: "text/css; charset=utf-8", body: pageCss },
    "/status.js": { contentType: "text/javascript; charset=utf-8", body: pageScript },
    "/uplot.js": { contentType: "text/javascript; charset=utf-8", body: uplotJs },
    "/uplot.css": { contentType: "text/css; charset=utf-8", body: uplotCss },
  };
}

const pageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mailbell status</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="uplot.css">
<link rel="stylesheet" href="status.css">
<script src="uplot.js" defer></script>
<script src="status.js" defer></script>
</head>
<body>
<header><h1>mailbell</h1><p id="summary">loading…</p></header>
<form id="login" hidden>
  <p>This status page needs the token set as <code>status.token</code> in mailbell's config.</p>
  <p id="login-error"></p>
  <label>Token <input id="token" type="password" autocomplete="current-password" required></label>
  <button type="submit">Show status</button>
</form>
<main id="status" hidden>
<section><h2>Mailboxes</h2>
<table id="mailboxes"><thead><tr><th>Account</th><th>Mailbox</th><th>Connected</th><th>Why</th><th>Last event</th><th>Checkpoint</th><th>Reconnects</th></tr></thead><tbody></tbody></table>
</section>
<section><h2>Outbox</h2>
<table id="outbox"><thead><tr><th>Target</th><th>Waiting</th><th>Dead</th><th>Sent</th><th>Oldest waiting</th></tr></thead><tbody></tbody></table>
</section>
<section><h2>Latest notifications</h2>
<table id="notifications"><thead><tr><th>Time</th><th>Rule</th><th>Subject</th><th>Target</th><th>Outcome</th></tr></thead><tbody></tbody></table>
</section>
<section><h2>Totals</h2><div id="totals"></div></section>
</main>
</body>
</html>
`;

const pageCss = `body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem 2rem; color: #1d1d1f; background: #fff; }
h1 { margin: 0; font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; } h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
header { display: flex; gap: 1rem; align-items: baseline; }
table { border-collapse: collapse; } th, td { text-align: left; padding: .2rem .7rem .2rem 0; border-bottom: 1px solid #ddd; vertical-align: top; }
td.num, th.num { text-align: right; } .bad { color: #b00020; } .good { color: #1b7f3b; } .muted { color: #777; }
.total { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
#login { max-width: 32rem; padding: 1rem; border: 1px solid #ccc; } #login-error { color: #b00020; }
`;

/** Plain browser JavaScript (no template literals, so this string needs no escaping). */
const pageScript = `"use strict";
(function () {
  var tokenKey = "mailbell.status.token";
  var refreshMs = 5000;
  var charts = new Map();

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (cell) { tr.appendChild(cell instanceof Node ? cell : el("td", cell)); });
    return tr;
  }
  function num(value) { return el("td", value, "num"); }
  function fill(id, rows, empty, columns) {
    var body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    rows.forEach(function (r) { body.appendChild(r); });
    if (rows.length === 0) { var td = el("td", empty, "muted"); td.colSpan = columns; body.appendChild(row([td])); }
  }
  function ago(ms, now) {
    if (ms === null || ms === undefined) return "never";
    var s = Math.max(0, Math.round((now - ms) / 1000));
    if (s < 120) return s + " s ago";
    if (s < 7200) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }
  function time(ms) { return new Date(ms).toLocaleString(); }
  function timed(ms, now) { var td = el("td", ago(ms, now)); if (ms) td.title = new Date(ms).toISOString(); return td; }

  function renderMailboxes(view) {
    fill("mailboxes", view.mailboxes.map(function (m) {
      var connected = el("td", m.connected ? "yes" : "no (" + m.state + ")", m.connected ? "good" : "bad");
      var why = m.reason || (m.lastError ? "last error: " + m.lastError : "");
      var cp = m.checkpoint ? "UIDVALIDITY " + m.checkpoint.uidValidity + ", UID " + m.checkpoint.lastUid : "none yet";
      return row([el("td", m.account), el("td", m.mailbox), connected, el("td", why, m.healthy ? "" : "bad"), timed(m.lastEventAt, view.generatedAt), el("td", cp), num(m.reconnects)]);
    }), "no mailboxes configured", 7);
  }
  function renderOutbox(view) {
    fill("outbox", view.outbox.map(function (o) {
      return row([el("td", o.target), num(o.waiting), el("td", o.dead, o.dead > 0 ? "num bad" : "num"), num(o.sent), o.oldestWaitingAt === null ? el("td", "—", "muted") : timed(o.oldestWaitingAt, view.generatedAt)]);
    }), "no targets configured", 5);
  }
  var outcomes = { done: "sent", pending: "waiting", dead: "dead (gave up)" };
  function renderNotifications(view) {
    fill("notifications", view.notifications.map(function (n) {
      var outcome = outcomes[n.state] || n.state;
      if (n.state === "pending" && n.attempts > 0) outcome = "retrying (" + n.attempts + " failed)";
      var cls = n.state === "dead" ? "bad" : n.state === "done" ? "good" : "";
      return row([el("td", time(n.updatedAt)), el("td", n.rule), el("td", n.subject), el("td", n.target), el("td", outcome, cls)]);
    }), "nothing sent yet", 5);
  }

  function drawValues(labels) {
    return function (u) {
      var ctx = u.ctx;
      var ys = u.data[1];
      ctx.save();
      ctx.font = Math.round(11 * devicePixelRatio) + "px system-ui, sans-serif";
      ctx.fillStyle = "#1d1d1f";
      ctx.textAlign = "center";
      for (var i = 0; i < ys.length; i++) {
        ctx.fillText(labels[i], u.valToPos(i, "x", true), u.valToPos(ys[i], "y", true) - 4 * devicePixelRatio);
      }
      ctx.restore();
    };
  }
  function chart(key, box, periods, currency) {
    var xs = periods.map(function (_, i) { return i; });
    var ys = periods.map(function (p) { return Number(p.amount); });
    var names = periods.map(function (p) { return p.period; });
    var amounts = periods.map(function (p) { return p.amount; });
    box.dataset.periods = names.join(" ");
    box.dataset.amounts = amounts.join(" ");
    var opts = {
      width: Math.max(260, Math.min(640, 70 * periods.length + 80)),
      height: 220,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: false, range: [-0.6, periods.length - 0.4] }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.18 : 1]; } } },
      axes: [
        { splits: function () { return xs; }, values: function (u, splits) { return splits.map(function (i) { return names[i] === undefined ? "" : names[i]; }); }, grid: { show: false } },
        { label: currency, size: 70 },
      ],
      series: [{}, { label: currency, fill: "rgba(52, 120, 246, 0.55)", stroke: "rgb(52, 120, 246)", width: 1, points: { show: false }, paths: uPlot.paths.bars({ size: [0.6, 64] }) }],
      hooks: { draw: [drawValues(amounts)] },
    };
    var old = charts.get(key);
    if (old) old.destroy();
    charts.set(key, new uPlot(opts, [xs, ys], box));
  }
  function renderTotals(view) {
    var host = document.getElementById("totals");
    var signature = JSON.stringify(view.totals);
    if (host.dataset.signature === signature) return;
    host.dataset.signature = signature;
    charts.forEach(function (c) { c.destroy(); });
    charts.clear();
    host.replaceChildren();
    if (view.totals.length === 0) host.appendChild(el("p", "no rule keeps a total", "muted"));
    view.totals.forEach(function (t) {
      var section = el("section");
      section.className = "rule-total";
      section.dataset.rule = t.rule;
      section.appendChild(el("h3", t.rule + (t.per ? " (per " + t.per + ")" : "")));
      host.appendChild(section);
      if (t.currencies.length === 0) section.appendChild(el("p", "nothing counted yet", "muted"));
      t.currencies.forEach(function (c) {
        var wrap = el("div", null, "total");
        var box = el("div", null, "chart");
        box.setAttribute("role", "img");
        box.setAttribute("aria-label", t.rule + " totals in " + c.currency);
        var table = el("table");
        table.appendChild(row([el("th", "Period"), el("th", c.currency, "num"), el("th", "Mails", "num")]));
        c.periods.forEach(function (p) { table.appendChild(row([el("td", p.period), num(p.amount), num(p.mails)])); });
        wrap.appendChild(box);
        wrap.appendChild(table);
        section.appendChild(wrap);
        chart(t.rule + "\\u0000" + c.currency, box, c.periods, c.currency);
      });
    });
  }

  function render(view) {
    var summary = document.getElementById("summary");
    var sick = view.mailboxes.filter(function (m) { return !m.healthy; }).length;
    summary.textContent = (view.healthy ? "healthy" : "unhealthy: " + sick + " of " + view.mailboxes.length + " mailboxes") + " · updated " + new Date(view.generatedAt).toLocaleTimeString();
    summary.className = view.healthy ? "good" : "bad";
    renderMailboxes(view);
    renderOutbox(view);
    renderNotifications(view);
    renderTotals(view);
    document.getElementById("status").hidden = false;
  }

  function askToken(message) {
    document.getElementById("status").hidden = true;
    document.getElementById("summary").textContent = "token needed";
    document.getElementById("login-error").textContent = message;
    document.getElementById("login").hidden = false;
    document.getElementById("token").focus();
  }

  var timer;
  async function refresh() {
    clearTimeout(timer);
    var token = sessionStorage.getItem(tokenKey);
    var headers = token ? { Authorization: "Bearer " + token } : {};
    try {
      var res = await fetch("status.json", { headers: headers, cache: "no-store" });
      if (res.status === 401) {
        sessionStorage.removeItem(tokenKey);
        askToken(token ? "That token was refused; check status.token." : "");
        return;
      }
      if (!res.ok) throw new Error("status.json answered " + res.status);
      render(await res.json());
    } catch (err) {
      var summary = document.getElementById("summary");
      summary.textContent = "cannot reach mailbell (" + err.message + "); trying again";
      summary.className = "bad";
    }
    timer = setTimeout(refresh, refreshMs);
  }

  document.getElementById("login").addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(tokenKey, document.getElementById("token").value);
    document.getElementById("token").value = "";
    document.getElementById("login").hidden = true;
    refresh();
  });
  refresh();
})();
`;
