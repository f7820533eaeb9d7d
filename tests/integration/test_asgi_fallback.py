"""The fronts on a plain ASGI server (no tickcast protocol): Starlette's TestClient.

Under `tickcast serve` the fast FrameSocket is used; everywhere else the AsgiFrameSocket
fallback must speak the same protocol.
"""

from __future__ import annotations

from starlette.testclient import TestClient

from tickcast.app import build_app
from tickcast.config.settings import Settings


def test_market_feed_works_over_plain_asgi() -> None:
    settings = Settings(rate=500, batch_ms=20)
    with (
        TestClient(build_app(settings)) as client,
        client.websocket_connect("/ws/market/feed?seq=1") as ws,
    ):
        ws.send_json({"action": "subscribe", "symbols": ["AAPL"]})
        assert ws.receive_json() == {"type": "subscribed", "symbols": ["AAPL"]}
        quotes = [ws.receive_json() for _ in range(5)]
        assert all(q["symbol"] == "AAPL" and q["topic"] == "quotes.AAPL" for q in quotes)
        seqs = [q["seq"] for q in quotes]
        assert seqs == sorted(seqs)
        ws.send_text("nonsense")
        reply = ws.receive_json()
        while "type" not in reply:  # quotes queued before the reply
            reply = ws.receive_json()
        assert reply == {"type": "error", "message": "Invalid subscription request: invalid JSON"}


def test_echo_works_over_plain_asgi() -> None:
    with (
        TestClient(build_app(Settings(test_echo=True))) as client,
        client.websocket_connect("/ws/echo") as ws,
    ):
        ws.send_text("hello")
        assert ws.receive_text() == "hello"
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_bytes() == b"\x00\x01"
