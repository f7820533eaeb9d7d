"""Encoding cost per update, every wire format's codec, per quote and per trade.

Side by side in one process and one run, on the same updates, so the ratios hold on a
noisy machine even when the absolute figures move. Each wire's codec is the one its
front registers (``fronts/*``' ``codecs``): the market feed (plain, ``seq``, and their
``stamps`` variants), STOMP's shared MESSAGE payload, Socket.IO's event, and the
realtime envelope; then the three wires that carry Front 1's body (market, STOMP,
Socket.IO) on one update, as the hub encodes it when all three are in use on a topic.
The realtime envelope carries no quote or trade: its per-tick message is the
``asset_update`` a quote or a trade moves, measured in both columns.

The alternatives (stdlib ``json`` with compact separators, ``orjson``) encode Front 1's
shape from a dict, the timestamp formatted with the same formatter as the codecs
(``iso_ms``), so the figures compare the encoders and not two ways of printing a time.

Updates: ``--count`` quotes and as many trades of one symbol, prices on a cent grid,
``--per-ms`` updates per millisecond (the simulator at 20,000 ticks/s over 100 symbols
stamps 20 per millisecond; 10 by default). ``--breakdown`` times the pieces of the
market feed's quote (the timestamp, the volume's int, the struct, msgspec's encode, the
floats' share of it). Run: PYTHONPATH=src .venv/bin/python bench/encode.py
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from collections.abc import Callable, Sequence

import msgspec
import orjson

from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote, Trade
from tickcast.model.portfolio import AssetUpdate
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.envelope import codec as realtime
from tickcast.protocols.native import codec as native
from tickcast.protocols.native import stamps as native_stamps
from tickcast.protocols.native.timefmt import iso_ms
from tickcast.protocols.socketio import codec as socketio
from tickcast.protocols.stomp import codec as stomp
from tickcast.protocols.wire import Codec

REPEAT = 7
NUMBER = 20
#: As a process stamps it (the ``seq`` variants print it; the plain one never does).
EPOCH = "18bcfe5682a1b2c3"


def updates(count: int, per_ms: int) -> tuple[list[Envelope], list[Envelope], list[Envelope]]:
    """Quotes, trades and the asset updates they move, as the hub holds them."""
    start = round(time.time())
    server_ts = start + 0.5
    quotes, trades, assets = [], [], []
    for i in range(count):
        ts = start + i / (1000 * per_ms)
        price = (15025 + i % 500) / 100
        quote = Quote(
            "AAPL", price - 0.05, price + 0.05, 100.0, 200.0, price, 1000.0 + i, ts, "simulator"
        )
        trade = Trade("AAPL", price, 100.0 + i % 7, ts, "simulator", str(10_000 + i))
        asset = AssetUpdate(
            "AAPL", price, round(price - 148.5, 6), round((price - 148.5) / 148.5 * 100, 4),
            1000.0 + i, 156.0, 148.0, ts, "simulator",
        )  # fmt: skip
        quotes.append(Envelope(Topic(Channel.QUOTES, "AAPL"), i + 1, server_ts, quote, EPOCH))
        trades.append(Envelope(Topic(Channel.TRADES, "AAPL"), i + 1, server_ts, trade, EPOCH))
        assets.append(Envelope(Topic(Channel.ASSETS, "AAPL"), i + 1, server_ts, asset, EPOCH))
    return quotes, trades, assets


def as_dict(envelope: Envelope) -> dict[str, object]:
    """Front 1's shape, for the alternatives."""
    e = envelope.payload
    if isinstance(e, Quote):
        return {
            "symbol": e.symbol,
            "price": e.price,
            "bid": e.bid,
            "ask": e.ask,
            "volume": int(e.volume),
            "timestamp": iso_ms(e.ts),
            "source": e.source,
        }
    assert isinstance(e, Trade)
    return {
        "type": "trade",
        "symbol": e.symbol,
        "price": e.price,
        "size": int(e.size),
        "timestamp": iso_ms(e.ts),
        "source": e.source,
        "trade_id": e.trade_id,
    }


def stdlib_json(envelope: Envelope) -> bytes:
    return json.dumps(as_dict(envelope), separators=(",", ":")).encode()


def orjson_dumps(envelope: Envelope) -> bytes:
    return orjson.dumps(as_dict(envelope))


def per_update(encode: Callable[[Envelope], object], batch: Sequence[Envelope]) -> float:
    """Best of REPEAT runs, microseconds per update."""

    def run() -> None:
        for envelope in batch:
            encode(envelope)

    return min(timeit.repeat(run, number=NUMBER, repeat=REPEAT)) / (NUMBER * len(batch)) * 1e6


def wires() -> list[tuple[str, Codec, bool]]:
    """(wire, codec, carries quotes and trades) for every wire format, as fronts register them."""
    out: list[tuple[str, Codec, bool]] = [
        (name, encode, True) for name, encode in native_stamps.CODECS.items()
    ]
    out.append((stomp.WIRE, stomp.encode, True))
    out.extend((name, encode, True) for name, encode in socketio.CODECS.items())
    out.extend((name, encode, False) for name, encode in realtime.CODECS.items())
    return out


def breakdown(quotes: Sequence[Envelope]) -> None:
    """The pieces of the market feed's quote, each alone over the same quotes."""
    payloads = [e.payload for e in quotes]
    assert all(isinstance(q, Quote) for q in payloads)
    structs = [
        native._PlainQuote(q.symbol, q.price, q.bid, q.ask, int(q.volume), iso_ms(q.ts), q.source)  # type: ignore[union-attr]
        for q in payloads
    ]
    whole = [
        native._PlainQuote(s.symbol, 15025, 15020, 15030, s.volume, s.timestamp, s.source)
        for s in structs
    ]
    encode = msgspec.json.Encoder().encode
    pieces: dict[str, Callable[[], object]] = {
        "the whole codec (native.encode)": lambda: [native.encode(e) for e in quotes],
        "timestamp (iso_ms)": lambda: [iso_ms(q.ts) for q in payloads],  # type: ignore[union-attr]
        "volume's int (whole floats)": lambda: [
            int(v) if type(v) is float and v.is_integer() else v
            for v in [q.volume for q in payloads]  # type: ignore[union-attr]
        ],
        "the struct (built alone)": lambda: [
            native._PlainQuote(q.symbol, q.price, q.bid, q.ask, 1, "t", q.source)  # type: ignore[union-attr]
            for q in payloads
        ],
        "msgspec encode of the struct": lambda: [encode(s) for s in structs],
        "  the same with integer prices": lambda: [encode(s) for s in whole],
        "the loop alone": lambda: [None for q in payloads],
    }
    print(f"\nthe market feed's quote, piece by piece ({len(quotes)} quotes)")
    print(f"{'piece':36} {'us/quote':>9}")
    for name, run in pieces.items():
        best = min(timeit.repeat(run, number=NUMBER, repeat=REPEAT)) / (NUMBER * len(quotes))
        print(f"{name:36} {best * 1e6:9.3f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="quotes (and trades) per run")
    parser.add_argument("--per-ms", type=int, default=10, help="updates per millisecond")
    parser.add_argument("--breakdown", action="store_true", help="time the quote's pieces")
    args = parser.parse_args(argv)
    quotes, trades, assets = updates(args.count, args.per_ms)
    print(f"{'wire format':22} {'us/quote':>9} {'us/trade':>9}")
    for name, encode, market in wires():
        on_quote = per_update(encode, quotes if market else assets)
        on_trade = per_update(encode, trades if market else assets)
        label = name if market else f"{name} (asset_update)"
        print(f"{label:22} {on_quote:9.2f} {on_trade:9.2f}")
    # The hub encodes an update once per wire in use on its topic, one wire after the
    # other: with market, stomp and socketio subscribers on one topic, all three.
    shared = (native.encode, stomp.encode, socketio.encode)

    def three_wires(envelope: Envelope) -> None:
        for encode in shared:
            encode(envelope)

    on_quote, on_trade = per_update(three_wires, quotes), per_update(three_wires, trades)
    print(f"{'market+stomp+socketio':22} {on_quote:9.2f} {on_trade:9.2f}  (one update, 3 wires)")
    print("alternatives, Front 1's shape from a dict:")
    for label, encode in (("stdlib json", stdlib_json), ("orjson", orjson_dumps)):
        print(f"{label:22} {per_update(encode, quotes):9.2f} {per_update(encode, trades):9.2f}")
    if args.breakdown:
        breakdown(quotes)


if __name__ == "__main__":
    main()
