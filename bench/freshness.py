"""Freshness of what a load client holds, sampled on a fixed clock (bench/loadclient.py).

Conflation (and a server falling behind its feed) can hide staleness from the latency
figures, which are taken only on messages that arrived. These figures look at the other
side: on a fixed clock during the measured window, for a fixed subset of (connection,
symbol) pairs, what is the newest value the client holds?

* **age** = sample time - timestamp of the newest value held. It includes the feed's gap
  between two ticks of the symbol (tickcast's simulator picks a random symbol per tick,
  the peers go round-robin, so the gaps differ between them even at one rate).
* **superseded** = how long the held value has been out of date at the source: sample time
  - the timestamp of the next tick of the symbol after the held one, if that tick was
  stamped by the sample time (0 if none was). The ticks of a symbol are known from what
  any tracked subscriber received (for a conflating server, a tick none of them received
  is missed, which can only make the figure lower). A per-tick server that keeps up holds
  every value superseded for about its latency; a conflating one for up to its window; a
  server seconds behind its feed for seconds.

Pure: the caller passes the sample times and the received stamps. Stamps are the 23-byte
ISO millisecond prefix the load client buckets by.
"""

from __future__ import annotations

import bisect
import calendar
import time
from collections.abc import Iterable
from typing import Any

from tickcast.client.load import percentile

_minute_cache: dict[bytes, float] = {}


def ts_epoch(ts: bytes) -> float:
    """Epoch seconds of a 23-byte ISO prefix like b"2023-05-01T12:34:56.789"."""
    prefix = ts[:16]
    base = _minute_cache.get(prefix)
    if base is None:
        base = float(calendar.timegm(time.strptime(prefix.decode(), "%Y-%m-%dT%H:%M")))
        _minute_cache[prefix] = base
    return base + float(ts[17:23])


class Freshness:
    """Held values of the tracked pairs, every tracked stamp per symbol, and the samples."""

    def __init__(self) -> None:
        #: symbol -> every stamp any tracked subscriber received for it
        self.seen: dict[bytes, set[bytes]] = {}
        #: (symbol, sample time, newest stamp held or None)
        self.samples: list[tuple[bytes, float, bytes | None]] = []

    def received(self, held: dict[bytes, bytes], symbol: bytes, ts: bytes) -> None:
        """A tracked connection (its ``held`` map) received ``symbol`` stamped ``ts``."""
        if ts > held.get(symbol, b""):
            held[symbol] = ts
        stamps = self.seen.get(symbol)
        if stamps is None:
            self.seen[symbol] = {ts}
        else:
            stamps.add(ts)

    def sample(self, now: float, pairs: Iterable[tuple[dict[bytes, bytes], bytes]]) -> None:
        """One tick of the fixed clock: the newest stamp each tracked pair holds now."""
        append = self.samples.append
        for held, symbol in pairs:
            append((symbol, now, held.get(symbol)))

    def summary(self) -> dict[str, Any]:
        """Age and superseded figures (ms) over every sample, and pairs holding nothing."""
        seen = {s: sorted(ts_epoch(t) for t in stamps) for s, stamps in self.seen.items()}
        epoch: dict[bytes, float] = {}
        ages: list[float] = []
        stale: list[float] = []
        missing = 0
        for symbol, now, held in self.samples:
            if held is None:
                missing += 1
                continue
            h = epoch.get(held)
            if h is None:
                h = epoch[held] = ts_epoch(held)
            ages.append((now - h) * 1000.0)
            stamps = seen.get(symbol, [])
            k = bisect.bisect_right(stamps, h)
            nxt = stamps[k] if k < len(stamps) else None
            stale.append((now - nxt) * 1000.0 if nxt is not None and nxt <= now else 0.0)
        ages.sort()
        stale.sort()
        return {
            "fresh_samples": len(self.samples),
            "fresh_missing": missing,
            "age_p50_ms": percentile(ages, 0.50),
            "age_p99_ms": percentile(ages, 0.99),
            "age_max_ms": ages[-1] if ages else None,
            "superseded_p50_ms": percentile(stale, 0.50),
            "superseded_p99_ms": percentile(stale, 0.99),
            "superseded_max_ms": stale[-1] if stale else None,
        }
