"""FeedPolicy: failover, failback, staleness, back-off (pure: time is a number here)."""

from __future__ import annotations

import random

from tickcast.providers.calendar import AlwaysOpen
from tickcast.providers.failover import Failure, FeedPolicy, State
from tickcast.retry import Backoff

STALE = 10.0
FAILBACK = 5.0


class Closed:
    def is_open(self, ts: float) -> bool:
        return False


def policy(names: tuple[str, ...] = ("alpaca", "polygon", "simulator"), **kw: object) -> FeedPolicy:
    options: dict[str, object] = {
        "stale_s": STALE,
        "failback_s": FAILBACK,
        "backoff": Backoff(base_s=1.0, cap_s=8.0),
        "limit_backoff_s": 30.0,
        "rng": random.Random(7),
    }
    calendar = kw.pop("calendar", AlwaysOpen())
    options.update(kw)
    feed = FeedPolicy(names, calendar, **options)  # type: ignore[arg-type]
    feed.start(0.0)
    return feed


def run_timers(feed: FeedPolicy, until: float) -> float:
    """Call on_timer at every deadline up to ``until``; the time reached."""
    now = 0.0
    for _ in range(10_000):  # a deadline that never moves would be a bug: fail, not hang
        deadline = feed.next_deadline(now)
        if deadline is None or deadline > until:
            return now
        now = max(now, deadline)
        feed.on_timer(now)
    raise AssertionError("next_deadline does not advance")


def test_start_runs_only_the_preferred_provider() -> None:
    feed = policy()
    assert feed.should_run() == {"alpaca"}
    assert feed.active == ""
    feed.on_up("alpaca", 1.0)
    assert feed.active == "alpaca"
    assert feed.on_data("alpaca", 1.1) is True


def test_failure_fails_over_to_the_next_and_backs_off() -> None:
    feed = policy()
    feed.on_up("alpaca", 1.0)
    feed.on_failure("alpaca", Failure.TRANSIENT, 2.0, "connection closed")
    assert feed.state("alpaca") is State.BACKOFF
    assert feed.should_run() == {"polygon"}
    assert feed.active == ""
    feed.on_up("polygon", 2.5)
    assert feed.active == "polygon"
    assert feed.failovers == 1
    assert feed.on_data("alpaca", 2.6) is False  # a recovering provider's data is not used


def test_recovered_preferred_provider_fails_back_after_staying_up() -> None:
    feed = policy()
    feed.on_up("alpaca", 1.0)
    feed.on_failure("alpaca", Failure.TRANSIENT, 2.0, "closed")
    feed.on_up("polygon", 2.1)
    retry_at = feed.next_deadline(2.1)
    assert retry_at is not None
    assert 2.0 <= retry_at <= 3.0  # first attempt: jitter within the 1 s base
    feed.on_timer(retry_at)
    assert feed.should_run() == {"alpaca", "polygon"}
    feed.on_up("alpaca", retry_at + 0.1)
    feed.on_data("alpaca", retry_at + 0.2)
    assert feed.active == "polygon"  # not yet: it must deliver data for failback_s
    feed.on_data("polygon", retry_at + 1)
    feed.on_data("alpaca", retry_at + 1)
    assert feed.next_deadline(retry_at + 1) == retry_at + 0.2 + FAILBACK
    feed.on_timer(retry_at + 0.2 + FAILBACK)
    assert feed.active == "alpaca"
    assert feed.should_run() == {"alpaca"}
    assert feed.state("polygon") is State.STOPPED
    assert feed.failbacks == 1


def test_silence_while_the_market_is_open_is_a_failure() -> None:
    feed = policy()
    feed.on_up("alpaca", 0.0)
    feed.on_data("alpaca", 1.0)
    assert feed.next_deadline(1.0) == 1.0 + STALE
    feed.on_timer(1.0 + STALE)
    assert feed.state("alpaca") is State.BACKOFF
    assert feed.should_run() == {"polygon"}
    (stale,) = [t for t in feed.take_transitions() if t.state is State.BACKOFF]
    assert stale.reason.startswith(f"no data for {STALE} s")


def test_silence_while_the_market_is_closed_is_normal() -> None:
    feed = policy(calendar=Closed())
    feed.on_up("alpaca", 0.0)
    feed.on_timer(10 * STALE)
    assert feed.state("alpaca") is State.UP
    assert feed.active == "alpaca"


def test_a_start_that_never_comes_up_lets_the_next_provider_serve() -> None:
    feed = policy()
    feed.on_timer(STALE)
    assert feed.should_run() == {"alpaca", "polygon"}  # alpaca keeps trying
    feed.on_up("polygon", STALE + 1)
    assert feed.active == "polygon"


def test_refused_credentials_disable_a_provider_for_good() -> None:
    feed = policy()
    feed.on_failure("alpaca", Failure.AUTH, 1.0, "auth failed")
    assert feed.state("alpaca") is State.DISABLED
    feed.on_up("polygon", 1.5)
    run_timers(feed, 10_000.0)
    assert feed.state("alpaca") is State.DISABLED
    assert "alpaca" not in feed.should_run()
    assert not feed.exhausted


def test_every_provider_refused_is_exhausted() -> None:
    feed = policy(("alpaca", "polygon"))
    feed.on_failure("alpaca", Failure.AUTH, 1.0, "auth failed")
    feed.on_failure("polygon", Failure.AUTH, 1.0, "auth failed")
    assert feed.exhausted
    assert feed.should_run() == set()


def test_a_connection_limit_waits_the_long_back_off() -> None:
    feed = policy(("alpaca",))
    feed.on_failure("alpaca", Failure.LIMIT, 1.0, "406 connection limit exceeded")
    deadline = feed.next_deadline(1.0)
    assert deadline is not None
    assert deadline >= 31.0


def test_back_off_grows_and_stays_capped_without_a_storm() -> None:
    feed = policy(("alpaca",))
    now = 0.0
    delays = []
    for _ in range(12):
        feed.on_failure("alpaca", Failure.TRANSIENT, now, "refused")
        deadline = feed.next_deadline(now)
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
        feed.on_timer(now)
        assert feed.state("alpaca") is State.STARTING
    assert all(d <= 8.0 for d in delays)
    assert sum(delays[6:]) > sum(delays[:3])  # the ceiling grew from 1 s to 8 s


def test_attempts_reset_after_staying_up() -> None:
    feed = policy(("alpaca",))
    for _ in range(5):
        feed.on_failure("alpaca", Failure.TRANSIENT, 0.0, "refused")
        feed.on_timer(100.0)
    feed.on_up("alpaca", 100.0)
    feed.on_failure("alpaca", Failure.TRANSIENT, 200.0, "closed")
    deadline = feed.next_deadline(200.0)
    assert deadline is not None
    assert deadline - 200.0 <= 1.0  # back to the base ceiling


def test_the_last_provider_is_retried_in_place() -> None:
    feed = policy(("alpaca", "simulator"))
    feed.on_failure("alpaca", Failure.TRANSIENT, 0.0, "closed")
    feed.on_up("simulator", 0.1)
    feed.on_failure("simulator", Failure.TRANSIENT, 1.0, "crashed")
    assert feed.active == ""
    run_timers(feed, 20.0)
    assert "simulator" in feed.should_run()


def test_a_preferred_provider_that_is_up_takes_over_at_once_when_the_cursor_is_down() -> None:
    feed = policy(("alpaca", "polygon"))
    feed.on_timer(STALE)  # alpaca slow: polygon starts
    feed.on_up("alpaca", STALE + 0.5)  # alpaca comes up before polygon: no reason to wait
    assert feed.active == "alpaca"
    assert feed.should_run() == {"alpaca"}


def test_transitions_name_the_active_provider() -> None:
    feed = policy(("alpaca", "simulator"))
    feed.on_up("alpaca", 1.0)
    feed.on_failure("alpaca", Failure.TRANSIENT, 2.0, "closed")
    feed.on_up("simulator", 2.1)
    log = [(t.provider, t.state.value, t.active) for t in feed.take_transitions()]
    assert log == [
        ("alpaca", "starting", ""),
        ("alpaca", "up", "alpaca"),
        ("alpaca", "backoff", ""),
        ("simulator", "starting", ""),
        ("simulator", "up", "simulator"),
    ]
    assert feed.take_transitions() == []


def test_a_session_that_is_up_but_silent_never_takes_over_from_a_working_one() -> None:
    feed = policy(("alpaca", "polygon"))
    feed.on_up("alpaca", 0.0)
    feed.on_failure("alpaca", Failure.TRANSIENT, 1.0, "closed")
    feed.on_up("polygon", 1.1)
    now = 1.1
    for _ in range(200):  # ten minutes of polygon data, alpaca subscribed but mute
        now += 3.0
        feed.on_data("polygon", now)
        if feed.state("alpaca") is State.STARTING:
            feed.on_up("alpaca", now)
        feed.on_timer(now)
    assert feed.active == "polygon"
    assert feed.failbacks == 0


def test_a_quiet_close_is_not_a_failure_at_the_next_open() -> None:
    class Session:
        def is_open(self, ts: float) -> bool:
            return not 200.0 <= ts < 1000.0

    feed = policy(("alpaca", "polygon"), calendar=Session())
    feed.on_up("alpaca", 0.0)
    feed.on_data("alpaca", 199.0)
    for now in range(200, 1001):  # the driver calls on_timer every second while closed
        feed.on_timer(float(now))
    assert feed.state("alpaca") is State.UP
    assert feed.active == "alpaca"
    feed.on_timer(1000.0 + STALE)  # silence since the open does count
    assert feed.state("alpaca") is State.BACKOFF


def test_an_unwatched_provider_is_never_judged_silent() -> None:
    feed = policy(("replay", "simulator"), unwatched=frozenset({"replay"}))
    feed.on_up("replay", 0.0)
    assert feed.next_deadline(0.0) is None
    feed.on_timer(10 * STALE)
    assert feed.active == "replay"


def test_every_deadline_leads_to_its_action() -> None:
    rng = random.Random(61)
    for _ in range(50):
        feed = policy(("a", "b", "c"))
        now = 0.0
        for _ in range(100):
            now = run_timers_from(feed, now, now + rng.choice((0.001, 0.1, 1.0, 3.3, 9.99)))
            name = rng.choice(("a", "b", "c"))
            action = rng.random()
            if feed.state(name) in (State.STARTING, State.UP):
                if action < 0.4:
                    feed.on_data(name, now)
                elif action < 0.6:
                    feed.on_up(name, now)
                elif action < 0.7:
                    feed.on_failure(name, Failure.TRANSIENT, now, "x")


def run_timers_from(feed: FeedPolicy, now: float, until: float) -> float:
    """The driver's loop: act at every deadline up to ``until``; each must be acted on."""
    for _ in range(10_000):
        deadline = feed.next_deadline(now)
        if deadline is None or deadline > until:
            return max(now, until)
        if deadline < now:
            raise AssertionError(f"a deadline in the past was not acted on: {deadline} < {now}")
        now = deadline
        feed.on_timer(now)
    raise AssertionError("next_deadline does not advance")
