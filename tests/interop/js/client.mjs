// A real STOMP client as an application would write it, driven by
// tests/interop/test_stomp_js.py. One JSON argument says which client and how:
//
//   {"library": "stompjs" | "rx-stomp",
//    "url": "ws://host:port/stomp/websocket"   (a raw WebSocket)
//         | "http://host:port/stomp"           (SockJS: new SockJS(url)),
//    "transports": ["xhr-streaming"],          (SockJS only; default: all of them)
//    "destinations": ["/topic/trades.AAPL"],
//    "connectHeaders": {"passcode": "..."},
//    "resume": true}                           (stompjs only: see below)
//
// The client settings are those of the seed's analytics service (rx-stomp's
// RxStompConfig): reconnectDelay 5000, heartbeatIncoming/Outgoing 10000.
//
// Every event is printed as one JSON line on stdout:
//   {"event": "transport", "transport": "xhr-streaming", "connection": 1}   (SockJS open)
//   {"event": "connected", "headers": {...}, "connection": 1}
//   {"event": "message", "destination", "headers", "body", "connection": 1}
//   {"event": "stomp-error", "headers", "body", "connection": 1}
//   {"event": "closed", "code", "connection": 1}            (stompjs only)
// stdin closing (the test is done) deactivates the client and ends the process.
//
// rx-stomp's watch() subscribes again by itself after every reconnect. Plain stompjs
// does not: an application subscribes in onConnect. With "resume", this one subscribes
// with resume-epoch/resume-seq taken from the last MESSAGE of each destination
// (docs/stomp.md, "Resume"), so that the server sends what was missed or a reset.

import { Client } from "@stomp/stompjs";
import { RxStomp } from "@stomp/rx-stomp";
import SockJS from "sockjs-client";
import WebSocket from "ws";

// Node 20 has no global WebSocket: stompjs's brokerURL opens `new WebSocket(url, protocols)`.
Object.assign(globalThis, { WebSocket });

const options = JSON.parse(process.argv[2]);
const destinations = options.destinations ?? [];
/** Hard upper bound on the process's life, should the test runner vanish. */
const LIFETIME_MS = options.lifetimeMs ?? 180_000;

let connection = 0;

function emit(event) {
  process.stdout.write(`${JSON.stringify({ ...event, connection })}\n`);
}

function parsed(body) {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

function onMessage(message) {
  emit({
    event: "message",
    destination: message.headers.destination,
    headers: message.headers,
    body: parsed(message.body),
  });
}

const sockjs = /^https?:/.test(options.url);

/** A SockJS socket as the seed's webSocketFactory makes it (plus the transports to use). */
function newSockJS() {
  const socket = new SockJS(options.url, null, options.transports ? { transports: options.transports } : {});
  socket.addEventListener("open", () => emit({ event: "transport", transport: socket.transport }));
  return socket;
}

const settings = {
  connectHeaders: options.connectHeaders ?? {},
  reconnectDelay: 5000,
  heartbeatIncoming: 10000,
  heartbeatOutgoing: 10000,
  ...(sockjs ? { webSocketFactory: newSockJS } : { brokerURL: options.url }),
};

let stop;

if (options.library === "rx-stomp") {
  const rxStomp = new RxStomp();
  rxStomp.configure(settings);
  rxStomp.serverHeaders$.subscribe((headers) => {
    connection += 1;
    emit({ event: "connected", headers });
  });
  rxStomp.stompErrors$.subscribe((frame) =>
    emit({ event: "stomp-error", headers: frame.headers, body: frame.body }),
  );
  const subscriptions = destinations.map((destination) => rxStomp.watch({ destination }).subscribe(onMessage));
  rxStomp.activate();
  stop = async () => {
    subscriptions.forEach((s) => s.unsubscribe());
    await rxStomp.deactivate();
  };
} else {
  /** destination -> {epoch, seq} of the last MESSAGE (resume mode) */
  const last = new Map();
  const client = new Client({
    ...settings,
    onConnect: (frame) => {
      connection += 1;
      emit({ event: "connected", headers: frame.headers });
      for (const destination of destinations) {
        const headers = {};
        const seen = last.get(destination);
        if (options.resume && seen) {
          headers["resume-epoch"] = seen.epoch;
          headers["resume-seq"] = seen.seq;
        }
        client.subscribe(
          destination,
          (message) => {
            if (message.headers.epoch !== undefined && message.headers.seq !== undefined) {
              last.set(destination, { epoch: message.headers.epoch, seq: message.headers.seq });
            }
            onMessage(message);
          },
          headers,
        );
      }
    },
    onStompError: (frame) => emit({ event: "stomp-error", headers: frame.headers, body: frame.body }),
    onWebSocketClose: (evt) => emit({ event: "closed", code: evt.code }),
  });
  client.activate();
  stop = () => client.deactivate();
}

let finishing = false;

async function finish() {
  if (finishing) return;
  finishing = true;
  try {
    await stop();
  } finally {
    process.exit(0);
  }
}

process.stdout.on("error", () => process.exit(0)); // the reader has gone
process.stdin.on("end", finish);
process.stdin.on("close", finish);
process.stdin.resume();
setTimeout(finish, LIFETIME_MS).unref();
