"""Limits: token buckets under floods, rate verdicts, connection counts, subscription caps.

No sleeps: every ``now`` is passed in (connection, subscription and message-rate floods).
"""

from __future__ import annotations

import math

import pytest

from tickcast.auth.limits import (
    ConnectionCounter,
    RateLimit,
    RateVerdict,
    SubscriptionCap,
    TokenBucket,
)
from tickcast.errors import LimitExceeded

# -- token bucket


def test_bucket_starts_full_and_a_flood_at_one_instant_gets_exactly_burst() -> None:
    bucket = TokenBucket(rate_per_s=20, burst=40)
    allowed = [bucket.allow(now=100.0) for _ in range(400)]
    assert allowed.count(True) == 40
    assert allowed[:40] == [True] * 40


def test_bucket_refills_at_rate() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=5)
    assert sum(bucket.allow(0.0) for _ in range(10)) == 5
    assert not bucket.allow(0.05)  # half a token
    assert bucket.allow(0.1)  # one token after 1/rate seconds
    assert not bucket.allow(0.1)
    assert sum(bucket.allow(0.5) for _ in range(10)) == 4  # 0.4 s -> 4 tokens


def test_bucket_never_holds_more_than_burst() -> None:
    bucket = TokenBucket(rate_per_s=100, burst=3)
    assert sum(bucket.allow(1_000_000.0) for _ in range(10)) == 3
    assert bucket.available(2_000_000.0) == 3


def test_sustained_rate_is_the_configured_rate() -> None:
    bucket = TokenBucket(rate_per_s=20, burst=40)
    # A client sending 100 messages per second for 10 s: the burst plus 20 per second.
    allowed = sum(bucket.allow(i / 100) for i in range(1000))
    assert 40 + 20 * 9 <= allowed <= 40 + 20 * 10


def test_now_going_backwards_is_clamped() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=2)
    assert bucket.allow(10.0)
    assert bucket.allow(10.0)
    assert not bucket.allow(5.0)  # no refill from going backwards, and no error
    assert not bucket.allow(10.5)  # nor a double refill once time catches up
    assert bucket.allow(11.0)


def test_first_call_is_the_start_whatever_the_clock_reads() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=1)
    assert bucket.allow(-50.0)
    assert not bucket.allow(-50.0)
    assert bucket.allow(-49.0)


def test_refused_call_takes_nothing() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=3)
    assert bucket.allow(0.0, cost=2)
    assert not bucket.allow(0.0, cost=2)
    assert bucket.allow(0.0, cost=1)


def test_cost_above_burst_is_never_allowed() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=3)
    assert not bucket.allow(0.0, cost=4)
    assert bucket.retry_after(0.0, cost=4) == math.inf
    assert bucket.available(0.0) == 3


def test_retry_after_says_when_the_next_message_fits() -> None:
    bucket = TokenBucket(rate_per_s=4, burst=2)
    assert bucket.retry_after(0.0) == 0
    bucket.allow(0.0)
    bucket.allow(0.0)
    assert bucket.retry_after(0.0) == pytest.approx(0.25)
    assert bucket.retry_after(0.0, cost=2) == pytest.approx(0.5)
    assert not bucket.allow(0.2)
    assert bucket.allow(0.25)


def test_fractional_refills_add_up_without_float_drift() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=1)
    assert bucket.allow(0.0)
    now = 0.0
    for _ in range(10):
        now += 0.01  # ten steps of 0.01 s: 0.1 s, one token (0.1 * 10 is not exactly 1.0)
        allowed = bucket.allow(now)
    assert allowed


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [(0, 1, "rate_per_s"), (-1, 1, "rate_per_s"), (math.inf, 1, "rate_per_s"), (1, 0, "burst")],
)
def test_bucket_refuses_bad_settings(rate: float, burst: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenBucket(rate, burst)


@pytest.mark.parametrize(
    ("now", "cost", "message"),
    [(math.nan, 1, "now"), (math.inf, 1, "now"), (0.0, 0, "cost"), (0.0, -1, "cost")],
)
def test_bucket_refuses_misuse(now: float, cost: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenBucket(1, 1).allow(now, cost)


# -- rate verdicts


def test_flood_is_refused_then_closed() -> None:
    limit = RateLimit(rate_per_s=20, burst=40, close_after=10)
    verdicts = [limit.check(now=0.0) for _ in range(400)]  # 10x the burst at once
    assert verdicts[:40] == [RateVerdict.ALLOW] * 40
    assert verdicts[40:49] == [RateVerdict.REFUSE] * 9
    assert set(verdicts[49:]) == {RateVerdict.CLOSE}


def test_close_is_final() -> None:
    limit = RateLimit(rate_per_s=1, burst=1, close_after=1)
    assert limit.check(0.0) is RateVerdict.ALLOW
    assert limit.check(0.0) is RateVerdict.CLOSE
    assert limit.check(100.0) is RateVerdict.CLOSE


def test_a_client_that_slows_down_is_forgiven() -> None:
    limit = RateLimit(rate_per_s=1, burst=1, close_after=3)
    assert limit.check(0.0) is RateVerdict.ALLOW
    assert limit.check(0.0) is RateVerdict.REFUSE
    assert limit.check(0.0) is RateVerdict.REFUSE
    assert limit.check(1.0) is RateVerdict.ALLOW  # the refusal streak ends
    assert limit.check(1.0) is RateVerdict.REFUSE
    assert limit.check(1.0) is RateVerdict.REFUSE
    assert limit.check(1.0) is RateVerdict.CLOSE


def test_rate_limit_refuses_bad_close_after() -> None:
    with pytest.raises(ValueError, match="close_after"):
        RateLimit(1, 1, close_after=0)


def test_one_connection_flooding_does_not_touch_another() -> None:
    flooder, quiet = RateLimit(1, 2), RateLimit(1, 2)
    for _ in range(100):
        flooder.check(0.0)
    assert flooder.check(0.0) is RateVerdict.CLOSE
    assert quiet.check(0.0) is RateVerdict.ALLOW


# -- connections per user


def test_sixth_connection_is_refused_and_release_frees_a_slot() -> None:
    counter = ConnectionCounter(max_per_user=5)
    assert all(counter.acquire(42) for _ in range(5))
    assert not counter.acquire(42)
    assert counter.count(42) == 5  # the refusal counted nothing
    counter.release(42)
    assert counter.count(42) == 4
    assert counter.acquire(42)
    assert not counter.acquire(42)


def test_users_are_counted_separately() -> None:
    counter = ConnectionCounter(max_per_user=1)
    assert counter.acquire(1)
    assert counter.acquire(2)
    assert not counter.acquire(1)
    assert (counter.total, counter.users) == (2, 2)


def test_anonymous_connections_are_not_counted() -> None:
    counter = ConnectionCounter(max_per_user=1)
    assert all(counter.acquire(None) for _ in range(100))
    assert counter.count(None) == 0
    assert counter.total == 0
    counter.release(None)


def test_users_at_zero_are_forgotten() -> None:
    counter = ConnectionCounter(max_per_user=5)
    for user in range(1000):
        counter.acquire(user)
        counter.release(user)
    assert (counter.total, counter.users) == (0, 0)


def test_no_limit_when_max_is_none() -> None:
    counter = ConnectionCounter(max_per_user=None)
    assert all(counter.acquire("ada") for _ in range(1000))
    assert counter.count("ada") == 1000


def test_release_without_acquire_is_a_bug() -> None:
    counter = ConnectionCounter(max_per_user=5)
    with pytest.raises(ValueError, match="release without acquire"):
        counter.release(42)
    counter.acquire(42)
    counter.release(42)
    with pytest.raises(ValueError, match="release without acquire"):
        counter.release(42)


def test_connection_counter_refuses_bad_max() -> None:
    with pytest.raises(ValueError, match="max_per_user"):
        ConnectionCounter(0)


# -- subscriptions per connection


def test_subscription_cap_counts_room() -> None:
    cap = SubscriptionCap(50)
    assert cap.room(0) == 50
    assert cap.room(49) == 1
    assert cap.room(60) == 0
    assert cap.allows(49, 1)
    assert not cap.allows(50, 1)
    assert cap.allows(50, 0)


def test_subscription_over_the_cap_raises_limit_exceeded() -> None:
    cap = SubscriptionCap(50)
    cap.check(0, 50)
    with pytest.raises(LimitExceeded, match="at most 50 subscriptions"):
        cap.check(49, 2)


def test_subscription_cap_refuses_bad_max() -> None:
    with pytest.raises(ValueError, match="max_subscriptions"):
        SubscriptionCap(0)


def test_subscription_cap_refuses_in_the_words_it_was_given() -> None:
    cap = SubscriptionCap(3, "Too many subscriptions: at most {max} per connection")
    assert cap.message == "Too many subscriptions: at most 3 per connection"
    with pytest.raises(LimitExceeded) as refused:
        cap.check(3, 1)
    assert str(refused.value) == "Too many subscriptions: at most 3 per connection"
    default = SubscriptionCap(50)
    assert default.message == (
        "Too many symbols: at most 50 subscriptions (symbol x channel) per connection"
    )
