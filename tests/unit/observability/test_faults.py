"""Faults: every contained exception counted by where; logged with context, rate-limited."""

from __future__ import annotations

import logging

import pytest

from tickcast.observability.faults import Faults


def test_counts_by_where_and_logs_the_first_ten_then_powers_of_two(
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults = Faults()
    with caplog.at_level(logging.ERROR, logger="tickcast.faults"):
        for _ in range(40):
            faults.report("codec", ValueError("bad"), topic="quotes.AAPL", wire="json")
        faults.report("tap", RuntimeError("boom"))
    assert faults.counts == {"codec": 40, "tap": 1}
    codec = [r for r in caplog.records if getattr(r, "where", None) == "codec"]
    assert [getattr(r, "errors", None) for r in codec] == [*range(1, 11), 16, 32]
    first = codec[0]
    assert "topic=quotes.AAPL wire=json" in first.getMessage()
    assert getattr(first, "topic", None) == "quotes.AAPL"
    assert first.exc_info is not None
    assert first.exc_info[0] is ValueError


def test_context_named_like_a_log_record_field_stays_in_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults = Faults()
    with caplog.at_level(logging.ERROR, logger="tickcast.faults"):
        faults.report("hook", KeyError("x"), name="listener", msg="m")
    assert faults.counts == {"hook": 1}
    assert "name=listener msg=m" in caplog.records[0].getMessage()
