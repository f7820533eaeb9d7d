"""The connect path's savings keep uvicorn's behaviour: tickcast's WebSocket protocol
builds one websockets ``ServerProtocol`` instead of uvicorn's plus its own (its
``__init__`` is uvicorn's, re-stated), and a connection upgraded from tickcast's HTTP
protocol takes the addresses that protocol read instead of reading them again."""

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
from tickcast.transport import uvicorn_protocols
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
    monkeypatch.setattr(uvicorn_protocols, "_RESTATED", restated)
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
