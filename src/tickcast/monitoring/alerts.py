"""Alerts: conditions become alerts that open once and resolve when they clear.

Rules: pure (``now`` passed in). ``AlertBook.update(conditions, now, wall)`` compares
the rules that hold now (``rules.conditions``) with the open alerts and returns what
changed, in order: the alerts it resolved, then those it opened. Nothing else changes
anything, so a stream of these changes after the open alerts is the whole story.

- **De-duplication**: one open alert per ``(rule, subject)``. A condition that still
  holds changes nothing (its message may say other numbers: the alert keeps its first).
- **Resolution**: an open alert whose condition no longer holds is resolved (``resolved:
  true``, stamped with the time it resolved). A rule the reading could not judge
  (``unknown``: no latency sample in the interval) neither resolves nor opens: no news
  is not a recovery.
- **Ids**: ``<rule>-<token>.<n>``: ``n`` counts the alerts this book opened, and
  ``token`` names the book (the service gives each process a random one), so a
  restarted gateway never gives an id that named another alert before it.
- **Cooldown**: after an alert resolves, the same ``(rule, subject)`` does not open again
  for ``cooldown_s`` (a flapping condition raises one alert per cooldown, not one per
  interval). A condition still holding when the cooldown is over opens a new alert,
  with a new id.
- The last ``keep_resolved`` resolved alerts are kept for the polling route
  (``?resolved=true``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable

from tickcast.model.monitoring import Alert
from tickcast.monitoring.rules import Condition

#: Resolved alerts kept for ``GET /api/monitoring/alerts``.
KEEP_RESOLVED = 100


class AlertBook:
    """The open alerts, the recently resolved ones, and the cooldowns.

    Args:
        cooldown_s: monotonic seconds after a resolve before the same alert may reopen.
        keep_resolved: resolved alerts kept (the newest).
        token: what the ids carry besides their number ("": ``<rule>-<n>``).
    """

    def __init__(
        self, cooldown_s: float, keep_resolved: int = KEEP_RESOLVED, token: str = ""
    ) -> None:
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0: {cooldown_s}")
        if "-" in token:
            raise ValueError(f"token must not contain '-' (ids end in -<token>.<n>): {token}")
        self.cooldown_s = cooldown_s
        self._prefix = f"{token}." if token else ""
        self._open: dict[tuple[str, str], Alert] = {}
        self._resolved_at: dict[tuple[str, str], float] = {}
        self._resolved: deque[Alert] = deque(maxlen=max(1, keep_resolved))
        self._ids = 0
        #: conditions that held but did not open an alert (cooling down), ever
        self.suppressed = 0

    def update(
        self,
        conditions: Iterable[Condition],
        now: float,
        wall: float,
        unknown: Collection[tuple[str, str]] = (),
    ) -> list[Alert]:
        """Apply the conditions that hold at ``now`` (monotonic; ``wall``: the stamp),
        leaving the ``unknown`` ones as they are; returns the alerts that resolved, then
        those that opened."""
        holding = {c.name: c for c in conditions if c.name not in unknown}
        changed: list[Alert] = []
        for name in [n for n in self._open if n not in holding and n not in unknown]:
            alert = self._open.pop(name)
            done = Alert(
                alert.id,
                alert.rule,
                alert.subject,
                alert.severity,
                alert.message,
                alert.source,
                wall,
                resolved=True,
            )
            self._resolved_at[name] = now
            self._resolved.append(done)
            changed.append(done)
        for name, condition in holding.items():
            if name in self._open:
                continue
            resolved_at = self._resolved_at.get(name)
            if resolved_at is not None and now - resolved_at < self.cooldown_s:
                self.suppressed += 1
                continue
            self._ids += 1
            alert = Alert(
                f"{condition.rule}-{self._prefix}{self._ids}",
                condition.rule,
                condition.subject,
                condition.severity,
                condition.message,
                condition.source,
                wall,
            )
            self._open[name] = alert
            changed.append(alert)
        return changed

    def open_alerts(self) -> list[Alert]:
        """The open alerts, oldest first."""
        return list(self._open.values())

    def resolved(self) -> list[Alert]:
        """The recently resolved alerts, oldest first."""
        return list(self._resolved)

    def all(self) -> list[Alert]:
        """The open alerts, then the recently resolved ones."""
        return [*self._open.values(), *self._resolved]
