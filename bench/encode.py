"""Encoding cost per update: tickcast's Front 1 codec against stdlib json and orjson.

Side by side in one process and one run, on the same quote, so the ratios hold on a noisy
machine even when the absolute figures move. Every encoder formats the timestamp with the
same formatter, tickcast's ``iso_ms`` (the text up to the second cached), so the figures
compare the encoders and not two ways of printing a datetime (stdlib json with compact
separators, as orjson writes). Run: .venv/bin/python bench/encode.py
"""

from __future__ import annotations

import json
import time
import timeit

import orjson

from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.native.codec import encode, encode_with_seq
from tickcast.protocols.native.timefmt import iso_ms

N = 1000
REPEAT = 7
#: As a process stamps it (the ``seq`` variant prints it; the plain one never does).
EPOCH = "18bcfe5682a1b2c3"


def envelopes() -> list[Envelope]:
    start = time.time()
    topic = Topic(Channel.QUOTES, "AAPL")
    return [
        Envelope(
            topic,
            i,
            start,
            Quote(
                "AAPL",
                150.2,
                150.3,
                100,
                200,
                150.25 + i / 100,
                1000.0 + i,
                start + i / 1e4,
                "simulator",
            ),
            EPOCH,
        )
        for i in range(N)
    ]


def as_dict(envelope: Envelope) -> dict[str, object]:
    quote = envelope.payload
    assert isinstance(quote, Quote)
    return {
        "symbol": quote.symbol,
        "price": quote.price,
        "bid": quote.bid,
        "ask": quote.ask,
        "volume": int(quote.volume),
        # the codec's own formatter (cached per second), so every encoder pays the same
        "timestamp": iso_ms(quote.ts),
        "source": quote.source,
    }


def main() -> None:
    batch = envelopes()
    candidates = {
        "tickcast codec (msgspec)": lambda: [encode(e) for e in batch],
        "tickcast codec, seq option": lambda: [encode_with_seq(e) for e in batch],
        "stdlib json": lambda: [
            json.dumps(as_dict(e), separators=(",", ":")).encode() for e in batch
        ],
        "orjson": lambda: [orjson.dumps(as_dict(e)) for e in batch],
    }
    results = {}
    for name, run in candidates.items():
        best = min(timeit.repeat(run, number=20, repeat=REPEAT)) / (20 * N)
        results[name] = best * 1e6
    base = results["tickcast codec (msgspec)"]
    print(f"{'encoder':32} {'us/update':>10} {'x tickcast':>11}")
    for name, us in results.items():
        print(f"{name:32} {us:10.2f} {us / base:11.1f}")


if __name__ == "__main__":
    main()
