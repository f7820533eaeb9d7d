"""Market calendars: AlwaysOpen, ExchangeCalendar against real NYSE/HKEX sessions, calendar_for."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest

from tickcast.providers.calendar import (
    AlwaysOpen,
    ExchangeCalendar,
    MarketCalendar,
    calendar_for,
)


def utc(text: str) -> float:
    """Epoch seconds of an ISO-8601 UTC time such as ``2026-12-25T15:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def nyse() -> ExchangeCalendar:
    return ExchangeCalendar("XNYS")


def test_always_open_is_open_at_any_instant() -> None:
    calendar = AlwaysOpen()
    assert isinstance(calendar, MarketCalendar)
    assert calendar.is_open(utc("2026-12-25T03:00"))
    assert calendar.is_open(utc("2026-12-26T12:00"))


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2026-12-28T14:29:59", False),  # Monday, one second before the 09:30 ET open
        ("2026-12-28T14:30", True),  # the open itself trades
        ("2026-12-28T20:59:59", True),
        ("2026-12-28T21:00", False),  # 16:00 ET close: sessions are half-open
        ("2026-12-25T16:00", False),  # Christmas Day, a Friday
        ("2026-12-26T16:00", False),  # Saturday
        ("2026-12-27T16:00", False),  # Sunday
        ("2026-11-26T16:00", False),  # Thanksgiving
        ("2026-11-27T17:59", True),  # day after Thanksgiving: early close at 13:00 ET
        ("2026-11-27T18:00", False),
        ("2026-11-27T20:00", False),
        ("2026-03-09T13:30", True),  # US daylight saving started on March 8: 09:30 EDT
        ("2026-03-06T13:30", False),  # ... while the Friday before opened at 14:30 UTC
    ],
)
def test_nyse_sessions_follow_holidays_weekends_and_early_closes(
    nyse: ExchangeCalendar, instant: str, expected: bool
) -> None:
    assert nyse.is_open(utc(instant)) is expected


def test_nyse_cached_answers_match_the_library_minute_by_minute(nyse: ExchangeCalendar) -> None:
    import exchange_calendars
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        library = exchange_calendars.get_calendar("XNYS")
        start = utc("2026-11-24T00:00")
        for minute in range(0, 8 * 24 * 60, 7):  # a week around Thanksgiving, every 7 min
            ts = start + minute * 60
            expected = library.is_open_on_minute(pd.Timestamp(ts, unit="s", tz="UTC"))
            assert nyse.is_open(ts) is bool(expected), datetime.fromtimestamp(ts, tz=UTC)


def test_exchange_calendar_reloads_for_a_later_year(nyse: ExchangeCalendar) -> None:
    assert nyse.is_open(utc("2026-12-28T15:00"))
    assert not nyse.is_open(utc("2030-12-25T15:00"))  # Christmas, four years later
    assert nyse.is_open(utc("2030-12-26T15:00"))
    assert nyse.is_open(utc("2026-12-28T15:00"))  # and back


def test_exchange_calendar_honours_a_lunch_break() -> None:
    hkex = ExchangeCalendar("XHKG")
    assert hkex.is_open(utc("2026-03-02T03:59"))  # 11:59 HKT
    assert not hkex.is_open(utc("2026-03-02T04:30"))  # lunch, 12:00-13:00 HKT
    assert hkex.is_open(utc("2026-03-02T05:00"))


def test_calendar_that_never_closes_stays_open_across_midnight() -> None:
    calendar = ExchangeCalendar("24/7")
    assert calendar.is_open(utc("2026-03-01T23:59:59"))
    assert calendar.is_open(utc("2026-03-02T00:00"))


def test_exchange_calendar_refuses_instants_beyond_the_library_range() -> None:
    hkex = ExchangeCalendar("XHKG")  # lunisolar holidays are only known up to 2049
    assert hkex.is_open(utc("2049-12-01T03:00"))  # a Wednesday, near the end of the range
    with pytest.raises(ValueError, match="XHKG calendar has no schedule"):
        hkex.is_open(utc("2070-03-03T03:00"))


def test_exchange_calendar_rejects_an_unknown_code() -> None:
    with pytest.raises(ValueError, match="unknown exchange calendar 'NOPE'"):
        ExchangeCalendar("NOPE")


def test_calendar_for_maps_names_to_calendars() -> None:
    assert isinstance(calendar_for("always"), AlwaysOpen)
    assert isinstance(calendar_for("Always"), AlwaysOpen)
    nyse = calendar_for("XNYS")
    assert isinstance(nyse, ExchangeCalendar)
    assert nyse.code == "XNYS"
    assert repr(nyse) == "ExchangeCalendar('XNYS')"
    assert repr(AlwaysOpen()) == "AlwaysOpen()"


@pytest.mark.parametrize("name", ["", "NOPE", "xnys "])
def test_calendar_for_rejects_unknown_names_with_a_clear_message(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown market calendar .*'always' or an exchange code"):
        calendar_for(name)
