"""ISO-8601 UTC timestamps with millisecond precision, e.g. ``2023-05-01T12:34:56.789Z``.

Rules: pure. Formatting is on the hot path (once per update), so the text up to the
second is cached and the millisecond suffixes are precomputed: a call is one division,
one comparison and one concatenation.
"""

from __future__ import annotations

import datetime as dt

_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))
_cached_second = -1
_prefix = ""


def iso_ms(ts: float) -> str:
    """Format epoch seconds (UTC) as ISO-8601 with milliseconds and a ``Z`` suffix."""
    global _cached_second, _prefix
    second, ms = divmod(round(ts * 1000), 1000)
    if second != _cached_second:
        _prefix = dt.datetime.fromtimestamp(second, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _cached_second = second
    return _prefix + _MILLIS[ms]
