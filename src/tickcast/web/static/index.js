// The landing page: the WebSocket (and SockJS) URLs for the host this page was loaded from, and
// whether the gateway is ready (GET /ready) and which version it runs (GET /health).
//
// Every URL is relative to the gateway's root (ROOT), so the page also works behind a
// proxy that serves the gateway under a path prefix or over https (then wss://).

import { ROOT, webSocketUrl } from "./tickcast.js";

for (const code of document.querySelectorAll("code.ws-url")) {
  code.textContent = webSocketUrl(code.dataset.path, ROOT);
}
// SockJS takes the http(s) URL: new SockJS("http://host:8000/stomp")
for (const code of document.querySelectorAll("code.http-url")) {
  code.textContent = new URL(code.dataset.path, ROOT).href;
}

const status = document.querySelector("#status");

function show(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

async function json(path) {
  const response = await fetch(new URL(path, ROOT), { cache: "no-store" });
  return { ok: response.ok, body: await response.json() };
}

const RECHECK_MS = 3000;
let recheck = null;

/** Show the gateway's state; look again in a few seconds until it is ready. */
export async function check() {
  let ready = false;
  try {
    const [health, readiness] = await Promise.all([json("health"), json("ready")]);
    const version = health.body.version ? `tickcast ${health.body.version}` : "tickcast";
    ready = readiness.ok;
    if (ready) {
      show("connected", `${version} · ready · feed: ${readiness.body.active_provider}`);
    } else {
      show("connecting", `${version} · not ready: waiting for market data`);
    }
  } catch {
    show("closed", "gateway unreachable");
  }
  window.clearTimeout(recheck);
  if (!ready) recheck = window.setTimeout(check, RECHECK_MS);
}

check();
