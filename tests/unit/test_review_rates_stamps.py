"""Review of two features by pure calls: the shared validation of a subscription's rate
(``protocols/maxrate.py``) as the STOMP, Socket.IO and realtime sessions use it, STOMP's
rates per subscription id, and the latency stamps' splice (``protocols/native/stamps``).

A defect found is reproduced by a test marked ``xfail(strict=True)`` whose reason says
what is wrong (the mark comes off when it is fixed); the other tests pin behaviour
checked to be right.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tickcast.auth.limits import SubscriptionCap
from tickcast.clock import Now
from tickcast.fronts.stomp import StompHeads, StompSpec
from tickcast.hub.outbox import HELD, Outbox
from tickcast.model.channel import BUILTIN, builtin
from tickcast.model.envelope import Envelope
from tickcast.model.market import FEED, Bar, BookUpdate, Quote, Status, Trade
from tickcast.model.signal import Signal
from tickcast.model.topic import Channel, Topic
from tickcast.protocols import maxrate
from tickcast.protocols.envelope.session import RealtimeSession, subscription_cap
from tickcast.protocols.native import stamps
from tickcast.protocols.socketio.session import SocketIOSession
from tickcast.protocols.stomp import codec as stomp_codec
from tickcast.protocols.stomp.session import StompSession
from tickcast.protocols.wire import Encoded

NOW = Now(5_000.0, 1_705_314_600.0)
RULE = "a number of messages per second from 0.001 to 1000"
#: an integer past any float: float() of it raises OverflowError
HUGE = 10**400


# -- the shared validation


@pytest.mark.parametrize(
    "text", ["4", "0.5", ".5", "4.", "1000", "1000.000", "0001000", "0.001", "999.9999999999"]
)
def test_a_header_rate_in_bounds_is_taken(text: str) -> None:
    assert maxrate.from_header(text) == float(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "0.0",
        "-1",
        "+4",
        "1e3",
        "1E3",
        "inf",
        "nan",
        "NaN",
        " 4",
        "4 ",
        "4\n",
        "0x10",
        "1_000",
        "\uff14",  # a full-width 4: Python's float() reads it
        "\u0664",  # an Arabic-Indic 4
        "1000.0000000001",
        "00000000000000004",  # 17 characters
        ".",
        "true",
    ],
)
def test_a_bad_header_rate_is_refused_in_the_rules_words(text: str) -> None:
    with pytest.raises(ValueError, match=RULE):
        maxrate.from_header(text)


@pytest.mark.parametrize(
    "value",
    [True, False, "4", [4], {"n": 4}, 0, 0.0, -0.0, -1, float("nan"), float("inf"), 1000.0001],
)
def test_a_bad_json_rate_is_refused_in_the_rules_words(value: object) -> None:
    with pytest.raises(ValueError, match=RULE):
        maxrate.from_json(value)


def test_a_json_rate_past_any_float_is_refused_in_the_rules_words() -> None:
    with pytest.raises(ValueError, match=RULE):
        maxrate.from_json(HUGE)


# -- the sessions' refusals of that value


def realtime() -> RealtimeSession:
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


def test_realtime_a_rate_past_any_float_is_an_error_that_changes_nothing() -> None:
    s = realtime()
    s.receive_text(
        json.dumps({"type": "subscribe_asset", "data": {"symbol": "AAPL", "max_rate": HUGE}}),
        NOW,
    )
    [error] = [json.loads(f.payload) for f in s.frames_to_send()]
    assert error["data"]["message"] == f"Invalid request: 'max_rate' must be {RULE}"
    assert s.commands_received() == []
    assert s.close_reason is None


def socketio() -> SocketIOSession:
    s = SocketIOSession(
        welcome="hello", is_known=lambda s: s in {"AAPL", "MSFT"}, cap=SubscriptionCap(10)
    )
    s.frames_to_send()
    s.commands_received()
    return s


def test_socketio_a_rate_past_any_float_is_an_error_event_that_changes_nothing() -> None:
    s = socketio()
    selection = {"symbols": ["AAPL"], "channels": ["quotes"], "max_rate": HUGE}
    s.receive_text(json.dumps(["subscribe", selection]), NOW)
    [frame] = s.frames_to_send()
    name, body = json.loads(frame.payload[2:])
    assert (name, body) == ("error", {"message": f"'max_rate' must be {RULE}"})
    assert s.commands_received() == []


# -- STOMP: the rate is the subscription id's, and goes with it


def stomp_session() -> StompSession:
    s = StompSession(resolve=stomp_codec.topic_of, now=NOW, max_subscriptions=10)
    s.receive_text("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00", NOW)
    s.frames_to_send()
    return s


def frame(command: str, **headers: str) -> str:
    head = "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in headers.items())
    return f"{command}\n{head}\n\x00"


def conflation_key(topic: Topic) -> str | None:
    return str(topic) if BUILTIN.get(topic.channel).conflate else None


def test_stomp_two_ids_on_one_destination_keep_their_own_rates_through_a_resubscribe() -> None:
    s = stomp_session()
    heads = StompHeads(StompSpec(allow_anonymous=True, login_timeout_s=10), s, conflation_key)
    quotes = "/topic/quotes.AAPL"
    s.receive_text(frame("SUBSCRIBE", id="slow", destination=quotes, max_rate="2"), NOW)
    s.receive_text(frame("SUBSCRIBE", id="free", destination=quotes), NOW)
    s.receive_text(frame("SUBSCRIBE", id="t", destination="/topic/trades.AAPL", max_rate="1"), NOW)
    assert heads.rates() == [("quotes.AAPL", "slow", 2.0)]  # trades are reliable: no rate
    # dropped and taken again without the header, in one read: lifted, never set again
    s.receive_text(
        frame("UNSUBSCRIBE", id="slow") + frame("SUBSCRIBE", id="slow", destination=quotes), NOW
    )
    assert heads.rates() == [("quotes.AAPL", "slow", None)]
    assert heads.rates() == []  # taken once
    s.receive_text(frame("UNSUBSCRIBE", id="free") + frame("UNSUBSCRIBE", id="t"), NOW)
    assert heads.rates() == []  # neither was rated: nothing to lift
    assert not [f for f in s.frames_to_send() if f.message.startswith(b"ERROR")]


def test_stomp_many_rated_cycles_keep_nothing_in_the_session() -> None:
    s = stomp_session()
    heads = StompHeads(StompSpec(allow_anonymous=True, login_timeout_s=10), s, conflation_key)
    for i in range(500):
        s.receive_text(
            frame("SUBSCRIBE", id=f"s{i}", destination="/topic/quotes.MSFT", max_rate="0.5")
            + frame("UNSUBSCRIBE", id=f"s{i}"),
            NOW,
        )
        assert len(heads.rates()) == 2
    assert s._rates == []
    assert not s._subscriptions


# -- latency stamps: every message of every write is valid JSON


topic_of = builtin().topic_of
TS = 1_682_944_496.789


def stamped_items(seq: bool) -> list[Encoded]:
    encode = stamps.encode_seq_stamped if seq else stamps.encode_stamped
    events: list[Any] = [
        Quote("AAPL", 150.2, 150.3, 300.0, 400.0, 150.25, 1000.0, TS, "alpaca"),
        Trade("AAPL", 150.25, 100.0, TS, "alpaca", '"recv_us":1}}'),
        Bar("AAPL", 150.1, 150.4, 150.0, 150.2, 12000.0, TS - 60, TS, "alpaca"),
        BookUpdate("AAPL", ((150.2, 300.0),), ((150.3, 200.0),), True, TS, "alpaca", 17),
        Status(FEED, "alpaca", "up", "alpaca", '"recv_us":5}}', TS, "tickcast"),
        Signal("RSI", "SELL", 1.0, "AAPL", "1m", "not a time", '"recv_us":7}}', "external"),
    ]
    items = []
    for i, event in enumerate(events):
        envelope = Envelope(topic_of(event), i + 1, TS + 0.001, event, "18bcfe5682a1b2c3")
        items.append(Encoded(encode(envelope), ts=TS, topic=str(envelope.topic)))
        items.append(Encoded(b'{"type":"pong","x":"\\"recv_us\\":1}}"}', control=True))
    return items


@pytest.mark.parametrize("seq", [False, True], ids=["plain", "seq"])
@pytest.mark.parametrize("array", [False, True], ids=["single", "array"])
def test_every_payload_of_a_stamped_write_is_json_with_the_send_time(
    seq: bool, array: bool
) -> None:
    items = stamped_items(seq)
    payloads = stamps.stamped_payloads(items, TS + 0.002, array=array)
    data: list[dict[str, Any]] = []
    controls = 0
    for payload in payloads:
        message = json.loads(payload)
        for one in message if isinstance(message, list) else [message]:
            if one.get("type") == "pong":
                assert "stamps" not in one
                controls += 1
                continue
            assert list(one)[-1] == "stamps"
            data.append(one)
    assert controls == 6
    assert len(data) == 6
    for one in data:
        got = one["stamps"]
        assert got["recv_us"] == stamps.micros(TS + 0.001)
        assert got["send_us"] == stamps.micros(TS + 0.002)
        # the signal's unreadable timestamp: no event time, not a wrong one
        assert ("event_us" in got) == (one.get("type") != "signal")
        if seq:
            assert list(one)[-4:-1] == ["topic", "seq", "epoch"]
    # the control replies are the same bytes as queued
    assert [p for p in payloads if p.startswith(b'{"type":"pong"')] == [
        i.payload for i in items if i.control
    ]


def test_live_positions_are_rated_but_position_updates_are_not() -> None:
    """Front 2's documented split, as the hub's registry keys them."""
    assert conflation_key(Topic(Channel.LIVE_POSITIONS, "123")) is not None
    assert conflation_key(Topic(Channel.PORTFOLIO, "123")) is not None
    assert conflation_key(Topic(Channel.POSITIONS, "123")) is None


# -- the smallest rate every front accepts


def test_a_held_value_is_due_at_a_finite_time_for_every_accepted_rate() -> None:
    # below the floor is refused, on every front's check
    for tiny in (5e-324, 1e-9, 0.0009):
        with pytest.raises(ValueError, match=r"from 0\.001"):
            maxrate.from_json(tiny)
    with pytest.raises(ValueError, match=r"from 0\.001"):
        maxrate.from_header("0.00000000000001")
    rate = maxrate.from_json(0.001)  # the lowest accepted: one value in 1,000 s
    assert rate is not None
    outbox: Outbox[str] = Outbox(window_s=0.05, max_items=100, size=len)
    outbox.set_rate("quotes.AAPL", rate, 0.0)
    assert outbox.put("first", 0.0, "quotes.AAPL") is None
    assert outbox.flush(0.05) == ["first"]
    assert outbox.put("latest", 1.0, "quotes.AAPL") is HELD
    due = outbox.next_release()
    assert due is not None
    assert due <= 0.05 + 1_000.0 + 1e-6, "the latest value goes out within one interval"
