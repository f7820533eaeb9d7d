"""OverloadDetector: episodes from timer lateness, and the stall time connections discount."""

from __future__ import annotations

import pytest

from tickcast.observability.overload import OverloadDetector, Transition


def test_punctual_timers_are_not_an_overload_and_add_no_stall() -> None:
    detector = OverloadDetector(threshold_s=0.25, tolerance_s=0.005)
    for i in range(100):
        assert detector.observe(0.004, now=i * 0.05) is None
    assert (detector.overloaded, detector.episodes, detector.stalled_s) == (False, 0, 0.0)


def test_lateness_beyond_the_tolerance_adds_up_as_stall_time() -> None:
    detector = OverloadDetector(threshold_s=0.25, tolerance_s=0.005)
    detector.observe(0.105, now=1.0)
    detector.observe(0.055, now=2.0)
    assert detector.stalled_s == pytest.approx(0.15)
    assert not detector.overloaded  # stalls below the threshold are no episode


def test_an_episode_starts_at_the_threshold_and_ends_after_recover_s_of_calm() -> None:
    detector = OverloadDetector(threshold_s=0.25, recover_s=5.0)
    assert detector.observe(0.30, now=10.0) is Transition.OVERLOADED
    assert (detector.overloaded, detector.episodes, detector.since) == (True, 1, 10.0)
    assert detector.observe(0.40, now=11.0) is None  # the same episode, a worse lag
    assert detector.worst_s == 0.40
    assert detector.observe(0.0, now=15.9) is None  # 4.9 s since the last late timer
    assert detector.observe(0.0, now=16.0) is Transition.RECOVERED
    assert not detector.overloaded
    assert detector.observe(0.0, now=30.0) is None  # recovered once only


def test_a_new_episode_after_recovery_is_counted_again() -> None:
    detector = OverloadDetector(threshold_s=0.1, recover_s=1.0)
    detector.observe(0.2, now=0.0)
    detector.observe(0.0, now=1.0)
    assert detector.observe(0.3, now=2.0) is Transition.OVERLOADED
    assert detector.episodes == 2
    assert detector.worst_s == 0.3  # the worst of this episode, not of every episode


def test_threshold_zero_never_reports_an_overload_but_keeps_the_stall_time() -> None:
    detector = OverloadDetector(threshold_s=0.0)
    assert detector.observe(10.0, now=1.0) is None
    assert not detector.overloaded
    assert detector.stalled_s == pytest.approx(10.0 - 0.005)


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        OverloadDetector(threshold_s=-1)


def test_shedding_load_is_an_overload_however_punctual_the_loop() -> None:
    detector = OverloadDetector(threshold_s=0.25, recover_s=1.0)
    assert detector.observe(0.001, now=1.0, shedding=True) is Transition.OVERLOADED
    assert detector.observe(0.001, now=1.5, shedding=True) is None
    assert detector.observe(0.001, now=2.6) is Transition.RECOVERED  # a second without


def test_with_threshold_zero_shedding_is_no_overload_either() -> None:
    detector = OverloadDetector(threshold_s=0.0)
    assert detector.observe(0.0, now=1.0, shedding=True) is None
