"""The SDK as a slow client, over a real server (docs/client.md, "When the server
degrades you"): a ``tickcast.client`` feed whose caller stops taking messages (so the
feed stops reading its socket) is degraded by the server; when the caller reads again
it gets each suspended stream's ``Degraded``, the replay (or the ``Reset``), and the
``Resumed`` with ``how`` saying which, and the SDK counts no gap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

import tickcast.client
from support.server import Server, start_server
from tickcast.client import Degraded, Reset, Resumed, Trade

ALL = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY", "BTC/USDT", "ETH/USDT"]
SUSPENDED = 'tickcast_degrade_transitions_total{to="suspended"}'


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module", params=["replay", "reset"])
def degrading(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """As tests/integration/test_degrade.py's: about 600 trades a second, a soft mark at
    500 messages, a short grace and hold, no eviction for a few seconds' stall; a history
    deep enough to replay a hole ("replay") or too shallow ("reset")."""
    srv = start_server(
        tmp_path_factory.mktemp("sdk-degrading"),
        rate=2000,
        batch_ms=20,
        outbox_max_items=1000,
        degrade_grace_s=0.2,
        degrade_hold_s=0.5,
        slow_client_timeout_s=60,
        history_size=20_000 if request.param == "replay" else 4,
    )
    yield srv, request.param
    srv.stop()


async def test_the_sdk_reports_degraded_and_resumed_and_no_gap(
    degrading: tuple[Server, str],
) -> None:
    srv, how = degrading
    suspended_before = srv.metric(SUSPENDED)
    # a small receive queue, and "block": when the caller stops taking, the feed stops
    # reading its socket, and the server sees a client that does not take its data
    async with tickcast.client.connect(srv.feed, max_queue=50, on_full="block") as feed:
        await feed.subscribe(ALL, channels=["quotes", "trades"])
        first = await anext(feed)
        assert first is not None
        # the caller stops taking messages until the server has suspended its streams
        suspended = await asyncio.to_thread(
            wait_for, lambda: srv.metric(SUSPENDED) > suspended_before, 60
        )
        assert suspended, "the SDK's stalled client was never degraded"

        # it reads again, as fast as it can, until every suspended stream is resumed and
        # some live trades follow
        notices: list[Degraded | Resumed | Reset] = []
        open_: dict[str, int] = {}
        trades_after = 0
        async with asyncio.timeout(60):
            async for message in feed:
                if isinstance(message, Degraded):
                    open_[message.topic] = open_.get(message.topic, 0) + 1
                    notices.append(message)
                elif isinstance(message, Resumed):
                    open_[message.topic] -= 1
                    notices.append(message)
                    trades_after = 0
                elif isinstance(message, Reset):
                    notices.append(message)
                elif isinstance(message, Trade):
                    trades_after += 1
                if open_ and not any(open_.values()) and trades_after > 200:
                    break

        assert feed.stats.reconnects == 0, feed.stats.last_close  # degraded, not closed
        assert feed.counters.gaps == 0
        assert not any(isinstance(n, Reset) and n.reason == "gap" for n in notices)
        assert feed.degraded == {}  # nothing left suspended
        degraded = [n for n in notices if isinstance(n, Degraded)]
        resumed = [n for n in notices if isinstance(n, Resumed)]
        assert degraded, "no Degraded reached the caller"
        assert len(resumed) == len(degraded)
        assert all(d.reason == "slow_consumer" and d.topic.startswith("trades.") for d in degraded)
        # the history decides how each hole was filled, and the SDK says which (with the
        # shallow history a quiet topic's short hole may still be replayed)
        hows = [r.how for r in resumed]
        counters = feed.counters
        assert counters.degraded == len(degraded)
        assert (counters.resumed_replay, counters.resumed_reset) == (
            hows.count("replay"),
            hows.count("reset"),
        )
        if how == "replay":
            assert set(hows) == {"replay"}
            assert counters.replayed == sum(r.replayed for r in resumed) > 0
        else:
            assert "reset" in hows
            resets = [n for n in notices if isinstance(n, Reset)]
            assert len(resets) == hows.count("reset")
            assert all(n.reason == "history_gap" for n in resets)
        # every topic's position is where its stream went on, past its resumed seq
        for r in resumed:
            position = feed.position(r.topic)
            assert position is not None
            assert position[1] >= r.seq
