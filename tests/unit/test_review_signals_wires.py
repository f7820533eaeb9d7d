"""Review findings for trading signals in the pure layers (protocols, hub), with plain
function calls.

Each test reproduces one defect and is marked ``xfail(strict=True)``: it fails today
and flips once the defect is fixed. Nothing here is timed: a cost is counted (string
comparisons, entries held), never measured with a clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from tickcast.clock import Now
from tickcast.fronts.stomp import MAX_CACHED_TOPICS
from tickcast.hub.hub import Hub
from tickcast.hub.sequencer import DEFAULT_EPOCH, Sequencer
from tickcast.model.channel import builtin
from tickcast.model.signal import Signal
from tickcast.protocols.envelope.session import RealtimeSession
from tickcast.protocols.native.session import MarketFeedSession

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


@pytest.mark.xfail(
    strict=True,
    reason=(
        "the symbols of one subscribe message are de-duplicated with a list's `in` "
        "(protocols/envelope/session.py _signal_symbols, and Front 1's _symbols which "
        "the signals channel now reaches with any well-formed symbol), before the "
        "subscription cap is checked: quadratic in the message, so one 64 KiB "
        "subscribe_signals of ~9,500 distinct symbols costs ~45 million string "
        "comparisons (~0.4 s of the event loop, measured) only to be refused; at the "
        "default 20 messages/s one client keeps the loop busy for everyone"
    ),
)
@pytest.mark.parametrize("parse", [front_2_symbols, front_1_symbols], ids=["front2", "front1"])
def test_the_symbols_of_one_request_are_read_in_linear_time(parse: Any) -> None:
    n = 2_000
    symbols = distinct_symbols(n)
    CountingStr.compared = 0
    parse(symbols)
    # linear: a few comparisons per symbol; quadratic: n * (n - 1) / 2 = 1,999,000
    assert CountingStr.compared <= 10 * n, f"{CountingStr.compared} comparisons for {n}"


def signal(symbol: str) -> Signal:
    return Signal("QUANTUM_CIPHER", "BUY", 1.0, symbol, "1m", "2026-01-01T00:00:00Z", symbol)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "the hub keeps per topic, for ever, its last envelope (Hub._last), its keys "
        "(Hub._topics), its history ring (History._buffers, up to history_size "
        "envelopes) and the sequencer its seq (Sequencer._seq); signals are keyed by "
        "any symbol a producer names, so every distinct symbol ever signalled stays in "
        "memory (~1.4 KB each with one signal, ~136 MB for 100,000 symbols, measured) "
        "whether or not anyone subscribes. Only STOMP's topic parse cache was bounded "
        "(fronts/stomp.py MAX_CACHED_TOPICS)"
    ),
)
def test_the_hub_does_not_keep_every_signal_symbol_ever_published_for_ever() -> None:
    sequencer = Sequencer(DEFAULT_EPOCH, builtin())
    hub = Hub(history_size=256, sequencer=sequencer)
    distinct = MAX_CACHED_TOPICS + 4_096
    for n in range(distinct):
        hub.fan_out(sequencer.stamp([signal(f"S{n}")], NOW.wall), NOW.mono)
    held = {
        "Hub._last": len(hub._last),
        "Hub._topics": len(hub._topics),
        "History._buffers": len(hub.history._buffers),
        "Sequencer._seq": len(sequencer._seq),
    }
    # nobody subscribed: at most the bound the project chose for the same risk
    assert all(count <= MAX_CACHED_TOPICS for count in held.values()), held
