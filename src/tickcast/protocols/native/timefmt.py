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


_parsed_prefix = ""
_parsed_second = 0.0


def parse_iso_ms(text: str) -> float:
    """Epoch seconds (UTC) of ``iso_ms``'s format, ``2023-05-01T12:34:56.789Z``: the
    inverse of ``iso_ms``, cached per second as it is, for a client's hot path. Other
    ISO-8601 forms with a time zone are parsed in full."""
    global _parsed_prefix, _parsed_second
    if len(text) == 24 and text[19] == "." and text[23] == "Z":
        prefix = text[:19]
        if prefix != _parsed_prefix:
            moment = dt.datetime.fromisoformat(prefix).replace(tzinfo=dt.UTC)
            _parsed_second = moment.timestamp()
            _parsed_prefix = prefix
        return _parsed_second + int(text[20:23]) / 1000
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
