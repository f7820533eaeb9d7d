"""The degrade state machine (hub/degrade.py) and the resume plan, by plain calls."""

from __future__ import annotations

import pytest

from tickcast.hub.degrade import Action, Degrade, Marks, Replay, Reset, State, plan_resume
from tickcast.hub.hub import Hub
from tickcast.model.envelope import Envelope, ResumePoint
from tickcast.model.market import Trade
from tickcast.model.topic import Channel, Topic

# a budget of 1,000 messages and 100,000 bytes: soft at 500 / 50,000, low at 125 / 12,500
MARKS = Marks.of_budget(1000, 100_000, soft=0.5, low=0.125)


def machine(grace_s: float = 1.0, hold_s: float = 2.0) -> Degrade:
    return Degrade(MARKS, grace_s=grace_s, hold_s=hold_s)


def test_marks_are_fractions_of_the_budget() -> None:
    assert Marks(500, 50_000, 125, 12_500, 1000, 100_000) == MARKS
    assert Marks.of_budget(16, 0, 0.5, 0.125) == Marks(8, 0, 2, 0, 16, 0)
    for soft, low in ((0.5, 0.5), (0.2, 0.3), (1.5, 0.1), (0.5, -0.1)):
        with pytest.raises(ValueError, match="0 <= low < soft <= 1"):
            Marks.of_budget(1000, 0, soft, low)


def test_below_the_soft_mark_nothing_happens() -> None:
    d = machine()
    assert d.observe(499, 49_999, 0.0, at_fault=True) is None
    assert d.state is State.NORMAL
    assert not d.degraded


def test_the_soft_mark_conflates_first_by_items_or_by_bytes() -> None:
    d = machine()
    assert d.observe(500, 0, 1.0, at_fault=True) is Action.CONFLATE
    assert d.state is State.CONFLATING
    assert d.degraded
    d = machine()
    assert d.observe(3, 50_000, 1.0, at_fault=True) is Action.CONFLATE


def test_a_backlog_that_is_the_gateways_own_never_degrades() -> None:
    d = machine()
    assert d.observe(900, 90_000, 0.0, at_fault=False) is None
    assert d.observe(5000, 10**7, 0.0, at_fault=False) is None  # not even past hard
    assert d.state is State.NORMAL


def test_still_over_the_soft_mark_after_the_grace_suspends() -> None:
    d = machine(grace_s=1.0)
    d.observe(500, 0, 10.0, at_fault=True)
    assert d.deadline(10.0) == 11.0
    assert d.observe(600, 0, 10.5, at_fault=True) is None  # conflation is given its grace
    assert d.observe(600, 0, 11.0, at_fault=True) is Action.SUSPEND
    assert d.state is State.SUSPENDED
    assert d.deadline(11.0) == 13.0  # the hold


def test_with_no_grace_conflate_then_suspend_at_once() -> None:
    d = machine(grace_s=0.0)
    assert d.observe(500, 0, 1.0, at_fault=True) is Action.CONFLATE
    assert d.observe(500, 0, 1.0, at_fault=True) is Action.SUSPEND


def test_conflation_alone_enough_returns_to_normal_below_the_low_mark() -> None:
    d = machine()
    d.observe(500, 0, 0.0, at_fault=True)
    assert d.observe(300, 0, 5.0, at_fault=True) is None  # between the marks: it stays
    assert d.observe(300, 0, 5.0, at_fault=False) is None
    assert d.observe(125, 12_500, 5.0, at_fault=False) is Action.RESTORE
    assert d.state is State.NORMAL


def test_the_grace_ends_but_under_the_soft_mark_it_stays_conflating() -> None:
    d = machine(grace_s=1.0)
    d.observe(500, 0, 0.0, at_fault=True)
    assert d.observe(499, 0, 2.0, at_fault=True) is None
    assert d.state is State.CONFLATING
    assert d.deadline(2.0) is None  # only the backlog can move it now


def suspended(grace_s: float = 0.0, hold_s: float = 2.0) -> Degrade:
    d = machine(grace_s=grace_s, hold_s=hold_s)
    d.observe(500, 0, 0.0, at_fault=True)
    assert d.observe(500, 0, 0.0, at_fault=True) is Action.SUSPEND
    return d


def test_recovery_below_the_low_mark_after_the_hold_then_normal() -> None:
    d = suspended(hold_s=2.0)
    assert d.observe(10, 0, 1.0, at_fault=False) is None  # caught up, but held
    assert d.observe(10, 0, 2.0, at_fault=False) is Action.RESUME
    assert d.state is State.RECOVERING
    assert d.degraded
    # the replay is queued: above the low mark it stays recovering, conflated
    assert d.observe(300, 0, 2.0, at_fault=False) is None
    assert d.observe(100, 0, 2.5, at_fault=False) is Action.RESTORE
    assert d.state is State.NORMAL
    assert not d.degraded


def test_hysteresis_a_backlog_between_the_marks_never_flaps() -> None:
    d = suspended(hold_s=0.0)
    for i in range(100):  # hovering anywhere between low and soft, at fault or not
        backlog = 126 + (i * 37) % 373
        assert d.observe(backlog, 0, 1.0 + i, at_fault=i % 2 == 0) is None
    assert d.state is State.SUSPENDED
    d.observe(0, 0, 200.0, at_fault=False)
    assert d.state is State.RECOVERING
    for i in range(100):
        assert d.observe(126 + (i * 37) % 373, 0, 201.0 + i, at_fault=True) is None
    assert d.state is State.RECOVERING


def test_a_replay_in_rounds_resumes_again_until_nothing_is_suspended() -> None:
    d = suspended(hold_s=0.0)
    assert d.observe(0, 0, 1.0, at_fault=False, suspended=False) is Action.RESUME
    # part of the replay did not fit: once it drains, the next round
    assert d.observe(400, 0, 1.1, at_fault=False, suspended=True) is None
    assert d.observe(100, 0, 1.2, at_fault=False, suspended=True) is Action.RESUME
    assert d.state is State.RECOVERING
    assert d.observe(100, 0, 1.3, at_fault=False, suspended=False) is Action.RESTORE


def test_room_is_what_fits_under_the_soft_mark() -> None:
    d = machine()
    assert d.room(125, 12_500) == (375, 37_500)
    assert d.room(600, 60_000) == (0, 0)
    assert Degrade(Marks.of_budget(1000, 0, 0.5, 0.125)).room(100, 10**9) == (400, None)


def test_a_replay_that_pushes_it_back_over_the_soft_mark_suspends_again() -> None:
    d = suspended(hold_s=0.0)
    assert d.observe(0, 0, 1.0, at_fault=False) is Action.RESUME
    assert d.observe(700, 0, 1.0, at_fault=False) is None  # its socket takes the replay
    assert d.observe(700, 0, 1.1, at_fault=True) is Action.SUSPEND
    assert d.state is State.SUSPENDED


def test_past_the_hard_mark_closes_from_any_state() -> None:
    for steps in (0, 1, 2):
        d = machine(grace_s=0.0)
        for _ in range(steps):
            d.observe(500, 0, 0.0, at_fault=True)
        assert d.observe(1001, 0, 0.5, at_fault=True) is Action.CLOSE
        assert d.state is State.CLOSED
        assert not d.degraded
        assert d.observe(0, 0, 9.0, at_fault=False) is None  # closed for good
    d = machine()
    assert d.observe(1, 100_001, 0.0, at_fault=True) is Action.CLOSE  # bytes too
    d = machine()
    assert d.observe(1000, 100_000, 0.0, at_fault=True) is Action.CONFLATE  # at it, not past


def test_without_a_byte_budget_bytes_never_count() -> None:
    d = Degrade(Marks.of_budget(1000, 0, 0.5, 0.125), grace_s=0.0, hold_s=0.0)
    assert d.observe(10, 10**9, 0.0, at_fault=True) is None
    d.observe(500, 0, 0.0, at_fault=True)
    d.observe(500, 0, 0.0, at_fault=True)
    assert d.observe(0, 10**9, 0.0, at_fault=False) is Action.RESUME


def trade(hub: Hub, topic: Topic, seq: int) -> Envelope:
    envelope = Envelope(topic, seq, 0.0, Trade(topic.symbol, 1.0, 1, float(seq), "sim"), "e1")
    hub.fan_out([envelope], 0.0)
    return envelope


AAPL = Topic(Channel.TRADES, "AAPL")
MSFT = Topic(Channel.TRADES, "MSFT")


def test_the_plan_replays_from_history_what_each_topic_missed() -> None:
    hub = Hub(history_size=8)
    for seq in range(1, 6):
        trade(hub, AAPL, seq)
    trade(hub, MSFT, 1)
    plan = plan_resume(
        {AAPL: ResumePoint(2, "e1"), MSFT: ResumePoint(1, "e1")},
        hub.resume,
        lambda topic: True,
    )
    assert [type(step) for step in plan] == [Replay, Replay]
    aapl, msft = plan
    assert isinstance(aapl, Replay)
    assert isinstance(msft, Replay)
    assert [e.seq for e in aapl.envelopes] == [3, 4, 5]
    assert aapl.seq == 5
    assert msft.envelopes == []
    assert msft.seq == 1


def test_the_plan_resets_where_history_no_longer_reaches() -> None:
    hub = Hub(history_size=4)
    for seq in range(1, 11):
        trade(hub, AAPL, seq)
    (step,) = plan_resume({AAPL: ResumePoint(3, "e1")}, hub.resume, lambda topic: True)
    assert isinstance(step, Reset)
    assert step.gap.requested == 3
    assert step.gap.latest == 10
    assert step.gap.reason == "history_gap"


def test_the_plan_resets_a_position_of_another_epoch() -> None:
    hub = Hub(history_size=100)
    for seq in range(1, 4):
        trade(hub, AAPL, seq)
    (step,) = plan_resume({AAPL: ResumePoint(2, "e0")}, hub.resume, lambda topic: True)
    assert isinstance(step, Reset)
    assert step.gap.reason == "epoch_changed"


def test_the_plan_skips_a_topic_the_client_dropped_meanwhile() -> None:
    hub = Hub(history_size=8)
    trade(hub, AAPL, 1)
    plan = plan_resume(
        {AAPL: ResumePoint(0, "e1"), MSFT: ResumePoint(0, "e1")},
        hub.resume,
        lambda topic: topic == MSFT,
    )
    assert [step.topic for step in plan] == [MSFT]


def test_the_drivers_time_rule_closes_from_any_state() -> None:
    """``close``: the driver closed the client by a rule of its own (it took nothing for
    its time limit): CLOSED from any state, once."""
    for steps in (0, 1, 2):
        d = machine(grace_s=0.0)
        for _ in range(steps):
            d.observe(500, 0, 0.0, at_fault=True)
        assert d.close(3.0)
        assert d.state is State.CLOSED
        assert d.since == 3.0
        assert not d.degraded
        assert not d.close(4.0)  # closed already: nothing moves
        assert d.since == 3.0
        assert d.observe(2000, 0, 5.0, at_fault=True) is None


def test_a_step_is_wanted_over_the_soft_mark_except_when_suspended_or_in_grace() -> None:
    m = machine(grace_s=1.0)
    assert not m.wants_step(499, 0, 0.0)
    assert m.wants_step(500, 0, 0.0)
    assert m.observe(500, 0, 0.0, at_fault=True) is Action.CONFLATE
    assert not m.wants_step(600, 0, 0.5)  # conflation gets its grace
    assert m.wants_step(600, 0, 1.0)
    assert m.observe(600, 0, 1.0, at_fault=True) is Action.SUSPEND
    assert not m.wants_step(900, 0, 5.0)  # suspended: the driver waits for the low mark
