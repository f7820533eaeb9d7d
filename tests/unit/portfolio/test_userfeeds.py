"""UserFeeds: who watches the per-user streams, and the P&L they owe, conflated per
(portfolio, symbol) between flushes. Pure: no clock, no service."""

from __future__ import annotations

from decimal import Decimal

from tickcast.model.portfolio import PositionPnl, UserPnl
from tickcast.model.topic import Channel, Topic
from tickcast.portfolio.userfeeds import UserFeeds

OWNERS = {1: 10, 2: 10, 3: 20}  # portfolio -> owner


def owner_of(portfolio_id: int) -> int | None:
    return OWNERS.get(portfolio_id)


def pnl(user: int) -> Topic:
    return Topic(Channel.USER_PNL, str(user))


def test_an_unwatched_user_costs_nothing() -> None:
    feeds = UserFeeds()
    assert not feeds.any_pnl
    feeds.moved("AAPL", {1, 2, 3}, owner_of)
    feeds.traded(10, 1, "AAPL")
    assert feeds.take_pnl(1.0, lambda p, s: Decimal(1)) == []


def test_changes_are_conflated_per_position_and_grouped_per_owner() -> None:
    feeds = UserFeeds()
    feeds.watch(pnl(10))
    feeds.watch(pnl(20))
    feeds.moved("AAPL", {1, 3}, owner_of)
    feeds.moved("AAPL", {1}, owner_of)  # again before the flush: once
    feeds.moved("MSFT", {2}, owner_of)
    feeds.traded(10, 1, "TSLA")
    values = {(1, "AAPL"): Decimal(5), (2, "MSFT"): Decimal(-2), (1, "TSLA"): Decimal(0)}
    values[(3, "AAPL")] = Decimal(7)
    taken = feeds.take_pnl(9.0, lambda p, s: values[(p, s)])
    assert taken == [
        UserPnl(
            10,
            (
                PositionPnl(1, "AAPL", Decimal(5)),
                PositionPnl(1, "TSLA", Decimal(0)),
                PositionPnl(2, "MSFT", Decimal(-2)),
            ),
            9.0,
        ),
        UserPnl(20, (PositionPnl(3, "AAPL", Decimal(7)),), 9.0),
    ]
    assert feeds.take_pnl(10.0, lambda p, s: values[(p, s)]) == []  # the marks are cleared


def test_the_last_subscriber_leaving_drops_what_was_owed() -> None:
    feeds = UserFeeds()
    feeds.watch(pnl(10))
    feeds.moved("AAPL", {1}, owner_of)
    feeds.unwatch(pnl(10))
    assert not feeds.any_pnl
    assert feeds.take_pnl(1.0, lambda p, s: Decimal(1)) == []


def test_a_position_no_longer_known_is_left_out() -> None:
    feeds = UserFeeds()
    feeds.watch(pnl(10))
    feeds.moved("AAPL", {1}, owner_of)
    assert feeds.take_pnl(1.0, lambda p, s: None) == []


def test_positions_and_pnl_are_watched_apart() -> None:
    feeds = UserFeeds()
    feeds.watch(Topic(Channel.USER_POSITIONS, "10"))
    assert feeds.watches_positions(10)
    assert not feeds.watches_pnl(10)
    feeds.watch(pnl(10))
    feeds.unwatch(Topic(Channel.USER_POSITIONS, "10"))
    assert not feeds.watches_positions(10)
    assert feeds.watches_pnl(10)
