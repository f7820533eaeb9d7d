// tickcast browser client for the realtime envelope protocol at /ws/realtime/.
//
// One WebSocket per page, shared by every widget (sharedClient()); widgets subscribe
// with callbacks and the client keeps the subscriptions: it sends subscribe_* on the
// first listener of a topic and unsubscribe_* when the last one leaves, and sends them
// all again after every reconnect. Reconnects use capped exponential backoff with full
// jitter, and happen at once when the browser reports it is back online. An
// application-level ping every pingIntervalMs keeps proxies from idling the socket out;
// a socket that has received nothing for two intervals is taken for dead.
//
// Close codes (tickcast's closecodes.py, listed in docs/realtime.md): 1000 (the server
// ended the connection normally), 1008 (origin), the other protocol errors and 3500-3999
// (credentials refused or expired, authentication required or timed out, forbidden) are
// terminal: the client stops and reports "closed" with the server's reason; everything
// else (1001 going away, 1006 dropped, 1011, 1013 slow consumer, 3000-3499: too many
// connections or messages, idle, and private 4000-4999) is retried with back-off. A refused handshake reaches a browser as one of these codes, right after the
// upgrade: its WebSocket API cannot read an HTTP status.
//
// Wire messages: {"type": "...", "data": {...}, "timestamp": "...Z"} both ways.
//
// FrameBatcher: widgets put the latest value per key and paint once per animation
// frame, so a burst of updates costs one DOM pass, not one per message.

const TERMINAL_CODES = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010]);
const MAX_OUTBOX = 1000;
const PROBE_MS = 5000;

/** Whether a close code means "do not reconnect". */
export function isTerminalClose(code) {
  return TERMINAL_CODES.has(code) || (code >= 3500 && code <= 3999);
}

/**
 * Delay before reconnect attempt `attempt` (0-based): full jitter,
 * uniform in [0, min(capMs, baseMs * 2^attempt)).
 */
export function backoffDelay(attempt, baseMs, capMs, random = Math.random) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * The gateway's root URL: this module is served at <root>/static/tickcast.js, so the
 * pages also work behind a proxy that mounts the gateway under a path prefix.
 */
export const ROOT = new URL("../", import.meta.url);

/**
 * The ws:// (or, on an https page, wss://) URL of a WebSocket endpoint of the gateway,
 * for the host the browser used: `path` is relative to the gateway's root.
 */
export function webSocketUrl(path, root = ROOT) {
  const url = new URL(path, root);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

/** The gateway's realtime WebSocket URL. */
export function realtimeUrl(root = ROOT) {
  return webSocketUrl("ws/realtime/", root);
}

// -- sign-in, shared by the pages (POST /api/auth/token)

/** The JWT's claims, for display only (the server checks the signature, not us). */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}

/** Whether a JWT's `exp` has passed (by this browser's clock). */
export function expired(jwt) {
  const exp = Number(claimsOf(jwt).exp);
  return Number.isFinite(exp) && exp * 1000 <= Date.now();
}

/** The words of an API error answer: FastAPI's `detail`, or the gateway's `error`. */
export async function errorText(response) {
  try {
    const body = await response.json();
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    return detail || body.error || body.message || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

/** POST /api/auth/token with the key in X-API-Key: a JWT (the key is not kept). */
export async function exchangeKey(apiKey, root = ROOT) {
  const response = await fetch(new URL("api/auth/token", root), {
    method: "POST",
    headers: { "X-API-Key": apiKey },
    cache: "no-store",
  });
  if (!response.ok) throw new Error(await errorText(response));
  const body = await response.json();
  const token = body.access_token || body.token;
  if (typeof token !== "string" || !token) throw new Error("the server sent no token");
  return token;
}

/** A token bucket for outbound messages: the server allows 20/s with a burst of 40. */
class SendPacer {
  constructor(ratePerS, burst, now) {
    this.ratePerS = ratePerS;
    this.burst = burst;
    this.tokens = burst;
    this.updated = now;
  }

  take(now) {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updated) / 1000) * this.ratePerS);
    this.updated = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  waitMs() {
    return Math.ceil(((1 - this.tokens) / this.ratePerS) * 1000);
  }
}

export class TickcastClient {
  /**
   * @param {object} options
   * @param {string} [options.url] the WebSocket URL (default: the gateway's ws/realtime/)
   * @param {string|null} [options.token] a JWT or API key, sent as ?token=
   * @param {number} [options.backoffBaseMs=500] first reconnect delay ceiling
   * @param {number} [options.backoffCapMs=30000] largest reconnect delay
   * @param {number} [options.pingIntervalMs=20000] application ping period; 0 disables
   * @param {number} [options.sendRatePerS=15] outbound pacing (below the server's limit)
   * @param {number} [options.sendBurst=30]
   */
  constructor(options = {}) {
    this.url = options.url || realtimeUrl();
    this.token = options.token || null;
    this.backoffBaseMs = options.backoffBaseMs ?? 500;
    this.backoffCapMs = options.backoffCapMs ?? 30000;
    this.pingIntervalMs = options.pingIntervalMs ?? 20000;
    this.WebSocket = options.WebSocket || window.WebSocket;
    this.random = options.random || Math.random;
    this.now = options.now || (() => Date.now());
    this.pacer = new SendPacer(options.sendRatePerS ?? 15, options.sendBurst ?? 30, this.now());

    this.ws = null;
    this.attempt = 0;
    this.reconnects = 0;
    this.started = false;
    this.status = { state: "idle" };
    this.connection = null; // the last "connection" message's data
    this.lastReceived = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.flushTimer = null;
    this.outbox = [];

    this.assets = new Map(); // symbol -> Set(callback)
    this.portfolios = new Map(); // id -> Set(callback)
    this.statusListeners = new Set();
    this.typeListeners = new Map(); // type or "*" -> Set(callback)
    this.frameListeners = new Set(); // (direction, text)

    this.everConnected = false;
    this.probeTimer = null;
    this._onOnline = () => (this.ws ? this._probe() : this.reconnectNow("online"));
    this._onOffline = () => {
      this._setStatus({ ...this.status, state: "offline" });
      if (this.ws) this._probe();
    };
  }

  // -- life cycle

  /** Open the connection (once); it then stays up until close(). */
  start() {
    if (this.started) return this;
    this.started = true;
    window.addEventListener("online", this._onOnline);
    window.addEventListener("offline", this._onOffline);
    this._open();
    return this;
  }

  /** Close for good (until start() again). */
  close() {
    this.started = false;
    window.removeEventListener("online", this._onOnline);
    window.removeEventListener("offline", this._onOffline);
    this._clearTimers();
    this._drop(1000, "client closed");
    this._setStatus({ state: "closed", code: 1000, reason: "closed by the page" });
  }

  /** Use new credentials (null: anonymous) and reconnect with them. */
  setToken(token) {
    this.token = token || null;
    if (!this.started) return;
    this.everConnected = false; // a new session, not a reconnect
    this.reconnectNow("credentials changed");
  }

  /** Drop the current socket (if any) and connect again right away. */
  reconnectNow(why = "reconnect") {
    if (!this.started) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this._drop(1000, why);
    this.attempt = 0;
    this._open();
  }

  // -- subscriptions (each returns a function that unsubscribes)

  subscribeAsset(symbol, callback) {
    const key = String(symbol).trim().toUpperCase();
    return this._listen(this.assets, key, callback, "subscribe_asset", "unsubscribe_asset", {
      symbol: key,
    });
  }

  subscribePortfolio(portfolioId, callback) {
    const id = Number(portfolioId);
    return this._listen(
      this.portfolios,
      id,
      callback,
      "subscribe_portfolio",
      "unsubscribe_portfolio",
      { portfolio_id: id },
    );
  }

  /** Status changes: {state: idle|connecting|connected|reconnecting|offline|closed, ...}. */
  onStatus(callback) {
    this.statusListeners.add(callback);
    callback(this.status);
    return () => this.statusListeners.delete(callback);
  }

  /** Every message of one type ("error", "position_update"...), or "*" for all. */
  on(type, callback) {
    let set = this.typeListeners.get(type);
    if (!set) this.typeListeners.set(type, (set = new Set()));
    set.add(callback);
    return () => set.delete(callback);
  }

  /** Every frame in ("in") and out ("out"), as text. */
  onFrame(callback) {
    this.frameListeners.add(callback);
    return () => this.frameListeners.delete(callback);
  }

  /**
   * Send a message ({type, data}; a timestamp is added). Queued while disconnected
   * or over the send rate, up to MAX_OUTBOX messages. Returns false if dropped.
   */
  send(message) {
    const envelope = { type: message.type, data: message.data ?? {}, ...message };
    if (!envelope.timestamp) envelope.timestamp = new Date(this.now()).toISOString();
    if (this.outbox.length >= MAX_OUTBOX) return false;
    const subscription = /^(un)?subscribe_/.test(String(envelope.type));
    this.outbox.push({ text: JSON.stringify(envelope), subscription });
    this._flush();
    return true;
  }

  // -- internals

  _listen(table, key, callback, subscribeType, unsubscribeType, data) {
    let set = table.get(key);
    if (!set) {
      table.set(key, (set = new Set()));
      if (this._isOpen()) this.send({ type: subscribeType, data });
    }
    set.add(callback);
    return () => {
      if (!set.delete(callback) || set.size > 0) return;
      table.delete(key);
      if (this._isOpen()) this.send({ type: unsubscribeType, data });
    };
  }

  _isOpen() {
    return this.ws !== null && this.ws.readyState === 1 && this.connection !== null;
  }

  _open() {
    if (!this.started || this.ws) return;
    const url = new URL(this.url);
    if (this.token) url.searchParams.set("token", this.token);
    this.connection = null;
    const state = this.everConnected ? "reconnecting" : "connecting";
    this._setStatus({ state, attempt: this.attempt });
    let ws;
    try {
      ws = new this.WebSocket(url.toString());
    } catch (error) {
      this._scheduleRetry(1006, String(error));
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => this._receive(ws, event.data);
    ws.onclose = (event) => this._closed(ws, event.code, event.reason);
    ws.onerror = () => {}; // a close event follows; it carries what there is to know
  }

  /** Detach the current socket so that its late events are ignored, and close it. */
  _drop(code, reason) {
    const ws = this.ws;
    this.ws = null;
    this.connection = null;
    clearInterval(this.pingTimer);
    clearTimeout(this.probeTimer);
    this.pingTimer = this.probeTimer = null;
    // subscriptions are sent again, from the tables, once the next socket is up
    this.outbox = this.outbox.filter((item) => !item.subscription);
    if (!ws) return;
    ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(code, reason.slice(0, 120));
    } catch {
      ws.close();
    }
  }

  _receive(ws, text) {
    if (ws !== this.ws) return;
    this.lastReceived = this.now();
    if (this.status.state === "offline" && this.connection) {
      this._setStatus({ ...this.status, state: "connected" }); // it works: the network is back
    }
    for (const listener of this.frameListeners) listener("in", text);
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (!message || typeof message !== "object") return;
    const data = message.data || {};
    if (message.type === "connection") {
      this._connected(data);
    } else if (message.type === "asset_update") {
      this._dispatch(this.assets, String(data.symbol), data, message);
    } else if (message.type === "portfolio_update") {
      this._dispatch(this.portfolios, Number(data.portfolio_id), data, message);
    }
    for (const type of [message.type, "*"]) {
      for (const listener of this.typeListeners.get(type) || []) listener(data, message);
    }
  }

  _dispatch(table, key, data, message) {
    for (const listener of table.get(key) || []) listener(data, message);
  }

  _connected(data) {
    const previous = this.connection;
    const first = previous === null;
    this.connection = data;
    if (first) {
      if (this.everConnected) this.reconnects += 1;
      this.everConnected = true;
      this.attempt = 0;
      // everything this page listens to, again: the server forgot it with the old socket
      const subscriptions = [];
      for (const symbol of this.assets.keys()) {
        subscriptions.push({ type: "subscribe_asset", data: { symbol } });
      }
      if (data.authenticated) {
        for (const id of this.portfolios.keys()) {
          subscriptions.push({ type: "subscribe_portfolio", data: { portfolio_id: id } });
        }
      }
      this.outbox = this.outbox.filter((item) => !item.subscription);
      for (const message of subscriptions) this.send(message);
      this._startPing();
    } else if (data.authenticated && !previous.authenticated) {
      // authenticated by a first message: portfolios may be asked for now
      for (const id of this.portfolios.keys()) {
        this.send({ type: "subscribe_portfolio", data: { portfolio_id: id } });
      }
    }
    this._flush();
    this._setStatus({
      state: "connected",
      connectionId: data.connection_id,
      authenticated: Boolean(data.authenticated),
      userId: data.user_id ?? null,
      reconnects: this.reconnects,
    });
  }

  _closed(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.connection = null;
    clearInterval(this.pingTimer);
    clearTimeout(this.probeTimer);
    this.pingTimer = this.probeTimer = null;
    if (!this.started) return;
    if (isTerminalClose(code)) {
      this.started = false;
      this._setStatus({ state: "closed", code, reason: reason || "refused by the server" });
      return;
    }
    this._scheduleRetry(code, reason);
  }

  _scheduleRetry(code, reason) {
    const delayMs = backoffDelay(this.attempt, this.backoffBaseMs, this.backoffCapMs, this.random);
    this.attempt += 1;
    const offline = typeof navigator !== "undefined" && navigator.onLine === false;
    this._setStatus({
      state: offline ? "offline" : "reconnecting",
      code,
      reason,
      attempt: this.attempt,
      retryAt: this.now() + delayMs,
    });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this._open();
    }, delayMs);
  }

  _startPing() {
    clearInterval(this.pingTimer);
    this.lastReceived = this.now();
    let pingedAt = null;
    if (!this.pingIntervalMs) return;
    this.pingTimer = setInterval(() => {
      // Judged against our own last ping, not the clock: a hidden tab's timers may fire
      // only once a minute, and a quiet connection must not look dead for that.
      if (pingedAt !== null && this.lastReceived < pingedAt) {
        // not a frame since the last ping, not even its pong: dead, however it looks
        this._drop(4000, "heartbeat timeout");
        this._scheduleRetry(4000, "heartbeat timeout");
        return;
      }
      pingedAt = this.now();
      this.send({ type: "ping", data: {} });
    }, this.pingIntervalMs);
  }

  /** Ping now; if nothing at all comes back within PROBE_MS, reconnect at once. */
  _probe() {
    if (!this._isOpen() || this.probeTimer) return;
    const sentAt = this.now();
    this.send({ type: "ping", data: {} });
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      if (this.lastReceived < sentAt) this.reconnectNow("no answer after a network change");
    }, PROBE_MS);
  }

  _flush() {
    while (this.outbox.length && this._isOpen()) {
      if (!this.pacer.take(this.now())) {
        if (!this.flushTimer) {
          this.flushTimer = setTimeout(() => {
            this.flushTimer = null;
            this._flush();
          }, this.pacer.waitMs());
        }
        return;
      }
      const { text } = this.outbox.shift();
      this.ws.send(text);
      for (const listener of this.frameListeners) listener("out", text);
    }
  }

  _clearTimers() {
    clearTimeout(this.retryTimer);
    clearTimeout(this.flushTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.probeTimer);
    this.retryTimer = this.flushTimer = this.pingTimer = this.probeTimer = null;
  }

  _setStatus(status) {
    this.status = status;
    for (const listener of this.statusListeners) listener(status);
  }
}

let shared = null;

/** The page's one client: created (and started) by the first caller, options and all. */
export function sharedClient(options = {}) {
  if (!shared) shared = new TickcastClient(options).start();
  return shared;
}

/**
 * Latest value per key, painted once per animation frame.
 * put(key, value) keeps only the newest value of a key until the next paint.
 */
export class FrameBatcher {
  constructor(paint, schedule = (fn) => window.requestAnimationFrame(fn)) {
    this.paint = paint;
    this.schedule = schedule;
    this.pending = new Map();
    this.scheduled = false;
  }

  put(key, value) {
    this.pending.set(key, value);
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(() => {
      this.scheduled = false;
      const batch = this.pending;
      this.pending = new Map();
      this.paint(batch);
    });
  }
}
