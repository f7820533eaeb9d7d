"""A subscription's rate (``Subscribe.max_rate``) as the fronts other than Front 1 carry
it: a JSON field (Front 2's ``data.max_rate``, Front 5's ``subscribe`` argument) or a
STOMP header (Front 3's ``max-rate``).

Rules: pure. Each protocol refuses a bad value in its own words (its error event, or
STOMP's ERROR frame); the bounds and the sentence's core are shared here, so that every
front accepts the same values as Front 1 (``protocols.base.MIN_RATE`` to ``MAX_RATE``
messages a second per topic).
"""

from __future__ import annotations

import math
import re
from typing import Final

from tickcast.protocols.base import MAX_RATE, MIN_RATE

__all__ = ["RULE", "from_header", "from_json"]

#: What a valid rate is, as every refusal says it.
RULE: Final = f"a number of messages per second from {MIN_RATE:g} to {MAX_RATE:g}"

#: A header's rate: decimal digits with an optional fraction (``4``, ``0.5``, ``.5``);
#: no sign, exponent, ``inf`` or ``nan``, no spaces, at most 16 characters.
_HEADER_RATE: Final = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_HEADER_CHARS: Final = 16


def _bounded(rate: float) -> float:
    if not (math.isfinite(rate) and MIN_RATE <= rate <= MAX_RATE):
        raise ValueError(RULE)
    return rate


def from_json(value: object) -> float | None:
    """A JSON field's rate: a number in (0, ``MAX_RATE``]; None when absent (null).

    Raises:
        ValueError: any other value (a string, a boolean, 0, a negative number, past
            the bound), with ``RULE`` as its message.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(RULE)
    if isinstance(value, int) and not MIN_RATE <= value <= MAX_RATE:
        raise ValueError(RULE)  # before float(): an int past any float overflows it
    return _bounded(float(value))


def from_header(text: str) -> float:
    """A header's rate, as written in decimal (``4``, ``0.5``), in (0, ``MAX_RATE``].

    Raises:
        ValueError: anything else (empty, signed, an exponent, ``inf``, spaces, past the
            bound), with ``RULE`` as its message.
    """
    if len(text) > _HEADER_CHARS or not _HEADER_RATE.fullmatch(text):
        raise ValueError(RULE)
    return _bounded(float(text))
