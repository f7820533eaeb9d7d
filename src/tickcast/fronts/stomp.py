"""Front 3, raw STOMP over WebSocket at ``/stomp/websocket``: market data, a ``FrontSpec``.

A client gets a ``StompSession`` (``protocols/stomp``) over the hub's STOMP wire
(``protocols.stomp.codec``: the MESSAGE payload every subscriber of one update shares).
What this front adds to the contract (``fronts/base.py``):

- ``subprotocol``: the highest of ``v12.stomp``, ``v11.stomp``, ``v10.stomp`` the client
  offers; none when it offers none of them (stomp.py offers nothing: it is accepted, and
  the version is then CONNECT's ``accept-version``).
- ``resolve``: ``/topic/<channel>.<key>`` for the market channels the registry holds
  (``quotes``, ``trades``, ``bars``, ``book`` with a symbol of the feed's universe,
  ``status.FEED``); anything else is an unknown destination (the session answers ERROR
  and closes). Who may read a topic is the contract's floor (``may_read``), as on every
  front.
- ``heads`` (``Opened.heads``): the hub delivers one shared item per update; this turns
  it into one MESSAGE per STOMP subscription of the topic on the connection (its
  ``subscription`` head before the shared payload). A head is the same for every client
  that numbers its subscriptions alike (``sub-0``, ``sub-1``...), so the headed item is
  built once per (update, head) for the whole front (``HeadCache``) and its frame once.
- Credentials: the handshake's (guarded as every front: origin, caps, rate limit), or
  CONNECT's ``Authorization: Bearer``, ``passcode`` or ``login`` as a first-message
  authentication (``Authenticate``); anonymous clients connect while the settings allow
  anonymous market data.

Not built yet: SockJS at ``/stomp`` and the portfolio destinations
(``/topic/position-update``, ``/topic/unrealized-pnl``).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from starlette.types import Scope

from tickcast import __version__
from tickcast.auth.credentials import Principal
from tickcast.config.groups import SettingsGroups
from tickcast.fronts.base import FrontContext, FrontSpec, Opened
from tickcast.model.market import FEED
from tickcast.model.topic import MARKET_CHANNELS, Channel, Topic
from tickcast.protocols.stomp import codec
from tickcast.protocols.stomp.frames import unescape
from tickcast.protocols.stomp.session import StompSession, subscription_cap
from tickcast.protocols.wire import Codec, Encoded

PATH = "/stomp/websocket"
#: The front's name in the guard's rosters and in ``/realtime/status/``.
NAME = "stomp"
#: The WebSocket sub-protocols spoken, best first.
SUBPROTOCOLS: Final = ("v12.stomp", "v11.stomp", "v10.stomp")
#: Heads the front's cache holds at most (one per distinct subscription id in use);
#: past it the cache starts again (a client naming many ids costs memory no longer).
MAX_CACHED_HEADS: Final = 4096


def pick_subprotocol(offered: object) -> str | None:
    """The best of ``SUBPROTOCOLS`` in ``offered``, or None."""
    if not isinstance(offered, list | tuple) or not offered:
        return None
    return next((p for p in SUBPROTOCOLS if p in offered), None)


class HeadCache:
    """Headed items shared by every connection of the front: for each head, the last
    shared item it was put before and the result. Fan-out hands one update to every
    subscriber before the next, so the subscribers of one update that share a head
    share one headed item (and one frame)."""

    __slots__ = ("_last", "limit")

    def __init__(self, limit: int = MAX_CACHED_HEADS) -> None:
        self._last: dict[bytes, tuple[Encoded, Encoded]] = {}
        self.limit = limit

    def headed(self, item: Encoded, head: bytes) -> Encoded:
        """``item`` with ``head`` before it: the one built already for this item, or
        a new one (which replaces the head's previous)."""
        last = self._last
        hit = last.get(head)
        if hit is not None and hit[0] is item:
            return hit[1]
        headed = item.headed(head)
        if hit is None and len(last) >= self.limit:
            last.clear()
        last[head] = (item, headed)
        return headed

    def __len__(self) -> int:
        return len(self._last)


def message_id_of(payload: bytes) -> str:
    """The ``message-id`` of a shared MESSAGE payload (``codec.encode``: the second
    header), for the ``ack`` header of a subscription that is not ``ack:auto``."""
    line = payload.split(b"\n", 2)[1]
    return unescape(line.partition(b":")[2].decode())


class StompSpec(FrontSpec):
    """Front 3 over WebSocket: guarded, first-message authentication (CONNECT's
    credentials), the STOMP wire, one MESSAGE per subscription.

    Args:
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
        *,
        allow_anonymous: bool,
        login_timeout_s: float,
        heart_beat: tuple[int, int] = (10_000, 10_000),
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
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
        session = StompSession(
            resolve=functools.partial(resolve, ctx),
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
            heads=functools.partial(self.heads, session),
        )

    def heads(self, session: StompSession, item: Encoded) -> list[tuple[Encoded, str]]:
        """One MESSAGE per subscription of ``item``'s topic on ``session``, tagged with
        its id (its conflation key's part)."""
        topic = self._topics.get(item.topic)
        if topic is None:  # the hub's topics are finite: the feed's universe x channels
            channel, _, key = item.topic.partition(".")
            topic = self._topics[item.topic] = Topic(channel, key)
        cache = self.cache
        out: list[tuple[Encoded, str]] = []
        for subscription in session.subscriptions_for(topic):
            if subscription.ack == "auto":
                headed = cache.headed(item, subscription.head)
            else:  # its own ack header: never shared
                headed = item.headed(subscription.head_for(message_id_of(item.payload)))
            out.append((headed, subscription.id))
        return out


def resolve(ctx: FrontContext, destination: str) -> Topic | None:
    """The topic ``/topic/<channel>.<key>`` names on this front, or None (unknown)."""
    topic = codec.topic_of(destination)
    if topic is None or topic.channel not in MARKET_CHANNELS:
        return None
    if topic.channel not in ctx.hub.channels:
        return None
    channel = Channel(topic.channel)
    if channel is Channel.STATUS:
        return Topic(channel, FEED) if topic.key == FEED else None
    if topic.key == FEED or not ctx.is_known(topic.key):
        return None
    return Topic(channel, topic.key)


def spec(settings: SettingsGroups) -> StompSpec:
    """STOMP over WebSocket: always served."""
    auth = settings.auth
    return StompSpec(allow_anonymous=auth.allow_anonymous, login_timeout_s=auth.auth_timeout_s)
