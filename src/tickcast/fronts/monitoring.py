"""Front 4's monitoring sockets, a ``FrontSpec``: ``/ws/alerts``, ``/ws/metrics``,
``/ws/pipeline``, ``/ws/telemetry`` and ``/ws/dlq``, for operators.

Each path is one stream (``protocols/streams``): the client listens, and what it sends
is ignored (the guard's rate and size limits still apply). The stream is the hub topic
``<channel>.gateway`` of the path's channel (``model/monitoring.py``), which the
monitoring service publishes (``monitoring/service.py``).

Who may listen: users with the operator role (``tickcast users create NAME --role
operator``; the role comes from the account behind an API key, or a token's ``role``
claim). An anonymous client is told so and closed with 3503, a signed-in one without the
role with 3504, each after one ``{"type": "error", "data": {"message": ...}}``. The
guard applies as on every front (origin allow-list, credentials, the message rate);
``may_read`` is the contract's floor beneath the session's refusal.

Connection caps: each stream path counts a user's sockets on its own
(``UserCap.PER_PATH``): one user may open each path ``max_connections_per_user`` times,
and none of them counts against the market fronts' per-user cap (a dashboard of the
five streams must not use up the budget of the market feed beside it).

A role taken away: an open socket signed in with an API key is looked at again every
``recheck_s`` (the monitoring interval, at most the identity's cache period), through
the identity's cached lookup; once the key's user is no operator (or the key is
revoked) the socket is told so and closed, 3504 (3503 for a revoked key). A token's
``role`` claim stands until the token expires (then 3501, as on every front).

What a new subscriber gets at once (``snapshot``): the open alerts as one array (``[]``
when none), the current dead letters as one array, or the latest sample. It is built for
that client alone: an envelope of the topic's current position (``cached``'s epoch and
seq, when there is one) around the service's current state, encoded for this one
connection, so that nothing is published to the others on a connect.
"""

from __future__ import annotations

from typing import Final, Protocol

from starlette.types import Scope

from tickcast.auth.credentials import ANONYMOUS, Principal
from tickcast.closecodes import CloseCode
from tickcast.fronts.base import FrontContext, FrontSpec, Opened
from tickcast.fronts.guard import UserCap
from tickcast.model.channel import Readers
from tickcast.model.envelope import Envelope
from tickcast.model.monitoring import GATEWAY, MonitoringEvent
from tickcast.model.topic import Topic
from tickcast.protocols.monitoring import codec
from tickcast.protocols.streams.session import StreamSession

#: The front's name in the guard's rosters.
NAME: Final = "monitoring"
#: Path -> the channel its stream carries.
STREAMS: Final = {
    "/ws/alerts": "alerts",
    "/ws/metrics": "metrics",
    "/ws/pipeline": "pipeline",
    "/ws/telemetry": "telemetry",
    "/ws/dlq": "dlq",
}

SIGN_IN: Final = "Monitoring is for operators: sign in with an operator's credentials"
NOT_OPERATOR: Final = "Monitoring is for operators: this user does not have the operator role"


class Snapshots(Protocol):
    """What the front reads of the monitoring service."""

    def snapshot(self, channel: str) -> MonitoringEvent | None: ...


def refusal(principal: Principal) -> tuple[str, CloseCode] | None:
    """Why ``principal`` may not read the monitoring streams (None: it may)."""
    if not principal.authenticated:
        return SIGN_IN, CloseCode.AUTHENTICATION_REQUIRED
    if not principal.operator:
        return NOT_OPERATOR, CloseCode.FORBIDDEN
    return None


class MonitoringSpec(FrontSpec):
    """The monitoring sockets: guarded, credentials at the handshake, one stream each.

    Args:
        service: the monitoring service (what a new subscriber gets at once).
        recheck_s: how often an open socket's API key is looked at again.
    """

    name = NAME
    paths = tuple(STREAMS)
    codecs = codec.CODECS
    user_cap = UserCap.PER_PATH

    def __init__(self, service: Snapshots, recheck_s: float | None = None) -> None:
        self.service = service
        self.recheck_s = recheck_s

    def revoked(self, principal: Principal | None) -> tuple[str, CloseCode] | None:
        """An open socket whose key no longer names an operator closes."""
        return refusal(principal if principal is not None else ANONYMOUS)

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        window_s = ctx.outbox.batch_ms / 1000
        refused = refusal(principal)
        if refused is not None:
            message, code = refused
            return Opened(StreamSession.refused(message, code, codec.error), codec.WIRE)
        channel = STREAMS[scope["path"]]
        session = StreamSession(Topic(channel, GATEWAY), codec.error)
        return Opened(session, codec.WIRE, window_s=window_s)

    def may_read(self, principal: Principal, topic: Topic, readers: Readers) -> bool:
        """The monitoring channels: operators only; nothing else is served here."""
        return readers is Readers.OPERATOR and principal.operator

    def snapshot(self, topic: Topic, cached: Envelope | None, ctx: FrontContext) -> Envelope | None:
        current = self.service.snapshot(topic.channel)
        if current is None:
            return None
        if cached is not None:
            return Envelope(topic, cached.seq, ctx.clock.wall(), current, cached.epoch)
        return Envelope(topic, 0, ctx.clock.wall(), current)
