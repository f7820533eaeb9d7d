"""Review findings for the signal service that need no loop and no server.

Each test reproduces one defect and is marked ``xfail(strict=True)``: it fails today
and flips (an unexpected pass fails the suite) once the defect is fixed.
"""

from __future__ import annotations

import pydantic
import pytest

from support.clock import ManualClock
from tickcast.config.settings import Settings
from tickcast.hub.hub import Hub
from tickcast.hub.publisher import LocalPublisher
from tickcast.hub.sequencer import Sequencer
from tickcast.model.signal import Signal
from tickcast.observability.faults import Faults
from tickcast.signals.history import SignalHistory
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
