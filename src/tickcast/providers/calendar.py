"""Market calendars: is an exchange open at a given instant?

Rules: a calendar is pure. ``is_open(ts)`` takes the time (epoch seconds, UTC) and
never reads a clock, so the simulator and the tests can drive it with any instant.
``is_open`` sits on the simulator's hot path (once per equity tick): an implementation
answers from a cached interval of constant state and only does real work when ``ts``
leaves it. ``exchange_calendars`` (and with it pandas) is imported inside
``ExchangeCalendar``, never at module import, so the default ``AlwaysOpen`` costs nothing.
"""

from __future__ import annotations

import bisect
import math
import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Protocol, runtime_checkable

#: ``calendar_for`` name of the calendar that is always open.
ALWAYS: Final = "always"

#: How much schedule ExchangeCalendar loads around the instant that needs it, in days.
_LOAD_BEFORE_DAYS: Final = 7
_LOAD_AFTER_DAYS: Final = 366


@runtime_checkable
class MarketCalendar(Protocol):
    """When a market trades."""

    def is_open(self, ts: float) -> bool:
        """Whether the market trades at ``ts`` (epoch seconds, UTC).

        Sessions are half-open: open at the opening instant, closed at the closing one.
        """
        ...


class AlwaysOpen:
    """A market that never closes: the simulator's default, so live data flows at any hour."""

    __slots__ = ()

    def is_open(self, ts: float) -> bool:
        """Always True."""
        return True

    def __repr__(self) -> str:
        return "AlwaysOpen()"


class ExchangeCalendar:
    """A real exchange's sessions (holidays, early closes, lunch breaks, weekends).

    Backed by the maintained ``exchange_calendars`` library. The schedule is loaded on the
    first ``is_open`` call for a window of a week before to a year after that instant, and
    reloaded when a later call falls outside it (about once a year for a running gateway).

    Args:
        code: an exchange code or alias known to ``exchange_calendars``, e.g. ``"XNYS"``,
            ``"XNAS"``, ``"XLON"``, ``"NYSE"``.

    Raises:
        ValueError: ``code`` names no calendar.
    """

    __slots__ = ("_code", "_edges", "_hi", "_lo", "_open", "_xc")

    def __init__(self, code: str = "XNYS") -> None:
        import exchange_calendars

        if code not in exchange_calendars.get_calendar_names(include_aliases=True):
            raise ValueError(f"unknown exchange calendar {code!r}")
        self._xc: Any = exchange_calendars
        self._code = code
        # Sorted instants at which the state flips; closed before the first (an open).
        self._edges: list[float] = []
        # The cached interval [_lo, _hi) over which the state is _open.
        self._lo = math.inf
        self._hi = -math.inf
        self._open = False

    @property
    def code(self) -> str:
        """The exchange code this calendar follows."""
        return self._code

    def is_open(self, ts: float) -> bool:
        """Whether the exchange trades at ``ts`` (epoch seconds, UTC).

        Raises:
            ValueError: the library has no schedule for ``ts`` (some calendars, e.g. those
                with lunisolar holidays, only cover a bounded range of years).
        """
        if self._lo <= ts < self._hi:
            return self._open
        return self._refresh(ts)

    def _refresh(self, ts: float) -> bool:
        edges = self._edges
        if not edges or not edges[0] <= ts < edges[-1]:
            edges = self._edges = self._load(ts)
            if not edges or not edges[0] <= ts < edges[-1]:
                raise ValueError(f"{self._code} calendar has no schedule for ts={ts}")
        i = bisect.bisect_right(edges, ts)  # edges[i - 1] <= ts < edges[i]; 0 < i < len
        self._lo = edges[i - 1]
        self._hi = edges[i]
        self._open = i % 2 == 1
        return self._open

    def _load(self, ts: float) -> list[float]:
        day = datetime.fromtimestamp(ts, tz=UTC).date()
        start = day - timedelta(days=_LOAD_BEFORE_DAYS)
        end = day + timedelta(days=_LOAD_AFTER_DAYS)
        with warnings.catch_warnings():
            # pandas 3 deprecation notices raised from inside the library, not our code.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            cls = type(self._xc.get_calendar(self._code))
            low, high = cls.bound_min(), cls.bound_max()
            if (low is not None and day < low.date()) or (high is not None and day > high.date()):
                return []
            start = _clamp(start, low, high)
            end = _clamp(end, low, high)
            cal = self._xc.get_calendar(self._code, start=start, end=end)
            rows = cal.schedule[["open", "break_start", "break_end", "close"]].itertuples(
                index=False, name=None
            )
            edges: list[float] = []
            for opens, break_start, break_end, closes in rows:
                _push(edges, opens.timestamp())
                if _present(break_start) and _present(break_end):
                    _push(edges, break_start.timestamp())
                    _push(edges, break_end.timestamp())
                _push(edges, closes.timestamp())
        return edges

    def __repr__(self) -> str:
        return f"ExchangeCalendar({self._code!r})"


def _push(edges: list[float], t: float) -> None:
    """Append a state flip; two flips at one instant cancel (a close that is the next open)."""
    if edges and edges[-1] == t:
        edges.pop()
    else:
        edges.append(t)


def _present(value: Any) -> bool:
    """False for pandas' NaT (no lunch break that session)."""
    return value is not None and value == value  # NaT != NaT, like NaN


def _clamp(day: date, low: Any, high: Any) -> date:
    """Keep ``day`` inside the library's supported range (None: unbounded)."""
    if low is not None and day < low.date():
        return low.date()  # type: ignore[no-any-return]
    if high is not None and day > high.date():
        return high.date()  # type: ignore[no-any-return]
    return day


def calendar_for(name: str) -> MarketCalendar:
    """The calendar a setting names.

    Args:
        name: ``"always"`` for ``AlwaysOpen``, or an exchange code such as ``"XNYS"``.

    Raises:
        ValueError: the name is neither ``"always"`` nor a known exchange code.
    """
    if name.strip().lower() == ALWAYS:
        return AlwaysOpen()
    try:
        return ExchangeCalendar(name.strip())
    except ValueError:
        raise ValueError(
            f"unknown market calendar {name!r}: use {ALWAYS!r} or an exchange code "
            "such as 'XNYS' or 'XLON' (see exchange_calendars.get_calendar_names())"
        ) from None
