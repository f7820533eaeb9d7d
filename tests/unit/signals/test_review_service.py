"""Review findings for the signal service that need no loop and no server.

Each test reproduced one defect found in review (it failed before the fix) and now guards
against its return.
"""

from __future__ import annotations

import msgspec
import pydantic
import pytest
from redis.asyncio import Redis

from support.clock import ManualClock
from tickcast.config.settings import Settings
from tickcast.hub.hub import Hub
from tickcast.hub.publisher import LocalPublisher
from tickcast.hub.sequencer import Sequencer
from tickcast.model.envelope import Envelope
from tickcast.model.signal import Signal, encode
from tickcast.model.topic import Channel, Topic
from tickcast.observability.faults import Faults
from tickcast.signals.history import SignalHistory
from tickcast.signals.intake import Refused, read_signal
from tickcast.signals.redis_source import RedisSource, safe_url
from tickcast.signals.service import SignalService

PASSWORD = "hunter2-query"
SIGNAL = Signal("QUANTUM_CIPHER", "BUY", 162.5, "BTC/USDT", "1m", "2026-01-02T03:04:05.000Z")


def test_a_password_in_the_url_query_is_never_shown() -> None:
    url = f"redis://127.0.0.1:6379/0?password={PASSWORD}"
    assert PASSWORD not in safe_url(url)
    source = RedisSource(url, "signals", lambda _: None)
    assert PASSWORD not in source.status().message
    source._lost(OSError(f"Error connecting to {url}"))
    assert PASSWORD not in source.status().message


@pytest.mark.parametrize("separator", ["/", "#", "?"])
def test_a_password_that_breaks_the_url_is_never_shown(separator: str) -> None:
    head, tail = "first-half-of-it", "second-half-of-it"
    url = f"redis://feeder:{head}{separator}{tail}@redis.internal:6379/0"
    assert head not in safe_url(url)
    assert tail not in safe_url(url)
    source = RedisSource(url, "signals", lambda _: None)
    with pytest.raises(ValueError, match="Port") as caught:  # _listen meets it, reports it
        Redis.from_url(url)
    source._lost(caught.value)
    message = source.status().message
    assert head not in message
    assert tail not in message


def test_the_settings_never_show_the_redis_password() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:6379/0"
    assert PASSWORD not in repr(Settings(signals_redis_url=url))
    with pytest.raises(pydantic.ValidationError) as caught:
        Settings(signals_redis_url=url, signals_fast=30, signals_slow=21)
    assert PASSWORD not in str(caught.value)


def test_a_history_that_keeps_nothing_counts_no_refusal() -> None:
    clock = ManualClock()
    sequencer = Sequencer("e1")
    faults = Faults()
    publisher = LocalPublisher(
        sequencer, Hub(sequencer=sequencer, faults=faults), faults, clock=clock
    )
    service = SignalService(
        publisher, SignalHistory(0, 3600.0), clock=clock, schedule=lambda _: None
    )
    publisher.tap(service.on_published, name="signals")
    service.submit(SIGNAL, "http")
    service.submit(SIGNAL, "http")
    assert service.published == {"http": 2}
    assert service.refused == {}


def test_a_price_out_of_range_is_an_invalid_signal_not_malformed_json() -> None:
    document = encode(SIGNAL).replace(b"162.5", b"1e400")
    assert b"1e400" in document
    with pytest.raises(Refused) as caught:
        read_signal(document)
    assert caught.value.reason == "invalid", caught.value


def _stamped(n: int, ts: float) -> Envelope:
    signal = msgspec.structs.replace(SIGNAL, id=f"s{n}")
    return Envelope(Topic(Channel.SIGNALS, signal.symbol), n, ts, signal)


def test_a_since_query_survives_a_wall_clock_step_back() -> None:
    history = SignalHistory(10, 3600.0)
    t0 = 1_767_225_600.0
    assert history.add(_stamped(1, t0 + 100), t0 + 100)
    assert history.add(_stamped(2, t0 + 90), t0 + 90)  # the wall clock stepped back 10 s
    found = history.query(t0 + 101, since=t0 + 95)
    assert [e.payload.id for e in found] == ["s1"]  # type: ignore[union-attr]
