"""The fast path's connect without an ASGI call (``transport/direct.py``:
``DirectConnect``): a client the guard admits at once (no credential to look up) is
admitted, accepted and attached at the upgrade, with no task; a client with a
credential, a refused one, or any client with ``ws_fast_path`` off goes through the ASGI
call as before, and is answered (and its refusal counted) once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from support.inloop import running_gateway
from support.wsclient import recv_json, send_json
from tickcast.auth.credentials import issue_token
from tickcast.auth.policy import Reason
from tickcast.transport.uvicorn_websocket import TickcastWebSocketProtocol

SECRET = "s" * 40


def _count_asgi_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each ASGI call the WebSocket protocol makes, by path."""
    calls: list[str] = []
    run_asgi = TickcastWebSocketProtocol.run_asgi

    async def counted(self: TickcastWebSocketProtocol) -> None:
        calls.append(self.scope["path"])
        await run_asgi(self)

    monkeypatch.setattr(TickcastWebSocketProtocol, "run_asgi", counted)
    return calls


async def _pong(url: str, **options: Any) -> None:
    async with connect(url, **options) as ws:
        await send_json(ws, {"action": "ping"})
        assert (await recv_json(ws))["type"] == "pong"


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_an_anonymous_client_is_connected_without_an_asgi_call_on_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    calls = _count_asgi_calls(monkeypatch)
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        await _pong(gateway.feed)
        await _pong(gateway.feed, origin="http://127.0.0.1")  # type: ignore[arg-type]
        assert calls == ([] if fast else ["/ws/market/feed"] * 2)


async def test_a_client_with_a_credential_is_admitted_by_the_asgi_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_asgi_calls(monkeypatch)
    async with running_gateway(tmp_path, jwt_secret=SECRET) as gateway:
        jwt = issue_token(7, "olga", SECRET, time.time(), 600)
        await _pong(f"{gateway.feed}?token={jwt}")
        assert calls == ["/ws/market/feed"]
        await _pong(gateway.feed)  # and one without: at the upgrade
        assert calls == ["/ws/market/feed"]


async def test_a_refusal_is_answered_and_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_asgi_calls(monkeypatch)
    options = {"max_anonymous_connections_per_address": 1}
    async with running_gateway(tmp_path, **options) as gateway:
        async with connect(gateway.feed) as first:
            await send_json(first, {"action": "ping"})
            assert (await recv_json(first))["type"] == "pong"
            with pytest.raises(InvalidStatus) as refused:
                async with connect(gateway.feed):
                    pass  # pragma: no cover - refused at the handshake
            assert refused.value.response.status_code == 429
            assert calls == ["/ws/market/feed"]  # the refusal's, by the ASGI call
            assert gateway.node.stats.refusals == {Reason.ADDRESS_LIMIT.value: 1}
        async with asyncio.timeout(10):
            while gateway.node.connections:  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.01)
        await _pong(gateway.feed)  # its slot was given back
        assert calls == ["/ws/market/feed"]
