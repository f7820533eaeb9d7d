"""KeyUsage: at most one recorded use per key per interval, taken in batches."""

from __future__ import annotations

import pytest

from tickcast.auth import usage
from tickcast.auth.usage import KeyUsage


def test_the_first_use_of_a_key_is_due_then_not_again_within_the_interval() -> None:
    log = KeyUsage(interval_s=60)
    assert log.used(1, now=1000.0)
    assert not log.used(1, now=1030.0)
    assert not log.used(1, now=1059.9)
    assert log.take() == {1: 1000.0}
    assert log.used(1, now=1060.0)
    assert log.take() == {1: 1060.0}


def test_uses_of_several_keys_are_taken_together_and_once() -> None:
    log = KeyUsage(interval_s=60)
    for key_id in (1, 2, 3):
        log.used(key_id, now=5.0)
    log.used(2, now=6.0)
    assert log.pending == 3
    assert log.take() == {1: 5.0, 2: 5.0, 3: 5.0}
    assert log.take() == {}
    assert log.pending == 0


def test_a_storm_of_uses_is_one_write_per_key() -> None:
    log = KeyUsage(interval_s=60)
    due = sum(log.used(7, now=100.0 + i / 1000) for i in range(10_000))
    assert due == 1


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage, "MAX_KEYS", 10)
    log = KeyUsage(interval_s=60)
    for key_id in range(10):
        log.used(key_id, now=0.0)
    log.take()
    log.used(100, now=61.0)  # the old entries are stale: forgotten
    assert len(log._written) == 1
    for key_id in range(200, 230):  # all recent: the oldest half goes each time it fills
        log.used(key_id, now=62.0 + key_id)
    assert len(log._written) <= 10


@pytest.mark.parametrize("interval_s", [0, -1, float("nan"), float("inf")])
def test_the_interval_must_be_a_positive_number(interval_s: float) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        KeyUsage(interval_s)
