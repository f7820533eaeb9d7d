"""Backoff: capped exponential backoff with full jitter, with an injected random source."""

from __future__ import annotations

import random

import pytest

from tickcast.retry import Backoff


class CeilingRng(random.Random):
    """A random source whose uniform() records its bounds and returns the upper one."""

    def __init__(self) -> None:
        super().__init__(0)
        self.bounds: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.bounds.append((a, b))
        return b


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (7, 30.0), (40, 30.0)],
)
def test_ceiling_doubles_from_base_until_the_cap(attempt: int, ceiling: float) -> None:
    rng = CeilingRng()
    assert Backoff(base_s=0.5, cap_s=30.0).delay(attempt, rng) == ceiling
    assert rng.bounds == [(0, ceiling)]


def test_delays_stay_within_zero_and_the_ceiling() -> None:
    backoff = Backoff(base_s=0.25, cap_s=10.0)
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(10.0, 0.25 * 2**attempt)
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays), attempt
        # Full jitter: delays spread over the range rather than sitting at the ceiling.
        assert min(delays) < ceiling * 0.1
        assert max(delays) > ceiling * 0.9


def test_same_seed_gives_the_same_delays() -> None:
    backoff = Backoff()
    first = [backoff.delay(a, random.Random(99)) for a in range(10)]
    second = [backoff.delay(a, random.Random(99)) for a in range(10)]
    assert first == second
    rng_a, rng_b = random.Random(5), random.Random(5)
    assert [backoff.delay(a, rng_a) for a in range(20)] == [
        backoff.delay(a, rng_b) for a in range(20)
    ]
    assert [backoff.delay(3, random.Random(s)) for s in range(5)] != [
        backoff.delay(3, random.Random(0)) for _ in range(5)
    ]


@pytest.mark.parametrize("attempt", [63, 64, 1_000, 10**9])
def test_huge_attempts_are_capped_without_overflow(attempt: int) -> None:
    rng = CeilingRng()
    assert Backoff(base_s=0.5, cap_s=30.0).delay(attempt, rng) == 30.0
    assert 0 <= Backoff().delay(attempt, random.Random(1)) <= 30.0


def test_defaults() -> None:
    assert Backoff() == Backoff(base_s=0.5, cap_s=30.0)
