"""Front 3's ``max-rate`` SUBSCRIBE header: the session's parsing and refusals, the rates
the heads hand the connection (per subscription id, conflatable topics only), and a
real ``StompSession`` under a ``HeadedConnection`` with a manual clock: a rated id gets
at most its rate, always the latest value, while another id on the same destination
is not held back; trades are never held.

The gate's loop timer is armed for real; the test plays its firing (``_on_gate``) after
moving the clock, so that no test waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from support.clock import ManualClock
from tickcast.clock import Now
from tickcast.fronts.stomp import StompHeads, StompSpec
from tickcast.hub.outbox import Outbox
from tickcast.hub.pump import Pump, Pumps
from tickcast.model.channel import BUILTIN
from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote, Trade
from tickcast.model.topic import Topic
from tickcast.observability.stats import Stats
from tickcast.protocols.base import Subscribe
from tickcast.protocols.stomp import codec
from tickcast.protocols.stomp.frames import FrameParser
from tickcast.protocols.stomp.session import StompSession
from tickcast.protocols.wire import Encoded
from tickcast.transport.connection import HeadedConnection, payload_size

TS = 1_700_000_000.0
NOW = Now(5_000.0, TS)
QUOTES = Topic("quotes", "AAPL")
TRADES = Topic("trades", "AAPL")
REFUSED = "max-rate must be a number of messages per second from 0.001 to 1000"


def conflation_key(topic: Topic) -> str | None:
    """As the hub answers it, from the built-in registry."""
    return str(topic) if BUILTIN.get(topic.channel).conflate else None


def session(now: Now = NOW) -> StompSession:
    s = StompSession(resolve=codec.topic_of, now=now, max_subscriptions=10)
    s.receive_text("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00", now)
    s.frames_to_send()
    return s


def subscribe(s: StompSession, id_: str, topic: Topic, now: Now = NOW, **more: str) -> None:
    extra = "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in more.items())
    s.receive_text(f"SUBSCRIBE\nid:{id_}\ndestination:/topic/{topic}\n{extra}\n\x00", now)


def errors(s: StompSession) -> list[dict[str, str]]:
    frames = FrameParser().feed(b"".join(f.message for f in s.frames_to_send()))
    return [f.headers for f in frames if f.command == "ERROR"]


# -- the session


@pytest.mark.parametrize(("text", "rate"), [("4", 4.0), ("0.5", 0.5), (".5", 0.5), ("1000", 1e3)])
def test_max_rate_is_the_subscriptions_own_and_not_the_topics(text: str, rate: float) -> None:
    s = session()
    subscribe(s, "sub-0", QUOTES, max_rate=text)
    assert s.take_rates() == [(QUOTES, "sub-0", rate)]
    assert s.take_rates() == []  # taken once
    assert s.subscription("sub-0").max_rate == rate  # type: ignore[union-attr]
    # the Subscribe command carries no rate: it is per topic, the same for every id
    assert s.commands_received() == [Subscribe((QUOTES,), {})]


def test_without_max_rate_nothing_is_rated() -> None:
    s = session()
    subscribe(s, "sub-0", QUOTES)
    s.receive_text("UNSUBSCRIBE\nid:sub-0\n\n\x00", NOW)
    assert s.take_rates() == []


def test_a_rated_id_that_goes_lifts_its_rate_and_the_other_ids_keep_theirs() -> None:
    s = session()
    subscribe(s, "fast", QUOTES)
    subscribe(s, "slow", QUOTES, max_rate="2")
    subscribe(s, "slower", QUOTES, max_rate="0.5")
    assert s.take_rates() == [(QUOTES, "slow", 2.0), (QUOTES, "slower", 0.5)]
    s.receive_text("UNSUBSCRIBE\nid:slow\n\n\x00", NOW)
    s.receive_text("UNSUBSCRIBE\nid:fast\n\n\x00", NOW)
    assert s.take_rates() == [(QUOTES, "slow", None)]
    s.release((QUOTES,))  # the front took the topic back: its last rated id goes
    assert s.take_rates() == [(QUOTES, "slower", None)]


@pytest.mark.parametrize(
    "bad", ["0", "0.0", "-1", "1001", "1e3", "inf", "nan", " 4", "4 ", "", "x"]
)
def test_a_bad_max_rate_is_an_error_that_subscribes_nothing(bad: str) -> None:
    s = session()
    subscribe(s, "ok", TRADES)
    s.commands_received()
    subscribe(s, "bad", QUOTES, max_rate=bad, receipt="r1")
    [error] = errors(s)
    assert error["message"] == REFUSED
    assert error["receipt-id"] == "r1"
    assert s.close_reason == 1002  # STOMP: every ERROR ends the connection, as a bad ack
    assert s.subscription("bad") is None
    assert s.subscription("ok") is not None  # the refusal changed nothing else
    assert s.commands_received() == []
    assert s.take_rates() == []


# -- the heads: a rate per (conflation key, id), conflatable topics only


def test_the_heads_give_the_connection_conflatable_rates_per_id() -> None:
    s = session()
    heads = StompHeads(StompSpec(allow_anonymous=True, login_timeout_s=10), s, conflation_key)
    subscribe(s, "q", QUOTES, max_rate="2")
    subscribe(s, "t", TRADES, max_rate="2")  # reliable: accepted, holds nothing back
    assert heads.rates() == [("quotes.AAPL", "q", 2.0)]
    s.receive_text("UNSUBSCRIBE\nid:q\n\n\x00", NOW)
    assert heads.rates() == [("quotes.AAPL", "q", None)]
    assert heads.rates() == []
    # without the hub's conflation keys (a spec's ``heads`` in tests), no rates
    plain = StompHeads(StompSpec(allow_anonymous=True, login_timeout_s=10), s)
    subscribe(s, "q2", QUOTES, max_rate="2")
    assert plain.rates() == []


# -- under a HeadedConnection


class Socket:
    raw = True

    def __init__(self) -> None:
        self.writable = True
        self.on_writable: Callable[[], None] | None = None
        self.written: list[bytes] = []

    def write_frames(self, data: bytes) -> bool:
        self.written.append(data)
        return self.writable

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        raise AssertionError("a raw socket gets frames")

    def send_bytes(self, payload: bytes) -> None:
        raise AssertionError("a raw socket gets frames")

    def peer_limited(self) -> bool | None:
        return False

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        pass

    def messages(self) -> list[tuple[str, str]]:
        """(subscription, seq) of every MESSAGE written."""
        parser = FrameParser()
        out = []
        for data in self.written:
            pos = 0
            while pos < len(data):  # raw WebSocket text frames: strip each one's header
                size = data[pos + 1] & 0x7F
                head = 2
                if size == 126:
                    size = int.from_bytes(data[pos + 2 : pos + 4], "big")
                    head = 4
                for f in parser.feed(data[pos + head : pos + head + size]):
                    if f.command == "MESSAGE":
                        out.append((f.headers["subscription"], f.headers["seq"]))
                pos += head + size
        return out


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def pump(clock: ManualClock) -> AsyncIterator[Pump]:
    pumps = Pumps(clock)
    yield pumps.get(0.1)
    pumps.close()


def quote(seq: int) -> Encoded:
    q = Quote("AAPL", 1.0 + seq, 1.1 + seq, 1.0, 1.0, 1.05 + seq, 100.0, TS, "t")
    return Encoded(codec.encode(Envelope(QUOTES, seq, TS, q, "e")), topic=str(QUOTES))


def trade(seq: int) -> Encoded:
    t = Trade("AAPL", 1.0, 5.0, TS, "t", f"t{seq}")
    return Encoded(codec.encode(Envelope(TRADES, seq, TS, t, "e")), topic=str(TRADES))


async def test_a_rated_id_gets_its_rate_of_the_latest_beside_an_unrated_one(
    pump: Pump, clock: ManualClock
) -> None:
    s = session(clock.now())
    sock = Socket()
    connection = HeadedConnection(
        heads=StompHeads(StompSpec(allow_anonymous=True, login_timeout_s=10), s, conflation_key),
        sock=sock,
        session=s,
        wire=codec.WIRE,
        array=False,
        outbox=Outbox(pump.window_s, 1000, 0, size=payload_size),
        pump=pump,
        stats=Stats(),
        on_commands=lambda _c, _cmds: None,
        on_close=lambda _c: None,
    )
    subscribe(s, "free", QUOTES, clock.now())
    subscribe(s, "slow", QUOTES, clock.now(), max_rate="2")
    subscribe(s, "trades", TRADES, clock.now(), max_rate="2")
    connection.poke()  # the pass over the session's output: the rates are set here
    assert connection.outbox.rated("quotes.AAPL\nslow")
    assert not connection.outbox.rated("quotes.AAPL\nfree")
    assert not connection.outbox.rated("trades.AAPL\ntrades")
    seq = 0
    for _ in range(10):  # a second of quotes and trades, 10 batches of 100 ms
        for _ in range(5):
            seq += 1
            connection.deliver(quote(seq), str(QUOTES), clock.monotonic())
            connection.deliver(trade(seq), None, clock.monotonic())
        clock.advance(0.1)
        connection.flush(clock.monotonic(), force=False)
        if connection._gate_timer is not None and clock.monotonic() >= connection._gate_at:
            connection._on_gate()
    clock.advance(0.5)  # the stream stopped: what is held goes out when due
    connection._on_gate()
    written = sock.messages()
    by_id = {i: [int(q) for sub, q in written if sub == i] for i in ("free", "slow", "trades")}
    assert len(by_id["free"]) == 10  # every batch's latest
    assert by_id["trades"] == list(range(1, 51))  # every trade, though rated
    slow = by_id["slow"]
    assert 2 <= len(slow) <= 3  # at most 2 a second over 1.5 s, the first at once
    assert slow[-1] == 50  # and the last one the latest value
    assert slow == sorted(slow)
    # the rated id going lifts its rate; the other id is untouched
    s.receive_text("UNSUBSCRIBE\nid:slow\n\n\x00", clock.now())
    connection.poke()
    assert not connection.outbox.rated("quotes.AAPL\nslow")
    connection.finished()
