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
stamps 20 per millisecond; 10 by default), each topic one ``Topic`` object as the hub's
sequencer stamps them. Each figure is the best of 140 passes over the updates, each pass
timed alone (under a millisecond: the best is one nothing interrupted).

What a row measures: a wire's own row ("alone") is its codec called on each update with
nothing encoded before it, so STOMP's and Socket.IO's include encoding Front 1's body
(the market feed's kept body is another update's); the ``... after market`` rows are
what the wire adds to the market feed's encode of the same update.

``--breakdown`` times the pieces of the market feed's quote (the timestamp, the volume's
int, the struct, msgspec's encode, the floats' share of it).

``--against DIR``: the same rows for an older tree's codecs too (``DIR`` holds its
``src``, e.g. ``git archive main src | tar -x -C /tmp/before``), side by side, in
``--rounds`` interleaved rounds (each wire: this tree, then the other, on the same
updates); its ``tickcast.protocols`` is imported as ``tickcast_before.protocols`` (the
model is this tree's, so both encode the same objects). Each cell is the best of its
rounds; ``--rounds`` also prints every round's figures. The ``... after market`` rows
are what a wire adds when the hub has encoded the update for the market feed first
(the body shared): the pair's time less the market feed's alone, both called in turn.

Run: PYTHONPATH=src .venv/bin/python bench/encode.py [--breakdown] [--against DIR]
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import shutil
import sys
import tempfile
import time
import timeit
import types
from collections.abc import Callable, Sequence
from math import floor

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
    # One Topic object per topic, as the hub's sequencer stamps them (``hub/sequencer.py``
    # builds a topic once, not per event): a codec's per-topic cache then finds its key
    # by identity, as it does in the gateway, not by comparing two equal topics.
    on_quotes, on_trades = Topic(Channel.QUOTES, "AAPL"), Topic(Channel.TRADES, "AAPL")
    on_assets = Topic(Channel.ASSETS, "AAPL")
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
        quotes.append(Envelope(on_quotes, i + 1, server_ts, quote, EPOCH))
        trades.append(Envelope(on_trades, i + 1, server_ts, trade, EPOCH))
        assets.append(Envelope(on_assets, i + 1, server_ts, asset, EPOCH))
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
    """Best of REPEAT * NUMBER passes over the batch, microseconds per update. Each pass
    timed alone (a fraction of a millisecond): the best of many short passes is one that
    nothing else on the machine interrupted, where the best of a few passes of 20 leaves
    the noise in; the ``after market`` rows, a difference of two bests, need that."""

    def run() -> None:
        for envelope in batch:
            encode(envelope)

    return min(timeit.repeat(run, number=1, repeat=REPEAT * NUMBER)) / len(batch) * 1e6


Tree = dict[str, types.ModuleType]
#: This tree's codec modules, by role.
HERE: Tree = {
    "native": native,
    "native_stamps": native_stamps,
    "stomp": stomp,
    "socketio": socketio,
    "realtime": realtime,
}


def wires(tree: Tree = HERE) -> list[tuple[str, Codec, bool]]:
    """(row, codec, carries quotes and trades) for every wire format, as fronts register
    them; then the three wires that carry Front 1's body on one update, and STOMP and
    Socket.IO each after the market feed."""
    out: list[tuple[str, Codec, bool]] = [
        (name, encode, True) for name, encode in tree["native_stamps"].CODECS.items()
    ]
    out.append((tree["stomp"].WIRE, tree["stomp"].encode, True))
    out.extend((name, encode, True) for name, encode in tree["socketio"].CODECS.items())
    out.extend((name, encode, False) for name, encode in tree["realtime"].CODECS.items())
    # The hub encodes an update once per wire in use on its topic, one wire after the
    # other: with market, stomp and socketio subscribers on one topic, all three.
    market = tree["native"].encode
    for name, shared in (
        ("market+stomp+socketio", (market, tree["stomp"].encode, tree["socketio"].encode)),
        ("market, then stomp", (market, tree["stomp"].encode)),
        ("market, then socketio", (market, tree["socketio"].encode)),
        (_BASE, (market,)),  # what the pairs less the wire are timed against
    ):
        out.append((name, _in_turn(shared), True))
    return out


#: The market feed alone, called as the pairs call it (the ``after market`` rows' base).
_BASE = "market, in turn"


def _in_turn(codecs: Sequence[Codec]) -> Codec:
    def encode(envelope: Envelope) -> bytes:
        for codec in codecs:
            out = codec(envelope)
        return out

    return encode


def before(src: str) -> Tree:
    """An older tree's codec modules: its ``tickcast/protocols`` copied into a temporary
    package ``tickcast_before`` (imports of ``tickcast.protocols`` renamed), imported."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="tickcast-before-"))
    package = root / "tickcast_before"
    shutil.copytree(pathlib.Path(src) / "tickcast" / "protocols", package / "protocols")
    (package / "__init__.py").write_text("")
    for path in (package / "protocols").rglob("*.py"):
        text = path.read_text()
        path.write_text(text.replace("tickcast.protocols", "tickcast_before.protocols"))
    sys.path.insert(0, str(root))
    name = "tickcast_before.protocols."
    return {
        "native": importlib.import_module(name + "native.codec"),
        "native_stamps": importlib.import_module(name + "native.stamps"),
        "stomp": importlib.import_module(name + "stomp.codec"),
        "socketio": importlib.import_module(name + "socketio.codec"),
        "realtime": importlib.import_module(name + "envelope.codec"),
    }


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
            floor(v) if type(v) is float and v.is_integer() else v
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
    parser.add_argument("--against", metavar="DIR", help="an older tree's src, side by side")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds")
    args = parser.parse_args(argv)
    quotes, trades, assets = updates(args.count, args.per_ms)
    trees = {"after": HERE}
    if args.against:
        trees = {"before": before(args.against), "after": HERE}
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}
    labels: dict[str, str] = {}
    reference = {name: encode for name, encode, _ in wires(HERE)}
    for tree in trees.values():  # the same bytes, or the comparison means nothing
        for name, encode, market in wires(tree):
            for envelope in (quotes[:50] + trades[:50]) if market else assets[:50]:
                assert encode(envelope) == reference[name](envelope), (name, envelope)
    for round_ in range(args.rounds):
        for index in range(len(wires())):
            for tree_name, tree in trees.items():
                name, encode, market = wires(tree)[index]
                on_quote = per_update(encode, quotes if market else assets)
                on_trade = per_update(encode, trades if market else assets)
                labels[name] = name if market else f"{name} (asset_update)"
                rows.setdefault(name, {}).setdefault(tree_name, []).append((on_quote, on_trade))
        if args.rounds > 1:
            figures = (
                f"{name} " + "/".join(f"{r[t][-1][0]:.2f}" for t in trees)
                for name, r in rows.items()
            )
            print(f"round {round_ + 1} (per quote): " + ", ".join(figures))
    _table(rows, labels, list(trees))
    print("alternatives, Front 1's shape from a dict:")
    for label, encode in (("stdlib json", stdlib_json), ("orjson", orjson_dumps)):
        print(f"{label:34} {per_update(encode, quotes):9.2f} {per_update(encode, trades):9.2f}")
    if args.breakdown:
        breakdown(quotes)


def _table(
    rows: dict[str, dict[str, list[tuple[float, float]]]], labels: dict[str, str], trees: list[str]
) -> None:
    """Best of the rounds per cell; with two trees, before / after and their ratio."""
    market = {t: min(q for q, _ in rows[_BASE][t]) for t in trees}
    market_trade = {t: min(x for _, x in rows[_BASE][t]) for t in trees}
    if len(trees) == 1:
        print(f"{'wire format':34} {'us/quote':>9} {'us/trade':>9}")
    else:
        print(f"{'wire format':34} {'us/quote before/after':>22} {'us/trade before/after':>22}")
    for name, by_tree in rows.items():
        if name == _BASE:
            continue
        cells = []
        for column in (0, 1):
            best = [min(r[column] for r in by_tree[t]) for t in trees]
            if name.startswith("market, then"):  # what the wire adds after the market feed
                base = market if column == 0 else market_trade
                best = [b - base[t] for b, t in zip(best, trees, strict=True)]
            if len(best) == 1:
                cells.append(f"{best[0]:9.2f}")
            else:
                cells.append(f"{best[0]:9.2f} {best[1]:5.2f} x{best[1] / best[0]:4.2f}")
        label = labels[name].replace("market, then ", "") + (
            " after market" if name.startswith("market, then") else ""
        )
        width = 9 if len(trees) == 1 else 22
        print(f"{label:34} {cells[0]:>{width}} {cells[1]:>{width}}")


if __name__ == "__main__":
    main()
