"""Who may read what, by default, on every front (``FrontSpec.may_read``): from the
channel registry's ``Readers``, the floor a front's session may only raise."""

from __future__ import annotations

import pytest

from tickcast.auth.credentials import ANONYMOUS, Principal
from tickcast.fronts.base import FrontSpec
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
