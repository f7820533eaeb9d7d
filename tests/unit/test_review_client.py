"""Review of the Python SDK (issue 14): defects in its decisions, reproduced without a
server (the close-code and HTTP advice, the stream positions, the synchronous wrapper's
set-up).

Each test states what docs/client.md promises and fails today; it is marked
``xfail(strict=True)`` with the defect in one line.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from tickcast.client import Feed, FeedRefused, Trade, connect_sync
from tickcast.client.feed import _retry, refusal_of
from tickcast.client.streams import Streams
from tickcast.protocols.native.client import Reset, Update
from tickcast.retry import Backoff

EPOCH = "e1"


def _trade_update(seq: int, symbol: str = "AAPL") -> Update:
    t = Trade(symbol, 100.0 + seq, 1.0, 1_700_000_000.0 + seq, "sim", f"t{seq}")
    return Update(t, f"trades.{symbol}", seq, EPOCH)


# -- close codes and handshake refusals


@pytest.mark.xfail(
    strict=True,
    reason="_retry() retries an unknown code in 3500-3999 though that range is terminal "
    "by the convention closecodes.py documents (feed.py:122-123)",
)
@pytest.mark.parametrize("code", [3507, 3599, 3999])
def test_an_unknown_code_in_the_terminal_range_is_not_retried(code: int) -> None:
    assert _retry(code) is False


@pytest.mark.xfail(
    strict=True,
    reason="an HTTP refusal whose JSON names an unknown 35xx close code without "
    "'reconnect' is retried (feed.py:110 via _retry)",
)
def test_a_handshake_refusal_naming_an_unknown_terminal_code_is_not_retried() -> None:
    body = b'{"error": "account suspended", "close_code": 3510}'
    assert refusal_of(403, body)[2] is False


@pytest.mark.xfail(
    strict=True,
    reason="only HTTP 400/401/403/404 stop the client (feed.py:54): 405, 407, 410, 426 "
    "at the handshake are retried forever",
)
@pytest.mark.parametrize("status", [405, 407, 410, 426])
def test_a_handshake_refusal_no_retry_can_fix_is_terminal(status: int) -> None:
    assert refusal_of(status, b"")[2] is False


@pytest.mark.xfail(
    strict=True,
    reason="an invalid URL (http:// scheme, no host) raises InvalidURI, which the feed "
    "retries as a network failure (feed.py:346) until max_attempts, forever by default",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="Streams.accept takes updates of a topic no longer wanted (streams.py:150-175): "
    "one in flight after unsubscribe is delivered and re-creates its position, so "
    "subscribing again later yields a spurious Reset(gap)",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="connect_sync() with an option Feed refuses (ValueError) leaks its event-loop "
    "thread: the Feed is built before the try that closes it (sync.py:43-48)",
)
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
