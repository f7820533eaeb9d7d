"""Who may read what, by default, on every front (``FrontSpec.may_read``): from the
channel registry's ``Readers``, the floor a front's session may only raise."""

from __future__ import annotations

import pytest

from tickcast.auth.credentials import ANONYMOUS, Principal
from tickcast.fronts.base import FrontSpec
from tickcast.fronts.realtime import RealtimeSpec
from tickcast.model.channel import BUILTIN, Readers
from tickcast.model.topic import Channel, Topic

USER = Principal(7, "dana")


@pytest.mark.parametrize(
    ("channel", "anonymous", "user"),
    [
        (Channel.QUOTES, True, True),
        (Channel.STATUS, True, True),
        (Channel.ASSETS, False, True),
        (Channel.PORTFOLIO, False, False),
        (Channel.LIVE_POSITIONS, False, False),
    ],
)
def test_the_default_follows_the_registry(channel: str, anonymous: bool, user: bool) -> None:
    spec = FrontSpec()
    readers = BUILTIN.get(channel).readers
    topic = Topic(channel, "7")
    assert spec.may_read(ANONYMOUS, topic, readers) is anonymous
    assert spec.may_read(USER, topic, readers) is user


def test_an_owners_channel_is_never_read_whole() -> None:
    class Owners(FrontSpec):
        def may_read(self, principal: Principal, topic: Topic, readers: Readers) -> bool:
            return True  # this front names owners topic by topic...

    # ...yet a channel-wide read of an owner's channel would be every owner's
    assert not Owners().may_read_channel(USER, Channel.PORTFOLIO, Readers.OWNER)
    assert Owners().may_read_channel(ANONYMOUS, Channel.QUOTES, Readers.PUBLIC)
    assert not FrontSpec().may_read_channel(ANONYMOUS, Channel.ASSETS, Readers.AUTHENTICATED)
    assert FrontSpec().may_read_channel(USER, Channel.ASSETS, Readers.AUTHENTICATED)


class Owners:
    """Portfolio 1 is dana's (user 7); nothing else exists."""

    known_assets = ()

    def owner_of(self, portfolio_id: int) -> int | None:
        return 7 if portfolio_id == 1 else None


@pytest.mark.parametrize("allow_anonymous", [True, False])
def test_the_realtime_front_names_the_owner(allow_anonymous: bool) -> None:
    spec = RealtimeSpec(
        Owners(),  # type: ignore[arg-type]
        cache_timeout_s=1.0,
        allow_anonymous=allow_anonymous,
        auth_timeout_s=10.0,
    )
    mallory = Principal(8, "mallory")
    for channel in (Channel.PORTFOLIO, Channel.POSITIONS, Channel.LIVE_POSITIONS):
        readers = BUILTIN.get(channel).readers
        assert spec.may_read(USER, Topic(channel, "1"), readers)
        assert not spec.may_read(mallory, Topic(channel, "1"), readers)
        assert not spec.may_read(ANONYMOUS, Topic(channel, "1"), readers)
        assert not spec.may_read(USER, Topic(channel, "2"), readers)  # no such portfolio
    assets = BUILTIN.get(Channel.ASSETS).readers
    assert spec.may_read(USER, Topic(Channel.ASSETS, "AAPL"), assets)
    assert spec.may_read(ANONYMOUS, Topic(Channel.ASSETS, "AAPL"), assets) is allow_anonymous
