"""Channels: the open vocabulary of what the hub carries, as a registry.

Rules: pure. A channel is a name, the payload type published on it, whether its pending
updates conflate (latest value per key replaces the pending one), how a payload names its
key (the part after the dot in ``"<channel>.<key>"``) and who may read it. A new kind of
stream (signals, alerts, leaderboards...) is one ``register`` call on the registry the
composition root hands to the sequencer and the hub: no other edit to the hub, the
sequencer or ``model/topic.py``.

The built-in channels keep the ``Channel`` members as their names, so the topics they
make compare, hash and test (``is``) as before.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from tickcast.model.leaderboard import (
    AROUND_CHANNEL,
    BOARD_CHANNEL,
    TOP_CHANNEL,
    AroundView,
    BoardMessage,
    TopView,
)
from tickcast.model.market import Bar, BookUpdate, Quote, Status, Trade
from tickcast.model.monitoring import CHANNELS as MONITORING_CHANNELS
from tickcast.model.portfolio import (
    AssetUpdate,
    PortfolioValue,
    PositionsUpdate,
    PositionUpdate,
    UserPnl,
    UserPositions,
)
from tickcast.model.signal import Signal, WorkerStatus
from tickcast.model.topic import Channel, Topic


class Readers(enum.StrEnum):
    """Who may read a channel."""

    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    OWNER = "owner"
    OPERATOR = "operator"  # users with the operator role (the monitoring streams)


class ChannelSpec(msgspec.Struct, frozen=True):
    """One channel.

    Attributes:
        name: the channel's name (the topic's part before the dot); no dot in it.
        payload: the type published on it; one type names one channel.
        conflate: pending updates of one key may be replaced by newer ones.
        key: the payload's key (symbol, portfolio id...).
        readers: who may read it (fronts decide what that means).
    """

    name: str
    payload: type
    conflate: bool
    key: Callable[[Any], str]
    readers: Readers = Readers.PUBLIC


class Channels:
    """The channel registry: by name and by payload type."""

    __slots__ = ("_by_name", "_by_type")

    def __init__(self) -> None:
        self._by_name: dict[str, ChannelSpec] = {}
        self._by_type: dict[type, ChannelSpec] = {}

    def register(self, spec: ChannelSpec) -> None:
        """Add ``spec``; a name or payload type registered already is a ValueError."""
        if not spec.name or "." in spec.name:
            raise ValueError(f"invalid channel name {spec.name!r}")
        if spec.name in self._by_name:
            raise ValueError(f"channel {spec.name!r} is registered already")
        if spec.payload in self._by_type:
            other = self._by_type[spec.payload].name
            raise ValueError(f"{spec.payload.__name__} is published on '{other}' already")
        self._by_name[spec.name] = spec
        self._by_type[spec.payload] = spec

    def of(self, event: object) -> ChannelSpec:
        """The channel ``event`` is published on (by its exact type); KeyError if none."""
        return self._by_type[type(event)]

    def get(self, name: str) -> ChannelSpec:
        """The channel named ``name``; KeyError if none."""
        return self._by_name[name]

    def topic_of(self, event: object) -> Topic:
        """The topic ``event`` is published on: its channel and its key."""
        spec = self._by_type[type(event)]
        return Topic(spec.name, spec.key(event))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[ChannelSpec]:
        return iter(self._by_name.values())


_symbol: Callable[[Any], str] = operator.attrgetter("symbol")
_key: Callable[[Any], str] = operator.attrgetter("key")
_service: Callable[[Any], str] = operator.attrgetter("service")


def builtin() -> Channels:
    """A registry of today's channels (a new one each call, so a caller may add its own).

    Status changes and position updates after a transaction are never conflated: each
    is news. Live positions are: each update carries all of a portfolio's open positions.
    The per-user streams (keyed by the owner's id) are not: a user's positions after a
    transaction are news, and each unrealized P&L update carries only the positions
    that changed (its producer keeps the latest per position within its interval).
    Trading signals (keyed by symbol) and signal workers' statuses (keyed by service)
    are reliable: never conflated.
    """
    channels = Channels()
    for name, payload, conflate, key, readers in (
        (Channel.QUOTES, Quote, True, _symbol, Readers.PUBLIC),
        (Channel.TRADES, Trade, False, _symbol, Readers.PUBLIC),
        (Channel.BARS, Bar, False, _symbol, Readers.PUBLIC),
        (Channel.BOOK, BookUpdate, False, _symbol, Readers.PUBLIC),
        (Channel.STATUS, Status, False, _symbol, Readers.PUBLIC),
        (Channel.ASSETS, AssetUpdate, True, _key, Readers.AUTHENTICATED),
        (Channel.PORTFOLIO, PortfolioValue, True, _key, Readers.OWNER),
        (Channel.POSITIONS, PositionUpdate, False, _key, Readers.OWNER),
        (Channel.LIVE_POSITIONS, PositionsUpdate, True, _key, Readers.OWNER),
        (Channel.USER_POSITIONS, UserPositions, False, _key, Readers.OWNER),
        (Channel.USER_PNL, UserPnl, False, _key, Readers.OWNER),
        (Channel.SIGNALS, Signal, False, _symbol, Readers.PUBLIC),
        (Channel.SIGNAL_STATUS, WorkerStatus, False, _service, Readers.PUBLIC),
    ):
        channels.register(ChannelSpec(name, payload, conflate, key, readers))
    # the public leaderboard (model/leaderboard.py): its snapshots and updates are a
    # sequence (reliable); each view message is the whole view (conflated). PUBLIC: the
    # front checks ``leaderboard_public``.
    channels.register(ChannelSpec(BOARD_CHANNEL, BoardMessage, False, _key, Readers.PUBLIC))
    channels.register(ChannelSpec(TOP_CHANNEL, TopView, True, _key, Readers.PUBLIC))
    channels.register(ChannelSpec(AROUND_CHANNEL, AroundView, True, _key, Readers.PUBLIC))
    # the monitoring streams (operators only): one topic each, ``<channel>.gateway``;
    # alerts and dead letters reliable, the samples conflated (the latest wins)
    for stream, kind, latest in MONITORING_CHANNELS:
        channels.register(ChannelSpec(stream, kind, latest, _key, Readers.OPERATOR))
    return channels


#: The built-in registry, for what has no registry of its own (tests, docs, defaults).
BUILTIN = builtin()
