// The live dashboard: quotes with flashing changes and sparklines, the signed-in user's
// portfolios, the connection status. Every widget shares the page's one client.
//
// Rendering is batched: updates are stored (latest per symbol or portfolio) and painted
// once per animation frame. The last quotes are cached in localStorage so that a reload
// shows numbers at once (marked stale until live data arrives); portfolio data is private
// and stays in memory. The JWT from signing in is kept in sessionStorage (this tab only);
// the API key itself is never stored.

import { LeaderboardPanel } from "./leaderboard.js";
import { startSignalsPanel } from "./signals.js";
import { claimsOf, errorText, exchangeKey, expired, FrameBatcher, ROOT, sharedClient } from "./tickcast.js";

const DEFAULT_SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY", "BTC/USDT", "ETH/USDT"];
const SYMBOL_RE = /^[A-Z0-9][A-Z0-9./:_-]{0,31}$/;
const MAX_SYMBOLS = 40; // the server allows 50 subscriptions per connection, portfolios included
const SPARK_POINTS = 120;
const TOKEN_KEY = "tickcast.token";
const CACHE_KEY = "tickcast.assets";
const CACHE_EVERY_MS = 2000;
const PORTFOLIO_FIELDS = [
  "total-value",
  "daily-change",
  "daily-change-percent",
  "unrealized-pnl",
  "realized-pnl",
];

// -- formatting

const price = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const finePrice = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 });
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });

function formatPrice(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return "—";
  return Math.abs(n) >= 1 ? price.format(n) : finePrice.format(n);
}

function signed(text, n) {
  return n > 0 ? `+${text}` : text;
}

/** A change, to the precision of the price it belongs to (cents above 1). */
function formatChange(value, of) {
  const n = Number(value);
  if (!Number.isFinite(n)) return "—";
  const text = Math.abs(Number(of)) >= 1 ? price.format(n) : finePrice.format(n);
  return signed(text, n);
}

function formatPercent(value) {
  const n = Number(value);
  return Number.isFinite(n) ? `${signed(n.toFixed(2), n)}%` : "—";
}

function formatMoney(value, withSign = false) {
  const n = Number(value);
  if (!Number.isFinite(n)) return "—";
  return withSign ? signed(money.format(n), n) : money.format(n);
}

function formatVolume(value) {
  const n = Number(value);
  return Number.isFinite(n) ? compact.format(n) : "—";
}

function direction(n) {
  return n > 0 ? "up" : n < 0 ? "down" : "flat";
}

/** Restart the cell's flash animation (green up, red down). */
function flash(cell, dir) {
  cell.classList.remove("flash-up", "flash-down");
  void cell.offsetWidth; // a reflow, so that the same class animates again
  cell.classList.add(dir === "up" ? "flash-up" : "flash-down");
}

// -- symbols

export function parseSymbols(search) {
  const raw = new URLSearchParams(search).get("symbols");
  const symbols = raw === null ? DEFAULT_SYMBOLS : raw.split(",");
  const valid = symbols.map((s) => s.trim().toUpperCase()).filter((s) => SYMBOL_RE.test(s));
  return [...new Set(valid)].slice(0, MAX_SYMBOLS);
}

// -- sparklines

class Sparkline {
  constructor(canvas) {
    this.canvas = canvas;
    this.points = [];
  }

  push(value) {
    const n = Number(value);
    if (!Number.isFinite(n)) return;
    if (this.points.length && this.points[this.points.length - 1] === n) return;
    this.points.push(n);
    if (this.points.length > SPARK_POINTS) this.points.shift();
  }

  draw() {
    const { canvas, points } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 120;
    const height = canvas.clientHeight || 28;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (points.length < 2) return;
    const min = Math.min(...points);
    const max = Math.max(...points);
    const span = max - min || 1;
    const step = (width - 2) / (points.length - 1);
    ctx.beginPath();
    points.forEach((p, i) => {
      const x = 1 + i * step;
      const y = height - 2 - ((p - min) / span) * (height - 4);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    const rising = points[points.length - 1] >= points[0];
    ctx.strokeStyle = rising ? "#1a7f37" : "#cf222e";
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }
}

// -- quotes

class QuoteTable {
  constructor(tbody, symbols) {
    this.rows = new Map();
    this.values = new Map(); // symbol -> last asset_update data
    this.cacheSavedAt = 0;
    for (const symbol of symbols) {
      const row = document.createElement("tr");
      row.dataset.symbol = symbol;
      row.className = "waiting";
      const cells = {};
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = symbol;
      row.append(th);
      for (const name of ["price", "change", "change-percent", "high", "low", "volume"]) {
        const td = document.createElement("td");
        td.className = `num ${name}`;
        td.textContent = "—";
        cells[name] = td;
        row.append(td);
      }
      const trend = document.createElement("td");
      const canvas = document.createElement("canvas");
      canvas.className = "sparkline";
      canvas.setAttribute("aria-label", `${symbol} price trend`);
      trend.append(canvas);
      row.append(trend);
      tbody.append(row);
      this.rows.set(symbol, { row, cells, spark: new Sparkline(canvas) });
    }
  }

  /** Paint a batch of updates: symbol -> asset_update data. */
  paint(batch, { stale = false } = {}) {
    for (const [symbol, data] of batch) {
      const entry = this.rows.get(symbol);
      if (!entry) continue;
      const { row, cells, spark } = entry;
      const previous = this.values.get(symbol);
      this.values.set(symbol, data);
      row.className = stale ? "stale" : "live";
      if (!stale) row.dataset.updates = String(Number(row.dataset.updates || 0) + 1);
      const moved = previous ? Number(data.price) - Number(previous.price) : 0;
      cells.price.textContent = formatPrice(data.price);
      cells.price.dataset.value = String(data.price);
      if (moved && !stale) flash(cells.price, direction(moved));
      const dir = direction(Number(data.change));
      for (const name of ["change", "change-percent"]) {
        cells[name].classList.remove("up", "down", "flat");
        cells[name].classList.add(dir);
      }
      cells.change.textContent = formatChange(data.change, data.price);
      cells["change-percent"].textContent = formatPercent(data.change_percent);
      cells.high.textContent = formatPrice(data.high);
      cells.low.textContent = formatPrice(data.low);
      cells.volume.textContent = formatVolume(data.volume);
      if (!stale) spark.push(data.price);
      spark.draw();
    }
    if (!stale) this.saveCache();
  }

  markUnknown(symbol) {
    const entry = this.rows.get(symbol);
    if (entry) {
      entry.row.className = "unknown";
      entry.cells.price.textContent = "unknown symbol";
    }
  }

  markStale() {
    for (const { row } of this.rows.values()) if (row.className === "live") row.className = "stale";
  }

  loadCache() {
    try {
      const cached = JSON.parse(localStorage.getItem(CACHE_KEY) || "{}");
      const batch = new Map(Object.entries(cached).filter(([s]) => this.rows.has(s)));
      this.paint(batch, { stale: true });
    } catch {
      localStorage.removeItem(CACHE_KEY);
    }
  }

  saveCache() {
    const now = Date.now();
    if (now - this.cacheSavedAt < CACHE_EVERY_MS) return;
    this.cacheSavedAt = now;
    try {
      localStorage.setItem(CACHE_KEY, JSON.stringify(Object.fromEntries(this.values)));
    } catch {
      // storage full or disabled: the cache is a convenience only
    }
  }
}

// -- portfolios

class PortfolioCards {
  constructor(container, template, client) {
    this.container = container;
    this.template = template;
    this.client = client;
    this.cards = new Map(); // id -> {card, fields, unsubscribe, last}
  }

  show(portfolios) {
    this.clear();
    for (const p of portfolios) {
      const id = Number(p.id ?? p.portfolio_id);
      if (!Number.isInteger(id)) continue;
      const card = this.template.content.firstElementChild.cloneNode(true);
      card.dataset.portfolioId = String(id);
      card.querySelector(".name").textContent = p.name || `Portfolio ${id}`;
      const fields = {};
      for (const name of PORTFOLIO_FIELDS) fields[name] = card.querySelector(`.${name}`);
      this.container.append(card);
      const entry = { card, fields, last: null, unsubscribe: null };
      this.cards.set(id, entry);
      if (p.total_value !== undefined) this.paint(id, p); // the REST value, until live ones come
      entry.unsubscribe = this.client.subscribePortfolio(id, (data) => batcher.put(`portfolio:${id}`, data));
    }
    if (!this.cards.size) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "No portfolios yet.";
      this.container.append(empty);
    }
  }

  paint(id, data) {
    const entry = this.cards.get(id);
    if (!entry) return;
    const { fields, card } = entry;
    const previous = entry.last;
    entry.last = data;
    card.classList.remove("stale");
    card.classList.add("live");
    card.dataset.updates = String(Number(card.dataset.updates || 0) + 1);
    fields["total-value"].textContent = formatMoney(data.total_value);
    fields["total-value"].dataset.value = String(data.total_value);
    const moved = previous ? Number(data.total_value) - Number(previous.total_value) : 0;
    if (moved) flash(fields["total-value"], direction(moved));
    fields["daily-change"].textContent = formatMoney(data.daily_change, true);
    fields["daily-change-percent"].textContent = formatPercent(data.daily_change_percent);
    fields["unrealized-pnl"].textContent = formatMoney(data.unrealized_pnl, true);
    fields["realized-pnl"].textContent = formatMoney(data.realized_pnl, true);
    for (const [name, value] of [
      ["daily-change", data.daily_change],
      ["daily-change-percent", data.daily_change_percent],
      ["unrealized-pnl", data.unrealized_pnl],
      ["realized-pnl", data.realized_pnl],
    ]) {
      fields[name].classList.remove("up", "down", "flat");
      fields[name].classList.add(direction(Number(value)));
    }
  }

  markStale() {
    for (const { card } of this.cards.values()) card.classList.replace("live", "stale");
  }

  clear() {
    for (const entry of this.cards.values()) entry.unsubscribe?.();
    this.cards.clear();
    this.container.replaceChildren();
  }
}

// -- sign-in (POST /api/auth/token, GET /api/portfolios)

/** GET /api/portfolios: the caller's portfolios with their values (money as strings). */
async function fetchPortfolios(token) {
  const response = await fetch(new URL("api/portfolios", ROOT), {
    headers: { Authorization: `Bearer ${token}` },
    cache: "no-store",
  });
  if (response.status === 401) {
    const error = new Error(await errorText(response));
    error.unauthorized = true;
    throw error;
  }
  if (!response.ok) throw new Error(await errorText(response));
  const body = await response.json();
  return Array.isArray(body) ? body : body.portfolios || body.items || [];
}

// -- the page

const $ = (selector) => document.querySelector(selector);
const symbols = parseSymbols(window.location.search);

// A credential in the page's URL (`tickcast demo` prints /realtime/dashboard/?token=...):
// taken once, then removed from the address bar so that it stays out of the history.
const fromUrl = new URLSearchParams(window.location.search).get("token");
if (fromUrl !== null) {
  const url = new URL(window.location.href);
  url.searchParams.delete("token");
  window.history.replaceState(null, "", url.pathname + url.search + url.hash);
}

let token = sessionStorage.getItem(TOKEN_KEY);
if (fromUrl && !fromUrl.startsWith("tc_") && !expired(fromUrl)) {
  token = fromUrl; // a JWT: use it as is (an API key is exchanged below)
  sessionStorage.setItem(TOKEN_KEY, token);
}
if (token && expired(token)) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
}

const client = sharedClient({ token });
const signals = startSignalsPanel($("#signals-panel"), token);
const leaderboard = new LeaderboardPanel($("#leaderboard-panel"), token);
const quotes = new QuoteTable($("#quotes tbody"), symbols);
const cards = new PortfolioCards($("#portfolios"), $("#portfolio-card"), client);
const batcher = new FrameBatcher((batch) => {
  const assets = new Map();
  for (const [key, data] of batch) {
    if (key.startsWith("portfolio:")) cards.paint(Number(key.slice(10)), data);
    else assets.set(key, data);
  }
  if (assets.size) quotes.paint(assets);
});

quotes.loadCache();
for (const symbol of symbols) client.subscribeAsset(symbol, (data) => batcher.put(symbol, data));

function notice(text) {
  const el = $("#notice");
  el.textContent = text;
  el.hidden = !text;
}

client.on("error", (data) => {
  const message = String(data.message || "error");
  const unknown = /^Unknown symbol: (.+)$/.exec(message);
  if (unknown) quotes.markUnknown(unknown[1]);
  else notice(message);
});

/** Close codes that refuse the credentials themselves (closecodes.py). */
const CREDENTIALS_REFUSED = new Set([3500, 3501]);

const STATUS_TEXT = {
  idle: "idle",
  connecting: "connecting…",
  connected: "connected",
  reconnecting: "reconnecting…",
  offline: "offline",
  closed: "disconnected",
};

client.onStatus((status) => {
  const badge = $("#status");
  badge.dataset.state = status.state;
  let text = STATUS_TEXT[status.state] || status.state;
  if (status.state === "connected" && status.authenticated) text += " · signed in";
  if (status.state === "reconnecting" && status.attempt) text += ` (attempt ${status.attempt})`;
  if (status.state === "closed" && status.reason) text += `: ${status.reason}`;
  badge.textContent = text;
  badge.title = status.reason ? `${status.code ?? ""} ${status.reason}`.trim() : "";
  $("#reconnect").hidden = status.state !== "closed";
  if (status.state === "connected") {
    notice(""); // a new connection: the old one's errors are moot
  } else {
    quotes.markStale();
    cards.markStale();
  }
  if (status.state === "closed" && CREDENTIALS_REFUSED.has(status.code) && token) {
    // our credentials were refused (3500: revoked, forged...; 3501: expired): carry on
    // anonymously
    signOut(`Signed out: ${status.reason || "credentials refused"}`);
  }
});

$("#reconnect").addEventListener("click", () => client.start());

function showAccount() {
  const signedIn = Boolean(token);
  $("#signin").hidden = signedIn;
  $("#account").hidden = !signedIn;
  $("#username").textContent = signedIn ? claimsOf(token).name || `user ${claimsOf(token).sub ?? ""}` : "";
}

async function signIn(apiKey) {
  token = await exchangeKey(apiKey);
  sessionStorage.setItem(TOKEN_KEY, token);
  showAccount();
  useToken(token);
  await loadPortfolios();
}

async function loadPortfolios() {
  const asked = token;
  try {
    const portfolios = await fetchPortfolios(asked);
    if (token !== asked) return; // signed out meanwhile
    cards.show(portfolios);
    leaderboard.showAround(portfolios.find((p) => p.public === true) || null);
  } catch (error) {
    if (token !== asked) return;
    if (error.unauthorized) signOut(`Signed out: ${error.message}`);
    else $("#signin-error").textContent = `Could not load portfolios: ${error.message}`;
  }
}

/** Connect with these credentials (null: anonymous), also after a refusal stopped the client. */
function useToken(credentials) {
  if (credentials !== signals.token) signals.connect(credentials);
  if (credentials !== leaderboard.token) leaderboard.setToken(credentials);
  client.setToken(credentials);
  if (!client.started) client.start();
}

function signOut(message = "") {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  cards.clear();
  showAccount();
  $("#signin-error").textContent = message;
  if (client.token || !client.started) useToken(null);
}

$("#signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#api-key");
  const apiKey = input.value.trim();
  const button = event.target.querySelector("button");
  $("#signin-error").textContent = "";
  button.disabled = true;
  try {
    await signIn(apiKey);
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
  signIn(fromUrl).catch((error) => ($("#signin-error").textContent = `Sign-in failed: ${error.message}`));
} else if (token) {
  loadPortfolios();
}

// for the browser console and the end-to-end tests
window.tickcast = { client, symbols, signals, leaderboard };
