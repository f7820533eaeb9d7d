"""Front 3's MESSAGE codec: the shared payload of one update, and every subscription's
head before it, parse as valid MESSAGE frames with the right headers."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote, Trade
from tickcast.model.portfolio import PositionPnl, PositionState, UserPnl, UserPositions
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


def _state(portfolio_id: int, symbol: str, quantity: str) -> PositionState:
    return PositionState(
        portfolio_id,
        symbol,
        Decimal(quantity),
        Decimal("1500.5000000000"),
        Decimal("-12.25"),
        TS,
        TS + 1.5,
    )


def _decoded(envelope: Envelope) -> tuple[dict[str, str], object]:
    [frame] = FrameParser().feed(message_head("s") + codec.encode(envelope))
    return frame.headers, json.loads(frame.body)


def test_one_position_is_the_seeds_object_under_the_shared_destination() -> None:
    update = UserPositions(7, (_state(3, "AAPL", "10"),), TS)
    headers, body = _decoded(Envelope(Topic("user_positions", "7"), 4, TS, update, "e1"))
    assert headers["destination"] == "/topic/position-update"
    assert headers["message-id"] == "user_positions.7-e1-4"
    assert (headers["epoch"], headers["seq"]) == ("e1", "4")
    assert body == {
        "id": {"portfolioId": 3, "symbol": "AAPL"},
        "holdings": 10,
        "totalInvested": 1500.5,
        "realizedPnl": -12.25,
        "createdAt": "2023-11-14T22:13:20.000Z",
        "updatedAt": "2023-11-14T22:13:21.500Z",
    }


def test_several_positions_or_none_are_an_array() -> None:
    several = UserPositions(7, (_state(3, "AAPL", "10"), _state(4, "MSFT", "0")), TS)
    _, body = _decoded(Envelope(Topic("user_positions", "7"), 1, TS, several))
    assert isinstance(body, list)
    assert [(p["id"]["portfolioId"], p["holdings"]) for p in body] == [(3, 10), (4, 0)]
    _, empty = _decoded(Envelope(Topic("user_positions", "7"), 2, TS, UserPositions(7, (), TS)))
    assert empty == []


def test_unrealized_pnl_is_always_an_array_with_the_seeds_names() -> None:
    one = UserPnl(7, (PositionPnl(3, "AAPL", Decimal("400.2000")),), TS)
    headers, body = _decoded(Envelope(Topic("user_pnl", "7"), 1, TS, one))
    assert headers["destination"] == "/topic/unrealized-pnl"
    assert body == [{"symbol": "AAPL", "overallUnrealised_Pnl": 400.2, "portfolio_id": 3}]
    # money exactly as computed (no float rounding on the way out)
    exact = UserPnl(7, (PositionPnl(3, "AAPL", Decimal("12345678901234567.123456789")),), TS)
    [frame] = FrameParser().feed(
        message_head("s") + codec.encode(Envelope(Topic("user_pnl", "7"), 2, TS, exact))
    )
    assert b'"overallUnrealised_Pnl":12345678901234567.123456789' in frame.body
