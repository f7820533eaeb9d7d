"""Front 2: the realtime envelope at ``/ws/realtime/``, a ``FrontSpec``.

A client gets a ``RealtimeSession`` (``protocols/envelope``): a new connection id, who
the handshake said it is (or anonymous, allowed to authenticate by its first message),
the universe it may subscribe to (a feed symbol or an asset the portfolio service
knows), the portfolios' owners, the subscription cap and its timeouts. What a
subscription means here:

- ``expand``: a portfolio subscription (owner checked by the session) holds
  ``portfolio.<id>`` and ``positions.<id>``; an asset one ``assets.<symbol>``, a
  live-position one ``live_positions.<id>`` (the hub's first/last-subscriber hooks tell
  the portfolio service who watches, so that unwatched positions are not computed).
- ``snapshot``: the current value at once (see ``RealtimeSpec.snapshot``).
- ``open``: the URL's query options (``?stamps=1``: the latency stamps, a wire of their
  own; a bad value is an ``error`` message and the default applies).

Everything else is the contract's (``fronts/base.py``): admission (origin, credentials,
connection caps), the message rate, first-message authentication, credential expiry, the
close, and the ``Dispatcher`` that carries out the session's commands. The portfolio
service is given to the spec (``app.build_app``), never looked up.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from typing import Protocol

from starlette.types import Scope

from tickcast.auth.credentials import Principal
from tickcast.fronts.base import FrontContext, FrontSpec, Opened
from tickcast.model.channel import Readers
from tickcast.model.envelope import Envelope
from tickcast.model.portfolio import AssetUpdate, PortfolioValue, PositionsUpdate
from tickcast.model.topic import Channel, Event, Topic
from tickcast.protocols.envelope import codec
from tickcast.protocols.envelope.session import (
    RealtimeSession,
    parse_options,
    subscription_cap,
)

PATH = "/ws/realtime/"
#: The front's name in the guard's rosters and in ``/realtime/status/``.
NAME = "realtime"


class Portfolios(Protocol):
    """What Front 2 uses of the portfolio service (``portfolio.service.PortfolioService``)."""

    @property
    def known_assets(self) -> Collection[str]: ...

    def owner_of(self, portfolio_id: int) -> int | None: ...
    def asset_update(self, symbol: str) -> AssetUpdate | None: ...
    def value(self, portfolio_id: int) -> PortfolioValue: ...
    def positions(self, portfolio_id: int) -> PositionsUpdate: ...


def tradable(
    is_feed_symbol: Callable[[str], bool], portfolios: Portfolios
) -> Callable[[str], bool]:
    """Front 2's universe: a symbol of the feed, or an asset the portfolio service knows
    (one traded or stored before). The web routes check symbols against the same."""

    def is_known(symbol: str) -> bool:
        return is_feed_symbol(symbol) or symbol in portfolios.known_assets

    return is_known


def new_connection_id() -> str:
    """A connection's id, as the ``connection`` message shows it: a random UUID."""
    return str(uuid.uuid4())


class RealtimeSpec(FrontSpec):
    """Front 2: guarded, credentials at the handshake or by first message, envelope wire.

    Args:
        portfolios: the portfolio service (owners, known assets, values computed now).
        cache_timeout_s: how old a published value may be to serve as a new
            subscriber's first one.
        allow_anonymous: whether an anonymous client may subscribe to market data.
        auth_timeout_s: how long an anonymous client has to authenticate when anonymous
            ones are not allowed.
        new_id: a new connection's id (tests give fixed ones).
    """

    name = NAME
    paths = (PATH,)
    codecs = codec.CODECS
    first_message_auth = True

    def __init__(
        self,
        portfolios: Portfolios,
        *,
        cache_timeout_s: float,
        allow_anonymous: bool,
        auth_timeout_s: float,
        new_id: Callable[[], str] = new_connection_id,
    ) -> None:
        self.portfolios = portfolios
        self.cache_timeout_s = cache_timeout_s
        self.allow_anonymous = allow_anonymous
        self.auth_timeout_s = auth_timeout_s
        self.new_id = new_id

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        query = scope.get("query_string", b"").decode("latin-1")
        options, option_errors = parse_options(query)
        now = ctx.clock.now()
        session = RealtimeSession(
            connection_id=self.new_id(),
            user_id=principal.user_id,
            anonymous_allowed=self.allow_anonymous,
            is_known=tradable(ctx.is_known, self.portfolios),
            owner_of=self.portfolios.owner_of,
            cap=subscription_cap(ctx.limits.max_subscriptions),
            now=now,
            auth_timeout_s=self.auth_timeout_s,
            idle_timeout_s=ctx.server.idle_timeout_s,
        )
        for message in option_errors:
            session.send_error(message, now)
        # ?stamps=1: the stamped wire, each update completed with its send time as the
        # connection writes it (protocols/stamps.py); the others share the plain one
        return Opened(session, wire=options.wire, window_s=ctx.outbox.batch_ms / 1000)

    def expand(self, topic: Topic) -> tuple[Topic, ...]:
        """A portfolio subscription holds its position updates too."""
        if topic.channel is Channel.PORTFOLIO:
            return (topic, Topic(Channel.POSITIONS, topic.symbol))
        return (topic,)

    def may_read(self, principal: Principal, topic: Topic, readers: Readers) -> bool:
        """An asset's updates: any user, and anyone while anonymous reads are allowed; a
        portfolio's value, positions and live positions: its owner. The session refuses
        a stranger first, in its own words; this is the contract's floor beneath it."""
        if readers is Readers.AUTHENTICATED:
            return principal.authenticated or self.allow_anonymous
        if readers is Readers.OWNER:
            return (
                principal.authenticated
                and self.portfolios.owner_of(int(topic.key)) == principal.user_id
            )
        return readers is Readers.PUBLIC  # the operators' channels are not served here

    def snapshot(self, topic: Topic, cached: Envelope | None, ctx: FrontContext) -> Envelope | None:
        """A new subscriber's first value: the last published one while it is younger
        than ``cache_timeout_s``; else one computed now, which is *published* (and None
        returned): it gets its own seq (one seq never carries two contents), enters the
        cache, and reaches this subscriber by fan-out with the same bytes and conflation
        key. The topic's other subscribers get it too: one more conflatable update.
        Live positions are always computed afresh: while nobody watched, they were not
        published (the hub's hooks)."""
        portfolios = self.portfolios
        event: Event | None = None
        if topic.channel is Channel.LIVE_POSITIONS:
            event = portfolios.positions(int(topic.symbol))
        elif cached is not None and ctx.clock.wall() - cached.server_ts <= self.cache_timeout_s:
            return cached
        elif topic.channel is Channel.ASSETS:
            event = portfolios.asset_update(topic.symbol)
        elif topic.channel is Channel.PORTFOLIO:
            event = portfolios.value(int(topic.symbol))
        if event is not None:
            ctx.publisher([event])
        return None
