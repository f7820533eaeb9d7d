"""Front 2's ``max_rate`` on ``subscribe_asset``, ``subscribe_portfolio`` and
``subscribe_positions``: the command the front gets (its rate; a held topic's rate
restated when it changes), and the refusals, which change nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tickcast.clock import Now
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.base import Subscribe, Unsubscribe
from tickcast.protocols.envelope.session import RealtimeSession, subscription_cap

NOW = Now(5_000.0, 1_705_314_600.0)
REFUSED = "Invalid request: 'max_rate' must be a number of messages per second from 0.001 to 1000"
AAPL = Topic(Channel.ASSETS, "AAPL")
PORTFOLIO = Topic(Channel.PORTFOLIO, "123")
LIVE = Topic(Channel.LIVE_POSITIONS, "123")


def session() -> RealtimeSession:
    s = RealtimeSession(
        connection_id="c-1",
        user_id=7,
        anonymous_allowed=True,
        is_known={"AAPL", "MSFT"}.__contains__,
        owner_of={123: 7}.get,
        cap=subscription_cap(5),
        now=NOW,
    )
    s.frames_to_send()
    return s


def send(s: RealtimeSession, type_: str, **data: Any) -> list[dict[str, Any]]:
    s.receive_text(json.dumps({"type": type_, "data": data}), NOW)
    return [json.loads(f.payload) for f in s.frames_to_send()]


@pytest.mark.parametrize(
    ("type_", "field", "topic"),
    [
        ("subscribe_asset", {"symbol": "AAPL"}, AAPL),
        ("subscribe_portfolio", {"portfolio_id": 123}, PORTFOLIO),
        ("subscribe_positions", {"portfolio_id": 123}, LIVE),
    ],
)
def test_max_rate_is_carried_to_the_front(type_: str, field: dict[str, Any], topic: Topic) -> None:
    s = session()
    assert send(s, type_, **field, max_rate=2) == []  # no acknowledgement, as before
    [command] = s.commands_received()
    assert command == Subscribe((topic,), {}, 2.0, ())
    assert isinstance(command.max_rate, float)


def test_without_max_rate_the_command_is_as_before() -> None:
    s = session()
    send(s, "subscribe_asset", symbol="AAPL")
    assert s.commands_received() == [Subscribe((AAPL,))]
    send(s, "subscribe_asset", symbol="AAPL", max_rate=None)  # null: no limit, held
    assert s.commands_received() == []


def test_subscribing_again_restates_a_changed_rate_and_unsubscribing_forgets_it() -> None:
    s = session()
    send(s, "subscribe_asset", symbol="AAPL", max_rate=2)
    s.commands_received()
    send(s, "subscribe_asset", symbol="AAPL", max_rate=2)  # the same: nothing
    assert s.commands_received() == []
    send(s, "subscribe_asset", symbol="AAPL", max_rate=0.5)
    assert s.commands_received() == [Subscribe((), {}, 0.5, (AAPL,))]
    send(s, "subscribe_asset", symbol="AAPL")  # none: lifted
    assert s.commands_received() == [Subscribe((), {}, None, (AAPL,))]
    send(s, "subscribe_asset", symbol="AAPL", max_rate=4)
    send(s, "unsubscribe_asset", symbol="AAPL")
    assert s.commands_received()[-1] == Unsubscribe((AAPL,))
    send(s, "subscribe_asset", symbol="AAPL")  # a new subscription: no rate left over
    assert s.commands_received() == [Subscribe((AAPL,), {}, None, ())]


@pytest.mark.parametrize("bad", [0, -2, 1000.5, "2", True, [2], {"n": 2}])
def test_a_bad_max_rate_is_an_error_that_changes_nothing(bad: Any) -> None:
    s = session()
    send(s, "subscribe_asset", symbol="AAPL", max_rate=2)
    s.commands_received()
    for type_, field in (
        ("subscribe_asset", {"symbol": "MSFT"}),
        ("subscribe_asset", {"symbol": "AAPL"}),
    ):
        [error] = send(s, type_, **field, max_rate=bad)
        assert error["type"] == "error"
        assert error["data"]["message"] == REFUSED
    assert s.commands_received() == []
    assert s.topics == {AAPL}
    assert s.close_reason is None  # the session goes on
