"""Review findings for the signal service that need no loop and no server.

Each test reproduces one defect and is marked ``xfail(strict=True)``: it fails today
and flips (an unexpected pass fails the suite) once the defect is fixed.
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


@pytest.mark.xfail(
    strict=True,
    reason="safe_url only masks the password of the URL's user part: redis-py also takes "
    "it from the query string (redis://host:6379/0?password=...), and that one is shown "
    "as is in the redis worker status (public: GET /signals/status, the signal_status "
    "channel) and in the logs",
)
def test_a_password_in_the_url_query_is_never_shown() -> None:
    url = f"redis://127.0.0.1:6379/0?password={PASSWORD}"
    assert PASSWORD not in safe_url(url)
    source = RedisSource(url, "signals", lambda _: None)
    assert PASSWORD not in source.status().message
    source._lost(OSError(f"Error connecting to {url}"))
    assert PASSWORD not in source.status().message


@pytest.mark.xfail(
    strict=True,
    reason="a password holding '/', '#' or '?' (common in generated passwords) written "
    "into the URL unescaped makes urlsplit see no password: safe_url returns the URL as "
    "is, so the whole password is in the log ('cannot subscribe at ...') and in the "
    "public redis status, and redis-py's error ('Port could not be cast to integer value "
    "as ...') carries its first part; the URL is retried forever instead of refused",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="signals_redis_url is a plain str, not a secret: repr(settings) and the "
    "'invalid settings' message of any cross-field check (e.g. signals_fast >= "
    "signals_slow, printed by the CLI) show the Redis password",
)
def test_the_settings_never_show_the_redis_password() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:6379/0"
    assert PASSWORD not in repr(Settings(signals_redis_url=url))
    with pytest.raises(pydantic.ValidationError) as caught:
        Settings(signals_redis_url=url, signals_fast=30, signals_slow=21)
    assert PASSWORD not in str(caught.value)


@pytest.mark.xfail(
    strict=True,
    reason="with signals_history_size = 0 (documented: keeps none) every published "
    "signal is counted as refused (tickcast_signals_refused_total{source=history, "
    "reason=duplicate}): history.add's False for 'nothing kept' is read as a duplicate",
)
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


@pytest.mark.xfail(
    strict=True,
    reason='a JSON number out of float range ("price": 1e400) is JSON, yet intake '
    "calls the document malformed: POST /api/signals answers 400 'The body is not a JSON "
    "document: invalid signal: Number out of range' (docs/signals.md: 400 is for a body "
    "that is not JSON, 422 for JSON that is not a valid signal), and from Redis it is a "
    "'malformed' dead letter",
)
def test_a_price_out_of_range_is_an_invalid_signal_not_malformed_json() -> None:
    document = encode(SIGNAL).replace(b"162.5", b"1e400")
    assert b"1e400" in document
    with pytest.raises(Refused) as caught:
        read_signal(document)
    assert caught.value.reason == "invalid", caught.value


def _stamped(n: int, ts: float) -> Envelope:
    signal = msgspec.structs.replace(SIGNAL, id=f"s{n}")
    return Envelope(Topic(Channel.SIGNALS, signal.symbol), n, ts, signal)


@pytest.mark.xfail(
    strict=True,
    reason="SignalHistory.query stops at the first signal stamped before `since`, "
    "assuming the stamps never decrease; they are wall time (time.time), so after the "
    "wall clock steps back (NTP, a VM resumed) GET /api/signals?since= misses signals "
    "published at or after `since`",
)
def test_a_since_query_survives_a_wall_clock_step_back() -> None:
    history = SignalHistory(10, 3600.0)
    t0 = 1_767_225_600.0
    assert history.add(_stamped(1, t0 + 100), t0 + 100)
    assert history.add(_stamped(2, t0 + 90), t0 + 90)  # the wall clock stepped back 10 s
    found = history.query(t0 + 101, since=t0 + 95)
    assert [e.payload.id for e in found] == ["s1"]  # type: ignore[union-attr]
