"""The provider conformance suite: what every provider promises the supervisor
(``providers/base.py``), run against each of them.

A case runs against every provider that has the capability it needs (``Subject``'s
flags): Alpaca and Polygon against their emulators (in-process, on a free port, real
sockets), the simulator, and a replay of a recording written by the test. What only one
vendor does (its wire, its error codes, its feeds) stays in
``tests/integration/test_<vendor>_adapter.py``.

Nothing sleeps blindly and nothing asserts how long something took: every wait is for a
condition, with a deadline (``RecordingSink.until``); a silent upstream is proved silent
by the timestamps of what reached the sink, not by a window without data.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from support.emulator import released
from support.sink import WAIT_S, RecordingSink, running, subscribed
from tickcast.emulators import alpaca as alpaca_emulator
from tickcast.emulators import polygon as polygon_emulator
from tickcast.emulators.base import EmulatorServer, Fault
from tickcast.errors import UpstreamAuthError, UpstreamError, UpstreamLimitError
from tickcast.model.market import Quote, Trade
from tickcast.providers import registry
from tickcast.providers.alpaca.stream import AlpacaProvider
from tickcast.providers.base import Provider
from tickcast.providers.calendar import AlwaysOpen
from tickcast.providers.polygon.stream import PolygonProvider
from tickcast.providers.replay.format import encode_event, encode_header
from tickcast.providers.replay.stream import ReplayProvider
from tickcast.providers.simulator.market import MarketSimulator, SimulatorConfig
from tickcast.providers.simulator.stream import SimulatorProvider

KEY, SECRET = "emulator-key", "emulator-secret"
SYMBOLS = ("AAPL", "MSFT")
#: The recording's start; a replay moves its timestamps to the time it plays.
RECORDED_AT = 1_767_225_600.0
#: The recording's malformed line (a quote whose bid is not a number).
BAD_LINE = b'{"recv": 1767225605.0, "type": "quote", "data": {"symbol": "AAPL", "bid": "x"}}\n'
HANDSHAKE = ("connecting", "connected", "authenticated", "subscribed")

DeadLetterCheck = Callable[[str | bytes, str], None]


@dataclass(frozen=True)
class Vendor:
    """A vendor provider's emulated upstream, and how each failure reads in its errors."""

    build_server: Callable[..., EmulatorServer]
    server_options: dict[str, Any]
    #: The provider on the stream at ``url`` (scheme, host and port): options override.
    make: Callable[..., Provider]
    #: Provider options with credentials the upstream refuses.
    wrong_credentials: dict[str, str]
    auth_error: str
    limit_error: str
    #: False when the upstream refuses a second connection only after authenticating it.
    limit_before_auth: bool
    drop_error: str
    slow_error: str
    no_connected_error: str
    no_upgrade_error: str
    nothing_listening_error: str


@dataclass(frozen=True)
class Subject:
    """One provider under test, and what it can do (the capability flags).

    Attributes:
        name: the parameter id.
        source: the ``source`` of its events.
        symbols: what ``provider.symbols`` must be (Alpaca's stock feed drops BTC/USD).
        handshake: the states a run reports, in order, until it streams.
        snapshot: ``snapshot()`` holds the latest quote per symbol.
        dead_letter: when a malformed upstream message can be made (a fault, a bad line
            in the recording), the check of its dead letter (raw message, error); None
            when it cannot.
        endless: ``run`` streams until cancelled (a replay without ``loop`` ends).
        vendor: a network upstream with credentials, limits and faults; None for none.
        check_quote: a provider-specific check of each quote (its sizes).
    """

    name: str
    source: str
    symbols: frozenset[str]
    handshake: tuple[str, ...]
    snapshot: bool
    dead_letter: DeadLetterCheck | None
    endless: bool = True
    vendor: Vendor | None = None
    check_quote: Callable[[Quote], None] = field(default=lambda quote: None)


def _alpaca_dead_letter(raw: str | bytes, error: str) -> None:
    assert "not-a-price" in str(raw)
    assert "Expected `float`" in error


def _polygon_dead_letter(raw: str | bytes, error: str) -> None:
    assert error == "T: Object missing required field `p`"
    assert json.loads(raw)["i"] == "malformed"


def _replay_dead_letter(raw: str | bytes, error: str) -> None:
    assert raw == BAD_LINE
    assert "Expected `float`" in error


def _alpaca_quote(quote: Quote) -> None:
    assert quote.bid_size % 100 == 0  # round lots -> shares
    assert quote.ask_size % 100 == 0


def _polygon_quote(quote: Quote) -> None:
    assert quote.bid_size in range(100, 2001, 100)  # 1 to 20 round lots, in shares


def _alpaca(url: str, **options: Any) -> AlpacaProvider:
    args = {"key_id": KEY, "secret": SECRET, "symbols": [*SYMBOLS, "BTC/USD"]} | options
    return AlpacaProvider(f"{url}/v2/iex", **args)


def _polygon(url: str, **options: Any) -> PolygonProvider:
    args = {"api_key": KEY, "symbols": SYMBOLS} | options
    return PolygonProvider(f"{url}/stocks", **args)


ALPACA = Subject(
    "alpaca",
    "alpaca",
    frozenset(SYMBOLS),
    HANDSHAKE,
    snapshot=True,
    dead_letter=_alpaca_dead_letter,
    check_quote=_alpaca_quote,
    vendor=Vendor(
        alpaca_emulator.build_server,
        {"rate": 1000, "auth_timeout_s": 0.5},
        _alpaca,
        wrong_credentials={"secret": "wrong"},
        auth_error="402",
        limit_error=r"406.*another connection",
        limit_before_auth=False,
        drop_error="connection lost",
        slow_error=r"407 \(slow client\)",
        no_connected_error="no reply to connected",
        no_upgrade_error=r"no connection .* in time",
        nothing_listening_error="failed",
    ),
)
POLYGON = Subject(
    "polygon",
    "polygon",
    frozenset(SYMBOLS),
    HANDSHAKE,
    snapshot=True,
    dead_letter=_polygon_dead_letter,
    check_quote=_polygon_quote,
    vendor=Vendor(
        polygon_emulator.build_server,
        {"rate": 400},
        _polygon,
        wrong_credentials={"api_key": "wrong"},
        auth_error="authentication failed",
        limit_error="connection limit",
        limit_before_auth=True,
        drop_error="closed",
        slow_error="slow_consumer",
        no_connected_error=r"no connected status within 0\.2 s",
        no_upgrade_error=r"no connection .* in time",
        nothing_listening_error="cannot connect",
    ),
)
SIMULATOR = Subject(
    "simulator", "simulator", frozenset(SYMBOLS), (), snapshot=True, dead_letter=None
)
REPLAY = Subject(
    "replay",
    "simulator",  # a replay's events keep the source they were recorded from
    frozenset(SYMBOLS),
    ("connecting", "subscribed"),
    snapshot=False,
    dead_letter=_replay_dead_letter,
    endless=False,
)
SUBJECTS = (ALPACA, POLYGON, SIMULATOR, REPLAY)


def having(flag: Callable[[Subject], object]) -> list[Any]:
    """The subjects with a capability, as parameters of the ``upstream`` fixture."""
    return [pytest.param(s, id=s.name) for s in SUBJECTS if flag(s)]


EVERY = having(lambda s: True)
VENDORS = having(lambda s: s.vendor is not None)


def write_recording(path: Path) -> None:
    """Ten simulated seconds of AAPL and MSFT, with one malformed line in the middle."""
    config = SimulatorConfig(symbols=SYMBOLS, rate=400.0, source="simulator")
    events = MarketSimulator(config, AlwaysOpen(), RECORDED_AT).advance(RECORDED_AT + 10)
    lines = [line for e in events if (line := encode_event(e, e.ts)) is not None]
    middle = len(lines) // 2
    lines.insert(middle, BAD_LINE)
    path.write_bytes(encode_header("simulator", frozenset(SYMBOLS), RECORDED_AT) + b"".join(lines))


@dataclass
class Upstream:
    """A subject with its upstream (the emulator, running; the recording, written): makes
    the providers under test."""

    subject: Subject
    emulator: EmulatorServer | None
    recording: Path

    @property
    def vendor(self) -> Vendor:
        assert self.subject.vendor is not None
        return self.subject.vendor

    @property
    def server(self) -> EmulatorServer:
        assert self.emulator is not None
        return self.emulator

    def provider(self, **options: Any) -> Provider:
        if self.subject.vendor is not None:
            return self.subject.vendor.make(self.server.url, **options)
        if self.subject is SIMULATOR:
            return SimulatorProvider(SimulatorConfig(symbols=SYMBOLS, rate=400.0))
        return ReplayProvider(self.recording, speed=0)

    async def started(self, sink: RecordingSink) -> None:
        """Until the run streams: it reported "subscribed", or (no handshake) an event came."""
        if self.subject.handshake:
            await subscribed(sink)
        else:
            await sink.until(lambda: bool(sink.events))


@pytest.fixture(params=EVERY)
async def upstream(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Upstream]:
    subject: Subject = request.param
    recording = tmp_path / "recording.jsonl"
    if subject is REPLAY:
        write_recording(recording)
    if subject.vendor is None:
        yield Upstream(subject, None, recording)
        return
    async with subject.vendor.build_server(**subject.vendor.server_options) as server:
        yield Upstream(subject, server, recording)


# -- every provider


@pytest.mark.parametrize("upstream", EVERY, indirect=True)
async def test_streams_normalized_events_with_price_and_volume_filled(
    upstream: Upstream,
) -> None:
    subject, provider, sink = upstream.subject, upstream.provider(), RecordingSink()
    assert provider.symbols == subject.symbols
    async with running(provider, sink):
        await upstream.started(sink)
        assert sink.states == list(subject.handshake)

        def quoted_after_a_trade() -> bool:
            traded, done = set(), set()
            for event in sink.events:
                if type(event) is Trade:
                    traded.add(event.symbol)
                elif type(event) is Quote and event.symbol in traded:
                    done.add(event.symbol)
            return done == subject.symbols

        await sink.until(quoted_after_a_trade)
        await sink.more_events(50)
    assert {e.symbol for e in sink.events} == subject.symbols  # only what was subscribed
    assert {e.source for e in sink.events} == {subject.source}
    assert sink.dead_letters == []
    last_price: dict[str, float] = {}
    volume: dict[str, float] = {}
    for event in sink.events:
        if type(event) is Trade:
            assert event.trade_id.isdigit()
            last_price[event.symbol] = event.price
            volume[event.symbol] = volume.get(event.symbol, 0.0) + event.size
        elif type(event) is Quote:
            assert 0 < event.bid < event.ask
            subject.check_quote(event)
            assert event.ts == pytest.approx(time.time(), abs=30)
            if event.symbol in last_price:  # filled by the stream from the trades
                assert event.price == last_price[event.symbol]
                assert event.volume == volume[event.symbol]
            else:
                assert event.price == (event.bid + event.ask) / 2
                assert event.volume == 0.0


@pytest.mark.parametrize("upstream", having(lambda s: s.snapshot), indirect=True)
async def test_snapshot_holds_the_latest_filled_quote_per_symbol(upstream: Upstream) -> None:
    provider, sink = upstream.provider(), RecordingSink()
    async with running(provider, sink):
        await sink.until(lambda: {q.symbol for q in sink.of(Quote)} == upstream.subject.symbols)
        latest = {q.symbol: q for q in sink.of(Quote)}
        assert {q.symbol: q for q in provider.snapshot() if type(q) is Quote} == latest
        assert {e.symbol for e in provider.snapshot()} == upstream.subject.symbols


@pytest.mark.parametrize("upstream", EVERY, indirect=True)
async def test_run_is_cancellable_and_keeps_no_state(upstream: Upstream) -> None:
    """A cancelled run ends at once, lets go of the upstream, and the next run of the same
    provider starts from scratch: the whole handshake and every symbol subscribed again."""
    subject, provider = upstream.subject, upstream.provider()
    first = RecordingSink()
    task = asyncio.create_task(provider.run(first))
    await upstream.started(first)
    await first.more_events(11)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT_S)
    assert task.cancelled()
    if upstream.emulator is not None:
        await released(upstream.emulator)  # the emulator saw the connection close
    second = RecordingSink()
    async with running(provider, second) as again:
        await upstream.started(second)
        assert second.states == list(subject.handshake)
        await second.until(lambda: {e.symbol for e in second.events} == subject.symbols)
        if subject.endless:
            assert not again.done()
    if upstream.emulator is not None:
        assert upstream.emulator.connections_total == 2


@pytest.mark.parametrize("upstream", having(lambda s: s.dead_letter is not None), indirect=True)
async def test_malformed_message_is_a_dead_letter_and_the_stream_goes_on(
    upstream: Upstream,
) -> None:
    sink = RecordingSink()
    async with running(upstream.provider(), sink) as task:
        await upstream.started(sink)
        if upstream.emulator is not None:
            await sink.more_events()
            upstream.emulator.inject(Fault.MALFORMED)
        await sink.until(lambda: len(sink.dead_letters) == 1)
        ((raw, error, _),) = sink.dead_letters
        assert upstream.subject.dead_letter is not None
        upstream.subject.dead_letter(raw, error)
        await sink.more_events(20)
        assert len(sink.dead_letters) == 1  # one per injection
        if upstream.subject.endless:
            assert not task.done()
        else:
            assert await asyncio.wait_for(task, WAIT_S) is None  # the end, not a failure


# -- providers with a network upstream


@pytest.mark.parametrize("upstream", VENDORS, indirect=True)
async def test_wrong_credentials_are_an_auth_error(upstream: Upstream) -> None:
    vendor, sink = upstream.vendor, RecordingSink()
    with pytest.raises(UpstreamAuthError, match=vendor.auth_error):
        await asyncio.wait_for(upstream.provider(**vendor.wrong_credentials).run(sink), WAIT_S)
    assert sink.states == ["connecting", "connected"]


@pytest.mark.parametrize("upstream", VENDORS, indirect=True)
async def test_second_connection_with_the_key_is_a_limit_error_and_the_first_streams_on(
    upstream: Upstream,
) -> None:
    first = RecordingSink()
    async with running(upstream.provider(), first) as task:
        await subscribed(first)
        second = RecordingSink()
        with pytest.raises(UpstreamLimitError, match=upstream.vendor.limit_error):
            await asyncio.wait_for(upstream.provider().run(second), WAIT_S)
        if upstream.vendor.limit_before_auth:
            assert "authenticated" not in second.states
        assert "subscribed" not in second.states
        await first.more_events(20)
        assert not task.done()


@pytest.mark.parametrize("upstream", VENDORS, indirect=True)
async def test_drop_ends_the_run_and_the_next_run_subscribes_everything_again(
    upstream: Upstream,
) -> None:
    provider, sink, emulator = upstream.provider(), RecordingSink(), upstream.server
    task = asyncio.create_task(provider.run(sink))
    await subscribed(sink)
    await sink.more_events()
    emulator.inject(Fault.DROP)
    with pytest.raises(UpstreamError, match=upstream.vendor.drop_error) as raised:
        await asyncio.wait_for(task, WAIT_S)
    assert type(raised.value) is UpstreamError
    await released(emulator)
    async with running(provider, sink):
        await subscribed(sink, times=2)
        since = len(sink.events)
        await sink.until(lambda: {e.symbol for e in sink.events[since:]} == set(SYMBOLS))
        await sink.more_events(11)
    assert emulator.connections_total == 2


@pytest.mark.parametrize("upstream", VENDORS, indirect=True)
async def test_silent_upstream_sends_nothing_but_keeps_the_connection_open(
    upstream: Upstream,
) -> None:
    """Silence is proved by the timestamps: no event the market made while the upstream
    was silent reaches the sink before it resumes. The wait is for the market to have
    made many batches (each a tick of the emulator's clock), not for a time."""
    sink, emulator = RecordingSink(), upstream.server
    async with running(upstream.provider(), sink) as task:
        await subscribed(sink)
        await sink.until(lambda: len(sink.events) > 10)
        with emulator.market.feed() as made:
            silent_from = time.time()
            emulator.inject(Fault.SILENT)  # until resumed
            trades: set[str] = set()
            batches = 0
            async with asyncio.timeout(WAIT_S * 2):
                while batches < 50 or not trades >= set(SYMBOLS):
                    batch = await made.get()
                    batches += 1
                    trades |= {e.symbol for e in batch if type(e) is Trade}
        assert not task.done()
        count = len(sink.events)
        made_while_silent = [e for e in sink.events if e.ts > silent_from + 0.001]
        assert made_while_silent == []  # + 1 ms: a vendor may round a stamp up to the ms
        emulator.inject(Fault.RESUME)
        await sink.until(lambda: len(sink.events) > count + 10)
        assert not task.done()
        assert any(e.ts > silent_from for e in sink.events[count:])  # the stamps are live
    assert sink.states.count("connecting") == 1
    assert emulator.connections_total == 1


@pytest.mark.parametrize("upstream", VENDORS, indirect=True)
async def test_slow_consumer_error_ends_the_run(upstream: Upstream) -> None:
    sink = RecordingSink()
    async with running(upstream.provider(), sink) as task:
        await subscribed(sink)
        upstream.server.inject(Fault.SLOW)
        with pytest.raises(UpstreamError, match=upstream.vendor.slow_error):
            await asyncio.wait_for(task, WAIT_S)


@pytest.mark.parametrize("upstream", VENDORS, indirect=True)
async def test_upstream_that_never_says_connected_times_out(upstream: Upstream) -> None:
    async def mute(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(mute, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        provider = upstream.vendor.make(f"ws://127.0.0.1:{port}", handshake_timeout_s=0.2)
        with pytest.raises(UpstreamError, match=upstream.vendor.no_connected_error):
            await asyncio.wait_for(provider.run(RecordingSink()), WAIT_S)


@pytest.mark.parametrize("upstream", VENDORS, indirect=True)
async def test_upstream_that_never_answers_the_upgrade_times_out(upstream: Upstream) -> None:
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda _, writer: accepted.append(writer), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        provider = upstream.vendor.make(f"ws://127.0.0.1:{port}", handshake_timeout_s=0.2)
        with pytest.raises(UpstreamError, match=upstream.vendor.no_upgrade_error):
            await asyncio.wait_for(provider.run(RecordingSink()), WAIT_S)
        for writer in accepted:
            writer.close()
            await writer.wait_closed()


@pytest.mark.parametrize("upstream", VENDORS, indirect=True)
async def test_nothing_listening_is_an_upstream_error(upstream: Upstream) -> None:
    url = upstream.server.url
    await upstream.server.aclose()
    with pytest.raises(UpstreamError, match=upstream.vendor.nothing_listening_error):
        await asyncio.wait_for(upstream.vendor.make(url).run(RecordingSink()), WAIT_S)


def test_every_registered_provider_is_a_subject() -> None:
    """A provider added to the registry joins this suite."""
    assert set(registry.names()) == {s.name for s in SUBJECTS}
