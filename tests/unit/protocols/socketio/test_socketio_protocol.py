"""Front 5's pure parts: the hub's Socket.IO codec (one Engine.IO message text per
update) and the session that turns a client's events into the core's commands."""

from __future__ import annotations

import json

import pytest

from tickcast.auth.limits import SubscriptionCap
from tickcast.clock import Now
from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote
from tickcast.model.signal import Signal, WorkerStatus
from tickcast.model.topic import Topic
from tickcast.protocols.base import Subscribe, SubscribeChannel, Unsubscribe, UnsubscribeChannel
from tickcast.protocols.socketio import codec
from tickcast.protocols.socketio.session import SocketIOSession

NOW = Now(10.0, 1_700_000_000.0)
SIGNAL = Signal("QUANTUM_CIPHER", "BUY", 162.5, "BTC/USDT", "1m", "2026-01-02T03:04:05.000Z")


def decoded(payload: bytes) -> tuple[str, object]:
    """An item's Socket.IO event: ``42`` then ``[name, body]``."""
    assert payload[:2] == b"42"
    name, body = json.loads(payload[2:])
    return name, body


def session(cap: int = 10) -> SocketIOSession:
    return SocketIOSession(
        welcome="hello", is_known=lambda s: s in {"AAPL", "MSFT"}, cap=SubscriptionCap(cap)
    )


def events(s: SocketIOSession) -> list[tuple[str, object]]:
    return [decoded(item.payload) for item in s.frames_to_send()]


# -- codec


def test_a_signal_is_new_signal_in_the_seed_shape() -> None:
    env = Envelope(Topic("signals", "BTC/USDT"), 1, 0.0, SIGNAL)
    name, body = decoded(codec.encode(env))
    assert name == "new_signal"
    assert body == {
        "type": "QUANTUM_CIPHER",
        "signal": "BUY",
        "price": 162.5,
        "symbol": "BTC/USDT",
        "timeframe": "1m",
        "timestamp": "2026-01-02T03:04:05.000Z",
        "id": "",
        "source": "external",
    }


def test_a_worker_status_is_status_update() -> None:
    status = WorkerStatus("SignalMonitorWorker", "degraded", "Redis unreachable")
    env = Envelope(Topic("signal_status", "SignalMonitorWorker"), 1, 0.0, status)
    assert decoded(codec.encode(env)) == (
        "status_update",
        {"service": "SignalMonitorWorker", "status": "degraded", "message": "Redis unreachable"},
    )


def test_a_quote_is_quote_in_front_1s_shape() -> None:
    quote = Quote("AAPL", 101.0, 100.9, 101.1, 7, 101.0, 0, 1_700_000_000.0, "sim")
    name, body = decoded(codec.encode(Envelope(Topic("quotes", "AAPL"), 1, 0.0, quote)))
    assert name == "quote"
    assert isinstance(body, dict)
    assert body["symbol"] == "AAPL"
    assert body["price"] == 101.0


def test_signal_type_is_read_without_decoding() -> None:
    item = codec.encode(Envelope(Topic("signals", "X"), 1, 0.0, SIGNAL))
    assert codec.signal_type(item) == "QUANTUM_CIPHER"
    tricky = SIGNAL.__class__(**{**_fields(SIGNAL), "type": 'A"B'})
    assert codec.signal_type(codec.encode(Envelope(Topic("signals", "X"), 1, 0.0, tricky))) == 'A"B'
    assert codec.signal_type(codec.control("welcome", message="x").payload) is None
    assert codec.keeps(item, frozenset({"QUANTUM_CIPHER"}))
    assert not codec.keeps(item, frozenset({"RSI"}))


def _fields(signal: Signal) -> dict[str, object]:
    return {f: getattr(signal, f) for f in signal.__struct_fields__}


# -- session


def test_opening_says_welcome_and_holds_signals_and_statuses() -> None:
    s = session()
    assert events(s) == [("welcome", {"message": "hello"})]
    assert s.commands_received() == [SubscribeChannel("signals"), SubscribeChannel("signal_status")]


def test_subscribe_narrows_signals_to_symbols_and_adds_quotes() -> None:
    s = session()
    s.frames_to_send(), s.commands_received()
    s.receive_text(
        json.dumps(["subscribe", {"symbols": ["AAPL"], "channels": ["quotes", "signals"]}]), NOW
    )
    assert s.commands_received() == [
        UnsubscribeChannel("signals"),
        Subscribe((Topic("quotes", "AAPL"), Topic("signals", "AAPL"))),
    ]
    selection = {"channels": ["quotes", "signals"], "symbols": ["AAPL"], "types": None}
    assert events(s) == [("subscribed", selection)]
    assert s.ack == selection
    # back to the default: every signal again, the topics dropped
    s.receive_text('["unsubscribe"]', NOW)
    assert s.commands_received() == [
        Unsubscribe((Topic("quotes", "AAPL"), Topic("signals", "AAPL"))),
        SubscribeChannel("signals"),
    ]
    assert s.topics == set()


def test_types_narrow_signals() -> None:
    s = session()
    s.receive_text('["subscribe", {"types": ["RSI"]}]', NOW)
    assert s.types == frozenset({"RSI"})
    assert s.commands_received()[2:] == []  # still every symbol, channel-wide


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "malformed event"),
        ("{}", "malformed event"),
        ("[1]", "malformed event"),
        ('["dance"]', "unknown event 'dance'"),
        ('["subscribe"]', "subscribe takes one object: {symbols, channels, types}"),
        ('["subscribe", "AAPL"]', "subscribe takes one object: {symbols, channels, types}"),
        ('["subscribe", {"symbol": ["AAPL"]}]', "unknown subscribe field(s): symbol"),
        ('["subscribe", {"symbols": "AAPL"}]', "'symbols' must be a non-empty list of strings"),
        ('["subscribe", {"symbols": [1]}]', "'symbols' must hold non-empty strings of at most 64"),
        (
            '["subscribe", {"channels": ["trades"]}]',
            "unknown channel 'trades': one of signals, quotes",
        ),
        ('["subscribe", {"channels": ["quotes"]}]', "quotes need symbols"),
        (
            '["subscribe", {"channels": ["quotes"], "symbols": ["NOPE"]}]',
            "unknown symbol(s) for quotes: NOPE",
        ),
        (
            '["subscribe", {"channels": ["quotes"], "symbols": ["AAPL"], "types": ["RSI"]}]',
            "types narrow signals: add 'signals' to channels",
        ),
    ],
)
def test_bad_events_get_an_error_and_change_nothing(text: str, message: str) -> None:
    s = session()
    s.frames_to_send(), s.commands_received()
    s.receive_text(text, NOW)
    assert events(s) == [("error", {"message": message})]
    assert s.ack == {"error": message}
    assert s.commands_received() == []
    assert s.close_reason is None


def test_the_cap_counts_symbols_times_channels() -> None:
    s = session(cap=3)
    s.frames_to_send(), s.commands_received()
    s.receive_text(
        json.dumps(["subscribe", {"symbols": ["AAPL", "MSFT"], "channels": ["quotes", "signals"]}]),
        NOW,
    )
    ((name, body),) = events(s)
    assert name == "error"
    assert "at most 3" in str(body)
    assert s.commands_received() == []


def test_binary_is_refused() -> None:
    s = session()
    s.frames_to_send()
    s.receive_bytes(b"\x00", NOW)
    assert events(s) == [("error", {"message": "binary events are not supported"})]
