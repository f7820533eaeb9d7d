"""The connect path's savings keep uvicorn's behaviour: tickcast's WebSocket protocol
builds one websockets ``ServerProtocol`` instead of uvicorn's plus its own (its
``__init__`` is uvicorn's, re-stated), a connection upgraded from tickcast's HTTP
protocol takes the addresses that protocol read instead of reading them again, and the
handshake answered from httptools' parse (``transport/handshake.py``) gives the 101 and
the refusals websockets gave when it parsed every request again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from support.inloop import running_gateway
from support.wsclient import recv_json, send_json
from tickcast.transport import uvicorn_protocols, uvicorn_websocket
from tickcast.transport.uvicorn_protocols import TickcastWebSocketProtocol, _ServerProtocol


async def _app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not run
    pass


def _pair(deflate: bool) -> tuple[WebSocketsSansIOProtocol, TickcastWebSocketProtocol]:
    config = Config(_app, ws_per_message_deflate=deflate, ws_max_size=65536)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    theirs = WebSocketsSansIOProtocol(config, state, {}, _loop=loop)
    ours = TickcastWebSocketProtocol(config, state, {}, _loop=loop)
    return theirs, ours


@pytest.mark.parametrize("restated", [True, False], ids=["restated", "uvicorns-own"])
@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
async def test_the_protocol_is_built_as_uvicorns_with_one_server_protocol(
    deflate: bool, restated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "uvicorns-own": what another uvicorn gets (its own __init__, the protocol replaced)
    monkeypatch.setattr(uvicorn_websocket, "_RESTATED", restated)
    theirs, ours = _pair(deflate)
    missing = set(vars(theirs)) - set(vars(ours))
    assert not missing, f"uvicorn sets attributes tickcast's protocol does not: {missing}"
    fresh = ("conn", "queue", "writable")  # one of each per connection
    for name, value in vars(theirs).items():
        if name not in fresh and name != "close_timeout":  # tickcast's: close_timeout_s
            assert getattr(ours, name) == value, name
    assert ours.close_timeout == TickcastWebSocketProtocol.close_timeout_s
    assert type(ours.conn) is _ServerProtocol
    assert ours.conn.max_message_size == theirs.conn.max_message_size == 65536
    assert ours.conn.logger is theirs.conn.logger
    assert ours.writable.is_set()
    assert ours.queue.empty()
    offered = [type(e) for e in ours.conn.available_extensions or []]
    assert offered == ([ServerPerMessageDeflateFactory] if deflate else [])
    if deflate:
        (mine,) = ours.conn.available_extensions or []
        (uvicorns,) = theirs.conn.available_extensions or []
        assert vars(mine) == vars(uvicorns)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_an_upgraded_connection_has_the_addresses_of_its_socket(
    tmp_path: Path, fast: bool
) -> None:
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway, connect(gateway.feed) as ws:
        await send_json(ws, {"action": "ping"})
        assert (await recv_json(ws))["type"] == "pong"
        (connection,) = gateway.node.connections
        protocol = connection.sock._protocol  # type: ignore[attr-defined]
        assert isinstance(protocol, TickcastWebSocketProtocol)
        host, port = ws.local_address[:2]
        assert protocol.client == (host, port)
        server_host, server_port = ws.remote_address[:2]
        assert protocol.server == (server_host, server_port)
        assert protocol.scheme == "ws"
        assert protocol in protocol.connections  # closed with the others at shutdown


# -- the handshake answered from httptools' parse (transport/handshake.py)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _request(path: str = "/ws/market/feed", extra: str = "", key: str = KEY) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
        f"{extra}\r\n"
    ).encode()


async def _exchange(port: int, request: bytes) -> bytes:
    """What the gateway answers ``request`` with: the 101's head, or a refusal whole (up
    to the connection's close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(10):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 101"):
                return head
            return head + await reader.read()
    finally:
        writer.close()


def _without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(b"date:"))


def _by_websockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request parsed again and answered by websockets, as before this path."""
    monkeypatch.setattr(uvicorn_protocols.handshake, "check", lambda *args: None)


@pytest.mark.parametrize(
    ("path", "extra", "deflate"),
    [
        ("/ws/market/feed", "", False),
        ("/ws/market/feed?seq=1", "Origin: http://127.0.0.1\r\n", False),
        ("/ws/market/feed", "Sec-WebSocket-Extensions: permessage-deflate\r\n", True),
        ("/ws/market/feed", "Sec-WebSocket-Extensions: permessage-deflate\r\n", False),
        ("/stomp/websocket", "Sec-WebSocket-Protocol: v12.stomp, v11.stomp\r\n", False),
    ],
    ids=["plain", "origin", "deflate", "deflate-off", "subprotocol"],
)
async def test_the_101_is_the_one_websockets_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, extra: str, deflate: bool
) -> None:
    check = uvicorn_protocols.handshake.check
    taken: list[object] = []
    monkeypatch.setattr(
        uvicorn_protocols.handshake, "check", lambda *args: taken.append(check(*args)) or taken[-1]
    )
    async with running_gateway(tmp_path, permessage_deflate=deflate) as gateway:
        fast = await _exchange(gateway.port, _request(path, extra))
        assert len(taken) == 1
        assert taken[0] is not None, "answered from httptools' parse"
        with monkeypatch.context() as patch:
            _by_websockets(patch)
            slow = await _exchange(gateway.port, _request(path, extra))
    assert fast.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in fast
    assert _without_date(fast) == _without_date(slow)
    assert (b"Sec-WebSocket-Extensions: permessage-deflate" in fast) is (deflate and bool(extra))


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (_request(key="c2hvcnQ="), 400),  # a key of 5 bytes
        (_request(extra="Sec-WebSocket-Version: 8\r\n"), 400),  # two versions
        (_request(extra="Origin: http://a\r\nOrigin: http://b\r\n"), 400),
        (_request(extra="Content-Length: 3\r\n") + b"abc", 400),
        (_request(extra="Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n", 400),
        (_request(extra="".join(f"X-H{i}: v\r\n" for i in range(130))), 431),
        (_request(extra=f"X-Long: {'v' * 8200}\r\n"), 431),
        (_request(path="/ws/market/feed?" + "a" * 8200), 414),
        (_request().replace(b"GET", b"POST"), None),  # not an upgrade for uvicorn
    ],
    ids=["key", "versions", "origins", "body", "chunked", "headers", "line", "target", "post"],
)
@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_refused_handshake_gets_websockets_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request_: bytes, status: int | None, fast: bool
) -> None:
    """Refused as before: the same answer as when websockets parsed every request (the
    checks of its parser and of its accept, stated again in transport/handshake.py)."""
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        answer = await _exchange(gateway.port, request_)
        with monkeypatch.context() as patch:
            _by_websockets(patch)
            before = await _exchange(gateway.port, request_)
    assert not answer.startswith(b"HTTP/1.1 101")
    if status is not None:
        assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert _without_date(answer) == _without_date(before)


async def test_a_handshake_left_to_websockets_still_connects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_gateway(tmp_path) as gateway:
        _by_websockets(monkeypatch)
        async with connect(gateway.feed) as ws:
            await send_json(ws, {"action": "ping"})
            assert (await recv_json(ws))["type"] == "pong"


class _Transport:
    """What the protocol asks of its transport before the app runs."""

    def write(self, data: bytes) -> None:  # pragma: no cover - not before the app runs
        raise AssertionError("nothing is written before the app answers")

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def test_the_scope_is_the_one_uvicorn_builds_from_websockets_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = Config(_app, ws_max_size=65536, root_path="/api")
    config.load()
    state = ServerState()
    head = [
        (b"host", b"example.com"),
        (b"upgrade", b"websocket"),
        (b"connection", b"keep-alive, Upgrade"),
        (b"sec-websocket-key", KEY.encode()),
        (b"sec-websocket-version", b"13"),
        (b"sec-websocket-protocol", b"v12.stomp, v11.stomp"),
        (b"user-agent", b"caf\xe9"),
    ]
    target = b"/ws/a%20b?seq=1&frames=array"
    scopes = []
    for parsed_by_websockets in (False, True):
        with monkeypatch.context() as patch:
            if parsed_by_websockets:
                _by_websockets(patch)
            protocol = TickcastWebSocketProtocol(config, state, {"k": 1})
            protocol.upgraded(_Transport(), ("10.0.0.1", 80), ("10.0.0.2", 5000), "ws")  # type: ignore[arg-type]
            protocol.upgrade(b"GET", target, list(head))
            scopes.append(protocol.scope)
            assert (protocol.request is None) is not parsed_by_websockets
    for task in state.tasks:
        task.cancel()
    fast, slow = scopes
    assert fast.keys() == slow.keys()
    for key in fast.keys() - {"extensions"}:
        assert fast[key] == slow[key], key
    assert fast["extensions"].keys() == slow["extensions"].keys()
    assert fast["path"] == "/api/ws/a b"
    assert fast["subprotocols"] == ["v12.stomp", "v11.stomp"]
