"""Front 3's MESSAGE codec: the shared payload of one update, and every subscription's
head before it, parse as valid MESSAGE frames with the right headers."""

from __future__ import annotations

import json

import pytest

from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote, Trade
from tickcast.model.topic import Topic
from tickcast.protocols.native import codec as native
from tickcast.protocols.stomp import codec
from tickcast.protocols.stomp.frames import FrameParser, message_head
from tickcast.protocols.wire import Encoded

TS = 1_700_000_000.0
TRADE = Trade("AAPL", 189.5, 100.0, TS, "simulator", "t-1")


def test_a_market_update_is_front_1s_body_with_stomp_headers() -> None:
    envelope = Envelope(Topic("trades", "AAPL"), 42, TS, TRADE, "ep1")
    payload = codec.encode(envelope)
    [frame] = FrameParser().feed(message_head("sub-0") + payload)
    assert frame.command == "MESSAGE"
    assert frame.headers == {
        "subscription": "sub-0",
        "destination": "/topic/trades.AAPL",
        "message-id": "trades.AAPL-ep1-42",
        "content-type": "application/json",
        "content-length": str(len(frame.body)),
        "epoch": "ep1",
        "seq": "42",
    }
    assert frame.body == native.encode(envelope)
    assert json.loads(frame.body)["type"] == "trade"


def test_no_epoch_header_without_an_epoch() -> None:
    quote = Quote("MSFT", 0.9, 1.1, 5.0, 5.0, 1.0, 10.0, TS, "simulator")
    [frame] = FrameParser().feed(
        message_head("1") + codec.encode(Envelope(Topic("quotes", "MSFT"), 3, TS, quote))
    )
    assert "epoch" not in frame.headers
    assert frame.headers["message-id"] == "quotes.MSFT-3"


def test_one_payload_many_heads() -> None:
    item = Encoded(codec.encode(Envelope(Topic("trades", "AAPL"), 1, TS, TRADE, "e")))
    heads = [item.headed(message_head(f"sub-{i}")) for i in range(3)]
    assert all(h.payload is item.payload for h in heads)
    parser = FrameParser()
    frames = [f for h in heads for f in parser.feed(h.message)]
    assert [f.headers["subscription"] for f in frames] == ["sub-0", "sub-1", "sub-2"]
    assert len({f.headers["message-id"] for f in frames}) == 1  # one update, one id


@pytest.mark.parametrize(
    ("destination", "topic"),
    [
        ("/topic/quotes.AAPL", Topic("quotes", "AAPL")),
        ("/topic/status.FEED", Topic("status", "FEED")),
        ("/topic/trades.BTC/USDT", Topic("trades", "BTC/USDT")),
        ("/topic/book.BRK.B", Topic("book", "BRK.B")),
        ("/topic/position-update", None),  # Front 3's own destinations are the front's
        ("/queue/quotes.AAPL", None),
        ("/topic/.AAPL", None),
        ("/topic/quotes.", None),
    ],
)
def test_topic_of_reads_the_destination_syntax(destination: str, topic: Topic | None) -> None:
    assert codec.topic_of(destination) == topic
    if topic is not None:
        assert codec.destination(topic) == destination


def test_a_non_market_payload_is_refused() -> None:
    with pytest.raises(TypeError):
        codec.encode(Envelope(Topic("trades", "AAPL"), 1, TS, "nope"))  # type: ignore[arg-type]
