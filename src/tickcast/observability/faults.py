"""Faults: exceptions caught and contained, counted by where, logged with context.

Rules: pure (``logging`` only). A bug in one codec, subscriber, listener, service or
connection callback must not stop the feed, the batch or the other subscribers: the
caller catches it, reports it here, and goes on. Each report is counted per ``where``
(exported as ``tickcast_internal_errors_total{where}``) and logged with its traceback and
context: the first ten per ``where``, then at every power of two, so that a bug that
raises on every event cannot flood the log.
"""

from __future__ import annotations

import logging

log = logging.getLogger("tickcast.faults")

#: Where a contained exception can come from.
WHERE = ("codec", "subscriber", "tap", "hook", "command", "timer", "pump", "service")

# Names a LogRecord already has: context under one of them stays in the message only.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

#: Every report up to this many per ``where`` is logged; after it, powers of two only.
LOG_FIRST = 10


class Faults:
    """Counts and logs the exceptions its owner contained.

    Attributes:
        counts: where -> exceptions contained, ever.
    """

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def report(self, where: str, exc: BaseException, **context: object) -> None:
        """Count ``exc`` under ``where`` and log it (rate-limited) with ``context``."""
        count = self.counts[where] = self.counts.get(where, 0) + 1
        if count <= LOG_FIRST or count & (count - 1) == 0:
            detail = " ".join(f"{k}={v}" for k, v in context.items())
            log.error(
                "contained a failure in %s (%d so far)%s%s",
                where,
                count,
                ": " if detail else "",
                detail,
                exc_info=exc,
                extra={
                    "where": where,
                    "errors": count,
                    **{k: str(v) for k, v in context.items() if k not in _RESERVED},
                },
            )
