"""Review findings for trading signals in the pure layers (protocols, hub), with plain
function calls.

Each test reproduced one defect found in review (it failed before the fix) and now guards
against its return. Nothing here is timed: a cost is counted (string
comparisons, entries held), never measured with a clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from support.clock import ManualClock
from tickcast.clock import Now
from tickcast.hub.hub import Hub
from tickcast.hub.publisher import LocalPublisher
from tickcast.hub.sequencer import DEFAULT_EPOCH, Sequencer
from tickcast.model.channel import builtin
from tickcast.model.signal import Signal
from tickcast.observability.faults import Faults
from tickcast.protocols.envelope.session import RealtimeSession
from tickcast.protocols.native.session import MarketFeedSession
from tickcast.signals.history import SignalHistory
from tickcast.signals.intake import Refused
from tickcast.signals.service import SignalService

NOW = Now(5_000.0, 1_767_225_600.0)


class CountingStr(str):
    """A str that counts the equality tests it takes part in (a list's ``in`` makes
    one per element it passes), and stays one through ``strip`` and ``upper``."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        CountingStr.compared += 1
        return str.__eq__(self, other)

    def __hash__(self) -> int:
        return str.__hash__(self)

    def strip(self, chars: str | None = None) -> CountingStr:
        return CountingStr(str.strip(self, chars))

    def upper(self) -> CountingStr:
        return CountingStr(str.upper(self))


def distinct_symbols(n: int) -> list[CountingStr]:
    return [CountingStr(f"S{i}") for i in range(n)]


def front_2_symbols(symbols: list[Any]) -> object:
    return RealtimeSession._signal_symbols({"symbols": symbols})


def front_1_symbols(symbols: list[Any]) -> object:
    session = MarketFeedSession(is_known=lambda _: True, now=NOW, max_subscriptions=50)
    return session._symbols({"symbols": symbols, "channels": ["signals"]})


@pytest.mark.parametrize("parse", [front_2_symbols, front_1_symbols], ids=["front2", "front1"])
def test_the_symbols_of_one_request_are_read_in_linear_time(parse: Any) -> None:
    n = 2_000
    symbols = distinct_symbols(n)
    CountingStr.compared = 0
    parse(symbols)
    # linear: a few comparisons per symbol; quadratic: n * (n - 1) / 2 = 1,999,000
    assert CountingStr.compared <= 10 * n, f"{CountingStr.compared} comparisons for {n}"


def signal(symbol: str) -> Signal:
    return Signal("QUANTUM_CIPHER", "BUY", 1.0, symbol, "1m", "2026-01-01T00:00:00Z")


def test_the_hub_does_not_keep_every_signal_symbol_ever_published_for_ever() -> None:
    """Fixed by bounding what producers may name: the signal service refuses a signal
    for one symbol more than ``max_symbols`` outside the feed's universe, so the topics
    the hub keeps for signals stay bounded (the feed's own symbols always pass)."""
    sequencer = Sequencer(DEFAULT_EPOCH, builtin())
    hub = Hub(history_size=256, sequencer=sequencer)
    clock = ManualClock()
    publisher = LocalPublisher(sequencer, hub, Faults(), clock=clock)
    bound = 100
    service = SignalService(
        publisher,
        SignalHistory(1000, 3600.0),
        clock=clock,
        max_symbols=bound,
        is_known=lambda symbol: symbol == "AAPL",
    )
    for n in range(bound):
        service.submit(signal(f"S{n}"), "redis")
    for n in range(bound, bound + 4_096):
        with pytest.raises(Refused, match="signals_max_symbols") as refused:
            service.submit(signal(f"S{n}"), "redis")
        assert refused.value.reason == "too_many_symbols"
    service.submit(signal("AAPL"), "redis")  # the feed's own: never counted
    service.submit(signal("S0"), "redis")  # one named before: still served
    assert service.refused == {("redis", "too_many_symbols"): 4_096}
    held = {
        "Hub._topics": len(hub._topics),  # each topic's slot holds its last envelope
        "History._buffers": len(hub.history._buffers),
        # each topic's Topic and seq count, by payload type
        "Sequencer._by_type": sum(len(topics) for _, _, topics in sequencer._by_type.values()),
    }
    assert all(count <= bound + 1 for count in held.values()), held
