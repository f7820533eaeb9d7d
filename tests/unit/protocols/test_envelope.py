"""Front 2 (the realtime envelope): the session and the codec, sans-I/O."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from support.publishing import stamp_and_fan_out
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.hub.hub import Hub
from tickcast.model.channel import BUILTIN, builtin
from tickcast.model.envelope import Envelope
from tickcast.model.portfolio import (
    AssetUpdate,
    LivePosition,
    PortfolioValue,
    PositionsUpdate,
    PositionUpdate,
)
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.base import (
    Authenticate,
    Authenticated,
    Refused,
    Subscribe,
    Unsubscribe,
)
from tickcast.protocols.envelope import codec
from tickcast.protocols.envelope.session import RealtimeSession, subscription_cap
from tickcast.protocols.wire import Encoded

topic_of = builtin().topic_of

NOW = 1_705_314_600.0  # 2024-01-15T10:30:00Z: the wall clock at the connect (stamps)
M0 = 5_000.0  # the monotonic clock at the connect (deadlines)


def at(offset: float) -> Now:
    """``offset`` seconds after the connect, on both clocks."""
    return Now(M0 + offset, NOW + offset)


D = Decimal
KNOWN = frozenset({"AAPL", "MSFT", "BTC/USDT"})
OWNERS = {123: 7, 456: 8}


def session(
    user_id: int | None = 7, *, anonymous: bool = True, max_subscriptions: int = 5
) -> RealtimeSession:
    s = RealtimeSession(
        connection_id="c-1",
        user_id=user_id,
        anonymous_allowed=anonymous,
        is_known=KNOWN.__contains__,
        owner_of=OWNERS.get,
        cap=subscription_cap(max_subscriptions),
        now=at(0),
        auth_timeout_s=10.0,
    )
    return s


def out(s: RealtimeSession) -> list[dict[str, Any]]:
    return [json.loads(f.payload) for f in s.frames_to_send()]


AT_1 = at(1)


def send(s: RealtimeSession, message: Any, now: Now = AT_1) -> list[dict[str, Any]]:
    s.receive_text(message if isinstance(message, str) else json.dumps(message), now)
    return out(s)


def error(message: str, now: float = NOW + 1) -> dict[str, Any]:
    return {"type": "error", "data": {"message": message}, "timestamp": codec_ts(now)}


def codec_ts(now: float) -> str:
    return json.loads(codec.message("x", {}, now))["timestamp"]


def test_connect_announces_the_connection() -> None:
    assert out(session()) == [
        {
            "type": "connection",
            "data": {
                "status": "connected",
                "connection_id": "c-1",
                "authenticated": True,
                "user_id": 7,
            },
            "timestamp": "2024-01-15T10:30:00.000Z",
        }
    ]
    anonymous = out(session(None))[0]["data"]
    assert (anonymous["authenticated"], anonymous["user_id"]) == (False, None)


def test_ping_pong() -> None:
    s = session()
    out(s)
    assert send(s, {"type": "ping", "data": {}}) == [
        {"type": "pong", "data": {}, "timestamp": "2024-01-15T10:30:01.000Z"}
    ]


def test_subscribe_and_unsubscribe_an_asset() -> None:
    s = session()
    out(s)
    assert send(s, {"type": "subscribe_asset", "data": {"symbol": "aapl"}}) == []
    assert s.commands_received() == [Subscribe((Topic(Channel.ASSETS, "AAPL"),))]
    send(s, {"type": "subscribe_asset", "data": {"symbol": "AAPL"}})
    assert s.commands_received() == []  # already subscribed
    send(s, {"type": "unsubscribe_asset", "symbol": "AAPL"})  # fields at the top level too
    assert s.commands_received() == [Unsubscribe((Topic(Channel.ASSETS, "AAPL"),))]


def test_live_positions_only_to_their_owner() -> None:
    s = session(7)
    out(s)
    assert send(s, {"type": "subscribe_positions", "data": {"portfolio_id": 123}}) == []
    assert s.commands_received() == [Subscribe((Topic(Channel.LIVE_POSITIONS, "123"),))]
    send(s, {"type": "subscribe_positions", "data": {"portfolio_id": "123"}})
    assert s.commands_received() == []  # already subscribed
    assert send(s, {"type": "subscribe_positions", "data": {"portfolio_id": 456}}) == [
        error("Portfolio 456 not found")
    ]
    assert send(s, {"type": "subscribe_positions", "data": {"portfolio_id": -1}}) == [
        error("Invalid request: 'portfolio_id' must be a positive integer")
    ]
    assert s.commands_received() == []
    send(s, {"type": "unsubscribe_positions", "portfolio_id": 123})
    assert s.commands_received() == [Unsubscribe((Topic(Channel.LIVE_POSITIONS, "123"),))]
    send(s, {"type": "unsubscribe_positions", "portfolio_id": 123})
    assert s.commands_received() == []  # not subscribed any more: nothing to undo
    anonymous = session(None)
    out(anonymous)
    assert send(anonymous, {"type": "subscribe_positions", "data": {"portfolio_id": 123}}) == [
        error("Authentication required for portfolio data")
    ]


def test_portfolio_data_only_to_its_owner() -> None:
    s = session(7)
    out(s)
    assert send(s, {"type": "subscribe_portfolio", "data": {"portfolio_id": 123}}) == []
    assert s.commands_received() == [Subscribe((Topic(Channel.PORTFOLIO, "123"),))]
    # another user's portfolio and a missing one get the same answer
    assert send(s, {"type": "subscribe_portfolio", "data": {"portfolio_id": 456}}) == [
        error("Portfolio 456 not found")
    ]
    assert send(s, {"type": "subscribe_portfolio", "data": {"portfolio_id": 999}}) == [
        error("Portfolio 999 not found")
    ]
    assert s.commands_received() == []
    anonymous = session(None)
    out(anonymous)
    assert send(anonymous, {"type": "subscribe_portfolio", "data": {"portfolio_id": 123}}) == [
        error("Authentication required for portfolio data")
    ]


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("not json", "Invalid JSON"),
        ("[1]", "Invalid message: expected a JSON object"),
        ({"data": {}}, "Invalid message: missing 'type'"),
        ({"type": "dance"}, "Unknown message type: 'dance'"),
        ({"type": "subscribe_asset", "data": []}, "Invalid message: 'data' must be an object"),
        (
            {"type": "subscribe_asset", "data": {"symbol": "../x"}},
            "Invalid request: 'symbol' must be a ticker such as 'AAPL'",
        ),
        ({"type": "subscribe_asset", "data": {"symbol": "NOPE"}}, "Unknown symbol: NOPE"),
        (
            {"type": "subscribe_portfolio", "data": {"portfolio_id": True}},
            "Invalid request: 'portfolio_id' must be a positive integer",
        ),
        (
            {"type": "subscribe_portfolio", "data": {"portfolio_id": -1}},
            "Invalid request: 'portfolio_id' must be a positive integer",
        ),
        (
            {"type": "auth", "data": {"token": 5}},
            "Invalid auth message: 'token' must be a non-empty string",
        ),
    ],
)
def test_malformed_messages_get_an_error_and_the_session_goes_on(message: Any, reply: str) -> None:
    s = session()
    out(s)
    assert send(s, message) == [error(reply)]
    assert s.close_reason is None
    assert s.commands_received() == []
    send(s, {"type": "subscribe_asset", "data": {"symbol": "MSFT"}})
    assert s.commands_received() == [Subscribe((Topic(Channel.ASSETS, "MSFT"),))]


def test_subscriptions_are_capped() -> None:
    s = session(max_subscriptions=2)
    out(s)
    send(s, {"type": "subscribe_asset", "data": {"symbol": "AAPL"}})
    send(s, {"type": "subscribe_asset", "data": {"symbol": "MSFT"}})
    assert send(s, {"type": "subscribe_asset", "data": {"symbol": "BTC/USDT"}}) == [
        error("Too many subscriptions: at most 2 per connection")
    ]


def test_anonymous_denied_must_authenticate_by_first_message_in_time() -> None:
    s = session(None, anonymous=False)
    out(s)
    assert send(s, {"type": "subscribe_asset", "data": {"symbol": "AAPL"}}) == [
        error("Authentication required")
    ]
    assert s.next_deadline() == M0 + 10
    s.handle_timer(at(10))
    assert s.close_reason is CloseCode.AUTH_TIMEOUT
    assert out(s) == [error("authentication timeout", NOW + 10)]


def test_a_wall_clock_step_neither_fires_nor_delays_the_authentication_timeout() -> None:
    s = session(None, anonymous=False)
    out(s)
    s.handle_timer(Now(M0 + 9.9, NOW + 3600))  # the wall clock jumped an hour ahead
    assert s.close_reason is None
    s.handle_timer(Now(M0 + 10, NOW - 60))  # then a minute behind the connect
    assert s.close_reason is CloseCode.AUTH_TIMEOUT
    assert out(s) == [error("authentication timeout", NOW - 60)]  # stamped on the wall


def test_first_message_auth_success_and_failure() -> None:
    s = session(None, anonymous=False)
    out(s)
    send(s, {"type": "auth", "data": {"token": "tc_abc_def"}})
    assert s.commands_received() == [Authenticate("tc_abc_def")]
    assert send(s, {"type": "auth", "data": {"token": "again"}}) == [error("Already authenticated")]
    s.answer(Authenticated(7), at(2))
    assert out(s)[0]["data"] == {
        "status": "connected",
        "connection_id": "c-1",
        "authenticated": True,
        "user_id": 7,
    }
    assert s.next_deadline() is None
    bad = session(None, anonymous=False)
    out(bad)
    send(bad, {"type": "auth", "data": {"token": "forged"}})
    bad.answer(
        Refused("Invalid token: signature verification failed", CloseCode.INVALID_CREDENTIALS),
        at(2),
    )
    assert bad.close_reason is CloseCode.INVALID_CREDENTIALS
    assert out(bad) == [error("Invalid token: signature verification failed", NOW + 2)]


def test_codec_writes_the_mission_shapes_with_exact_money() -> None:
    asset = AssetUpdate("AAPL", 190.02, 1.52, 0.806, 1200.0, 190.4, 188.1, NOW, "alpaca")
    payload = json.loads(codec.encode(Envelope(topic_of(asset), 1, NOW, asset)))
    assert payload == {
        "type": "asset_update",
        "data": {
            "symbol": "AAPL",
            "price": 190.02,
            "change": 1.52,
            "change_percent": 0.806,
            "volume": 1200,
            "high": 190.4,
            "low": 188.1,
        },
        "timestamp": "2024-01-15T10:30:00.000Z",
    }
    value = PortfolioValue(
        123,
        "Growth",
        7,
        Decimal("10523.5000000001"),
        Decimal("10000"),
        Decimal("120.25"),
        Decimal("1.16"),
        Decimal("523.5"),
        Decimal("0"),
        Decimal("10000.0000000000"),
        Decimal("523.5000000001"),
        Decimal("10000"),
        NOW,
    )
    raw = codec.encode(Envelope(topic_of(value), 1, NOW, value))
    assert b'"total_value":10523.5000000001' in raw  # exact, not a float's rounding
    assert b'"cash":523.5000000001' in raw
    data = json.loads(raw)["data"]
    assert data["portfolio_id"] == 123
    assert data["name"] == "Growth"
    assert (data["market_value"], data["net_deposits"]) == (10000, 10000)
    assert topic_of(value) == Topic(Channel.PORTFOLIO, "123")


def test_position_update_keeps_its_fields_and_adds_the_live_ones() -> None:
    after = PositionUpdate(
        123, 7, "MSFT", D(5), D(2000), D(0), NOW - 60, NOW, None, D(2000), D(0), NOW
    )
    data = json.loads(codec.encode(Envelope(topic_of(after), 1, NOW, after)))["data"]
    assert data == {  # the original five, then the live ones (null: no price yet)
        "portfolio_id": 123,
        "symbol": "MSFT",
        "quantity": 5,
        "cost_basis": 2000,
        "realized_pnl": 0,
        "price": None,
        "market_value": 2000,
        "unrealized_pnl": 0,
    }
    assert topic_of(after) == Topic(Channel.POSITIONS, "123")
    assert not BUILTIN.get(topic_of(after).channel).conflate  # each transaction is news


def test_positions_update_carries_every_open_position_of_the_portfolio() -> None:
    aapl = LivePosition(
        "AAPL",
        D(10),
        D("1500.0000000000"),
        D(0),
        D("190.02"),
        D("1900.2"),
        D("400.2"),
        D("15.2"),
        NOW - 86_400,
        NOW - 3600,
    )
    btc = msgspec.structs.replace(aapl, symbol="BTC/USDT", quantity=D("0.5"), price=None)
    update = PositionsUpdate(123, 7, (aapl, btc), NOW)
    raw = codec.encode(Envelope(topic_of(update), 1, NOW, update))
    assert json.loads(raw) == {
        "type": "positions_update",
        "data": {
            "portfolio_id": 123,
            "positions": [
                {
                    "symbol": "AAPL",
                    "quantity": 10,
                    "cost_basis": 1500,
                    "price": 190.02,
                    "market_value": 1900.2,
                    "unrealized_pnl": 400.2,
                    "realized_pnl": 0,
                    "daily_change": 15.2,
                    "created_at": "2024-01-14T10:30:00.000Z",
                    "updated_at": "2024-01-15T09:30:00.000Z",
                },
                {
                    "symbol": "BTC/USDT",
                    "quantity": 0.5,
                    "cost_basis": 1500,
                    "price": None,
                    "market_value": 1900.2,
                    "unrealized_pnl": 400.2,
                    "realized_pnl": 0,
                    "daily_change": 15.2,
                    "created_at": "2024-01-14T10:30:00.000Z",
                    "updated_at": "2024-01-15T09:30:00.000Z",
                },
            ],
        },
        "timestamp": "2024-01-15T10:30:00.000Z",
    }
    # one conflated topic per portfolio: a newer update replaces an unsent one whole
    assert topic_of(update) == Topic(Channel.LIVE_POSITIONS, "123")
    assert str(topic_of(update)) == "live_positions.123"
    assert BUILTIN.get(topic_of(update).channel).conflate


class _Conflating:
    """A subscriber that keeps, per conflation key, only the latest item (as an Outbox
    does for an item not yet sent); items without a key are all kept."""

    wire = codec.WIRE

    def __init__(self) -> None:
        self.pending: dict[object, bytes] = {}

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        self.pending[key if key is not None else object()] = item.payload


def test_conflated_live_positions_never_lose_a_symbol() -> None:
    """Two updates of one portfolio replace each other, so each carries every position."""
    hub = Hub({codec.WIRE: codec.encode})
    reader = _Conflating()
    hub.subscribe(reader, Topic(Channel.LIVE_POSITIONS, "123"))
    hub.subscribe(reader, Topic(Channel.POSITIONS, "123"))
    aapl = LivePosition("AAPL", D(1), D(1), D(0), D(2), D(2), D(1), D(0), NOW, NOW)
    msft = msgspec.structs.replace(aapl, symbol="MSFT")
    stamp_and_fan_out(hub, [PositionsUpdate(123, 7, (aapl, msft), NOW)], NOW)  # AAPL moved
    moved = msgspec.structs.replace(msft, price=D(3), market_value=D(3), unrealized_pnl=D(2))
    stamp_and_fan_out(hub, [PositionsUpdate(123, 7, (aapl, moved), NOW + 1)], NOW + 1)  # then MSFT
    trade = PositionUpdate(123, 7, "AAPL", D(1), D(1), D(0), NOW, NOW, D(2), D(2), D(1), NOW)
    stamp_and_fan_out(hub, [trade, trade], NOW + 2)
    live = [json.loads(p) for p in reader.pending.values()]
    assert [m["type"] for m in live] == ["positions_update", "position_update", "position_update"]
    latest = {p["symbol"]: p["unrealized_pnl"] for p in live[0]["data"]["positions"]}
    assert latest == {"AAPL": 1, "MSFT": 2}  # the newest state of both symbols
