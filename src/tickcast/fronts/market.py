"""Front 1: the market feed at ``/ws/market/feed``, a ``FrontSpec``.

A client gets a ``MarketFeedSession`` set up from the URL's query options (``seq``,
``frames``, ``heartbeat``, ``stamps``; a bad one is reported as an error and the default
used), the native wire (``protocols/native``; with ``stamps=1`` a stamped one, whose
messages the connection completes with their send time as it writes them) and the
outbox's batching window. Everything else is
the contract's (``fronts/base.py``): admission, the rate limit, credential expiry, the
close, and the ``Dispatcher`` that subscribes (the cached value as the snapshot, or a
resume from history), unsubscribes and answers a resume it cannot replay.
"""

from __future__ import annotations

from starlette.types import Scope

from tickcast.auth.credentials import Principal
from tickcast.config.groups import SettingsGroups
from tickcast.fronts.base import FrontContext, FrontSpec, Notices, Opened
from tickcast.protocols.native import codec, stamps
from tickcast.protocols.native.session import (
    MarketFeedSession,
    parse_options,
    subscription_cap,
)

PATH = "/ws/market/feed"
#: The front's name in the guard's rosters and in ``/realtime/status/``.
NAME = "market_feed"


class MarketFeedSpec(FrontSpec):
    """Front 1: guarded, credentials at the handshake only, native wire."""

    name = NAME
    paths = (PATH,)
    codecs = stamps.CODECS
    # a slow client is degraded (degraded / resumed messages) before it is closed
    notices = Notices(codec.degraded, codec.resumed)

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        query = scope.get("query_string", b"").decode("latin-1")
        options, option_errors = parse_options(query)
        now = ctx.clock.now()
        session = MarketFeedSession(
            is_known=ctx.is_known,
            cap=subscription_cap(ctx.limits.max_subscriptions),
            now=now,
            options=options,
            idle_timeout_s=ctx.server.idle_timeout_s,
            position=ctx.hub.position,
        )
        for message in option_errors:
            session.send_error(message, now)
        return Opened(
            session,
            wire=options.wire,
            array=options.array,
            window_s=ctx.outbox.batch_ms / 1000,
        )


def spec(settings: SettingsGroups) -> MarketFeedSpec:
    """The market feed: always served."""
    return MarketFeedSpec()
