// The WebSocket test page: connect to any URL, send any text, see every frame.
//
// It uses a bare WebSocket on purpose (not the shared client): what is shown is exactly
// what went over the wire, with no reconnect or resubscription of its own. Frames are
// appended once per animation frame, and the log keeps the newest MAX_ENTRIES.

import { realtimeUrl } from "./tickcast.js";

const MAX_ENTRIES = 2000;
const EXAMPLES = {
  ping: { type: "ping", data: {} },
  subscribe_asset: { type: "subscribe_asset", data: { symbol: "AAPL" } },
  unsubscribe_asset: { type: "unsubscribe_asset", data: { symbol: "AAPL" } },
  subscribe_portfolio: { type: "subscribe_portfolio", data: { portfolio_id: 1 } },
  auth: { type: "auth", data: { token: "<JWT or API key>" } },
};

const $ = (selector) => document.querySelector(selector);
const log = $("#log");
let ws = null;
let total = 0;
let pending = [];
let scheduled = false;

function clock(date = new Date()) {
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const hms = [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => pad(n)).join(":");
  return `${hms}.${pad(date.getMilliseconds(), 3)}`;
}

/** Log one entry: kind is "in", "out", "event" or "error". */
function record(kind, text) {
  total += 1;
  pending.push({ kind, text, at: clock() });
  if (pending.length > MAX_ENTRIES) pending = pending.slice(-MAX_ENTRIES);
  if (scheduled) return;
  scheduled = true;
  window.requestAnimationFrame(paint);
}

function paint() {
  scheduled = false;
  const batch = pending;
  pending = [];
  const fragment = document.createDocumentFragment();
  for (const { kind, text, at } of batch) {
    const li = document.createElement("li");
    li.className = kind;
    const time = document.createElement("time");
    time.textContent = at;
    const dir = document.createElement("span");
    dir.className = "dir";
    dir.textContent = kind === "in" ? "⬇ in" : kind === "out" ? "⬆ out" : "•";
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    li.append(time, dir, body);
    fragment.append(li);
  }
  log.append(fragment);
  while (log.childElementCount > MAX_ENTRIES) log.firstElementChild.remove();
  $("#count").textContent = String(total);
  if ($("#follow").checked) log.scrollTop = log.scrollHeight;
}

function setStatus(state, text) {
  const badge = $("#status");
  badge.dataset.state = state;
  badge.textContent = text;
  const open = state === "connected" || state === "connecting";
  $("#connect").disabled = open;
  $("#disconnect").disabled = !open;
  $("#send").disabled = state !== "connected";
}

function connect(url) {
  disconnect();
  let socket;
  try {
    socket = new WebSocket(url);
  } catch (error) {
    record("error", `cannot connect: ${error.message}`);
    return;
  }
  ws = socket;
  setStatus("connecting", "connecting…");
  record("event", `connecting to ${url.replace(/([?&]token=)[^&]+/, "$1…")}`);
  socket.onopen = () => {
    if (socket !== ws) return;
    setStatus("connected", "connected");
    record("event", "open");
  };
  socket.onmessage = (event) => {
    if (socket !== ws) return;
    const { data } = event;
    record("in", typeof data === "string" ? data : `(binary, ${data.size ?? data.byteLength} bytes)`);
  };
  socket.onerror = () => {
    if (socket === ws) record("error", "WebSocket error (details follow in the close event)");
  };
  socket.onclose = (event) => {
    if (socket !== ws) return;
    ws = null;
    setStatus("closed", `closed ${event.code}`);
    const reason = event.reason ? `, reason "${event.reason}"` : "";
    record("event", `closed: code ${event.code}${reason}${event.wasClean ? "" : " (not clean)"}`);
  };
}

function disconnect() {
  const socket = ws;
  if (!socket) return;
  ws = null;
  socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
  socket.close(1000, "closed from the test page");
  setStatus("closed", "disconnected");
  record("event", "disconnected by the page (1000)");
}

function send() {
  const text = $("#message").value;
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    record("error", "not connected");
    return;
  }
  ws.send(text);
  record("out", text);
}

$("#url").value = realtimeUrl();
$("#message").value = JSON.stringify(EXAMPLES.ping);

$("#connect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  connect($("#url").value.trim());
});
$("#disconnect").addEventListener("click", disconnect);
$("#send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
$("#message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    send();
  }
});
for (const button of document.querySelectorAll("[data-example]")) {
  button.addEventListener("click", () => {
    $("#message").value = JSON.stringify(EXAMPLES[button.dataset.example], null, 2);
  });
}
$("#clear").addEventListener("click", () => {
  log.replaceChildren();
  total = 0;
  $("#count").textContent = "0";
});
setStatus("idle", "disconnected");
