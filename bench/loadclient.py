"""Fan-out load client for the tickcast benchmark (one process, picows, asyncio).

Opens N WebSocket connections (bounded concurrency at connect time), subscribes connection
``i`` to symbols ``(i * k + j) % nsymbols`` for ``j < k`` (so when ``N * k`` is a multiple of
``nsymbols`` every symbol has exactly the same number of subscribers), and counts every
market-data message.

Measurement (see docs/performance.md for the definitions):

* The measured window is delimited by two snapshots of the *server's* tick counter, each with a
  millisecond boundary: the peers report how many ticks they stamped before the millisecond of
  their latest tick; for tickcast the count is its simulator's schedule (``schedule:RATE``); a
  Prometheus counter (``prom:METRIC``) is stamped with the midpoint of the HTTP request.
* Every received message is bucketed by its ``timestamp`` (millisecond string), so messages
  generated inside the window are counted no matter when they arrive (the client drains after
  the window closes).
* Delivered, for every server = messages with a timestamp in the window / (ticks in the
  window x subscribers per symbol): per tick.
* Latest value (``--conflated``/``--track-latest``, beside it): a tick counts as delivered if a
  message for its symbol stamped at or after it arrived; per (connection, symbol) see
  ``coverage``.
* Latency = receive wall time - message timestamp, on every ``--sample-every``-th message; the
  max is exact over all messages (last arrival per timestamp bucket). Only messages that
  arrived are measured, so a conflating server's latency is that of the ticks it kept.
  Every server stamps to the nearest millisecond (tickcast's wire format; the peers follow
  it), so a latency is off by at most 0.5 ms either way, for every server alike.
* Freshness (bench/freshness.py): on a fixed clock, the age of the newest value every n-th
  connection holds (about ``--fresh-pairs`` pairs, every symbol), and how long it has been
  superseded at the source.

Progress goes to stdout as JSON lines (``connected``, ``measure_start``, ``measure_end``,
``result``), which bench/run.py reads to time its server CPU measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import resource
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from freshness import Freshness, ts_epoch
from tickcast.client import load
from tickcast.client.load import percentile

TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE
_time = time.time

# Per timestamp bucket (23-byte ISO prefix, millisecond resolution): message count and the
# wall time of the latest arrival. Shared by all connections; asyncio is single-threaded.
COUNTS: dict[bytes, int] = {}
LAST_RECV: dict[bytes, float] = {}
SAMPLES: list[tuple[bytes, float]] = []


class Window:
    """End of the measured window as a timestamp prefix, once known (b"~" sorts last)."""

    limit = b"~"


class Sampler:
    every = 10
    k = 0
    total = 0


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    sys.stderr.write(f"[loadclient] {msg}\n")
    sys.stderr.flush()


def iso23(ms: int) -> bytes:
    """The 23-byte ISO prefix of epoch millisecond ``ms``."""
    sec, frac = divmod(ms, 1000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:03d}").encode()


#: what the tracked pairs hold, sampled on a fixed clock (see bench/freshness.py)
FRESH = Freshness()


def _record(data: bytes, now: float) -> bytes:
    """Bucket one JSON market message by timestamp; return the timestamp bytes."""
    i = data.find(b'"timestamp"')
    j = data.find(b'"', i + 11)
    ts = data[j + 1 : j + 24]
    COUNTS[ts] = COUNTS.get(ts, 0) + 1
    LAST_RECV[ts] = now
    s = Sampler
    s.total += 1
    s.k += 1
    if s.k >= s.every:
        s.k = 0
        SAMPLES.append((ts, now))
    return ts


def _symbol(data: bytes) -> bytes:
    i = data.find(b'"symbol"')
    j = data.find(b'"', i + 8)
    return data[j + 1 : data.find(b'"', j + 1)]


class FeedListener(WSListener):  # type: ignore[misc]
    """Front 1 native protocol: JSON objects, or JSON arrays of them (?frames=array)."""

    def __init__(
        self, symbols: list[str], track: bool, probe: bool = False, fresh: bool = False
    ) -> None:
        self.symbols = symbols
        self.track = track  # remember the newest timestamp per symbol
        self.probe = probe
        self.fresh = fresh  # one of the pairs whose held value is sampled (FRESH)
        self.held: dict[bytes, bytes] = {}  # symbol -> newest timestamp held (if fresh)
        self.subscribed: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.received = 0
        self.last: dict[bytes, bytes] = {}  # symbol -> newest timestamp before the window end
        self.after: set[bytes] = set()  # symbols with a message stamped at/after the window end
        self.disconnected = False
        self.transport: WSTransport | None = None

    def note(self, body: bytes, ts: bytes, symbol: bytes | None = None) -> None:
        """Per-symbol bookkeeping of one market message (only for tracked connections)."""
        if not (self.track or self.fresh):
            return
        if symbol is None:
            symbol = _symbol(body)
        if self.track:
            if ts < Window.limit:
                self.last[symbol] = ts
            else:
                self.after.add(symbol)
        if self.fresh:
            FRESH.received(self.held, symbol, ts)

    def subscribe_payload(self) -> bytes:
        return orjson.dumps({"action": "subscribe", "symbols": self.symbols})

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.send(TEXT, self.subscribe_payload())

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected = True
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("disconnected before subscribed"))

    def _ack(self) -> None:
        if not self.subscribed.done():
            self.subscribed.set_result(_time())

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            if frame.msg_type is CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            return
        data = frame.get_payload_as_bytes()
        if data[:1] == b"[":
            self._array(data)
        elif b'"price"' in data:
            if self.probe:
                return
            self.received += 1
            self.note(data, _record(data, _time()))
        elif b'"subscribed"' in data:
            self._ack()

    def _array(self, data: bytes) -> None:
        if self.probe:
            return
        now = _time()
        for item in orjson.loads(data):
            raw = orjson.dumps(item)
            if b'"price"' not in raw:
                continue
            self.received += 1
            self.note(raw, _record(raw, now), str(item["symbol"]).encode())


class SocketIOListener(FeedListener):
    """Raw Engine.IO v4 / Socket.IO v5 over WebSocket: 0 -> 40 -> 42["subscribe",...].

    Against the python-socketio peer, ``tick`` events; against tickcast's Front 5
    (``/socket.io/``), which the same subscribe (with ``channels: ["quotes"]``, which the
    peer ignores) turns to quotes, ``quote`` events carrying Front 1's quote JSON."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            if frame.msg_type is CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            return
        data = frame.get_payload_as_bytes()
        if data.startswith(b'42["tick"') or data.startswith(b'42["quote"'):
            if self.probe:
                return
            self.received += 1
            self.note(data, _record(data, _time()))
        elif data == b"2":
            transport.send(TEXT, b"3")
        elif data.startswith(b'42["subscribed"'):
            self._ack()
        elif data.startswith(b"40"):
            payload = orjson.dumps({"symbols": self.symbols, "channels": ["quotes"]})
            transport.send(TEXT, b'42["subscribe",' + payload + b"]")
        elif data.startswith(b"0"):
            transport.send(TEXT, b"40")
        elif data.startswith(b"1") or data.startswith(b"44"):
            transport.disconnect()


class StompListener(FeedListener):
    """Front 3, STOMP 1.2 over WebSocket (``/stomp/websocket``): CONNECT, one SUBSCRIBE
    per symbol to ``/topic/quotes.<SYM>`` (the last asks for a receipt: the ack), then a
    MESSAGE per update whose body is Front 1's JSON object."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.send_stomp([b"CONNECT\naccept-version:1.2\nhost:bench\nheart-beat:0,0\n\n\x00"])

    def subscribe_frames(self) -> list[bytes]:
        frames = [
            b"SUBSCRIBE\nid:sub-%d\ndestination:/topic/quotes.%s\n\n\x00" % (i, s.encode())
            for i, s in enumerate(self.symbols)
        ]
        frames[-1] = frames[-1][:-2] + b"receipt:subscribed\n\n\x00"
        return frames

    def send_stomp(self, frames: list[bytes]) -> None:
        """Several frames in one WebSocket message (STOMP allows it)."""
        assert self.transport is not None
        self.transport.send(TEXT, b"".join(frames))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            if frame.msg_type is CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            return
        self.on_stomp(frame.get_payload_as_bytes())

    def on_stomp(self, data: bytes) -> None:
        """One server frame (a heart-beat is a bare EOL)."""
        if data.startswith(b"MESSAGE"):
            if self.probe:
                return
            body = data[data.find(b"\n\n") + 2 : -1]
            self.received += 1
            self.note(body, _record(body, _time()))
        elif data.startswith(b"CONNECTED"):
            self.send_stomp(self.subscribe_frames())
        elif data.startswith(b"RECEIPT"):
            self._ack()
        elif data.startswith(b"ERROR"):
            log(f"STOMP ERROR: {data[:200]!r}")


def _sockjs_strings(frames: list[bytes]) -> bytes:
    """What a SockJS client sends: a JSON array of strings."""
    return orjson.dumps([f.decode() for f in frames])


class SockJSListener(StompListener):
    """STOMP over SockJS's ``websocket`` transport (``/stomp/<server>/<session>/websocket``):
    ``o`` opens, ``a[...]`` carries STOMP frames as JSON strings, ``h`` beats."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport  # CONNECT after the server's "o"

    def send_stomp(self, frames: list[bytes]) -> None:
        assert self.transport is not None
        self.transport.send(TEXT, _sockjs_strings(frames))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            if frame.msg_type is CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            return
        self.on_sockjs(frame.get_payload_as_bytes())

    def on_sockjs(self, data: bytes) -> None:
        kind = data[:1]
        if kind == b"a":
            for text in orjson.loads(data[1:]):
                self.on_stomp(text.encode())
        elif kind == b"o":
            self.send_stomp([b"CONNECT\naccept-version:1.2\nhost:bench\nheart-beat:0,0\n\n\x00"])
        elif kind == b"c":
            log(f"SockJS close: {data[:200]!r}")
            if self.transport is not None:
                self.transport.disconnect()


class XhrStreaming(asyncio.Protocol):
    """STOMP over SockJS's ``xhr_streaming`` transport, on raw asyncio sockets: one
    streaming POST receives (HTTP/1.1, chunked), a ``xhr_send`` POST per batch of frames
    sends. ``disconnect`` closes both, as ``WSTransport.disconnect`` does."""

    def __init__(self, listener: SockJSListener, host: str, port: int, base: str) -> None:
        self.listener = listener
        self.host, self.port, self.base = host, port, base
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.headers_done = False
        self.chunk_left = 0  # bytes left of the current chunk (0: a size line is next)
        self.body = b""
        self.posts: set[asyncio.Future[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._request()

    def _request(self) -> None:
        assert self.transport is not None
        self.transport.write(
            f"POST {self.base}/xhr_streaming HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.on_ws_disconnected(None)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self._response():
            # the response limit ended it: the next streaming request, as sockjs-client
            self.headers_done = False
            self._request()

    def _response(self) -> bool:
        """Read what the response holds; True once it ended (its last chunk read)."""
        if not self.headers_done:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            self.headers_done = True
            self.buf = self.buf[end + 4 :]
            self.chunk_left = 0
        # de-chunk into self.body: a size line, that many bytes, CRLF
        buf = self.buf
        ended = False
        while buf:
            if self.chunk_left == 0:
                eol = buf.find(b"\r\n", 2 if buf[:2] == b"\r\n" else 0)
                if eol < 0:
                    break
                line = buf[:eol].strip()  # the previous chunk's CRLF, then the size
                size = int(line.split(b";")[0] or b"0", 16)
                if size == 0:  # the last chunk; a CRLF ends the response
                    if len(buf) < eol + 4:
                        break
                    buf = buf[eol + 4 :]
                    ended = True
                    break
                buf = buf[eol + 2 :]
                self.chunk_left = size
            take = buf[: self.chunk_left]
            self.chunk_left -= len(take)
            buf = buf[len(take) :]
            self.body += take
        self.buf = buf
        body = self.body
        start = 0
        while True:
            eol = body.find(b"\n", start)
            if eol < 0:
                break
            line = body[start:eol]
            start = eol + 1
            if line and line.strip(b"h"):
                self.listener.on_sockjs(line)
        self.body = body[start:]
        return ended

    def send(self, payload: bytes) -> None:
        task = asyncio.ensure_future(self._post(payload))
        self.posts.add(task)
        task.add_done_callback(self.posts.discard)

    async def _post(self, payload: bytes) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(
                f"POST {self.base}/xhr_send HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: text/plain\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            status = await reader.readline()
            if b" 204" not in status and b" 200" not in status:
                log(f"xhr_send: {status!r}")
        finally:
            writer.close()

    def disconnect(self, graceful: bool = True) -> None:
        if self.transport is not None:
            self.transport.close()


class XhrListener(SockJSListener):
    """A ``SockJSListener`` whose frames come from an ``XhrStreaming`` response."""

    stream: XhrStreaming

    def send_stomp(self, frames: list[bytes]) -> None:
        self.stream.send(_sockjs_strings(frames))


# ---------------------------------------------------------------------------------------------
# Server tick counter
# ---------------------------------------------------------------------------------------------


async def http_get(url: str, timeout_s: float) -> bytes:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the benchmark only targets 127.0.0.1")
    path = parts.path + (f"?{parts.query}" if parts.query else "")

    async def go() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            raw = await reader.read()
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1] if b" " in head else b"?"
        if status != b"200":
            raise RuntimeError(f"GET {url}: HTTP {status.decode(errors='replace')}")
        if b"transfer-encoding: chunked" in head.lower():
            out, rest = b"", body
            while rest:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0] or b"0", 16)
                if size == 0:
                    break
                out, rest = out + rest[:size], rest[size + 2 :]
            body = out
        return body

    return await asyncio.wait_for(go(), timeout_s)


def parse_prometheus(text: str, spec: str) -> float:
    """Sum the samples of ``spec`` (``name`` or ``name{label="v",...}``) in exposition text."""
    name, _, want = spec.partition("{")
    wanted = [w.strip() for w in want.rstrip("}").split(",") if w.strip()]
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        rest = line[len(name) :]
        if rest[:1] == "{":
            labels, _, value = rest[1:].partition("}")
        elif rest[:1] == " ":
            labels, value = "", rest
        else:
            continue
        if all(w in labels for w in wanted):
            total += float(value.split()[0])
            found = True
    if not found:
        raise RuntimeError(f"metric {spec!r} not found in /metrics")
    return total


async def snapshot(args: argparse.Namespace) -> tuple[float, int, float]:
    """(ticks stamped before the boundary, boundary in epoch ms, its uncertainty in s).

    The client counts messages whose millisecond timestamp lies in [boundary0, boundary1).
    """
    t_a = _time()
    if args.stats_kind.startswith("schedule:"):
        # The server stamps tick k at start + k / rate and skips none (a skip is a loss), so
        # rate * (B1 - B0) ticks are stamped in [B0, B1), to +-1 tick.
        boundary = math.floor(t_a * 1000.0)
        return float(args.stats_kind.removeprefix("schedule:")) * boundary / 1000.0, boundary, 0.0
    body = await http_get(args.stats_url, args.stats_timeout)
    t_b = _time()
    if args.stats_kind == "peer":
        doc = json.loads(body)
        return float(doc["ticks"]), int(doc["boundary_ms"]), 0.0
    ticks = parse_prometheus(body.decode(), args.stats_kind.removeprefix("prom:"))
    return ticks, round((t_a + t_b) * 500.0), (t_b - t_a) / 2


# ---------------------------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------------------------


LISTENERS: dict[str, type[FeedListener]] = {
    "native": FeedListener,
    "socketio": SocketIOListener,
    "stomp": StompListener,
    "sockjs-ws": SockJSListener,
    "sockjs-xhr": XhrListener,
}
_sessions = iter(range(1 << 62))


def sockjs_session() -> str:
    """``<server>/<session>`` path segments of a new SockJS session."""
    n = next(_sessions)
    return f"{n % 1000:03d}/s{n}"


def symbols_for(i: int, args: argparse.Namespace) -> list[str]:
    """The rule ``tickcast loadgen`` uses too (``tickcast.client.load.symbols_for``)."""
    universe = [args.symbol_format.format(n) for n in range(args.nsymbols)]
    return load.symbols_for(i, args.per_client, universe)


async def open_one(
    args: argparse.Namespace, symbols: list[str], probe: bool, fresh: bool = False
) -> tuple[WSTransport, FeedListener, float, float]:
    cls = LISTENERS[args.protocol]
    holder: list[FeedListener] = []

    def factory() -> FeedListener:
        listener = cls(symbols, args.conflated or args.track_latest, probe, fresh)
        holder.append(listener)
        return listener

    t0 = _time()
    transport: Any
    if args.protocol == "sockjs-xhr":
        listener = factory()
        assert isinstance(listener, XhrListener)
        url = urlsplit(args.url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        stream = XhrStreaming(listener, host, port, f"{url.path}/{sockjs_session()}")
        listener.stream = stream
        transport, _ = await asyncio.wait_for(
            asyncio.get_running_loop().create_connection(lambda: stream, host, port),
            args.connect_timeout,
        )
        transport = stream
    else:
        url_s = args.url
        if args.protocol == "sockjs-ws":
            url_s = url_s.replace("http://", "ws://", 1) + f"/{sockjs_session()}/websocket"
        transport, _ = await asyncio.wait_for(
            ws_connect(factory, url_s, websocket_handshake_timeout=args.connect_timeout),
            args.connect_timeout,
        )
    t_open = _time()
    listener = holder[0]
    try:
        t_ack = await asyncio.wait_for(asyncio.shield(listener.subscribed), args.connect_timeout)
    except BaseException:
        transport.disconnect(graceful=False)
        raise
    return transport, listener, t_open - t0, t_ack - t0


def fresh_stride(args: argparse.Namespace) -> int:
    """Every n-th connection is tracked for freshness: ``--fresh-stride``, or (0) about
    ``--fresh-pairs`` (connection, symbol) pairs, with n coprime to the period of the
    symbol rule so that the tracked connections cover every symbol."""
    if args.fresh_stride or args.fresh_pairs <= 0:
        return int(args.fresh_stride)
    period = args.nsymbols // math.gcd(args.nsymbols, args.per_client)
    stride = max(1, round(args.clients * args.per_client / args.fresh_pairs))
    while math.gcd(stride, period) != 1:
        stride += 1
    return stride


async def connect_all(
    args: argparse.Namespace,
) -> tuple[list[tuple[WSTransport, FeedListener] | None], dict[str, Any]]:
    sem = asyncio.Semaphore(args.concurrency)
    stride = fresh_stride(args)
    conns: list[tuple[WSTransport, FeedListener] | None] = [None] * args.clients
    errors: dict[str, int] = {}
    ack_times: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            try:
                fresh = stride > 0 and i % stride == 0
                transport, listener, _, _ = await open_one(args, symbols_for(i, args), False, fresh)
            except Exception as exc:
                key = type(exc).__name__
                errors[key] = errors.get(key, 0) + 1
                return
            conns[i] = (transport, listener)
            ack_times.append(_time())

    t0 = _time()
    tasks = [asyncio.create_task(one(i)) for i in range(args.clients)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), args.connect_phase_timeout)
    except TimeoutError:
        errors["ConnectPhaseTimeout"] = sum(1 for c in conns if c is None)
        for t in tasks:
            t.cancel()
    ok = sum(1 for c in conns if c is not None)
    elapsed = (max(ack_times) - t0) if ack_times else 0.0
    info = {
        "clients_requested": args.clients,
        "clients_connected": ok,
        "connect_errors": errors,
        "connect_seconds": round(elapsed, 3),
        "connects_per_s": round(ok / elapsed, 1) if elapsed > 0 else None,
    }
    return conns, info


async def probe_loop(args: argparse.Namespace, out: list[dict[str, Any]]) -> None:
    """Time one extra connect + subscribe every ``--probe-interval`` s while the load runs."""
    sym = [args.symbol_format.format(0)]
    while True:
        await asyncio.sleep(args.probe_interval)
        try:
            transport, _, t_open, t_ack = await open_one(args, sym, True)
            out.append({"handshake_ms": t_open * 1000, "subscribed_ms": t_ack * 1000})
            transport.disconnect(graceful=False)
        except Exception as exc:
            out.append({"error": type(exc).__name__})


async def fresh_loop(conns: list[tuple[WSTransport, FeedListener] | None], interval: float) -> None:
    """Sample what the tracked pairs hold every ``interval`` s, on a fixed clock."""
    pairs = [
        (c[1].held, s.encode()) for c in conns if c is not None and c[1].fresh for s in c[1].symbols
    ]
    start = _time()
    k = 0
    while True:
        FRESH.sample(_time(), pairs)
        k += 1
        await asyncio.sleep(max(0.0, start + k * interval - _time()))


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------


def in_window(b0: bytes, b1: bytes) -> int:
    return sum(n for ts, n in COUNTS.items() if b0 <= ts < b1)


def coverage(
    conns: list[tuple[WSTransport, FeedListener] | None],
    args: argparse.Namespace,
    b0: bytes,
    b1: bytes,
    t0: float,
    strict: bool = False,
) -> tuple[float, int]:
    """Mean over (connection, symbol) of the window's ticks whose latest value arrived.

    A pair is fully covered when it received a message stamped at or after the window end,
    or the newest in-window timestamp any subscriber of the symbol received (the symbol's last
    tick in the window, as far as anyone can tell). Otherwise it is covered up to the newest
    timestamp it did receive, ticks assumed spread evenly over the window. A symbol none of
    whose subscribers received anything stamped in the window had, as far as anyone can
    tell, no tick in it (W3's near-idle feed): its pairs are covered, unless ``strict`` (the
    drain's test, which waits for late messages). Per-tick delivery counts any loss.
    """
    pairs = [(c, s.encode()) for i, c in enumerate(conns) for s in symbols_for(i, args)]
    newest: dict[bytes, bytes] = {}
    for c, s in pairs:
        if c is not None:
            last = c[1].last.get(s)
            if last is not None and b0 <= last < b1 and last > newest.get(s, b""):
                newest[s] = last
    total, uncovered = 0.0, 0
    for c, s in pairs:
        target = newest.get(s)
        if c is None:
            uncovered += 1
            continue
        if target is None and not strict:
            total += 1.0
            continue
        last = c[1].last.get(s)
        if s in c[1].after or (last is not None and (last >= b1 or (target and last >= target))):
            total += 1.0
            continue
        uncovered += 1
        if last is not None and target is not None and last > b0:
            span = ts_epoch(target) - t0
            total += max(0.0, min(1.0, (ts_epoch(last) - t0) / span)) if span > 0 else 0.0
    return (total / len(pairs) if pairs else 0.0), uncovered


async def drain(
    args: argparse.Namespace,
    check: Callable[[], tuple[bool, float]],
) -> float:
    """Wait until check() says done, or progress stalls after --drain-min, or --drain-max."""
    start = _time()
    last_value, last_change = -1.0, start
    while True:
        done, value = check()
        now = _time()
        if done:
            break
        if value != last_value:
            last_value, last_change = value, now
        if now - start >= args.drain_min and now - last_change >= args.drain_stall:
            break
        if now - start >= args.drain_max:
            break
        await asyncio.sleep(0.2)
    return _time() - start


async def run(args: argparse.Namespace) -> dict[str, Any]:
    Sampler.every = args.sample_every
    conns, info = await connect_all(args)
    emit("connected", **info)
    if info["clients_connected"] == 0:
        return {**info, "error": "no connection succeeded"}

    await asyncio.sleep(args.warmup)
    probes: list[dict[str, Any]] = []
    ticks0, bound0, unc0 = await snapshot(args)
    cpu0, wall0 = time.process_time(), _time()
    recv0 = Sampler.total
    emit("measure_start", boundary=bound0)
    probe_task = asyncio.create_task(probe_loop(args, probes)) if args.probe_interval > 0 else None
    fresh_task = asyncio.create_task(fresh_loop(conns, args.fresh_interval))
    await asyncio.sleep(args.duration)
    for task in (probe_task, fresh_task):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    ticks1, bound1, unc1 = await snapshot(args)
    Window.limit = iso23(bound1)
    cpu1, wall1 = time.process_time(), _time()
    recv1 = Sampler.total
    emit("measure_end", boundary=bound1)

    b0, b1 = iso23(bound0), iso23(bound1)
    window = (bound1 - bound0) / 1000.0
    ticks = ticks1 - ticks0
    subs = args.clients * args.per_client / args.nsymbols  # subscribers per symbol (uniform)
    expected = ticks * subs

    if args.conflated:

        def check() -> tuple[bool, float]:
            frac, uncovered = coverage(conns, args, b0, b1, bound0 / 1e3, strict=True)
            return uncovered == 0, frac

    else:

        def check() -> tuple[bool, float]:
            got = in_window(b0, b1)
            return got >= expected, float(got)

    drained = await drain(args, check)
    received = in_window(b0, b1)
    latest, uncovered = None, None
    if args.conflated or args.track_latest:
        latest, uncovered = coverage(conns, args, b0, b1, bound0 / 1e3)
    per_tick = received / expected if expected else 0.0
    delivered = per_tick  # one measure for every server; latest value is reported beside

    lat = sorted((now - ts_epoch(ts)) * 1000.0 for ts, now in SAMPLES if b0 <= ts < b1)
    max_all = max(
        ((LAST_RECV[ts] - ts_epoch(ts)) * 1000.0 for ts in COUNTS if b0 <= ts < b1),
        default=None,
    )
    per_client = [c[1].received for c in conns if c is not None]
    disconnected = sum(1 for c in conns if c is not None and c[1].disconnected)
    ok_probes = [p for p in probes if "error" not in p]
    probe_ms = sorted(p["subscribed_ms"] for p in ok_probes)
    result = {
        **info,
        "protocol": args.protocol,
        "conflated": args.conflated,
        "window_s": round(window, 3),
        "boundary_uncertainty_ms": round(max(unc0, unc1) * 1000, 2),
        "ticks_in_window": ticks,
        "tick_rate_achieved": round(ticks / window, 1) if window > 0 else None,
        "subscribers_per_symbol": subs,
        "expected_deliveries": expected,
        "deliveries_per_s": round(expected / window, 1) if window > 0 else None,
        "received_in_window": received,
        "received_msgs_per_s": round((recv1 - recv0) / (wall1 - wall0), 1),
        "delivered_ratio": round(delivered or 0.0, 6),
        "per_tick_delivered_ratio": round(per_tick, 6),
        "latest_delivered_ratio": None if latest is None else round(latest, 6),
        "uncovered_pairs": uncovered,
        "fresh_pairs": sum(len(c[1].symbols) for c in conns if c is not None and c[1].fresh),
        "fresh_interval_s": args.fresh_interval,
        **FRESH.summary(),
        "drain_s": round(drained, 2),
        "disconnected_during_run": disconnected,
        "per_client_received_min": min(per_client, default=0),
        "per_client_received_max": max(per_client, default=0),
        "latency_samples": len(lat),
        "latency_p50_ms": percentile(lat, 0.50),
        "latency_p99_ms": percentile(lat, 0.99),
        "latency_max_ms": max_all,
        "client_cpu_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "probes": len(probes),
        "probe_failures": len(probes) - len(ok_probes),
        "probe_connect_p50_ms": percentile(probe_ms, 0.5),
        "probe_connect_max_ms": probe_ms[-1] if probe_ms else None,
    }
    for c in conns:
        if c is not None:
            c[0].disconnect(graceful=False)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/ws/market/feed[?frames=array]")
    p.add_argument(
        "--protocol",
        choices=list(LISTENERS),
        default="native",
        help="native, socketio, stomp (--url ws://.../stomp/websocket), sockjs-ws or "
        "sockjs-xhr (--url http://.../stomp)",
    )
    p.add_argument("--stats-url", required=True, help="http://127.0.0.1:PORT/stats or /metrics")
    p.add_argument(
        "--stats-kind",
        default="peer",
        help='"peer" (JSON {ticks, boundary}), "prom:METRIC{label=\\"v\\"}" (Prometheus) or\n'
        '"schedule:RATE" (the server stamps tick k at start + k / RATE and skips none)',
    )
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--per-client", type=int, default=10, help="symbols per connection")
    p.add_argument("--nsymbols", type=int, default=100)
    p.add_argument("--symbol-format", default="S{:03d}")
    p.add_argument("--conflated", action="store_true", help="server conflates (batched mode)")
    p.add_argument(
        "--track-latest",
        action="store_true",
        help="also report the latest-value delivered ratio (implied by --conflated)",
    )
    p.add_argument("--concurrency", type=int, default=100, help="connects in flight")
    p.add_argument("--connect-timeout", type=float, default=15.0, help="s, per connection")
    p.add_argument("--connect-phase-timeout", type=float, default=180.0, help="s, all connects")
    p.add_argument("--warmup", type=float, default=5.0, help="s")
    p.add_argument("--duration", type=float, default=20.0, help="s, measured window")
    p.add_argument("--drain-min", type=float, default=2.0, help="s")
    p.add_argument("--drain-stall", type=float, default=1.0, help="s without progress = done")
    p.add_argument("--drain-max", type=float, default=15.0, help="s")
    p.add_argument("--stats-timeout", type=float, default=15.0, help="s")
    p.add_argument("--sample-every", type=int, default=10, help="latency sample rate")
    p.add_argument("--probe-interval", type=float, default=0.0, help="s; 0 = no probes")
    p.add_argument(
        "--fresh-stride",
        type=int,
        default=0,
        help="track what every n-th connection holds (0: about --fresh-pairs pairs)",
    )
    p.add_argument("--fresh-pairs", type=int, default=720, help="pairs tracked (<= 0: none)")
    p.add_argument("--fresh-interval", type=float, default=0.1, help="s, freshness clock")
    args = p.parse_args(argv)
    for url in (args.url, args.stats_url):
        if urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
            p.error(f"{url}: the benchmark only targets 127.0.0.1")
    return args


def main() -> None:
    args = parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.clients * 2 + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    timeout = args.connect_phase_timeout + args.warmup + args.duration + args.drain_max + 120
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        result = runner(asyncio.wait_for(run(args), timeout))
    except Exception as exc:
        emit("result", error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)
    emit("result", **result)


if __name__ == "__main__":
    main()
