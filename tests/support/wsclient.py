"""Test clients: a JSON helper over `websockets`, and a raw client that can stop reading."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri


async def recv_json(ws: ClientConnection, wait_s: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), wait_s))


async def recv_until(ws: ClientConnection, predicate: Any, wait_s: float = 5.0) -> Any:
    """Receive messages until one satisfies ``predicate``; return it."""
    deadline = time.monotonic() + wait_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no matching message")
        message = await recv_json(ws, remaining)
        if predicate(message):
            return message


async def send_json(ws: ClientConnection, message: Any) -> None:
    await ws.send(json.dumps(message))


class StalledClient:
    """A real WebSocket client (websockets' sans-I/O protocol) on a blocking socket with a
    tiny receive buffer, so that when the test stops calling ``read`` the server's writes
    back up quickly, as with a client that stopped reading."""

    def __init__(self, url: str, rcvbuf: int = 4096) -> None:
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        wsuri = parse_uri(url)
        self.sock.connect((wsuri.host, wsuri.port))
        self.sock.settimeout(10)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.handshake_exc is None and not self._handshake_done():
            self.protocol.receive_data(self.sock.recv(65536))
        self.messages: list[bytes] = []

    def _handshake_done(self) -> bool:
        return any(not isinstance(e, Frame) for e in self.protocol.events_received())

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def send_json(self, message: Any) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        self._flush()

    def read_until_closed(self, timeout: float = 20.0) -> int | None:
        """Read everything until the server's close frame; return its code."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(1 << 20)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                self.protocol.receive_eof()
                break
            self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if event.opcode == Opcode.TEXT:
                    self.messages.append(bytes(event.data))
            self._flush()
            if self.protocol.close_rcvd is not None:
                return self.protocol.close_rcvd.code
        return self.protocol.close_rcvd.code if self.protocol.close_rcvd else None

    def read_slowly(self, bytes_per_s: float, timeout: float = 60.0) -> ReadOutcome:
        """Read at about ``bytes_per_s`` until the server's close frame, EOF or ``timeout``.

        Every frame is parsed by websockets' protocol, which fails on a frame cut off by
        an abort (the connection then ends without a close frame).
        """
        chunk = max(512, int(bytes_per_s / 20))
        self.sock.settimeout(5)
        started = time.monotonic()
        received = 0
        eof = False
        while time.monotonic() - started < timeout:
            try:
                data = self.sock.recv(chunk)
            except (ConnectionResetError, TimeoutError):
                eof = True
                break
            if not data:
                self.protocol.receive_eof()
                eof = True
                break
            received += len(data)
            self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if event.opcode == Opcode.TEXT:
                    self.messages.append(bytes(event.data))
            self._flush()
            if self.protocol.close_rcvd is not None:
                break
            # pace: sleep until this many bytes are due at the target rate
            ahead = received / bytes_per_s - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        closed = self.protocol.close_rcvd
        return ReadOutcome(
            code=closed.code if closed is not None else None,
            reason=closed.reason if closed is not None else "",
            eof_before_close=eof and closed is None,
            seconds=time.monotonic() - started,
            bytes=received,
        )

    def close(self) -> None:
        self.sock.close()


@dataclass
class ReadOutcome:
    """How a slow read ended."""

    code: int | None
    reason: str
    eof_before_close: bool  # the connection ended without a close frame (an abort)
    seconds: float
    bytes: int


async def closed_code(ws: ClientConnection, wait_s: float = 10.0) -> int | None:
    """Read (and drop) messages until the server closes; return its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), wait_s)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
