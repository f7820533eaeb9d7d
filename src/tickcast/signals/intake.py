"""Intake: one signal document from outside, read or refused with a reason.

Rules: pure. ``read_signal(data)`` is ``model.signal.decode_signal`` (the one judge of
what a signal is) plus a *reason* per refusal, the label a metric and a dead letter
carry, so that an operator can tell a producer that sends garbage from one that sends
a field too many:

- ``too_large``: more than ``MAX_SIGNAL_BYTES`` bytes (refused before parsing);
- ``malformed``: not JSON at all (or not UTF-8);
- ``invalid``: JSON, but not a signal (an unknown or missing field, a wrong type, an
  empty name, a price that is not a finite number > 0, a time without a zone...).

The reason is found only on the failure path (the document is parsed a second time,
as generic JSON, to tell ``malformed`` from ``invalid``): an accepted signal costs one
parse.
"""

from __future__ import annotations

import json
from typing import Final, Literal

from tickcast.model.signal import MAX_SIGNAL_BYTES, Signal, SignalError, decode_signal

Reason = Literal["too_large", "malformed", "invalid", "too_many_symbols"]

#: Every reason ``read_signal`` gives, in the order they are checked (and the service's
#: own: ``too_many_symbols``, a symbol beyond ``signals_max_symbols``).
REASONS: Final[tuple[Reason, ...]] = ("too_large", "malformed", "invalid", "too_many_symbols")


class Refused(ValueError):
    """A document that is not a signal: ``reason`` (a label) and the decoder's message."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message


def read_signal(data: bytes) -> Signal:
    """The signal ``data`` holds. Raises ``Refused`` with the reason and the message."""
    try:
        return decode_signal(data)
    except SignalError as exc:
        raise Refused(_reason(data), str(exc)) from None


def _reason(data: bytes) -> Reason:
    if len(data) > MAX_SIGNAL_BYTES:
        return "too_large"
    try:  # the standard parser: a number out of float range is still JSON to it
        json.loads(data)
    except (ValueError, RecursionError):
        return "malformed"
    return "invalid"
