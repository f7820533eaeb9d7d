// A socket.io-client 4 client for tests/interop/test_socketio_js.py: connects as the
// seed's React front end does (io(url, options)), prints one JSON line per thing that
// happens (connect, every event with its body, connect_error, the transport upgrade,
// disconnect), and ends when its stdin closes.
//
// argv[2]: JSON options {url, transports, auth, extraHeaders, emit: [[event, body], ...]}
import { io } from "socket.io-client";

const options = JSON.parse(process.argv[2]);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const socket = io(options.url, {
  transports: options.transports,
  auth: options.auth ?? {},
  extraHeaders: options.extraHeaders ?? {},
  reconnection: false,
  timeout: 20000,
});

socket.io.on("open", () => {
  print({ kind: "open", transport: socket.io.engine.transport.name });
  socket.io.engine.on("upgrade", (transport) =>
    print({ kind: "upgrade", transport: transport.name }),
  );
});
socket.on("connect", () => {
  print({ kind: "connect", transport: socket.io.engine.transport.name });
  for (const [event, body] of options.emit ?? []) {
    socket.emit(event, body, (ack) => print({ kind: "ack", event, body: ack }));
  }
});
socket.onAny((name, body) => print({ kind: "event", name, body }));
socket.on("connect_error", (err) => print({ kind: "connect_error", message: err.message }));
socket.on("disconnect", (reason) => print({ kind: "disconnect", reason }));

process.stdin.on("data", () => {});
process.stdin.on("end", () => {
  socket.close();
  process.exit(0);
});
