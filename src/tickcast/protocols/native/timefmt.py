"""ISO-8601 UTC timestamps with millisecond precision, e.g. ``2023-05-01T12:34:56.789Z``.

Rules: pure. Formatting is on the hot path (once per update, in every codec that prints
a time), so the text of the last millisecond is kept with a range of ``ts`` known to
print it: most updates of a batch share their millisecond, and such a call is two
comparisons (no ``round``, which alone costs about 0.1 us). A ``ts`` outside the range is
rounded (``round(ts * 1000)``, the one rule); in the same millisecond the range grows
down to it, in a new one the text is made (the text up to the second cached, the
millisecond suffixes precomputed) and the range starts at it. The state is the
module's: one thread formats (the gateway's event loop), as with the per-second cache.
"""

from __future__ import annotations

import datetime as dt
import math

_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))
_cached_second = -1
_prefix = ""
#: The last millisecond printed (``round(ts * 1000)``) and its text; every ``ts`` with
#: ``_low <= ts < _high`` rounds to it (empty until the first call).
_last_ms = -1
_last_text = ""
_low = math.inf
_high = -math.inf


def iso_ms(ts: float) -> str:
    """Format epoch seconds (UTC) as ISO-8601 with milliseconds and a ``Z`` suffix."""
    global _cached_second, _prefix, _last_ms, _last_text, _low, _high
    if _low <= ts < _high:
        return _last_text
    stamp = round(ts * 1000)
    if stamp == _last_ms:
        # A second ts of the millisecond (the first gave the text): the range is made,
        # from the lowest seen up to below stamp + 0.5 by far more than the product's
        # rounding error, checked. Every x < _high then has x * 1000 below it too (the
        # product is monotonic), so rounds to stamp at most; the last hundredth of a
        # millisecond takes this long way.
        if ts < _low:
            _low = ts
        if _high < _low:
            high = (stamp + 0.49) / 1000
            while high * 1000 >= stamp + 0.5:
                high = math.nextafter(high, -math.inf)
            _high = high
        return _last_text
    second, ms = divmod(stamp, 1000)
    if second != _cached_second:
        _prefix = dt.datetime.fromtimestamp(second, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _cached_second = second
    _last_text = _prefix + _MILLIS[ms]
    _last_ms = stamp
    _low = ts
    _high = -math.inf
    return _last_text


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
