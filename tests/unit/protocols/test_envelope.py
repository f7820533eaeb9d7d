"""Front 2 (the realtime envelope): the session and the codec, sans-I/O."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tickcast.closecodes import CloseCode
from tickcast.model.envelope import Envelope
from tickcast.model.portfolio import AssetUpdate, PortfolioValue
from tickcast.model.topic import Channel, Topic, topic_of
from tickcast.protocols.envelope import codec
from tickcast.protocols.envelope.session import (
    Authenticate,
    RealtimeSession,
    Subscribe,
    Unsubscribe,
)

NOW = 1_705_314_600.0  # 2024-01-15T10:30:00Z
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
        max_subscriptions=max_subscriptions,
        now=NOW,
        auth_timeout_s=10.0,
    )
    return s


def out(s: RealtimeSession) -> list[dict[str, Any]]:
    return [json.loads(f.payload) for f in s.frames_to_send()]


def send(s: RealtimeSession, message: Any, now: float = NOW + 1) -> list[dict[str, Any]]:
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
    assert s.next_deadline() == NOW + 10
    s.handle_timer(NOW + 10)
    assert s.close_reason is CloseCode.AUTH_TIMEOUT
    assert out(s) == [error("authentication timeout", NOW + 10)]


def test_first_message_auth_success_and_failure() -> None:
    s = session(None, anonymous=False)
    out(s)
    send(s, {"type": "auth", "data": {"token": "tc_abc_def"}})
    assert s.commands_received() == [Authenticate("tc_abc_def")]
    assert send(s, {"type": "auth", "data": {"token": "again"}}) == [error("Already authenticated")]
    s.authenticated_as(7, NOW + 2)
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
    bad.refuse("Invalid token: signature verification failed", NOW + 2)
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
        NOW,
    )
    raw = codec.encode(Envelope(topic_of(value), 1, NOW, value))
    assert b'"total_value":10523.5000000001' in raw  # exact, not a float's rounding
    data = json.loads(raw)["data"]
    assert data["portfolio_id"] == 123
    assert data["name"] == "Growth"
    assert topic_of(value) == Topic(Channel.PORTFOLIO, "123")
