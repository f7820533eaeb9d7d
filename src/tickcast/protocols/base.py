"""The session contract: what every client protocol offers its driver, as data.

Rules: pure. A session turns what a client sends into typed, neutral **commands** (the
front carries them out against the hub) and its own replies into frames; the front
answers it with typed **replies** (``answer``), never with wire bytes: only the session
knows its protocol's words. Every protocol session (``native/``, ``envelope/``, the
test-only echo) implements ``Session``; ``transport/connection.py`` drives any of them.

Commands (session -> front)::

    Subscribe(topics, resume,       add topics; resume maps a topic to a ResumePoint;
              max_rate, restated)   max_rate (per second) for them and the held topics
                                    the request named again (restated)
    SubscribeChannel(channel)       every topic of a channel, present and future
    UnsubscribeChannel(channel)     drop a channel-wide subscription
    Unsubscribe(topics)             drop topics the session held
    Authenticate(token)             check these credentials, then answer

Time: a session reads no clock. Every call that happens at a time gets ``now``, a
``tickcast.clock.Now`` read once by the driver: ``now.mono`` (monotonic seconds) for
every deadline (idle, heartbeat and authentication timeouts; what ``next_deadline``
returns and ``handle_timer`` compares), ``now.wall`` (epoch seconds UTC) only for the
stamps its replies carry (a control message's ``ts``). A wall clock stepped back or
forward therefore neither fires nor delays a deadline.

A ping is answered inside the session by both protocols; a protocol whose front must
answer it would add a command here.

Replies (front -> session, ``answer(reply, now)``)::

    Authenticated(user_id)          the credentials were good
    Refused(message, code)          they were not (or could not be checked): say why, close
    ResumeGap(topic, ...)           a resume point cannot be replayed: a snapshot follows
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple, Protocol

from tickcast.auth.limits import SubscriptionCap
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.model.envelope import ResumePoint
from tickcast.model.topic import Topic
from tickcast.protocols.wire import Encoded

__all__ = [
    "MAX_RATE",
    "MIN_RATE",
    "Authenticate",
    "Authenticated",
    "Command",
    "Refused",
    "Reply",
    "ResumeGap",
    "ResumePoint",
    "Session",
    "Subscribe",
    "SubscribeChannel",
    "Unsubscribe",
    "UnsubscribeChannel",
    "cap_of",
]

#: The highest ``Subscribe.max_rate`` a session accepts (messages per second per topic).
MAX_RATE: float = 1000.0
#: The lowest: one message in 1,000 s (about 17 minutes). A lower rate would hold the
#: latest value back for so long (5e-324: for ever) that "always the latest value" no
#: longer holds.
MIN_RATE: float = 0.001

#: No resume points (the default of ``Subscribe.resume``; shared, read-only).
NO_RESUME: Mapping[Topic, ResumePoint] = MappingProxyType({})


# -- commands: what a client asked for, for the front to carry out


class Subscribe(NamedTuple):
    """Add ``topics`` (only ones the session did not hold). ``resume`` maps a topic to
    the last position the client saw on it (epoch None for a bare seq: the current
    epoch); a topic without one gets the current value.

    ``max_rate`` (messages per second, ``MIN_RATE`` <= max_rate <= ``MAX_RATE``; None: no limit)
    applies to ``topics`` and to ``restated``, topics the session held already that the
    request names again: each gets this rate, replacing the one it had (None lifts it).
    The front applies it to conflatable topics only (quotes: at most that many a second,
    always the latest value); a reliable topic's items are never held back by it.
    A protocol that carries no rate leaves both at their defaults."""

    topics: tuple[Topic, ...]
    resume: Mapping[Topic, ResumePoint] = NO_RESUME
    max_rate: float | None = None
    restated: tuple[Topic, ...] = ()


class SubscribeChannel(NamedTuple):
    """Every topic of ``channel``, present and future (channel-wide; no snapshot). The
    front refuses it with the session's ``send_error`` for a channel it does not know or
    the client may not read whole; the front holds what it granted (the session need not)."""

    channel: str


class UnsubscribeChannel(NamedTuple):
    """Drop the channel-wide subscription to ``channel`` (nothing if none)."""

    channel: str


class Unsubscribe(NamedTuple):
    """Drop ``topics`` (only ones the session held)."""

    topics: tuple[Topic, ...]


class Authenticate(NamedTuple):
    """The client sent credentials; the front answers ``Authenticated`` or ``Refused``."""

    token: str


Command = Subscribe | SubscribeChannel | UnsubscribeChannel | Unsubscribe | Authenticate


# -- replies: the front's answers, which the session turns into its protocol's words


class Authenticated(NamedTuple):
    """The credentials of an ``Authenticate`` were good: the client is ``user_id``
    (None only for credentials that name no user, which no issuer makes today)."""

    user_id: int | None


class Refused(NamedTuple):
    """The credentials were refused (3500, 3501, 3001...) or could not be checked (1013,
    1011): the session says ``message`` and closes with ``code``."""

    message: str
    code: CloseCode


class ResumeGap(NamedTuple):
    """A resume point of ``topic`` cannot be replayed; the current value (if any)
    follows, and the session tells the client first.

    Attributes:
        topic: the topic resumed.
        requested: the seq the client last saw.
        latest: the newest seq published on the topic (0 when none).
        reason: ``"history_gap"`` (not held any more, or not yet) or ``"epoch_changed"``
            (the point counts in another numbering: the server restarted).
        epoch: the topic's current epoch when the client named one in its resume point;
            None for a bare seq, whose client is told exactly what it was told before
            epochs.
    """

    topic: Topic
    requested: int
    latest: int
    reason: str
    epoch: str | None


Reply = Authenticated | Refused | ResumeGap


class Session(Protocol):
    """The sans-I/O surface every protocol session offers its driver.

    ``now`` is the time of the event, passed in (the session reads no clock): a
    ``Now``, whose ``mono`` the deadlines are kept in and whose ``wall`` stamps replies.
    """

    close_reason: CloseCode | None

    @property
    def topics(self) -> Collection[Topic]:
        """The topics the session holds (as its commands told the front)."""
        ...

    def receive_text(self, data: str, now: Now) -> None:
        """Handle one text message from the client."""
        ...

    def receive_bytes(self, data: bytes, now: Now) -> None:
        """Handle one binary message from the client."""
        ...

    def handle_timer(self, now: Now) -> None:
        """A deadline (``next_deadline``) may have come: act on those ``now.mono`` has
        reached (a timer may fire early or late; the session decides by the time)."""
        ...

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` is next due, in monotonic seconds, or None."""
        ...

    def frames_to_send(self) -> list[Encoded]:
        """The replies made since the last call (control items), in order."""
        ...

    def commands_received(self) -> list[Command]:
        """The commands made since the last call, in order."""
        ...

    def answer(self, reply: Reply, now: Now) -> None:
        """The front's answer to a command: the session replies in its own words."""
        ...

    def send_error(self, message: str, now: Now) -> None:
        """Queue an error reply (a refused message; the session stays usable)."""
        ...

    def release(self, topics: Iterable[Topic]) -> None:
        """The front dropped ``topics`` (the connection closed): forget them."""
        ...


def cap_of(
    cap: SubscriptionCap | None, max_subscriptions: int | None, message: str
) -> SubscriptionCap:
    """A session's cap: ``cap`` as given, or one of ``max_subscriptions`` topics that
    refuses in ``message`` (the protocol's words; see ``SubscriptionCap``)."""
    if cap is not None:
        if max_subscriptions is not None:
            raise TypeError("give a session cap or max_subscriptions, not both")
        return cap
    if max_subscriptions is None:
        raise TypeError("a session needs cap or max_subscriptions")
    return SubscriptionCap(max_subscriptions, message)
