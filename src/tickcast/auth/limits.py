"""Limits: token buckets, message-rate verdicts, connection counts, subscription caps.

Rules: pure. Objects hold counters and take ``now`` (monotonic seconds: any clock that
never jumps, as long as one object always gets the same clock) and return verdicts; they
never sleep, read a clock or close anything. The driver acts on the verdict, and each
verdict concerns one connection or one user: refusing one disturbs nothing else.

Defaults (settings.py): 5 connections per user, 50 subscriptions per connection, 20
messages per second with bursts of 40 per connection.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Hashable
from typing import Final

from tickcast.errors import LimitExceeded

#: Slack for float arithmetic in the bucket: ``0.1 * 10`` tokens count as 1.
_EPSILON: Final = 1e-9


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate_per_s``; each message costs one.

    The bucket starts full, so a client may send ``burst`` messages at once and then
    ``rate_per_s`` per second on average. If ``now`` goes backwards (a driver bug or two
    clocks), it is clamped to the latest ``now`` seen: no refill, no error.

    Attributes:
        rate_per_s: tokens added per second (> 0).
        burst: the bucket's capacity in tokens (>= 1); also the most one message may cost.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"rate_per_s must be a positive number, not {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        self.rate_per_s = float(rate_per_s)
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self, now: float, cost: float = 1) -> bool:
        """Take ``cost`` tokens if there are enough at ``now``; whether they were taken.

        A refused call takes nothing. A ``cost`` above ``burst`` is never allowed.
        """
        self._refill(now, cost)
        if self._tokens + _EPSILON < cost:
            return False
        self._tokens = max(0.0, self._tokens - cost)
        return True

    def retry_after(self, now: float, cost: float = 1) -> float:
        """Seconds from ``now`` until ``allow(cost=cost)`` would succeed; 0 if it would now.

        ``math.inf`` if ``cost`` is above ``burst``. Takes no tokens.
        """
        self._refill(now, cost)
        if cost > self.burst:
            return math.inf
        missing = cost - self._tokens
        return 0.0 if missing <= _EPSILON else missing / self.rate_per_s

    def available(self, now: float) -> float:
        """Tokens in the bucket at ``now`` (for metrics and tests). Takes no tokens."""
        self._refill(now, 1)
        return self._tokens

    def _refill(self, now: float, cost: float) -> None:
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite number of seconds, not {now!r}")
        if not (math.isfinite(cost) and cost > 0):
            raise ValueError(f"cost must be a positive number, not {cost!r}")
        if self._last is None:
            self._last = now
        elif now > self._last:
            elapsed = now - self._last
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
            self._last = now


class RateVerdict(enum.Enum):
    """What to do with one inbound message."""

    ALLOW = "allow"  # handle it
    REFUSE = "refuse"  # drop it and answer with an error (policy.rate_limited)
    CLOSE = "close"  # the client keeps flooding: close the connection (1008)


class RateLimit:
    """Inbound message rate per connection: a token bucket plus a flood verdict.

    A message over the rate is refused with an error and the connection stays open, so a
    client that slows down carries on. ``close_after`` refusals in a row (no allowed
    message in between) mean the client ignores the errors: the verdict becomes CLOSE,
    and stays CLOSE for every later message.

    Attributes:
        bucket: the token bucket (``rate_per_s``, ``burst``).
        close_after: consecutive refused messages before CLOSE (>= 1).
    """

    __slots__ = ("_closed", "_refused", "bucket", "close_after")

    def __init__(self, rate_per_s: float, burst: int, close_after: int = 10) -> None:
        if close_after < 1:
            raise ValueError(f"close_after must be at least 1, not {close_after!r}")
        self.bucket = TokenBucket(rate_per_s, burst)
        self.close_after = close_after
        self._refused = 0
        self._closed = False

    def check(self, now: float) -> RateVerdict:
        """The verdict for one message arriving at ``now``."""
        if self._closed:
            return RateVerdict.CLOSE
        if self.bucket.allow(now):
            self._refused = 0
            return RateVerdict.ALLOW
        self._refused += 1
        if self._refused >= self.close_after:
            self._closed = True
            return RateVerdict.CLOSE
        return RateVerdict.REFUSE


class ConnectionCounter:
    """Open connections per user, capped at ``max_per_user``.

    Keys are any hashable value (a user id; a driver may run a second counter keyed by
    client IP). The key None, an anonymous connection, is never counted and always
    acquires: it belongs to no user, and capping anonymous clients is a per-IP or
    ``--limit-concurrency`` matter (handshake exhaustion). A user whose count drops to zero
    is forgotten, so the counter does not grow with the number of users ever seen.

    Use: ``if not counter.acquire(key): refuse``, then ``release(key)`` exactly once when
    the connection ends (in a ``finally``).

    In a cluster the cap is the cluster's: ``elsewhere(key)`` says how many connections
    the user holds on the other nodes (counted against the cap with this node's), and
    ``listener(key, count)`` is told each change of this node's count, to share it.

    Attributes:
        max_per_user: connections one user may hold at once; None disables the limit.
        elsewhere: the user's connections on other nodes (None: a node alone).
        listener: called with a user's key and this node's new count for it.
    """

    __slots__ = ("_counts", "elsewhere", "listener", "max_per_user")

    def __init__(self, max_per_user: int | None) -> None:
        if max_per_user is not None and max_per_user < 1:
            raise ValueError(f"max_per_user must be at least 1 or None, not {max_per_user!r}")
        self.max_per_user = max_per_user
        self._counts: dict[Hashable, int] = {}
        self.elsewhere: Callable[[Hashable], int] | None = None
        self.listener: Callable[[Hashable, int], None] | None = None

    def acquire(self, user_key: Hashable | None) -> bool:
        """Count one more connection for ``user_key``; False (and nothing counted) if full."""
        if user_key is None:
            return True
        held = self._counts.get(user_key, 0)
        if self.max_per_user is not None:
            others = 0 if self.elsewhere is None else self.elsewhere(user_key)
            if held + others >= self.max_per_user:
                return False
        self._counts[user_key] = held + 1
        if self.listener is not None:
            self.listener(user_key, held + 1)
        return True

    def release(self, user_key: Hashable | None) -> None:
        """Count one connection fewer for ``user_key``.

        Raises:
            ValueError: ``user_key`` holds no connection (a release without an acquire is
                a bug in the caller).
        """
        if user_key is None:
            return
        held = self._counts.get(user_key, 0)
        if held <= 0:
            raise ValueError(f"release without acquire for {user_key!r}")
        if held == 1:
            del self._counts[user_key]
        else:
            self._counts[user_key] = held - 1
        if self.listener is not None:
            self.listener(user_key, held - 1)

    def snapshot(self) -> dict[str, int]:
        """Every counted user's count, by the key's string form."""
        return {str(key): n for key, n in self._counts.items()}

    def count(self, user_key: Hashable | None) -> int:
        """Connections ``user_key`` holds (0 for None: anonymous ones are not counted)."""
        return 0 if user_key is None else self._counts.get(user_key, 0)

    @property
    def total(self) -> int:
        """Counted connections across all users."""
        return sum(self._counts.values())

    @property
    def users(self) -> int:
        """Users holding at least one connection."""
        return len(self._counts)


#: The native front's wording of a refused subscription (``SubscriptionCap``'s default).
SUBSCRIPTION_CAP_MESSAGE: Final = (
    "Too many symbols: at most {max} subscriptions (symbol x channel) per connection"
)


class SubscriptionCap:
    """The most topics (symbol x channel) one connection may hold.

    Args:
        max_subscriptions: the cap (>= 1).
        message: the client-facing refusal, ``{max}`` standing for the cap: each front
            keeps its own wording (the native front's by default).
    """

    __slots__ = ("max_subscriptions", "message")

    def __init__(self, max_subscriptions: int, message: str = SUBSCRIPTION_CAP_MESSAGE) -> None:
        if max_subscriptions < 1:
            raise ValueError(f"max_subscriptions must be at least 1, not {max_subscriptions!r}")
        self.max_subscriptions = max_subscriptions
        self.message = message.format(max=max_subscriptions)

    def room(self, current: int) -> int:
        """How many more topics a connection holding ``current`` may add."""
        return max(0, self.max_subscriptions - current)

    def allows(self, current: int, adding: int) -> bool:
        """Whether ``adding`` new topics to ``current`` ones stays within the cap."""
        return current + adding <= self.max_subscriptions

    def check(self, current: int, adding: int) -> None:
        """Raise if ``adding`` new topics to ``current`` ones exceeds the cap.

        All or nothing: a request that does not fit adds nothing, and the connection and
        its existing subscriptions stay as they were.

        Raises:
            LimitExceeded: with the client-facing ``message``.
        """
        if not self.allows(current, adding):
            raise LimitExceeded(self.message)
