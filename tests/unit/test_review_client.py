"""Review of the Python SDK (issue 14): defects in its decisions, reproduced without a
server (the close-code and HTTP advice, the stream positions, the synchronous wrapper's
set-up).

Each test states what docs/client.md promises; each failed before its fix (the defect
it guards against is in its name and comments).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from tickcast.client import Feed, FeedRefused, Trade, connect_sync
from tickcast.client.feed import _retry, refusal_of
from tickcast.client.streams import Streams, normalize
from tickcast.protocols.native.client import Reset, Update
from tickcast.retry import Backoff

EPOCH = "e1"


def _trade_update(seq: int, symbol: str = "AAPL") -> Update:
    t = Trade(symbol, 100.0 + seq, 1.0, 1_700_000_000.0 + seq, "sim", f"t{seq}")
    return Update(t, f"trades.{symbol}", seq, EPOCH)


# -- close codes and handshake refusals


@pytest.mark.parametrize("code", [3507, 3599, 3999])
def test_an_unknown_code_in_the_terminal_range_is_not_retried(code: int) -> None:
    assert _retry(code) is False


def test_a_handshake_refusal_naming_an_unknown_terminal_code_is_not_retried() -> None:
    body = b'{"error": "account suspended", "close_code": 3510}'
    assert refusal_of(403, body)[2] is False


@pytest.mark.parametrize("status", [405, 407, 410, 426])
def test_a_handshake_refusal_no_retry_can_fix_is_terminal(status: int) -> None:
    assert refusal_of(status, b"")[2] is False


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/ws/market/feed", "wss:/no-host"])
async def test_an_invalid_url_fails_at_once(url: str) -> None:
    async def connect() -> None:
        feed = Feed(url, max_attempts=3, backoff=Backoff(base_s=0.01, cap_s=0.01))
        try:
            await feed.start()
        finally:
            await feed.close()

    with pytest.raises((ValueError, FeedRefused)):  # at once, not FeedGaveUp
        await asyncio.wait_for(connect(), 20)


# -- positions


def test_an_update_in_flight_after_unsubscribe_leaves_no_position() -> None:
    streams = Streams()
    streams.add(["trades.AAPL"])
    assert [u.seq for u in streams.accept(_trade_update(5))] == [5]  # type: ignore[union-attr]
    streams.remove(["trades.AAPL"])  # unsubscribe(): the request is on its way
    in_flight = streams.accept(_trade_update(6))  # sent before the server read it
    streams.add(["trades.AAPL"])  # subscribed again later: live from seq 40
    later = streams.accept(_trade_update(40))
    assert not any(isinstance(m, Reset) for m in later), (in_flight, later)


# -- the synchronous wrapper


def _feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tickcast-feed"]


def test_connect_sync_with_a_bad_option_leaves_no_thread() -> None:
    before = set(_feed_threads())
    with pytest.raises(ValueError, match="on_full"):
        connect_sync("ws://127.0.0.1:1/ws/market/feed", on_full="drop")
    leaked = [t for t in _feed_threads() if t not in before]
    for thread in leaked:  # stop what leaked, so no other test inherits it
        loop = thread._target.__self__  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    assert leaked == []


# -- after the review: requests the server would refuse are refused at once


def test_a_symbol_no_channel_of_the_request_carries_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="status channel has one symbol"):
        normalize(["AAPL"], ["status"])
    with pytest.raises(ValueError, match="status channel has one symbol"):
        normalize(["AAPL", "FEED"], ["quotes"])
    assert normalize(["FEED", "AAPL"], ["status", "quotes"]) == ["status.FEED", "quotes.AAPL"]


async def test_unsubscribe_with_no_channel_is_refused_rather_than_every_channel() -> None:
    feed = Feed("ws://127.0.0.1:1/ws/market/feed")  # never started: nothing is sent
    feed.streams.add(["trades.AAPL", "quotes.AAPL"])
    with pytest.raises(ValueError, match="at least one channel"):
        await feed.unsubscribe(["AAPL"], channels=[])
    with pytest.raises(ValueError, match="unknown channel"):
        await feed.unsubscribe(["AAPL"], channels=["trade"])
    assert list(feed.streams.wanted) == ["trades.AAPL", "quotes.AAPL"]
    await feed.unsubscribe(["AAPL"], channels=["trades"])
    assert list(feed.streams.wanted) == ["quotes.AAPL"]


def test_a_quiet_topic_takes_its_position_from_the_acknowledgement() -> None:
    streams = Streams()
    streams.add(["trades.AAPL", "trades.MSFT"])
    streams.accept(_trade_update(5))
    streams.acknowledged({"trades.AAPL": (EPOCH, 9), "trades.MSFT": (EPOCH, 7)})
    assert streams.positions == {"trades.AAPL": (EPOCH, 5), "trades.MSFT": (EPOCH, 7)}
    # nothing came on MSFT: a reconnect resumes it from where it started
    assert streams.resubscribe() == [
        (["AAPL", "MSFT"], ["trades"], {"trades.AAPL": (EPOCH, 5), "trades.MSFT": (EPOCH, 7)})
    ]
    # the first message after it is taken as it comes (a snapshot at that very seq)
    assert [u.seq for u in streams.accept(_trade_update(7, "MSFT"))] == [7]  # type: ignore[union-attr]


def test_a_topic_refused_on_resubscription_is_dropped_and_announced() -> None:
    streams = Streams()
    streams.add(["trades.AAPL", "trades.MSFT"])
    streams.accept(_trade_update(5, "MSFT"))
    assert streams.refused("trades.MSFT") == Reset("trades.MSFT", 0, 5, "refused", None)
    assert list(streams.wanted) == ["trades.AAPL"]
    assert streams.accept(_trade_update(6, "MSFT")) == []


def test_a_quiet_topic_resumed_after_a_reconnect_reports_a_replay_that_skips() -> None:
    # nothing came on MSFT before the reconnect: it resumes from its acknowledged start,
    # so a message at that seq (a snapshot) or the next is taken, one past that is a gap
    streams = Streams()
    streams.add(["trades.MSFT"])
    streams.acknowledged({"trades.MSFT": (EPOCH, 7)})
    streams.resubscribe()
    out = streams.accept(_trade_update(10, "MSFT"))
    assert out[0] == Reset("trades.MSFT", 10, 7, "gap", EPOCH)
    assert streams.counters.gaps == 1
    # and the next is checked as usual
    assert [u.seq for u in streams.accept(_trade_update(11, "MSFT"))] == [11]  # type: ignore[union-attr]
