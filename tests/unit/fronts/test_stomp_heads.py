"""Front 3's heads on a real ``StompSession`` and ``HeadedConnection``: what a second id
on a held destination gets (its current value, alone), and what an UNSUBSCRIBE leaves
queued (nothing of that id is written after it). Both were review defects; these tests
failed before the fixes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from support.clock import ManualClock
from tickcast.clock import Now
from tickcast.fronts.stomp import StompHeads, StompSpec
from tickcast.hub.outbox import Outbox
from tickcast.hub.pump import Pump, Pumps
from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote, Trade
from tickcast.model.signal import Signal
from tickcast.model.topic import Topic
from tickcast.observability.stats import Stats
from tickcast.protocols.stomp import codec
from tickcast.protocols.stomp.frames import FrameParser
from tickcast.protocols.stomp.session import WHOLE, StompSession
from tickcast.protocols.wire import Encoded
from tickcast.transport.connection import HeadedConnection, payload_size

TS = 1_700_000_000.0
NOW = Now(5_000.0, TS)
QUOTES = Topic("quotes", "AAPL")
TRADES = Topic("trades", "AAPL")


def session() -> StompSession:
    s = StompSession(resolve=codec.topic_of, now=NOW, max_subscriptions=10)
    s.receive_text("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00", NOW)
    s.frames_to_send()
    return s


def subscribe(s: StompSession, id_: str, topic: Topic, **more: str) -> None:
    extra = "".join(f"{k}:{v}\n" for k, v in more.items())
    s.receive_text(f"SUBSCRIBE\nid:{id_}\ndestination:/topic/{topic}\n{extra}\n\x00", NOW)


def quote(seq: int, bid: float = 1.0) -> Encoded:
    q = Quote("AAPL", bid, bid + 0.1, 1.0, 1.0, bid + 0.05, 100.0, TS, "t")
    return Encoded(codec.encode(Envelope(QUOTES, seq, TS, q, "e")), topic=str(QUOTES))


def trade(seq: int) -> Encoded:
    t = Trade("AAPL", 1.0, 5.0, TS, "t", f"t{seq}")
    return Encoded(codec.encode(Envelope(TRADES, seq, TS, t, "e")), topic=str(TRADES))


def ids(out: Sequence[tuple[Encoded, str]]) -> list[str]:
    return [tag for _, tag in out]


def test_a_second_id_gets_the_current_value_alone_then_live_updates_with_the_first() -> None:
    s = session()
    heads = StompHeads(StompSpec(allow_anonymous=True, login_timeout_s=10), s)
    subscribe(s, "sub-0", QUOTES)
    assert ids(heads(quote(1))) == ["sub-0"]  # its current value
    subscribe(s, "sub-1", QUOTES)
    assert s.commands_received()[-1].topics == (QUOTES,)  # type: ignore[union-attr]
    # the Dispatcher's snapshot: the same update again (a new item, same message-id)
    out = heads(quote(1))
    assert ids(out) == ["sub-1"]
    [(headed, _)] = out
    assert headed.message.startswith(b"MESSAGE\nsubscription:sub-1\n")
    assert ids(heads(quote(2, 1.5))) == ["sub-0", "sub-1"]


def test_a_second_id_without_a_current_value_is_live_with_the_first() -> None:
    s = session()
    heads = StompHeads(StompSpec(allow_anonymous=True, login_timeout_s=10), s)
    subscribe(s, "sub-0", TRADES)
    assert ids(heads(trade(1))) == ["sub-0"]
    subscribe(s, "sub-1", TRADES)  # trades have no current value: no snapshot comes
    assert ids(heads(trade(2))) == ["sub-0", "sub-1"]
    assert ids(heads(trade(3))) == ["sub-0", "sub-1"]


class Socket:
    raw = True
    writable = True

    def __init__(self) -> None:
        self.on_writable: Callable[[], None] | None = None
        self.written: list[bytes] = []

    def write_frames(self, data: bytes) -> bool:
        self.written.append(data)
        return self.writable

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        self.written.extend(payloads)

    def send_bytes(self, payload: bytes) -> None:
        self.written.append(payload)

    def peer_limited(self) -> bool | None:
        return True

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        pass


@pytest.fixture
async def pump() -> AsyncIterator[Pump]:
    pumps = Pumps(ManualClock())
    yield pumps.get(10.0)  # a window that never fires during a test
    pumps.close()


def frames_written(sock: Socket) -> list[tuple[str, dict[str, str]]]:
    parser = FrameParser()
    out = []
    for data in sock.written:
        # raw WebSocket frames of text: strip each frame's 2-byte header (short frames)
        pos = 0
        while pos < len(data):
            size = data[pos + 1] & 0x7F
            head = 2
            if size == 126:
                size = int.from_bytes(data[pos + 2 : pos + 4], "big")
                head = 4
            out += [
                (f.command, f.headers) for f in parser.feed(data[pos + head : pos + head + size])
            ]
            pos += head + size
    return out


@pytest.mark.parametrize("keep_one", [True, False])
async def test_nothing_of_an_unsubscribed_id_is_written_after_the_unsubscribe(
    pump: Pump, keep_one: bool
) -> None:
    s = session()
    spec = StompSpec(allow_anonymous=True, login_timeout_s=10)
    sock = Socket()
    connection = HeadedConnection(
        heads=StompHeads(spec, s),
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
    subscribe(s, "sub-0", QUOTES)
    subscribe(s, "sub-0t", TRADES)
    if keep_one:
        subscribe(s, "sub-1", QUOTES)
        subscribe(s, "sub-1t", TRADES)
    s.commands_received()
    # queued within the batching window: a conflated quote and a reliable trade per id
    connection.deliver(quote(1), str(QUOTES), 5_000.0)
    connection.deliver(trade(1), None, 5_000.0)
    assert not sock.written
    s.receive_text("UNSUBSCRIBE\nid:sub-0\nreceipt:r0\n\n\x00", NOW)
    s.receive_text("UNSUBSCRIBE\nid:sub-0t\nreceipt:r1\n\n\x00", NOW)
    connection.poke()  # the pass over the session's output, as after a client message
    written = frames_written(sock)
    subscriptions = [h.get("subscription") for c, h in written if c == "MESSAGE"]
    assert "sub-0" not in subscriptions
    assert "sub-0t" not in subscriptions
    assert subscriptions == (["sub-1", "sub-1t"] if keep_one else [])
    assert [h["receipt-id"] for c, h in written if c == "RECEIPT"] == ["r0", "r1"]


SIGNALS_AAPL = Topic("signals", "AAPL")


def whole_session() -> StompSession:
    def resolve(destination: str) -> Topic | None:
        if destination == codec.ALL_SIGNALS:
            return Topic("signals", WHOLE)
        return codec.topic_of(destination)

    s = StompSession(resolve=resolve, now=NOW, max_subscriptions=10)
    s.receive_text("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00", NOW)
    s.frames_to_send()
    return s


def signal(seq: int) -> Encoded:
    sig = Signal("RSI", "BUY", 1.0, "AAPL", "1m", "2026-01-01T00:00:00Z", f"s{seq}", "engine")
    envelope = Envelope(SIGNALS_AAPL, seq, TS, sig, "e")
    return Encoded(codec.encode(envelope), topic=str(SIGNALS_AAPL))


async def test_every_signal_reaches_each_channel_wide_id_and_none_after_its_unsubscribe(
    pump: Pump,
) -> None:
    s = whole_session()
    spec = StompSpec(allow_anonymous=True, login_timeout_s=10)
    heads = StompHeads(spec, s)
    sock = Socket()
    connection = HeadedConnection(
        heads=heads,
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
    s.receive_text("SUBSCRIBE\nid:all-0\ndestination:/topic/signals\n\n\x00", NOW)
    s.receive_text("SUBSCRIBE\nid:all-1\ndestination:/topic/signals\n\n\x00", NOW)
    s.commands_received()
    assert ids(heads(signal(1))) == ["all-0", "all-1"]
    # queued within the batching window, then one id goes: nothing of it is written
    connection.deliver(signal(2), None, 5_000.0)
    connection.deliver(signal(3), None, 5_000.0)
    s.receive_text("UNSUBSCRIBE\nid:all-0\n\n\x00", NOW)
    connection.poke()  # the pass over the session's output, as after a client message
    written = frames_written(sock)
    assert [(c, h["subscription"], h["seq"]) for c, h in written] == [
        ("MESSAGE", "all-1", "2"),
        ("MESSAGE", "all-1", "3"),
    ]


def test_the_planned_path_gives_what_the_heads_give_through_every_change() -> None:
    """``keyed`` (a plan per topic, rebuilt when the subscriptions change) and the heads
    (``__call__``, built per item) give the same MESSAGEs under the same keys, through a
    second id's current value, an acknowledging id, unsubscribes and a reliable topic."""
    planned, called = session(), session()
    spec = StompSpec(allow_anonymous=True, login_timeout_s=10)
    keyed = StompHeads(spec, planned).keyed
    heads = StompHeads(StompSpec(allow_anonymous=True, login_timeout_s=10), called)

    def both(step: Callable[[StompSession], None]) -> None:
        step(planned)
        step(called)

    def same(make: Callable[[], Encoded], key: str | None, tags: list[str]) -> None:
        got = [(h.head, h.payload, k) for h, k in keyed(make(), key)]
        want = [
            (h.head, h.payload, None if key is None else f"{key}\n{tag}")
            for h, tag in heads(make())
        ]
        assert got == want
        assert [k.rpartition("\n")[2] if k else None for *_, k in got] == (
            tags if key is not None else [None] * len(tags)
        )

    q = str(QUOTES)
    both(lambda s: subscribe(s, "sub-0", QUOTES))
    same(lambda: quote(1), q, ["sub-0"])
    same(lambda: quote(2, 1.5), q, ["sub-0"])
    both(lambda s: subscribe(s, "sub-1", QUOTES))
    same(lambda: quote(2, 1.5), q, ["sub-1"])  # the current value, to the fresh id alone
    same(lambda: quote(3, 2.0), q, ["sub-0", "sub-1"])
    both(lambda s: subscribe(s, "sub-2", QUOTES, ack="client"))
    same(lambda: quote(3, 2.0), q, ["sub-2"])
    same(lambda: quote(4, 2.5), q, ["sub-0", "sub-1", "sub-2"])  # an ack header of its own
    both(lambda s: s.receive_text("UNSUBSCRIBE\nid:sub-2\n\n\x00", NOW))
    same(lambda: quote(5, 3.0), q, ["sub-0", "sub-1"])
    both(lambda s: s.receive_text("UNSUBSCRIBE\nid:sub-0\n\n\x00", NOW))
    same(lambda: quote(6, 3.5), q, ["sub-1"])
    both(lambda s: subscribe(s, "t-0", TRADES))
    same(lambda: trade(1), None, ["t-0"])  # reliable: no key to join
    both(lambda s: s.receive_text("UNSUBSCRIBE\nid:sub-1\n\n\x00", NOW))
    same(lambda: quote(7, 4.0), q, [])


def test_connections_whose_ids_match_share_one_headed_item_per_update() -> None:
    spec = StompSpec(allow_anonymous=True, login_timeout_s=10)
    sessions = [session() for _ in range(3)]
    for s in sessions:
        subscribe(s, "sub-0", QUOTES)
    planned = [StompHeads(spec, s).keyed for s in sessions]
    item = quote(1)
    [(first, _)], *rest = [keyed(item, str(QUOTES)) for keyed in planned]
    assert all(headed is first for [(headed, _)] in rest)
    [(again, _)] = planned[0](quote(2, 1.5), str(QUOTES))
    assert again is not first
    assert again.head == first.head
