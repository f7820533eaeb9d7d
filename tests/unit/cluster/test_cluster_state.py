"""The pure parts of a cluster: the follower's judge, the members' table, the lease term."""

from __future__ import annotations

from tickcast.bus.base import Lease
from tickcast.bus.leader import STEP_DOWN, Term
from tickcast.bus.wire import Heartbeat
from tickcast.cluster.members import Members
from tickcast.cluster.publisher import Follower, Verdict


def test_the_follower_applies_the_next_batch_and_ignores_its_own_and_repeats() -> None:
    f = Follower("b")
    assert f.judge("a", "e1", 5, 1) is Verdict.JOINED  # joining mid-term is no gap
    assert f.judge("a", "e1", 6, 1) is Verdict.NEXT
    assert f.judge("a", "e1", 6, 1) is Verdict.DUPLICATE
    assert f.judge("b", "e9", 1, 9) is Verdict.OWN
    assert (f.epoch, f.n, f.leader) == ("e1", 6, "a")


def test_a_skipped_batch_is_a_gap() -> None:
    f = Follower("b")
    f.judge("a", "e1", 1, 1)
    assert f.judge("a", "e1", 3, 1) is Verdict.GAP
    assert f.judge("a", "e1", 4, 1) is Verdict.NEXT


def test_a_new_leader_opens_a_term_and_a_deposed_one_is_ignored() -> None:
    f = Follower("c")
    f.judge("a", "e1", 1, 1)
    assert f.judge("b", "e2", 1, 2) is Verdict.TERM
    assert f.judge("a", "e1", 2, 1) is Verdict.DEPOSED  # the old leader's late batch
    assert f.judge("b", "e2", 2, 2) is Verdict.NEXT


def test_a_new_term_seen_after_its_first_batch_is_a_gap() -> None:
    f = Follower("c")
    f.judge("a", "e1", 1, 1)
    assert f.judge("b", "e2", 3, 2) is Verdict.GAP


def test_a_leader_that_steps_down_judges_the_next_leader_from_its_own_epoch() -> None:
    f = Follower("a")
    f.led("e1", 1)
    f.sent(40)
    assert f.judge("b", "e2", 1, 2) is Verdict.TERM
    f = Follower("a")
    f.led("e1", 1)
    assert f.judge("b", "e2", 2, 2) is Verdict.GAP


def _hb(node: str, leader: str | None = None, **users: int) -> Heartbeat:
    return Heartbeat(node, 0.0, leader=leader, users=users)


def test_members_come_with_a_heartbeat_and_go_when_silent_or_leaving() -> None:
    m = Members("a", expiry_s=3.0)
    assert m.heard(_hb("b"), 10.0) is True
    assert m.heard(_hb("b"), 11.0) is False
    assert m.heard(_hb("a"), 11.0) is False  # its own
    m.heard(_hb("c"), 12.0)
    assert m.expire(13.9) == []
    assert m.expire(14.0) == ["b"]
    assert "c" in m
    assert len(m) == 1
    assert m.left("c") is True
    assert len(m) == 0


def test_a_users_connections_elsewhere_are_summed_and_kept_current() -> None:
    m = Members("a", expiry_s=3.0)
    m.heard(_hb("b", **{"7": 2}), 0.0)
    m.heard(_hb("c", **{"7": 1, "8": 4}), 0.0)
    assert m.connections_of("7") == 3
    m.users("b", {"7": 0})
    assert m.connections_of("7") == 1
    m.users("c", {"8": 5})
    assert m.connections_of("8") == 5
    m.users("zz", {"7": 9})  # not a member (yet): nothing
    assert m.connections_of("7") == 1


def test_a_leader_steps_down_before_its_lease_can_lapse() -> None:
    term = Term(5.0)
    term.granted(Lease("l", "a", 1), sent_at=100.0)
    assert term.leading
    assert not term.expired(100.0 + STEP_DOWN * 5.0 - 0.01)
    assert term.expired(100.0 + STEP_DOWN * 5.0)
    assert STEP_DOWN * 5.0 < 5.0  # it stops before another node may take the lease
    assert term.renewed(True, sent_at=102.0)
    assert not term.expired(103.0)
    assert not term.renewed(False, sent_at=104.0)
    assert not term.leading


def test_a_partial_heartbeat_keeps_the_counts_its_users_messages_carry() -> None:
    m = Members("a", expiry_s=3.0)
    m.heard(Heartbeat("b", 0.0, users_partial=True), 0.0)
    m.users("b", {str(i): 1 for i in range(3000)})
    m.heard(Heartbeat("b", 0.0, users_partial=True), 1.0)  # the next beat: still there
    assert m.connections_of("2999") == 1
    m.heard(_hb("b", **{"7": 2}), 2.0)  # a whole heartbeat replaces them
    assert m.connections_of("2999") == 0
    assert m.connections_of("7") == 2
