// The analytics page: the signed-in user's positions and unrealized P&L, and a few live
// quotes, over STOMP 1.2 + SockJS with @stomp/rx-stomp, configured as the analytics front
// end configures it (webSocketFactory: () => new SockJS(url), reconnectDelay 5000,
// heart-beats 10000,10000). The libraries are the UMD builds in static/vendor/, loaded
// by classic <script> tags before this module: they define the globals RxStomp, StompJs,
// rxjs and SockJS.
//
// Signing in exchanges an API key for a JWT (POST /api/auth/token), kept in this tab's
// sessionStorage under the same name as the dashboard's, so that one sign-in serves both
// pages. The JWT is the STOMP CONNECT's passcode (docs/stomp.md); the key is not kept.

import { claimsOf, exchangeKey, expired, ROOT } from "./tickcast.js";

const { RxStomp, RxStompState } = window.RxStomp;

const DEFAULT_SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA"];
const SYMBOL_RE = /^[A-Z0-9][A-Z0-9./:_-]{0,31}$/;
const MAX_SYMBOLS = 20;
const TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling"];
const TOKEN_KEY = "tickcast.token";
const POSITIONS = "/topic/position-update";
const PNL = "/topic/unrealized-pnl";
const STOMP_URL = new URL("stomp", ROOT).href;

const $ = (selector) => document.querySelector(selector);

// -- formatting

const number = new Intl.NumberFormat("en-US", { maximumFractionDigits: 6 });
const price = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 });
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

function formatWith(format, value) {
  const n = Number(value);
  return value === null || value === undefined || !Number.isFinite(n) ? "—" : format.format(n);
}

function formatSignedMoney(value) {
  const text = formatWith(money, value);
  return Number(value) > 0 ? `+${text}` : text;
}

function formatTime(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "—" : date.toLocaleTimeString("en-GB", { hour12: false });
}

function setNumber(cell, text, value, signed = false) {
  cell.textContent = text;
  cell.dataset.value = String(value);
  if (signed) {
    cell.classList.toggle("up", Number(value) > 0);
    cell.classList.toggle("down", Number(value) < 0);
  }
}

function bump(element) {
  element.dataset.updates = String(Number(element.dataset.updates || 0) + 1);
}

// -- the query: ?symbols=AAPL,MSFT and ?transport=xhr-streaming (one SockJS transport)

function parseSymbols(search) {
  const asked = new URLSearchParams(search).get("symbols");
  if (!asked) return DEFAULT_SYMBOLS;
  const symbols = asked
    .split(",")
    .map((s) => s.trim().toUpperCase())
    .filter((s) => SYMBOL_RE.test(s));
  return [...new Set(symbols)].slice(0, MAX_SYMBOLS);
}

const query = new URLSearchParams(window.location.search);
const symbols = parseSymbols(window.location.search);
const transport = TRANSPORTS.includes(query.get("transport")) ? query.get("transport") : null;

// -- the tables

/** Rows keyed by "<portfolio id>:<symbol>", kept sorted by portfolio then symbol. */
class KeyedTable {
  constructor(table, columns, emptyNote) {
    this.table = table;
    this.body = table.querySelector("tbody");
    this.columns = columns;
    this.emptyNote = emptyNote;
    this.rows = new Map();
    this.names = new Map(); // portfolio id -> name
  }

  row(portfolioId, symbol) {
    const key = `${portfolioId}:${symbol}`;
    let row = this.rows.get(key);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.portfolioId = String(portfolioId);
      row.dataset.symbol = symbol;
      const portfolio = document.createElement("td");
      portfolio.className = "portfolio";
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = symbol;
      row.append(portfolio, name);
      for (const column of this.columns) {
        const cell = document.createElement("td");
        cell.className = `${column} num`;
        cell.textContent = "—";
        row.append(cell);
      }
      this.rows.set(key, row);
      const keys = [...this.rows.keys()].sort((a, b) => {
        const [pa, sa] = a.split(":");
        const [pb, sb] = b.split(":");
        return Number(pa) - Number(pb) || sa.localeCompare(sb);
      });
      this.body.replaceChildren(...keys.map((k) => this.rows.get(k)));
      this.emptyNote.hidden = true;
    }
    row.querySelector(".portfolio").textContent = this.names.get(Number(portfolioId)) || `#${portfolioId}`;
    return row;
  }

  remove(portfolioId, symbol) {
    const key = `${portfolioId}:${symbol}`;
    this.rows.get(key)?.remove();
    this.rows.delete(key);
  }

  nameAll(names) {
    this.names = names;
    for (const row of this.rows.values()) {
      const id = Number(row.dataset.portfolioId);
      row.querySelector(".portfolio").textContent = names.get(id) || `#${id}`;
    }
  }

  clear(note) {
    this.rows.clear();
    this.body.replaceChildren();
    this.emptyNote.textContent = note;
    this.emptyNote.hidden = false;
  }
}

const positions = new KeyedTable(
  $("#positions"),
  ["holdings", "invested", "realized", "updated"],
  $('.empty[data-for="positions"]'),
);
const pnl = new KeyedTable($("#pnl"), ["unrealized"], $('.empty[data-for="pnl"]'));

/** A /topic/position-update body: one position object or an array of them. */
function paintPositions(body) {
  for (const position of Array.isArray(body) ? body : [body]) {
    const id = position && position.id;
    if (!id || id.portfolioId === undefined || !id.symbol) continue;
    if (Number(position.holdings) === 0) {
      positions.remove(id.portfolioId, id.symbol); // closed
      continue;
    }
    const row = positions.row(id.portfolioId, id.symbol);
    setNumber(row.querySelector(".holdings"), formatWith(number, position.holdings), position.holdings);
    setNumber(row.querySelector(".invested"), formatWith(money, position.totalInvested), position.totalInvested);
    setNumber(
      row.querySelector(".realized"),
      formatSignedMoney(position.realizedPnl),
      position.realizedPnl,
      true,
    );
    const updated = row.querySelector(".updated");
    updated.classList.remove("num");
    updated.textContent = formatTime(position.updatedAt);
  }
  bump($("#positions"));
}

/** A /topic/unrealized-pnl body: an array of {symbol, overallUnrealised_Pnl, portfolio_id}. */
function paintPnl(body) {
  for (const item of Array.isArray(body) ? body : [body]) {
    if (!item || item.portfolio_id === undefined || !item.symbol) continue;
    const row = pnl.row(item.portfolio_id, item.symbol);
    setNumber(
      row.querySelector(".unrealized"),
      formatSignedMoney(item.overallUnrealised_Pnl),
      item.overallUnrealised_Pnl,
      true,
    );
  }
  let total = 0;
  for (const row of pnl.rows.values()) total += Number(row.querySelector(".unrealized").dataset.value) || 0;
  setNumber($("#pnl-total"), formatSignedMoney(total), total, true);
  bump($("#pnl"));
}

class QuoteTable {
  constructor(body, symbols) {
    this.rows = new Map();
    for (const symbol of symbols) {
      const row = document.createElement("tr");
      row.dataset.symbol = symbol;
      row.className = "waiting";
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = symbol;
      row.append(name);
      for (const column of ["price", "bid", "ask", "volume", "time"]) {
        const cell = document.createElement("td");
        cell.className = column === "time" ? column : `${column} num`;
        cell.textContent = "—";
        row.append(cell);
      }
      body.append(row);
      this.rows.set(symbol, row);
    }
  }

  paint(quote) {
    const row = this.rows.get(quote.symbol);
    if (!row) return;
    row.className = "live";
    for (const column of ["price", "bid", "ask"]) {
      setNumber(row.querySelector(`.${column}`), formatWith(price, quote[column]), quote[column]);
    }
    setNumber(row.querySelector(".volume"), formatWith(number, quote.volume), quote.volume);
    row.querySelector(".time").textContent = formatTime(quote.timestamp);
    bump(row);
  }

  markStale() {
    for (const row of this.rows.values()) if (row.className === "live") row.className = "stale";
  }
}

const quotes = new QuoteTable($("#quotes tbody"), symbols);

// -- sign-in (POST /api/auth/token, GET /api/portfolios for the portfolios' names)

async function portfolioNames(jwt) {
  const response = await fetch(new URL("api/portfolios", ROOT), {
    headers: { Authorization: `Bearer ${jwt}` },
    cache: "no-store",
  });
  if (!response.ok) return new Map();
  const body = await response.json();
  const list = Array.isArray(body) ? body : body.portfolios || body.items || [];
  return new Map(list.map((p) => [Number(p.id), String(p.name)]));
}

let token = sessionStorage.getItem(TOKEN_KEY);
if (token && expired(token)) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
}

// -- STOMP

const status = { state: "idle", transport: null, connections: 0, errors: [] };
let rxStomp = null;
let watching = [];
let connectedOnThisSocket = false;

function showStatus(state) {
  status.state = state;
  const badge = $("#status");
  badge.dataset.state = state;
  const text = {
    idle: "idle",
    connecting: "connecting…",
    connected: "connected",
    reconnecting: "reconnecting…",
  }[state];
  badge.textContent = state === "connected" && token ? `${text} · signed in` : text;
}

function notice(text) {
  $("#notice").textContent = text;
  $("#notice").hidden = !text;
}

/** The seed's webSocketFactory, plus a note of the transport SockJS picked. */
function newSockJS() {
  const socket = new SockJS(STOMP_URL, null, transport ? { transports: [transport] } : {});
  connectedOnThisSocket = false;
  socket.addEventListener("open", () => {
    status.transport = socket.transport;
    $("#transport").textContent = `SockJS: ${socket.transport}`;
    $("#transport").dataset.transport = socket.transport;
  });
  return socket;
}

function parsed(message) {
  try {
    return JSON.parse(message.body);
  } catch {
    return null;
  }
}

/** (Re)connect with the current credentials: one RxStomp per sign-in state. */
async function connect() {
  const previous = rxStomp;
  rxStomp = null;
  for (const subscription of watching) subscription.unsubscribe();
  watching = [];
  if (previous) await previous.deactivate();

  const client = new RxStomp();
  client.configure({
    webSocketFactory: newSockJS,
    connectHeaders: token ? { passcode: token } : {},
    reconnectDelay: 5000,
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
  });
  client.connectionState$.subscribe((state) => {
    if (client !== rxStomp) return;
    if (state === RxStompState.OPEN) showStatus("connected");
    else if (state === RxStompState.CONNECTING) showStatus(status.connections ? "reconnecting" : "connecting");
    else if (status.state === "connected") {
      showStatus("reconnecting");
      quotes.markStale();
    }
  });
  client.serverHeaders$.subscribe(() => {
    status.connections += 1;
    connectedOnThisSocket = true;
    notice("");
  });
  client.stompErrors$.subscribe((frame) => {
    const message = frame.headers.message || frame.body || "STOMP error";
    status.errors.push(message);
    if (!connectedOnThisSocket && token) {
      signOut(`Signed out: ${message}`); // CONNECT refused: carry on anonymously
    } else {
      notice(message);
    }
  });
  for (const symbol of symbols) {
    watching.push(
      client.watch({ destination: `/topic/quotes.${symbol}` }).subscribe((message) => {
        const quote = parsed(message);
        if (quote && quote.symbol) quotes.paint(quote);
      }),
    );
  }
  if (token) {
    watching.push(client.watch({ destination: POSITIONS }).subscribe((m) => paintPositions(parsed(m))));
    watching.push(client.watch({ destination: PNL }).subscribe((m) => paintPnl(parsed(m))));
  }
  rxStomp = client;
  client.activate();
}

// -- the account

function showAccount() {
  const signedIn = Boolean(token);
  $("#signin").hidden = signedIn;
  $("#account").hidden = !signedIn;
  $("#username").textContent = signedIn ? claimsOf(token).name || `user ${claimsOf(token).sub ?? ""}` : "";
  if (!signedIn) {
    positions.clear("Sign in to see your positions.");
    pnl.clear("Sign in to see your unrealized P&L.");
    setNumber($("#pnl-total"), "—", "");
  } else {
    positions.clear("Waiting for positions…");
    pnl.clear("Waiting for unrealized P&L…");
    const asked = token;
    portfolioNames(asked)
      .then((names) => {
        if (token !== asked) return;
        positions.nameAll(names);
        pnl.nameAll(names);
      })
      .catch(() => {});
  }
}

function signOut(message = "") {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showAccount();
  $("#signin-error").textContent = message;
  connect();
}

$("#signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#api-key");
  const button = event.target.querySelector("button");
  $("#signin-error").textContent = "";
  button.disabled = true;
  try {
    token = await exchangeKey(input.value.trim());
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = "";
    showAccount();
    await connect();
  } catch (error) {
    $("#signin-error").textContent = `Sign-in failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
});

$("#signout").addEventListener("click", () => signOut());

$("#endpoint").textContent = STOMP_URL;
showAccount();
connect();

// for the browser console and the end-to-end tests
window.tickcast = { analytics: { status, symbols, get rxStomp() { return rxStomp; } } };
