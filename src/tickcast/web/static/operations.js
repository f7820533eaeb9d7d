// The operations page: alerts, system metrics, the pipeline, telemetry and dead letters,
// each live over its own monitoring WebSocket, each falling back to polling its
// /api/monitoring/... route while the socket cannot connect (stream.js), and each
// showing its mode. Only an operator may read them: signed out, the sockets close with
// 3503 (the routes answer 401); signed in without the operator role, with 3504 (403);
// the page then says so instead of showing panels that never fill.
//
// Sign-in is the dashboard's: an API key exchanged for a JWT at POST /api/auth/token,
// kept in this tab's sessionStorage (shared with the dashboard and the analytics page);
// the socket gets it as ?token=, the routes as Authorization: Bearer.

import { claimsOf, errorText, exchangeKey, expired, FrameBatcher, ROOT } from "./tickcast.js";
import { overallMode, showMode, StreamFeed } from "./stream.js";

const TOKEN_KEY = "tickcast.token";
const MAX_RESOLVED = 50;
const MAX_DEAD_LETTERS = 50;
const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];
/** Close codes and HTTP statuses that mean "sign in" or "not an operator". */
const NEEDS_SIGN_IN = new Set([3500, 3501, 3503, 401]);
const NOT_OPERATOR = new Set([3504, 403]);

const $ = (selector, root = document) => root.querySelector(selector);

// -- formatting

const time = new Intl.DateTimeFormat("en-US", {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});
const fixed = (digits) => new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const one = fixed(1);
const two = fixed(2);

function formatTime(timestamp) {
  const moment = new Date(timestamp);
  return Number.isNaN(moment.getTime()) ? String(timestamp ?? "—") : time.format(moment);
}

export function formatBytes(value) {
  let n = Number(value);
  if (!Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (Math.abs(n) >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${unit ? one.format(n) : Math.round(n)} ${units[unit]}`;
}

function number(value, format = two) {
  const n = Number(value);
  return Number.isFinite(n) ? format.format(n) : "—";
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/** Fill a <dl> with [term, value] pairs. */
function figures(dl, pairs) {
  const items = [];
  for (const [term, value] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.className = "num";
    dd.textContent = value;
    items.push(dt, dd);
  }
  dl.replaceChildren(...items);
}

/** Count a paint on the panel (data-updates, data-source: for the eye and the tests). */
function painted(panel, source) {
  panel.dataset.updates = String(Number(panel.dataset.updates || 0) + 1);
  panel.dataset.source = source;
  const stamp = $(".stamp", panel);
  if (stamp) stamp.textContent = `updated ${time.format(new Date())} (${source === "ws" ? "live" : "polled"})`;
}

// -- alerts: open first (by severity, newest first), then the resolved ones, greyed

export function orderAlerts(alerts) {
  const severity = (a) => {
    const i = SEVERITIES.indexOf(a.severity);
    return i < 0 ? SEVERITIES.length : i;
  };
  return [...alerts].sort(
    (a, b) =>
      Number(Boolean(a.resolved)) - Number(Boolean(b.resolved)) ||
      severity(a) - severity(b) ||
      String(b.timestamp).localeCompare(String(a.timestamp)),
  );
}

class AlertsPanel {
  constructor(panel) {
    this.panel = panel;
    this.alerts = new Map(); // id -> alert
  }

  /** Recently resolved alerts (GET ...?resolved=true), which the socket does not
   * repeat on connect: added unless a newer word on them came meanwhile. */
  addResolved(alerts) {
    if (!Array.isArray(alerts)) return;
    for (const alert of alerts) if (alert && alert.id && !this.alerts.has(alert.id)) this.alerts.set(alert.id, alert);
  }

  /** A poll (open and recently resolved: the whole state), the socket's first frame
   * (the open ones: those we hold open and it lacks were resolved meanwhile) or a change. */
  take(alerts, { source, first }) {
    if (!Array.isArray(alerts)) return;
    if (first && source === "poll") this.alerts.clear();
    if (first && source === "ws") {
      const open = new Set(alerts.map((a) => a.id));
      for (const [id, alert] of this.alerts) {
        if (!alert.resolved && !open.has(id)) this.alerts.set(id, { ...alert, resolved: true });
      }
    }
    for (const alert of alerts) if (alert && alert.id) this.alerts.set(alert.id, alert);
    const resolved = orderAlerts([...this.alerts.values()]).filter((a) => a.resolved);
    for (const old of resolved.slice(MAX_RESOLVED)) this.alerts.delete(old.id);
  }

  paint(source) {
    const rows = orderAlerts([...this.alerts.values()]).map((alert) => {
      const tr = document.createElement("tr");
      tr.dataset.id = alert.id;
      tr.dataset.severity = alert.severity;
      tr.className = alert.resolved ? "alert resolved" : "alert open";
      const severity = cell(alert.severity, "severity");
      severity.dataset.severity = alert.severity;
      tr.append(
        severity,
        cell(alert.message),
        cell(alert.source, "muted"),
        cell(formatTime(alert.timestamp), "num"),
        cell(alert.resolved ? "resolved" : "open", "state"),
      );
      return tr;
    });
    $("tbody", this.panel).replaceChildren(...rows);
    $(".empty", this.panel).hidden = rows.length > 0;
    const open = [...this.alerts.values()].filter((a) => !a.resolved).length;
    this.panel.dataset.open = String(open);
    painted(this.panel, source);
  }
}

// -- system metrics

class MetricsPanel {
  constructor(panel) {
    this.panel = panel;
    this.latest = null;
    this.previous = null;
  }

  take(metrics) {
    if (!metrics || typeof metrics !== "object") return;
    if (this.latest && this.latest.timestamp !== metrics.timestamp) this.previous = this.latest;
    this.latest = metrics;
  }

  meter(name, percentage, detail) {
    const box = $(`[data-metric="${name}"]`, this.panel);
    const n = Number(percentage);
    $("meter", box).value = Number.isFinite(n) ? n : 0;
    $(".value", box).textContent = Number.isFinite(n) ? `${one.format(n)}%` : "—";
    $(".detail", box).textContent = detail;
    box.dataset.value = String(percentage);
  }

  paint(source) {
    const m = this.latest;
    if (!m) return;
    const cores = m.cpu?.cores;
    this.meter("cpu", m.cpu?.usage, cores ? `${cores} core${cores === 1 ? "" : "s"}` : "");
    for (const name of ["memory", "disk"]) {
      const part = m[name] || {};
      this.meter(name, part.percentage, `${formatBytes(part.used)} of ${formatBytes(part.total)}`);
    }
    const network = $('[data-metric="network"]', this.panel);
    const rate = (key) => {
      const p = this.previous;
      const seconds = p ? (Date.parse(m.timestamp) - Date.parse(p.timestamp)) / 1000 : 0;
      const delta = p ? Number(m.network?.[key]) - Number(p.network?.[key]) : NaN;
      return seconds > 0 && delta >= 0 ? ` (${formatBytes(delta / seconds)}/s)` : "";
    };
    $(".in", network).textContent = `${formatBytes(m.network?.bytesIn)}${rate("bytesIn")}`;
    $(".out", network).textContent = `${formatBytes(m.network?.bytesOut)}${rate("bytesOut")}`;
    this.panel.dataset.timestamp = String(m.timestamp);
    painted(this.panel, source);
  }
}

// -- the pipeline: providers and the hub

class PipelinePanel {
  constructor(panel) {
    this.panel = panel;
    this.latest = null;
  }

  take(pipeline) {
    if (pipeline && typeof pipeline === "object") this.latest = pipeline;
  }

  paint(source) {
    const p = this.latest;
    if (!p) return;
    const rows = (p.providers || []).map((provider) => {
      const tr = document.createElement("tr");
      tr.dataset.provider = provider.name;
      tr.className = provider.active ? "active" : "";
      const state = cell(`${provider.state}${provider.active ? " · active" : ""}`, "state");
      tr.append(
        cell(provider.name),
        state,
        cell(number(provider.messages_per_s, one), "num"),
        cell(provider.last_message_age_s == null ? "—" : `${number(provider.last_message_age_s, one)} s ago`, "num"),
        cell(String(provider.dead_letters ?? "—"), "num"),
        cell(String(provider.failovers ?? "—"), "num"),
      );
      return tr;
    });
    $("#providers tbody", this.panel).replaceChildren(...rows);
    const hub = p.hub || {};
    figures($("#hub", this.panel), [
      ["Published/s", number(hub.publish_per_s, one)],
      ["Deliveries/s", number(hub.deliveries_per_s, one)],
      ["Outbox depth", String(hub.outbox_depth ?? "—")],
      ["Conflated", String(hub.conflated ?? "—")],
      ["Slow consumers closed", String(hub.slow_closes ?? "—")],
    ]);
    painted(this.panel, source);
  }
}

// -- telemetry: connections per front, rates, latency, GC

class TelemetryPanel {
  constructor(panel) {
    this.panel = panel;
    this.latest = null;
  }

  take(telemetry) {
    if (telemetry && typeof telemetry === "object") this.latest = telemetry;
  }

  paint(source) {
    const t = this.latest;
    if (!t) return;
    const connections = Object.entries(t.connections || {});
    const total = connections.filter(([front]) => front === "total");
    const rows = [...connections.filter(([front]) => front !== "total"), ...total].map(([front, n]) => {
      const tr = document.createElement("tr");
      tr.dataset.front = front;
      if (front === "total") tr.className = "total";
      tr.append(cell(front), cell(String(n), "num"));
      return tr;
    });
    $("#connections tbody", this.panel).replaceChildren(...rows);
    const latency = t.latency_ms || {};
    const gc = t.gc || {};
    figures($("#telemetry", this.panel), [
      ["Messages in/s", number(t.messages_in_per_s, one)],
      ["Messages out/s", number(t.messages_out_per_s, one)],
      ["Latency p50", `${number(latency.p50)} ms`],
      ["Latency p95", `${number(latency.p95)} ms`],
      ["Latency p99", `${number(latency.p99)} ms`],
      ["GC collections", String(gc.collections ?? "—")],
      ["GC pause total", `${number(gc.pause_ms_total)} ms`],
      ["GC pause max", `${number(gc.pause_ms_max)} ms`],
    ]);
    painted(this.panel, source);
  }
}

// -- dead letters: the newest first

class DeadLettersPanel {
  constructor(panel) {
    this.panel = panel;
    this.letters = new Map(); // id -> dead letter
  }

  take(letters, { first }) {
    if (!Array.isArray(letters)) return;
    if (first) this.letters.clear();
    for (const letter of letters) if (letter && letter.id) this.letters.set(letter.id, letter);
    const newest = [...this.letters.values()].sort((a, b) => String(b.timestamp).localeCompare(String(a.timestamp)));
    for (const old of newest.slice(MAX_DEAD_LETTERS)) this.letters.delete(old.id);
  }

  paint(source) {
    const newest = [...this.letters.values()].sort((a, b) => String(b.timestamp).localeCompare(String(a.timestamp)));
    const rows = newest.map((letter) => {
      const tr = document.createElement("tr");
      tr.dataset.id = letter.id;
      const preview = cell(letter.preview ?? "", "preview");
      preview.title = letter.preview ?? "";
      tr.append(cell(formatTime(letter.timestamp), "num"), cell(letter.source), cell(letter.reason), preview);
      return tr;
    });
    $("tbody", this.panel).replaceChildren(...rows);
    $(".empty", this.panel).hidden = rows.length > 0;
    painted(this.panel, source);
  }
}

// -- the page

const PANELS = [
  ["alerts", "#alerts-panel", AlertsPanel, "api/monitoring/alerts"],
  ["metrics", "#metrics-panel", MetricsPanel, "api/monitoring/metrics"],
  ["pipeline", "#pipeline-panel", PipelinePanel, "api/monitoring/pipeline"],
  ["telemetry", "#telemetry-panel", TelemetryPanel, "api/monitoring/telemetry"],
  ["dlq", "#dlq-panel", DeadLettersPanel, "api/monitoring/dlq"],
];

// A credential in the URL (?token=JWT or API key): taken once, then removed from the address bar.
const fromUrl = new URLSearchParams(window.location.search).get("token");
if (fromUrl !== null) {
  const url = new URL(window.location.href);
  url.searchParams.delete("token");
  window.history.replaceState(null, "", url.pathname + url.search + url.hash);
}

let token = sessionStorage.getItem(TOKEN_KEY);
if (fromUrl && !fromUrl.startsWith("tc_") && !expired(fromUrl)) {
  token = fromUrl;
  sessionStorage.setItem(TOKEN_KEY, token);
}
if (token && expired(token)) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
}

const panels = new Map();
let resolvedAsked = false;
const feeds = new Map();
const batcher = new FrameBatcher((batch) => {
  for (const [name, source] of batch) panels.get(name).paint(source);
});

function showOverall() {
  const mode = overallMode(feeds.values());
  const refused = [...feeds.values()].find((feed) => feed.status.mode === "closed");
  showMode($("#status"), refused ? refused.status : { mode });
  showRefusal(refused?.status || null);
}

/** Say why the panels are empty: no sign-in, or not an operator. */
function showRefusal(status) {
  const box = $("#refusal");
  if (!status) {
    box.hidden = true;
    box.textContent = "";
    delete box.dataset.code;
    return;
  }
  let advice = "";
  if (NOT_OPERATOR.has(status.code)) advice = "Sign in with the API key of a user who has the operator role.";
  else if (NEEDS_SIGN_IN.has(status.code)) advice = "Sign in with an operator's API key.";
  box.textContent = `Refused: ${status.reason || "by the server"}${status.code ? ` (${status.code})` : ""}. ${advice}`;
  box.dataset.code = String(status.code ?? "");
  box.hidden = false;
}

for (const [name, selector, Panel, poll] of PANELS) {
  const panel = new Panel($(selector));
  panels.set(name, panel);
  const badge = $(".mode", $(selector));
  feeds.set(
    name,
    new StreamFeed({
      socket: `ws/${name}`,
      poll,
      token,
      onData: (payload, how) => {
        if (name === "alerts" && !resolvedAsked) {
          resolvedAsked = true; // once this token is seen to be let in
          loadResolvedAlerts(token);
        }
        panel.take(payload, how);
        batcher.put(name, how.source);
      },
      onStatus: (status) => {
        showMode(badge, status);
        if (feeds.size === PANELS.length) showOverall();
      },
    }),
  );
}

function startFeeds() {
  for (const feed of feeds.values()) feed.setToken(token);
  resolvedAsked = false;
  showOverall();
}

/** The recently resolved alerts, once the alerts arrive (so never for a caller who is
 * refused): the socket starts with the open ones only. */
async function loadResolvedAlerts(asked) {
  try {
    const response = await fetch(new URL("api/monitoring/alerts?resolved=true", ROOT), {
      headers: { Authorization: `Bearer ${asked}` },
      cache: "no-store",
    });
    if (!response.ok || token !== asked) return; // a refusal shows through the feeds
    const alerts = panels.get("alerts");
    alerts.addResolved(await response.json());
    batcher.put("alerts", feeds.get("alerts").status.mode === "live" ? "ws" : "poll");
  } catch {
    // the panel still shows the open alerts, and resolutions as they come
  }
}

// -- sign-in

async function showAccount() {
  const signedIn = Boolean(token);
  $("#signin").hidden = signedIn;
  $("#account").hidden = !signedIn;
  $("#username").textContent = signedIn ? claimsOf(token).name || `user ${claimsOf(token).sub ?? ""}` : "";
  const role = signedIn ? claimsOf(token).role || "user" : null; // tokens name only other roles
  $("#role").textContent = role ? `(${role})` : "";
  if (!signedIn) return;
  const asked = token;
  try {
    const response = await fetch(new URL("api/me", ROOT), { headers: { Authorization: `Bearer ${asked}` }, cache: "no-store" });
    if (!response.ok) throw new Error(await errorText(response));
    const me = await response.json();
    if (token !== asked) return;
    if (me.username) $("#username").textContent = me.username;
    if (me.role) $("#role").textContent = `(${me.role})`; // when the API says it
  } catch {
    // the name from the token stays; the panels say what the server refuses
  }
}

async function signIn(apiKey) {
  token = await exchangeKey(apiKey);
  sessionStorage.setItem(TOKEN_KEY, token);
  showAccount();
  startFeeds();
}

function signOut() {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showAccount();
  startFeeds();
}

$("#signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#api-key");
  const button = $("button", event.target);
  $("#signin-error").textContent = "";
  button.disabled = true;
  try {
    await signIn(input.value.trim());
    input.value = "";
  } catch (error) {
    $("#signin-error").textContent = `Sign-in failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
});

$("#signout").addEventListener("click", () => signOut());

showAccount();
if (fromUrl && fromUrl.startsWith("tc_")) {
  signIn(fromUrl).catch((error) => {
    $("#signin-error").textContent = `Sign-in failed: ${error.message}`;
    startFeeds();
  });
} else {
  startFeeds();
}

// for the browser console and the end-to-end tests
window.tickcast = { feeds, panels };
