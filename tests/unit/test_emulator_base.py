"""The emulators' fault bookkeeping and schedule syntax (pure parts of emulators/base.py)."""

from __future__ import annotations

import pytest

from tickcast.emulators.base import Fault, Faults, parse_fault_schedule


def test_schedule_syntax() -> None:
    assert parse_fault_schedule("silent@60:10, drop@30,malformed@5") == [
        (5.0, Fault.MALFORMED, 0.0),
        (30.0, Fault.DROP, 0.0),
        (60.0, Fault.SILENT, 10.0),
    ]
    assert parse_fault_schedule("") == []


@pytest.mark.parametrize("text", ["drop", "bogus@1", "drop@soon", "silent@1:long"])
def test_bad_schedules_are_refused_with_the_kinds(text: str) -> None:
    with pytest.raises(ValueError, match=r"drop|expected"):
        parse_fault_schedule(text)


def test_silence_lasts_its_duration_or_until_resumed() -> None:
    faults = Faults()
    faults.inject(Fault.SILENT, now=100.0, duration_s=5.0)
    assert faults.silent(104.9)
    assert not faults.silent(105.0)
    faults.inject(Fault.SILENT, now=200.0)
    assert faults.silent(10_000.0)
    faults.inject(Fault.RESUME, now=201.0)
    assert not faults.silent(201.0)


def test_one_shot_faults_reach_each_connection_once() -> None:
    faults = Faults()
    faults.inject(Fault.SLOW, now=0.5)  # before any connection: concerns none of them
    first = dict(faults.generation)
    second = dict(faults.generation)
    assert not faults.pending(Fault.MALFORMED, first)
    assert not faults.pending(Fault.SLOW, first)
    faults.inject(Fault.MALFORMED, now=1.0)
    later = dict(faults.generation)  # opened after the injection
    assert faults.pending(Fault.MALFORMED, first)
    assert not faults.pending(Fault.MALFORMED, first)
    assert faults.pending(Fault.MALFORMED, second)
    assert not faults.pending(Fault.MALFORMED, later)
