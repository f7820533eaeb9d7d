"""bench/loadclient.py's protocol listeners: one per wire (native, Socket.IO, STOMP,
STOMP over SockJS websocket and xhr-streaming), each subscribing, acknowledging and
handing every market message to the counts (bench/loadclient_counts.py).
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport

from loadclient_counts import FRESH, Window, _record, _symbol

TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE
_time = time.time


def log(msg: str) -> None:
    sys.stderr.write(f"[loadclient] {msg}\n")
    sys.stderr.flush()


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


LISTENERS: dict[str, type[FeedListener]] = {
    "native": FeedListener,
    "socketio": SocketIOListener,
    "stomp": StompListener,
    "sockjs-ws": SockJSListener,
    "sockjs-xhr": XhrListener,
}
