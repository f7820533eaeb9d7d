"""Front 3, STOMP at ``/stomp/websocket`` (and over SockJS): market data and the user's
positions, a ``FrontSpec``.

A client gets a ``StompSession`` (``protocols/stomp``) over the hub's STOMP wire
(``protocols.stomp.codec``: the MESSAGE payload every subscriber of one update shares).
What this front adds to the contract (``fronts/base.py``):

- ``subprotocol``: the highest of ``v12.stomp``, ``v11.stomp``, ``v10.stomp`` the client
  offers; none when it offers none of them (stomp.py offers nothing: it is accepted, and
  the version is then CONNECT's ``accept-version``).
- ``resolve``: ``/topic/<channel>.<key>`` for the market channels the registry holds
  (``quotes``, ``trades``, ``bars``, ``book`` with a symbol of the feed's universe,
  ``status.FEED``), ``/topic/signals.<SYMBOL>`` (one symbol's trading signals, any
  well-formed symbol) and ``/topic/signals`` (every signal: channel-wide, the session's
  ``WHOLE``); anything else is an unknown destination (the session answers ERROR and
  closes). Who may read a topic is the contract's floor (``may_read``), as on every
  front.
- ``heads`` (``Opened.heads``): the hub delivers one shared item per update; this turns
  it into one MESSAGE per STOMP subscription of the topic on the connection (its
  ``subscription`` head before the shared payload). A head is the same for every client
  that numbers its subscriptions alike (``sub-0``, ``sub-1``...), so the headed item is
  built once per (update, head) for the whole front (``HeadCache``) and its frame once.
  A subscription id that joins a topic the connection already holds is *fresh*
  (``StompSession.take_fresh``): the next item of the topic is the current value the
  Dispatcher queued for it (its ``message-id`` is the one the topic's other ids were
  given last), headed for the fresh ids alone; or a live update, for every id.
- ``forgotten``: after an UNSUBSCRIBE, what the connection queued for the dropped id
  (``HeadedConnection`` discards it before its next write), so no MESSAGE of an
  unsubscribed id is written after the unsubscribe.
- ``rates``: a SUBSCRIBE's ``max-rate`` (``StompSession.take_rates``) as the rate of
  that id's conflation key on the connection (the topic's key joined with the id, as
  ``HeadedConnection`` queues its MESSAGEs), for a conflatable topic only (quotes; the
  hub's registry says which): each subscription id keeps its own rate, and a reliable
  destination is never held back. Taken before the SUBSCRIBE's command is carried out,
  so the rate counts from the current value it gets; lifted when the id goes.
- Credentials: the handshake's (guarded as every front: origin, caps, rate limit), or
  CONNECT's ``Authorization: Bearer``, ``passcode`` or ``login`` as a first-message
  authentication (``Authenticate``); anonymous clients connect while the settings allow
  anonymous market data.
- The per-user destinations (given the portfolio service, ``app.build_app``):
  ``/topic/position-update`` and ``/topic/unrealized-pnl`` name the same topic for
  every client, and resolve to the subscriber's own (``user_positions.<user id>``,
  ``user_pnl.<user id>``): an owner's channel, read by that user only. An anonymous
  subscriber is refused (ERROR, close 1008). On subscribe the user's current positions
  (or their P&L) are computed and published to the topic (``snapshot``): a new seq,
  which every subscriber of the user's topic gets; then the portfolio service publishes
  while someone watches (the hub's first/last-subscriber hooks).

The same spec is served over SockJS at ``/stomp`` (``fronts/sockjs.py``: each SockJS
session one client of this front, through ``WebSocketFront.connect``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Final, Protocol

from starlette.types import Scope

from tickcast import __version__
from tickcast.auth.credentials import Principal
from tickcast.config.groups import SettingsGroups
from tickcast.fronts.base import FrontContext, FrontSpec, Opened
from tickcast.model.channel import Readers
from tickcast.model.envelope import Envelope
from tickcast.model.market import FEED
from tickcast.model.portfolio import UserPnl, UserPositions
from tickcast.model.topic import MARKET_CHANNELS, Channel, Event, Topic
from tickcast.protocols.native.session import SYMBOL_RE
from tickcast.protocols.stomp import codec
from tickcast.protocols.stomp.frames import unescape
from tickcast.protocols.stomp.session import WHOLE, StompSession, Unreadable, subscription_cap
from tickcast.protocols.wire import Codec, Encoded

PATH = "/stomp/websocket"
#: The front's name in the guard's rosters and in ``/realtime/status/``.
NAME = "stomp"
#: The WebSocket sub-protocols spoken, best first.
SUBPROTOCOLS: Final = ("v12.stomp", "v11.stomp", "v10.stomp")
#: Heads the front's cache holds at most (one per distinct subscription id in use);
#: past it the cache starts again (a client naming many ids costs memory no longer).
MAX_CACHED_HEADS: Final = 4096
#: Topics the front's parse cache holds at most (``StompSpec.topic``).
MAX_CACHED_TOPICS: Final = 65_536


#: The per-user channels (an owner's: each user reads the topic keyed by their id).
USER_CHANNELS: Final = frozenset({Channel.USER_POSITIONS, Channel.USER_PNL})


class UserStreams(Protocol):
    """What Front 3 uses of the portfolio service (``portfolio.service.PortfolioService``):
    a user's current positions and their unrealized P&L, computed now."""

    def user_positions(self, owner_id: int) -> UserPositions: ...
    def user_pnl(self, owner_id: int) -> UserPnl: ...


def pick_subprotocol(offered: object) -> str | None:
    """The best of ``SUBPROTOCOLS`` in ``offered``, or None."""
    if not isinstance(offered, list | tuple) or not offered:
        return None
    return next((p for p in SUBPROTOCOLS if p in offered), None)


class HeadSlot:
    """One head's share of the front's ``HeadCache``: the last shared item it was put
    before (``item``) and the result (``headed``)."""

    __slots__ = ("head", "headed", "item")

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.item: Encoded | None = None
        self.headed: Encoded | None = None

    def put(self, item: Encoded) -> Encoded:
        """``item`` with the head before it: the one built already for this item, or a
        new one (which replaces the previous)."""
        headed = self.headed
        if self.item is not item or headed is None:
            headed = self.headed = item.headed(self.head)
            self.item = item
        return headed


class HeadCache:
    """Headed items shared by every connection of the front: for each head, the last
    shared item it was put before and the result (a ``HeadSlot``). Fan-out hands one
    update to every subscriber before the next, so the subscribers of one update that
    share a head share one headed item (and one frame). A connection's plan
    (``StompHeads``) holds its heads' slots, and puts items through them directly."""

    __slots__ = ("_slots", "limit")

    def __init__(self, limit: int = MAX_CACHED_HEADS) -> None:
        self._slots: dict[bytes, HeadSlot] = {}
        self.limit = limit

    def slot(self, head: bytes) -> HeadSlot:
        """The slot of ``head``: the one in use, or a new one. Past ``limit`` heads the
        cache starts again (plans that hold an older slot go on using it: they share it
        only with each other until they are rebuilt)."""
        slots = self._slots
        slot = slots.get(head)
        if slot is None:
            if len(slots) >= self.limit:
                slots.clear()
            slot = slots[head] = HeadSlot(head)
        return slot

    def headed(self, item: Encoded, head: bytes) -> Encoded:
        """``item`` with ``head`` before it: the one built already for this item, or
        a new one (which replaces the head's previous)."""
        return self.slot(head).put(item)

    def __len__(self) -> int:
        return len(self._slots)


def message_id_of(payload: bytes) -> str:
    """The ``message-id`` of a shared MESSAGE payload (``codec.encode``: the second
    header), for the ``ack`` header of a subscription that is not ``ack:auto``."""
    line = payload.split(b"\n", 2)[1]
    return unescape(line.partition(b":")[2].decode())


class Plan:
    """What one topic's published item becomes on one connection, built once per change
    of the session's subscriptions: for each subscription of the topic (all
    ``ack:auto``, none of them fresh), its head's slot in the front's ``HeadCache`` and
    the item's conflation key joined with its id (None when the topic is reliable).
    ``HeadedConnection`` reads it (``StompHeads.plans``) for every delivery of the topic
    that comes with the same conflation key, and leaves the payload in ``last``.

    Attributes:
        key: the conflation key the joined keys were built from.
        targets: ``(slot, joined key)`` per subscription, in SUBSCRIBE order.
        slot, joined: the one target of a topic with one subscription (the usual
            case), else None and None.
        last: the payload the topic's subscriptions were given last, or None.
    """

    __slots__ = ("joined", "key", "last", "slot", "targets")

    def __init__(self, key: str | None, targets: tuple[tuple[HeadSlot, str | None], ...]) -> None:
        self.key = key
        self.targets = targets
        single = targets[0] if len(targets) == 1 else None
        self.slot: HeadSlot | None = None if single is None else single[0]
        self.joined: str | None = None if single is None else single[1]
        self.last: bytes | None = None


class StompHeads:
    """One connection's ``heads`` (``transport.connection.Heads``), ``plans``, ``keyed``,
    ``forgotten`` and ``rates`` (see the module docstring).

    ``plans`` and ``keyed`` are the fan-out's path: a per-topic ``Plan`` (the topic's
    subscriptions, their heads' shared slots and their joined conflation keys) made once
    per change of the session's subscriptions (the session's ``on_change`` drops them all,
    before anything else is delivered), so a delivery costs a lookup and a slot per
    subscription. A topic whose ids wait for their current value (fresh), or with a
    subscription that acknowledges (its own ``ack`` header per MESSAGE), goes through
    ``__call__`` as before; so does a topic the session holds only through a channel-wide
    subscription (no plan is kept for it: the plans stay bounded by the subscriptions).
    """

    __slots__ = ("_changes", "_last", "_plans", "conflation_key", "plans", "session", "spec")

    def __init__(
        self,
        spec: StompSpec,
        session: StompSession,
        conflation_key: Callable[[Topic], str | None] | None = None,
        *,
        watch: bool = True,
    ) -> None:
        self.spec = spec
        self.session = session
        # the hub's (a topic's key in an outbox, None for a reliable one); None: no rates
        self.conflation_key = conflation_key
        # an item's topic key -> the payload its subscriptions were given last (whose
        # message-id tells a fresh id's current value from a live update); a planned
        # topic's is its plan's ``last`` until the plans are dropped
        self._last: dict[str, bytes] = {}
        # an item's topic key -> its plan (topics held by key only), for the session's
        # subscriptions as they were at ``_changes``
        self._plans: dict[str, Plan] = {}
        self._changes = session.changes
        #: the plans for ``HeadedConnection`` to read, which only a heads the session
        #: tells of its changes offers (``StompSpec.heads`` makes passing ones)
        self.plans: dict[str, Plan] | None = None
        if watch:
            session.on_change = self.drop_plans
            self.plans = self._plans

    def drop_plans(self) -> None:
        """The subscriptions changed: every plan goes (what each gave last is kept)."""
        plans = self._plans
        if plans:
            last = self._last
            for topic_key, plan in plans.items():
                if plan.last is not None:
                    last[topic_key] = plan.last
            plans.clear()
        self._changes = self.session.changes

    def keyed(self, item: Encoded, key: str | None) -> Sequence[tuple[Encoded, str | None]]:
        """``item``'s MESSAGEs on this connection, each with the key it is queued under
        (``key`` joined with its subscription's id; None when ``key`` is): what
        ``__call__`` gives, with the keys joined, through the topic's plan (made here
        when there is none)."""
        if self.session.changes != self._changes:
            self.drop_plans()
        topic_key = item.topic
        plan = self._plans.get(topic_key)
        if plan is None or (plan.key is not key and plan.key != key):
            plan = self._plan(topic_key, key)
            if plan is None:
                return [
                    (headed, None if key is None else f"{key}\n{tag}") for headed, tag in self(item)
                ]
        plan.last = item.payload  # held by key: remembered for fresh ids
        return [(slot.put(item), joined) for slot, joined in plan.targets]

    def _plan(self, topic_key: str, key: str | None) -> Plan | None:
        """The plan of a topic held by key, kept until the subscriptions change; None
        for a topic ``__call__`` must head (fresh ids, an ``ack`` mode, held whole)."""
        topic = self.spec.topic(topic_key)
        session = self.session
        if topic not in session.topics or session.has_fresh(topic):
            return None
        subscriptions = session.subscriptions_for(topic)
        if any(s.ack != "auto" for s in subscriptions):
            return None
        slot = self.spec.cache.slot
        plan = Plan(
            key,
            tuple((slot(s.head), None if key is None else f"{key}\n{s.id}") for s in subscriptions),
        )
        previous = self._plans.get(topic_key)
        plan.last = previous.last if previous is not None else self._last.pop(topic_key, None)
        self._plans[topic_key] = plan
        return plan

    def __call__(self, item: Encoded) -> list[tuple[Encoded, str]]:
        """One MESSAGE per subscription of ``item``'s topic on the session, tagged with
        its id (its conflation key's part)."""
        topic_key = item.topic
        topic = self.spec.topic(topic_key)
        session = self.session
        subscriptions = session.subscriptions_for(topic)
        fresh = session.take_fresh(topic)
        if fresh:
            plan = self._plans.get(topic_key)
            previous = plan.last if plan is not None else self._last.get(topic_key)
            if previous is not None and message_id_of(previous) == message_id_of(item.payload):
                # what the others were given already: the fresh ids' current value
                subscriptions = tuple(s for s in subscriptions if s.id in fresh)
        if topic in session.topics:  # a channel held whole has no current value to tell
            plan = self._plans.get(topic_key)
            if plan is not None:
                plan.last = item.payload
            else:
                self._last[topic_key] = item.payload
        cache = self.spec.cache
        out: list[tuple[Encoded, str]] = []
        for subscription in subscriptions:
            if subscription.ack == "auto":
                headed = cache.headed(item, subscription.head)
            else:  # its own ack header: never shared
                headed = item.headed(subscription.head_for(message_id_of(item.payload)))
            out.append((headed, subscription.id))
        return out

    def rates(self) -> list[tuple[str, str, float | None]]:
        """The subscriptions' rates set or lifted since the last call, as ``(conflation
        key, subscription id, max_rate)``; a reliable topic's are left out."""
        changes = self.session.take_rates()
        key_of = self.conflation_key
        if not changes or key_of is None:
            return []
        return [
            (key, id_, max_rate)
            for topic, id_, max_rate in changes
            if (key := key_of(topic)) is not None
        ]

    def forgotten(self) -> Callable[[Encoded], bool] | None:
        """After a subscription was dropped: the test of a queued item meant for a
        subscription that is gone (``stale``); else None."""
        if not self.session.forgotten():
            return None
        held = self.session.topics
        topic = self.spec.topic
        for key in [k for k in self._last if topic(k) not in held]:
            del self._last[key]
        return self.stale

    def stale(self, item: Encoded) -> bool:
        """Whether ``item`` (queued earlier) is a MESSAGE of a subscription the session
        no longer holds. Replies are never stale."""
        if not item.topic or not item.head:
            return False
        head = item.head
        subscriptions = self.session.subscriptions_for(self.spec.topic(item.topic))
        return not any(head.startswith(s.head) for s in subscriptions)


class StompSpec(FrontSpec):
    """Front 3 over WebSocket: guarded, first-message authentication (CONNECT's
    credentials), the STOMP wire, one MESSAGE per subscription.

    Args:
        portfolios: the per-user streams' snapshots (the portfolio service); None: the
            per-user destinations are unknown (market data only).
        allow_anonymous: whether a client without credentials may connect (market data).
        login_timeout_s: until CONNECTED (the CONNECT frame and its credentials' check).
        heart_beat: the server's ``(sx, sy)`` in ms (CONNECTED's ``heart-beat``).
        new_id: a new session's id (CONNECTED's ``session``).
    """

    name = NAME
    paths = (PATH,)
    codecs: Mapping[str, Codec] = MappingProxyType({codec.WIRE: codec.encode})
    first_message_auth = True

    def __init__(
        self,
        portfolios: UserStreams | None = None,
        *,
        allow_anonymous: bool,
        login_timeout_s: float,
        heart_beat: tuple[int, int] = (10_000, 10_000),
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.portfolios = portfolios
        self.allow_anonymous = allow_anonymous
        self.login_timeout_s = login_timeout_s
        self.heart_beat = heart_beat
        self.new_id = new_id
        self.cache = HeadCache()
        # an item's topic key -> its Topic, parsed once per topic, not once per delivery
        self._topics: dict[str, Topic] = {}

    def subprotocol(self, scope: Scope) -> str | None:
        return pick_subprotocol(scope.get("subprotocols"))

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        def resolve_here(destination: str) -> Topic | None:
            # the user CONNECT authenticated (or the handshake), read when subscribing
            return self.resolve_for(ctx, destination, session.user_id)

        session = StompSession(
            resolve=resolve_here,
            now=ctx.clock.now(),
            session_id=self.new_id(),
            user_id=principal.user_id,
            anonymous_allowed=self.allow_anonymous,
            cap=subscription_cap(ctx.limits.max_subscriptions),
            heart_beat=self.heart_beat,
            login_timeout_s=self.login_timeout_s,
            server=f"tickcast/{__version__}",
        )
        return Opened(
            session,
            wire=codec.WIRE,
            window_s=ctx.outbox.batch_ms / 1000,
            heads=StompHeads(self, session, ctx.hub.conflation_key),
        )

    def heads(self, session: StompSession, item: Encoded) -> list[tuple[Encoded, str]]:
        """One MESSAGE per subscription of ``item``'s topic on ``session`` (a
        ``StompHeads`` of its own is what a connection is given)."""
        return StompHeads(self, session, watch=False)(item)

    def topic(self, key: str) -> Topic:
        """The Topic of an item's topic key, parsed once per topic."""
        topic = self._topics.get(key)
        if topic is None:
            # the market's topics are finite (the universe x channels, users), but an
            # outside producer may signal any symbol: past the bound, start again
            if len(self._topics) >= MAX_CACHED_TOPICS:
                self._topics.clear()
            channel, _, name = key.partition(".")
            topic = self._topics[key] = Topic(channel, name)
        return topic

    def resolve_for(self, ctx: FrontContext, destination: str, user_id: int | None) -> Topic | None:
        """The topic ``destination`` names for the user ``user_id`` (None: anonymous):
        a market one (``resolve``), or the user's own per-user topic; None: unknown.

        Raises:
            Unreadable: a per-user destination for an anonymous client.
        """
        channel = codec.USER_DESTINATIONS.get(destination)
        if channel is None or self.portfolios is None or channel not in ctx.hub.channels:
            return resolve(ctx, destination)
        if user_id is None:
            raise Unreadable(f"Authentication required to read {destination}")
        return Topic(channel, str(user_id))

    def may_read(self, principal: Principal, topic: Topic, readers: Readers) -> bool:
        """The contract's floor, and a per-user topic for its own user only."""
        if readers is Readers.OWNER:
            return (
                topic.channel in USER_CHANNELS
                and principal.authenticated
                and topic.key == str(principal.user_id)
            )
        return super().may_read(principal, topic, readers)

    def snapshot(self, topic: Topic, cached: Envelope | None, ctx: FrontContext) -> Envelope | None:
        """A market topic: its last value. A per-user topic: the user's current
        positions (or their P&L) computed now and *published* (None returned): a seq of
        its own, which reaches this subscriber (and the topic's others) by fan-out."""
        portfolios = self.portfolios
        if topic.channel not in USER_CHANNELS or portfolios is None:
            return cached
        owner = int(topic.key)
        event: Event = (
            portfolios.user_positions(owner)
            if topic.channel == Channel.USER_POSITIONS
            else portfolios.user_pnl(owner)
        )
        ctx.publisher([event])
        return None


def resolve(ctx: FrontContext, destination: str) -> Topic | None:
    """The topic ``/topic/<channel>.<key>`` names on this front, or None (unknown).
    ``/topic/signals`` names every signal (a topic keyed ``WHOLE``: channel-wide), and
    ``/topic/signals.<SYMBOL>`` one symbol's: any well-formed symbol, since an outside
    producer may signal an instrument the feed does not carry."""
    if destination == codec.ALL_SIGNALS:
        return Topic(Channel.SIGNALS, WHOLE) if Channel.SIGNALS in ctx.hub.channels else None
    topic = codec.topic_of(destination)
    if topic is None or topic.channel not in ctx.hub.channels:
        return None
    if topic.channel == Channel.SIGNALS:
        return Topic(Channel.SIGNALS, topic.key) if SYMBOL_RE.fullmatch(topic.key) else None
    if topic.channel not in MARKET_CHANNELS:
        return None
    channel = Channel(topic.channel)
    if channel is Channel.STATUS:
        return Topic(channel, FEED) if topic.key == FEED else None
    if topic.key == FEED or not ctx.is_known(topic.key):
        return None
    return Topic(channel, topic.key)


def spec(settings: SettingsGroups, portfolios: UserStreams | None = None) -> StompSpec:
    """STOMP over WebSocket (always served), with the per-user destinations when given
    the portfolio service."""
    auth = settings.auth
    return StompSpec(
        portfolios,
        allow_anonymous=auth.allow_anonymous,
        login_timeout_s=auth.auth_timeout_s,
    )
