"""Front 1's ``max_rate`` option: parsing, the ``subscribed`` echo, the command the front
gets (its rate, and the held topics whose rate a request changes), and the refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tickcast.clock import Now
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.base import Subscribe, Unsubscribe
from tickcast.protocols.native.session import MarketFeedSession, subscription_cap

NOW = Now(5_000.0, 1_682_944_496.0)
KNOWN = frozenset({"AAPL", "MSFT"})
REFUSED = (
    "Invalid subscription request: 'max_rate' must be a number of messages per second "
    "from 0.001 to 1000"
)


def session() -> MarketFeedSession:
    return MarketFeedSession(is_known=KNOWN.__contains__, cap=subscription_cap(10), now=NOW)


def send(s: MarketFeedSession, message: Any) -> list[dict[str, Any]]:
    s.receive_text(message if isinstance(message, str) else json.dumps(message), NOW)
    return [json.loads(frame.payload) for frame in s.frames_to_send()]


def q(symbol: str) -> Topic:
    return Topic(Channel.QUOTES, symbol)


def t(symbol: str) -> Topic:
    return Topic(Channel.TRADES, symbol)


def test_max_rate_is_carried_to_the_front_and_echoed() -> None:
    s = session()
    message = {"action": "subscribe", "symbols": ["AAPL"], "max_rate": 4}
    assert send(s, message) == [{"type": "subscribed", "symbols": ["AAPL"], "max_rate": 4}]
    assert s.commands_received() == [Subscribe((q("AAPL"),), {}, 4.0)]


def test_a_fractional_rate_and_the_bounds_are_accepted() -> None:
    s = session()
    for rate in (0.5, 1000):
        reply = send(s, {"action": "subscribe", "symbols": ["MSFT"], "max_rate": rate})
        assert reply[0]["max_rate"] == rate


def test_without_max_rate_the_reply_and_the_command_are_as_before() -> None:
    s = session()
    assert send(s, {"action": "subscribe", "symbols": ["AAPL"]}) == [
        {"type": "subscribed", "symbols": ["AAPL"]}
    ]
    assert s.commands_received() == [Subscribe((q("AAPL"),), {})]
    send(s, {"action": "subscribe", "symbols": ["AAPL"], "max_rate": None})  # null: none
    assert s.commands_received() == [Subscribe((), {})]


@pytest.mark.parametrize("value", [0, -1, 1000.5, 10**30, "4", True, [4], {"rate": 4}], ids=repr)
def test_a_bad_max_rate_refuses_the_request_and_subscribes_nothing(value: Any) -> None:
    s = session()
    send(s, {"action": "subscribe", "symbols": ["MSFT"], "max_rate": 2})
    s.commands_received()
    message = {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "max_rate": value}
    assert send(s, message) == [{"type": "error", "message": REFUSED}]
    assert s.commands_received() == []
    assert s.topics == {q("MSFT")}  # the earlier subscription and its rate stand
    send(s, {"action": "subscribe", "symbols": ["MSFT"], "max_rate": 2})
    assert s.commands_received() == [Subscribe((), {}, 2.0)]  # unchanged: nothing restated


def test_a_later_subscribe_restates_the_rate_of_held_topics_it_changes() -> None:
    s = session()
    send(s, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes", "trades"]})
    s.commands_received()
    send(s, {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "max_rate": 2})
    assert s.commands_received() == [Subscribe((q("MSFT"),), {}, 2.0, (q("AAPL"),))]
    send(s, {"action": "subscribe", "symbols": ["AAPL"], "max_rate": 10})
    assert s.commands_received() == [Subscribe((), {}, 10.0, (q("AAPL"),))]
    send(s, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]})  # absent: no limit again
    assert s.commands_received() == [Subscribe((), {}, None, (q("AAPL"), q("MSFT")))]
    send(s, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
    assert s.commands_received() == [Subscribe((), {})]


def test_unsubscribe_and_release_forget_the_rate() -> None:
    s = session()
    send(s, {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "max_rate": 2})
    send(s, {"action": "unsubscribe", "symbols": ["AAPL"]})
    s.release((q("MSFT"),))  # the front dropped it (refused, or the connection closed)
    s.commands_received()
    send(s, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
    assert s.commands_received() == [Subscribe((q("AAPL"), q("MSFT")), {})]
    send(s, {"action": "unsubscribe", "symbols": ["AAPL", "MSFT"]})
    (command,) = s.commands_received()
    assert isinstance(command, Unsubscribe)
    assert set(command.topics) == {q("AAPL"), q("MSFT")}


def test_a_rate_on_reliable_channels_is_carried_the_front_applies_it_to_quotes_only() -> None:
    s = session()
    send(s, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"], "max_rate": 1})
    assert s.commands_received() == [Subscribe((t("AAPL"),), {}, 1.0)]
