"""Front 4's leaderboard streams: ``/ws/updates``, ``/ws/top``, ``/ws/around``, a
``FrontSpec`` given the leaderboard service (``app.add_leaderboard``).

Each socket carries one stream, chosen when it connects from its path and query
(``protocols/leaderboard/request.py``), held by a ``StreamSession`` from the start; a
bad parameter (3506), a portfolio not on the board (3505) or an anonymous client while
``leaderboard_public`` is off (3503) gets one error message and the close. What the
client sends is ignored (the guard's rate and size limits still apply).

Admission is the contract's (origin allow-list, credentials, connection caps); the
market-data policy (``allow_anonymous``) does not decide who reads the leaderboard:
``leaderboard_public`` does, here (the spec takes the guard's first-message path for
that, and its session never authenticates later).

A new subscriber's first message (``snapshot``) is the view as the service showed it
last, wrapped in an envelope for that one client and never published: the board's
snapshot is one object until the board changes, so its bytes are encoded once
(``protocols.leaderboard.codec``'s memo) whoever connects meanwhile (O(1) per connect);
a top view likewise; an around view is the same view as a ``snapshot`` (O(window)).
"""

from __future__ import annotations

from typing import Protocol

import msgspec
from starlette.types import Scope

from tickcast.auth.credentials import Principal
from tickcast.config.groups import LeaderboardSettings
from tickcast.fronts.base import FrontContext, FrontSpec, Opened
from tickcast.model.envelope import Envelope
from tickcast.model.leaderboard import (
    AROUND_CHANNEL,
    BOARD_CHANNEL,
    TOP_CHANNEL,
    AroundView,
    BoardMessage,
    TopView,
    parse_around_key,
)
from tickcast.model.topic import Topic
from tickcast.protocols.leaderboard import codec
from tickcast.protocols.leaderboard.request import (
    PATHS,
    Limits,
    Refusal,
    choose,
    sign_in_required,
)
from tickcast.protocols.streams.session import StreamSession

#: The front's name in the guard's rosters.
NAME = "leaderboard"


class Board(Protocol):
    """What the front reads of the leaderboard service."""

    def snapshot(self) -> BoardMessage: ...
    def top(self, n: int) -> TopView: ...
    def around(self, portfolio_id: int, window: int) -> AroundView | None: ...
    def is_public(self, portfolio_id: int) -> bool: ...


class LeaderboardSpec(FrontSpec):
    """The leaderboard's sockets: guarded, one pushed stream each, its own wire."""

    name = NAME
    paths = PATHS
    codecs = codec.CODECS
    # admitted anonymous whatever ``allow_anonymous`` says: ``leaderboard_public`` decides
    first_message_auth = True

    def __init__(self, board: Board, settings: LeaderboardSettings) -> None:
        self.board = board
        self.public = settings.leaderboard_public
        self.limits = Limits(settings.leaderboard_max_top, settings.leaderboard_max_window)

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        chosen: Topic | Refusal
        if not self.public and not principal.authenticated:
            chosen = sign_in_required()
        else:
            query = scope.get("query_string", b"").decode("latin-1")
            chosen = choose(
                scope.get("path", ""), query, limits=self.limits, is_public=self.board.is_public
            )
        if isinstance(chosen, Refusal):
            session = StreamSession.refused(chosen.message, chosen.code, codec.error)
        else:
            session = StreamSession(chosen, codec.error)
        return Opened(session, wire=codec.WIRE, window_s=ctx.outbox.batch_ms / 1000)

    def snapshot(self, topic: Topic, cached: Envelope | None, ctx: FrontContext) -> Envelope | None:
        """The view as shown last, for this one subscriber (module docstring)."""
        payload: BoardMessage | TopView | AroundView | None = None
        if topic.channel == BOARD_CHANNEL:
            payload = self.board.snapshot()
        elif topic.channel == TOP_CHANNEL:
            payload = self.board.top(int(topic.key))
        elif topic.channel == AROUND_CHANNEL:
            found = parse_around_key(topic.key)
            if found is not None:
                view = self.board.around(*found)
                if view is None:  # it left the board since it was chosen: an empty view
                    view = AroundView(found[0], found[1], (), ctx.clock.wall())
                payload = msgspec.structs.replace(view, kind="snapshot")
        if payload is None:
            return None
        seq = 0 if cached is None else cached.seq
        epoch = "" if cached is None else cached.epoch
        return Envelope(topic, seq, ctx.clock.wall(), payload, epoch)


def spec(board: Board, settings: LeaderboardSettings) -> LeaderboardSpec:
    return LeaderboardSpec(board, settings)
