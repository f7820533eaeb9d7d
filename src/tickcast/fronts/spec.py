"""The front contract's types: what a front says (``FrontSpec``), what it is given
(``FrontContext``, with the hub as ``Subscriptions``), what a new client gets
(``Opened``) and a protocol's words for a slow client's suspended streams
(``Notices``). ``fronts/base.py`` re-exports them: a front imports them from there.

A front's defaults live here: one topic per subscription (``expand``), the cached value
as its snapshot (``snapshot``), and who may read what from the channel registry's
``Readers`` (``may_read``, ``may_read_channel``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from starlette.types import Scope

from tickcast.auth.credentials import Principal
from tickcast.clock import Clock
from tickcast.closecodes import CloseCode
from tickcast.config.groups import LimitsSettings, OutboxSettings, ServerSettings
from tickcast.fronts.guard import Guard, UserCap
from tickcast.hub.history import Gap
from tickcast.hub.hub import Subscriber
from tickcast.hub.pump import Pumps
from tickcast.model.channel import Channels, Readers
from tickcast.model.envelope import Envelope, ResumePoint
from tickcast.model.topic import Event, Topic
from tickcast.observability.faults import Faults
from tickcast.observability.stats import Stats
from tickcast.protocols.base import Session
from tickcast.protocols.wire import Codec, Encoded
from tickcast.transport.headed import Heads


class Subscriptions(Protocol):
    """The hub as a front sees it: subscriptions, resume and encoding; no publish."""

    codecs: dict[str, Codec]
    channels: Channels

    def subscribe(self, subscriber: Subscriber, topic: Topic) -> Envelope | None: ...
    def unsubscribe(self, subscriber: Subscriber, topic: Topic) -> None: ...
    def subscribe_channel(self, subscriber: Subscriber, channel: str) -> None: ...
    def conflation_key(self, topic: Topic) -> str | None: ...
    def position(self, topic: Topic) -> tuple[str, int] | None: ...
    def unsubscribe_channel(self, subscriber: Subscriber, channel: str) -> None: ...
    def current(self, channel: str) -> list[Envelope]: ...
    def resume(self, topic: Topic, point: ResumePoint) -> list[Envelope] | Gap: ...
    def encode(self, wire: str, envelope: Envelope) -> Encoded: ...


@dataclass(frozen=True, slots=True, eq=False)
class FrontContext:
    """What a front may use; built once by ``app.build_app``.

    Attributes:
        hub: subscriptions, resume, encoding (publishing goes through ``publisher``).
        publisher: publishes what the gateway computes itself (a fresh value).
        pumps: the flush schedulers, one per batching window (a connection gets its
            outbox's: ``pumps.get(window_s)``).
        clock: the node's clock: ``clock.now()`` is what a session is opened and
            answered at (monotonic for its deadlines, wall for its stamps).
        stats, faults: the gateway's counters; contained failures.
        latency: observes a delivery's latency (the histogram).
        guard: admission and limits (None: nothing is checked, as in unit tests).
        server, limits, outbox: the settings groups a front reads.
        connections: every open connection of the process (readiness, overload).
        is_known: whether a symbol is in the feed's universe (a subscription to any
            other is refused by the session).
    """

    hub: Subscriptions
    publisher: Callable[[Sequence[Event]], None]
    pumps: Pumps
    clock: Clock
    stats: Stats
    faults: Faults
    latency: Callable[[float], None] | None
    guard: Guard | None
    server: ServerSettings
    limits: LimitsSettings
    outbox: OutboxSettings
    connections: set[Any]
    is_known: Callable[[str], bool]


class Opened(NamedTuple):
    """What ``FrontSpec.open`` gives a new client: its session, the wire format the hub
    encodes for it, whether batches go as one array frame, its batching window (any: each
    window has its own pump), its outbox budget (None: the ``outbox`` settings';
    ``max_bytes`` 0: no byte limit), and ``heads``: for a protocol whose messages name
    the client's own subscription, what one published item becomes on this connection
    (``transport.headed.Heads``: one item per subscription of its topic, each with
    its head; None: the shared item as it is)."""

    session: Session
    wire: str
    array: bool = False
    window_s: float = 0.0
    max_items: int | None = None
    max_bytes: int | None = None
    heads: Heads | None = None


class Notices(NamedTuple):
    """A protocol's words for a slow client's suspended streams (``FrontSpec.notices``):
    ``degraded(topic, last seq sent, epoch)`` and ``resumed(topic, seq, epoch,
    replayed)``, each a control message's payload. The reset is the session's own
    (``ResumeGap``)."""

    degraded: Callable[[str, int, str], bytes]
    resumed: Callable[[str, int, str, int], bytes]


class FrontSpec:
    """A front: override ``open`` (and the class attributes); the rest has defaults.

    Attributes:
        name: the front's name (the guard's roster, logs, ``/realtime/status/``).
        paths: the WebSocket paths it serves.
        codecs: wire format -> codec, registered with the hub once.
        first_message_auth: a client may authenticate after the handshake
            (``Authenticate``), so an anonymous one is admitted to try.
        guarded: admission, rate limit and credential expiry apply.
        user_cap: how its connections count against ``max_connections_per_user``
            (``guard.UserCap``: the user's shared count, or one of their own per path).
        recheck_s: how often the API keys of its open connections are looked at again
            (``revoked`` judges); None: never.
        notices: how its protocol tells a slow client that a stream was suspended and
            resumed; None (the default): its slow clients are closed at the budget, never
            degraded.
    """

    name: str = ""
    paths: tuple[str, ...] = ()
    codecs: Mapping[str, Codec] = {}
    first_message_auth: bool = False
    guarded: bool = True
    user_cap: UserCap = UserCap.SHARED
    recheck_s: float | None = None
    notices: Notices | None = None

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        raise NotImplementedError

    def revoked(self, principal: Principal | None) -> tuple[str, CloseCode] | None:
        """Why an open connection whose API key now names ``principal`` (None: revoked
        or gone) must close, as ``(message, code)``; None: it stays (the default)."""
        return None

    def subprotocol(self, scope: Scope) -> str | None:
        """The WebSocket sub-protocol to accept, from those the client offered
        (``scope["subprotocols"]``): never one it did not offer; None: none (default)."""
        return None

    def expand(self, topic: Topic) -> tuple[Topic, ...]:
        """The hub topics one subscription to ``topic`` holds (the first is ``topic``)."""
        return (topic,)

    def snapshot(self, topic: Topic, cached: Envelope | None, ctx: FrontContext) -> Envelope | None:
        """What a new subscriber gets at once: by default the last value published."""
        return cached

    def may_read(self, principal: Principal, topic: Topic, readers: Readers) -> bool:
        """Whether ``principal`` may read ``topic``, whose channel is read by ``readers``.

        The default: a public channel, anyone; an authenticated one, any user; an
        owner's channel, nobody (a front that serves one overrides this and names the
        owner)."""
        if readers is Readers.PUBLIC:
            return True
        if readers is Readers.AUTHENTICATED:
            return principal.authenticated
        return False

    def may_read_channel(self, principal: Principal, channel: str, readers: Readers) -> bool:
        """Whether ``principal`` may read every topic of ``channel`` (channel-wide): a
        public or authenticated channel as ``may_read``; an owner's channel, never
        (it would be every owner's)."""
        if readers is Readers.OWNER:
            return False
        return self.may_read(principal, Topic(channel, "*"), readers)
