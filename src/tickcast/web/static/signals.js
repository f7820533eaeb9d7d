// The dashboard's signals panel: trading signals and the signal workers' statuses, over
// Socket.IO (Front 5, /socket.io/) exactly as a socket.io-client front end receives them.
//
// The history comes first over HTTP (GET /api/signals), then `new_signal` events live.
// On a reconnect the client sends the id of the last signal it holds (`auth.last_signal_id`),
// so the server replays what the panel missed, in order; a `reset` event says the history
// no longer holds that id, and the panel reloads the history instead. Statuses arrive as
// `status_update` events, one per change, and on connect for each worker's current state.
//
// `io` is the vendored socket.io-client UMD build (static/vendor/socket.io.min.js), loaded
// by the page as a classic script before this module.

import { ROOT } from "./tickcast.js";

const MAX_ROWS = 50;
const STATES = { active: "connected", degraded: "reconnecting", offline: "closed" };

const timeFormat = new Intl.DateTimeFormat("en-US", {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});
const priceFormat = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 });

function formatTime(timestamp) {
  const moment = new Date(timestamp);
  return Number.isNaN(moment.getTime()) ? String(timestamp) : timeFormat.format(moment);
}

/** The panel: a table of the latest signals (newest first) and one badge per worker. */
export class SignalsPanel {
  constructor(root) {
    this.rows = root.querySelector("#signals tbody");
    this.statuses = root.querySelector("#signal-workers");
    this.connection = root.querySelector("#signals-connection");
    this.empty = root.querySelector("#signals-empty");
    this.seen = new Set();
    this.lastId = null;
    this.socket = null;
    this.token = null;
  }

  /** Show one signal (once: a replayed id already shown is skipped). */
  add(signal) {
    if (!signal || !signal.id || this.seen.has(signal.id)) return;
    this.seen.add(signal.id);
    this.lastId = signal.id;
    const row = document.createElement("tr");
    row.dataset.id = signal.id;
    const cells = [
      [formatTime(signal.timestamp), ""],
      [signal.symbol, ""],
      [signal.type, ""],
      [signal.signal, signal.signal === "BUY" ? "up" : "down"],
      [priceFormat.format(signal.price), "num"],
      [signal.timeframe, ""],
      [signal.source, "muted"],
    ];
    for (const [text, cls] of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (cls) cell.className = cls;
      row.append(cell);
    }
    this.rows.prepend(row);
    while (this.rows.rows.length > MAX_ROWS) {
      const last = this.rows.rows[this.rows.rows.length - 1];
      this.seen.delete(last.dataset.id);
      last.remove();
    }
    this.empty.hidden = true;
  }

  /** Show one worker's state as a badge (one badge per service, updated in place). */
  status(update) {
    if (!update || !update.service) return;
    let badge = this.statuses.querySelector(`[data-service="${CSS.escape(update.service)}"]`);
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "badge";
      badge.dataset.service = update.service;
      this.statuses.append(badge);
    }
    badge.dataset.state = STATES[update.status] || "idle";
    badge.dataset.status = update.status;
    badge.textContent = `${update.service}: ${update.status}`;
    badge.title = update.message || "";
  }

  /** The signals the gateway holds, oldest first (GET /api/signals). */
  async loadHistory() {
    const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    const response = await fetch(new URL("api/signals?limit=" + MAX_ROWS, ROOT), { headers });
    if (!response.ok) throw new Error(`GET /api/signals: HTTP ${response.status}`);
    for (const signal of await response.json()) this.add(signal);
  }

  /** Connect (or reconnect with new credentials: null is anonymous). */
  connect(token = null) {
    this.token = token;
    if (this.socket) this.socket.disconnect();
    const socket = io(ROOT.origin, {
      path: new URL("socket.io/", ROOT).pathname,
      // asked again on every reconnect: the last signal held is where the replay starts
      auth: (send) => send(this.auth()),
    });
    this.socket = socket;
    socket.on("connect", () => this.show("connected", "live"));
    socket.on("disconnect", (reason) => this.show("reconnecting", `disconnected (${reason})`));
    socket.on("connect_error", (error) => this.show("closed", error.message || "refused"));
    socket.on("welcome", () => {});
    socket.on("new_signal", (signal) => this.add(signal));
    socket.on("status_update", (update) => this.status(update));
    socket.on("reset", () => this.loadHistory().catch(() => {}));
  }

  auth() {
    const auth = {};
    if (this.token) auth.token = this.token;
    if (this.lastId) auth.last_signal_id = this.lastId;
    return auth;
  }

  show(state, text) {
    this.connection.dataset.state = state;
    this.connection.textContent = text;
  }
}

/** Start the panel in `root`: the history, then the live stream. */
export function startSignalsPanel(root, token = null) {
  const panel = new SignalsPanel(root);
  panel.token = token;
  panel
    .loadHistory()
    .catch(() => {})
    .finally(() => panel.connect(token));
  return panel;
}
