"""ISO-8601 UTC timestamps with millisecond precision, e.g. ``2023-05-01T12:34:56.789Z``.

Rules: pure. Formatting is on the hot path (once per update), so the date-and-minute
prefix is cached and only seconds and milliseconds are formatted per call.
"""

from __future__ import annotations

import datetime as dt

_prefix_minute = -1
_prefix = ""


def iso_ms(ts: float) -> str:
    """Format epoch seconds (UTC) as ISO-8601 with milliseconds and a ``Z`` suffix."""
    global _prefix_minute, _prefix
    millis = round(ts * 1000)
    minute, rest = divmod(millis, 60_000)
    if minute != _prefix_minute:
        moment = dt.datetime.fromtimestamp(minute * 60, tz=dt.UTC)
        _prefix = moment.strftime("%Y-%m-%dT%H:%M:")
        _prefix_minute = minute
    seconds, ms = divmod(rest, 1000)
    return f"{_prefix}{seconds:02d}.{ms:03d}Z"
