// One Front 4 stream in the browser, with a polling fallback: the leaderboard's
// /ws/top, /ws/around, and the monitoring sockets /ws/alerts, /ws/metrics,
// /ws/pipeline, /ws/telemetry and /ws/dlq.
//
// Each of these sockets holds one topic from the start (its URL says which) and pushes
// JSON; the matching HTTP route under /api answers the same payload. A StreamFeed
// opens the socket; while it cannot (a proxy that refuses WebSockets, a network that
// drops them, a close before the socket opened, any retryable close), it polls the
// route every pollMs with If-None-Match, so that an unchanged answer costs a 304 and
// nothing is painted again, and keeps trying the socket with capped, fully jittered
// back-off. Once the socket opens, polling stops. A terminal close (3500-3999:
// credentials refused, sign-in needed, not an operator, not found, bad parameter; or
// 1000 and the protocol errors) stops both and keeps the server's words, as does a
// 400, 401, 403, 404 or 422 from the route.
//
// Modes (feed.status.mode): connecting, live (the socket is open), polling (the socket
// is not, the route answers), offline (neither answers; both keep trying), closed
// (refused for good: feed.status.reason says why).
//
// Credentials: a browser cannot set headers on a WebSocket, so the socket gets the
// token as ?token=; the route gets it as Authorization: Bearer (never in its URL).

import { backoffDelay, errorText, isTerminalClose, ROOT, webSocketUrl } from "./tickcast.js";

export const MODES = ["connecting", "live", "polling", "offline", "closed"];

/** Answers of the route that asking again cannot change (as 3500-3999 on the socket):
 * a bad parameter, no or refused credentials, not allowed, no such portfolio. */
const REFUSED_STATUSES = new Set([400, 401, 403, 404, 422]);

export class StreamFeed {
  /**
   * @param {object} options
   * @param {string} options.socket the socket's path and query, from the root ("ws/top?n=10")
   * @param {string} options.poll the matching route ("api/leaderboard/top?n=10")
   * @param {(payload: any, how: {source: string, first: boolean}) => void} options.onData
   *   every payload; `first` is true for one that holds the whole state (a poll's answer,
   *   the socket's first message) rather than a change
   * @param {(status: object) => void} [options.onStatus]
   * @param {string|null} [options.token] a JWT or API key
   * @param {number} [options.pollMs=3000]
   * @param {number} [options.backoffBaseMs=500]
   * @param {number} [options.backoffCapMs=10000]
   */
  constructor(options) {
    this.socketPath = options.socket;
    this.pollPath = options.poll;
    this.onData = options.onData;
    this.onStatus = options.onStatus || (() => {});
    this.token = options.token || null;
    this.pollMs = options.pollMs ?? 3000;
    this.backoffBaseMs = options.backoffBaseMs ?? 500;
    this.backoffCapMs = options.backoffCapMs ?? 10000;
    this.root = options.root || ROOT;
    this.WebSocket = options.WebSocket || window.WebSocket;
    this.random = options.random || Math.random;

    this.ws = null;
    this.opened = false; // the current socket has opened
    this.received = 0; // messages on the current socket
    this.attempt = 0;
    this.lastError = null; // the socket's last {"type": "error"} words
    this.socketDown = {}; // the last close's code and reason, shown while polling
    this.etag = null;
    this.generation = 0; // bumped on every stop, so late answers are dropped
    this.retryTimer = null;
    this.pollTimer = null;
    this.polling = false;
    this.started = false;
    this.counts = { ws: 0, poll: 0, notModified: 0 };
    this.status = { mode: "connecting" };
    this._onOnline = () => this.retryNow();
  }

  start() {
    if (this.started) return this;
    this.started = true;
    this.generation += 1;
    window.addEventListener("online", this._onOnline);
    this._setStatus({ mode: "connecting" });
    this._open();
    return this;
  }

  stop(status = { mode: "closed", reason: "stopped by the page" }) {
    this.started = false;
    this.generation += 1;
    window.removeEventListener("online", this._onOnline);
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this._stopPolling();
    this._dropSocket();
    this._setStatus(status);
  }

  /** New credentials (null: none): start again with them. */
  setToken(token) {
    this.token = token || null;
    this.stop({ mode: "connecting" });
    this.etag = null;
    this.attempt = 0;
    this.start();
  }

  /** Try the socket again now (the browser is back online, or a button). */
  retryNow() {
    if (!this.started || this.ws) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt = 0;
    this._open();
  }

  // -- the socket

  _socketUrl() {
    const url = new URL(webSocketUrl(this.socketPath, this.root));
    if (this.token) url.searchParams.set("token", this.token);
    return url.toString();
  }

  _open() {
    if (!this.started || this.ws) return;
    this.opened = false;
    this.received = 0;
    this.lastError = null;
    let ws;
    try {
      ws = new this.WebSocket(this._socketUrl());
    } catch (error) {
      this._socketFailed(1006, String(error));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.opened = true;
      this.socketDown = {};
      this._stopPolling();
      this._setStatus({ mode: "live" });
    };
    ws.onmessage = (event) => this._receive(ws, event.data);
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this._socketFailed(event.code, event.reason);
    };
    ws.onerror = () => {}; // a close event follows
  }

  _receive(ws, text) {
    if (ws !== this.ws) return;
    let payload;
    try {
      payload = JSON.parse(text);
    } catch {
      return;
    }
    if (payload && !Array.isArray(payload) && payload.type === "error") {
      this.lastError = String(payload.data?.message || "error"); // the close follows
      return;
    }
    const first = this.received === 0;
    this.received += 1;
    this.attempt = 0; // it works: the next drop retries quickly again
    this.counts.ws += 1;
    this.onData(payload, { source: "ws", first });
  }

  _socketFailed(code, reason) {
    if (!this.started) return;
    const words = this.lastError || reason || "";
    if (isTerminalClose(code)) {
      this.stop({ mode: "closed", code, reason: words || "refused by the server" });
      return;
    }
    const delayMs = backoffDelay(this.attempt, this.backoffBaseMs, this.backoffCapMs, this.random);
    this.attempt += 1;
    this.socketDown = { code, reason: words };
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this._open();
    }, delayMs);
    if (this.status.mode === "live") this._setStatus({ mode: "connecting", code, reason: words });
    if (!this.polling) this._startPolling();
  }

  _dropSocket() {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(1000, "closed by the page");
    } catch {
      // never opened: nothing to close
    }
  }

  // -- polling

  _startPolling() {
    this.polling = true;
    this._poll();
  }

  _stopPolling() {
    this.polling = false;
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  async _poll() {
    const generation = this.generation;
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (this.etag) headers["If-None-Match"] = this.etag;
    let outcome;
    try {
      const response = await fetch(new URL(this.pollPath, this.root), { headers, cache: "no-store" });
      if (response.status === 304) {
        outcome = { ok: true };
        this.counts.notModified += 1;
      } else if (response.ok) {
        outcome = { ok: true, payload: await response.json(), etag: response.headers.get("ETag") };
      } else if (REFUSED_STATUSES.has(response.status)) {
        outcome = { refused: true, code: response.status, reason: await errorText(response) };
      } else {
        outcome = { ok: false, code: response.status, reason: await errorText(response) };
      }
    } catch (error) {
      outcome = { ok: false, reason: String(error.message || error) };
    }
    if (generation !== this.generation || !this.polling) return; // stopped, or live again
    if (outcome.refused) {
      this.stop({ mode: "closed", code: outcome.code, reason: outcome.reason });
      return;
    }
    if (outcome.ok) {
      if (outcome.payload !== undefined) {
        this.etag = outcome.etag || null;
        this.counts.poll += 1;
        this.onData(outcome.payload, { source: "poll", first: true });
      }
      this._setStatus({ mode: "polling", ...this.socketDown });
    } else {
      this._setStatus({ mode: "offline", code: outcome.code, reason: outcome.reason });
    }
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      if (this.polling) this._poll();
    }, this.pollMs);
  }

  _setStatus(status) {
    this.status = status;
    this.onStatus(status);
  }
}

/** The mode of several feeds together: the worst one (closed > offline > polling > ...). */
export function overallMode(feeds) {
  const rank = { live: 0, connecting: 1, polling: 2, offline: 3, closed: 4 };
  let worst = "live";
  for (const feed of feeds) if (rank[feed.status.mode] > rank[worst]) worst = feed.status.mode;
  return worst;
}

const MODE_TEXT = {
  connecting: "connecting…",
  live: "live",
  polling: "polling",
  offline: "offline",
  closed: "refused",
};

/** Show a feed's mode in a badge (data-mode for the stylesheet and the tests). */
export function showMode(badge, status) {
  badge.dataset.mode = status.mode;
  // the badge colours of the other pages, by connection state
  badge.dataset.state = { live: "connected", polling: "reconnecting", offline: "offline", closed: "closed" }[
    status.mode
  ] || "connecting";
  badge.textContent = MODE_TEXT[status.mode] || status.mode;
  badge.title = status.reason ? `${status.code ?? ""} ${status.reason}`.trim() : "";
}
