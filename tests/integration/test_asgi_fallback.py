"""The fronts on a plain ASGI server (no tickcast protocol): Starlette's TestClient.

Under `tickcast serve` the fast FrameSocket is used; everywhere else the AsgiFrameSocket
fallback must speak the same protocol.
"""

from __future__ import annotations

import json

from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tickcast.app import build_app
from tickcast.config.settings import Settings


def test_market_feed_works_over_plain_asgi() -> None:
    settings = Settings(rate=500, batch_ms=20)
    with (
        TestClient(build_app(settings)) as client,
        client.websocket_connect("/ws/market/feed?seq=1") as ws,
    ):
        ws.send_json({"action": "subscribe", "symbols": ["AAPL"]})
        subscribed = ws.receive_json()
        # with seq=1 the acknowledgement says where each new topic starts
        assert subscribed.pop("positions").keys() == {"quotes.AAPL"}
        assert subscribed == {"type": "subscribed", "symbols": ["AAPL"]}
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


def test_stomp_over_sockjs_works_over_plain_asgi() -> None:
    """SockJS's websocket transport through ASGI ``send`` (no server socket to write
    frames to), and its xhr transports through Starlette's TestClient."""
    connect = "CONNECT\naccept-version:1.2\nhost:x\n\n\x00"
    subscribe = "SUBSCRIBE\nid:sub-0\ndestination:/topic/quotes.AAPL\n\n\x00"
    with (
        TestClient(build_app(Settings(rate=500, batch_ms=20))) as client,
        client.websocket_connect("/stomp/000/abc/websocket") as ws,
    ):
        assert ws.receive_text() == "o"
        ws.send_text(json.dumps([connect, subscribe]))
        assert json.loads(ws.receive_text()[1:])[0].startswith("CONNECTED\n")
        got = ws.receive_text()
        while got == "h":
            got = ws.receive_text()
        assert json.loads(got[1:])[0].startswith("MESSAGE\nsubscription:sub-0\n")
        ws.send_text('["a')  # broken JSON: the transport closes
        code = None
        while code is None:
            try:
                ws.receive_text()
            except WebSocketDisconnect as closed:
                code = closed.code
        assert code == 3000
        # xhr polling on the same app
        assert client.post("/stomp/000/def/xhr").content == b"o\n"
        sent = client.post("/stomp/000/def/xhr_send", content=json.dumps([connect]))
        assert sent.status_code == 204
        assert client.post("/stomp/000/def/xhr").content.startswith(b'a["CONNECTED\\n')
