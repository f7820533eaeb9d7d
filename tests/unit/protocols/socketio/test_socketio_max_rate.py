"""Front 5's ``max_rate`` in the ``subscribe`` event's argument: the command the front
gets (the rate, and the quote topics kept whose rate changes), the ``subscribed`` echo
(and acknowledgement), and the refusals, which change nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tickcast.auth.limits import SubscriptionCap
from tickcast.clock import Now
from tickcast.model.topic import Topic
from tickcast.protocols.base import Subscribe, Unsubscribe, UnsubscribeChannel
from tickcast.protocols.socketio.session import SocketIOSession

NOW = Now(10.0, 1_700_000_000.0)
REFUSED = "'max_rate' must be a number of messages per second from 0.001 to 1000"


def session() -> SocketIOSession:
    s = SocketIOSession(
        welcome="hello", is_known=lambda s: s in {"AAPL", "MSFT"}, cap=SubscriptionCap(10)
    )
    s.frames_to_send()
    s.commands_received()
    return s


def emit(s: SocketIOSession, *args: Any) -> list[tuple[str, Any]]:
    s.receive_text(json.dumps(["subscribe", *args]), NOW)
    out = []
    for item in s.frames_to_send():
        name, body = json.loads(item.payload[2:])
        out.append((name, body))
    return out


def q(symbol: str) -> Topic:
    return Topic("quotes", symbol)


def test_max_rate_is_carried_to_the_front_and_echoed_as_sent() -> None:
    s = session()
    selection = {"symbols": ["AAPL"], "channels": ["quotes"], "max_rate": 4}
    assert emit(s, selection) == [("subscribed", {**selection, "types": None})]
    assert s.ack == {**selection, "types": None}
    [unsubscribe_wide, subscribe] = s.commands_received()
    assert unsubscribe_wide == UnsubscribeChannel("signals")
    assert subscribe == Subscribe((q("AAPL"),), {}, 4.0, ())
    assert isinstance(subscribe.max_rate, float)


def test_without_max_rate_the_reply_and_the_command_are_as_before() -> None:
    s = session()
    assert emit(s, {"symbols": ["AAPL"], "channels": ["quotes"]}) == [
        ("subscribed", {"channels": ["quotes"], "symbols": ["AAPL"], "types": None})
    ]
    assert s.commands_received()[-1] == Subscribe((q("AAPL"),), {}, None, ())


def test_a_new_selection_restates_the_rate_of_the_quotes_it_keeps() -> None:
    s = session()
    emit(s, {"symbols": ["AAPL"], "channels": ["quotes"], "max_rate": 2})
    s.commands_received()
    # a new rate, one symbol kept and one added: both get it
    emit(s, {"symbols": ["AAPL", "MSFT"], "channels": ["quotes"], "max_rate": 0.5})
    assert s.commands_received() == [Subscribe((q("MSFT"),), {}, 0.5, (q("AAPL"),))]
    # the same rate again: nothing to restate, nothing new: no command
    emit(s, {"symbols": ["AAPL", "MSFT"], "channels": ["quotes"], "max_rate": 0.5})
    assert s.commands_received() == []
    # no rate: the kept quotes' rate is lifted (restated with None)
    emit(s, {"symbols": ["MSFT"], "channels": ["quotes"]})
    assert s.commands_received() == [
        Unsubscribe((q("AAPL"),)),
        Subscribe((), {}, None, (q("MSFT"),)),
    ]


def test_signals_take_a_rate_and_are_still_every_signal() -> None:
    s = session()
    body = {"channels": ["signals"], "max_rate": 1}
    assert emit(s, body)[0] == ("subscribed", {**body, "symbols": None, "types": None})
    assert s.commands_received() == []  # every signal, channel-wide, as before


@pytest.mark.parametrize("bad", [0, -1, 1000.5, "4", True, [], {}])
def test_a_bad_max_rate_is_refused_and_changes_nothing(bad: Any) -> None:
    s = session()
    emit(s, {"symbols": ["AAPL"], "channels": ["quotes"], "max_rate": 2})
    s.commands_received()
    before = s.selection
    out = emit(s, {"symbols": ["MSFT"], "channels": ["quotes"], "max_rate": bad})
    assert out == [("error", {"message": REFUSED})]
    assert s.ack == {"error": REFUSED}
    assert s.commands_received() == []
    assert s.selection == before
    assert set(s.topics) == {q("AAPL")}
