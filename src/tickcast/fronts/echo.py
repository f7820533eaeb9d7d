"""``/ws/echo``: a test-only front that echoes every message, for WebSocket conformance.

A ``FrontSpec`` like any other, so Autobahn's cases run through the real endpoint and
driver (``WebSocketFront``, Connection, Outbox, Pump, FrameSocket). Not guarded: no
admission, no rate limit. Registered always, enabled only by ``test_echo``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from starlette.types import Scope

from tickcast.auth.credentials import Principal
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.config.groups import SettingsGroups
from tickcast.fronts.base import FrontContext, FrontSpec, Opened
from tickcast.model.topic import Topic
from tickcast.protocols.base import Command, Reply
from tickcast.protocols.wire import Encoded

NAME = "echo"
PATH = "/ws/echo"


class EchoSession:
    """Sans-I/O echo: each message comes back unchanged, text as text, bytes as bytes.

    A ``protocols.base.Session`` with no commands: it holds no topics, and a reply
    changes nothing (an error, which only a wrapper such as the rate limit makes, comes
    back as its text).
    """

    def __init__(self) -> None:
        self.close_reason: CloseCode | None = None
        self._frames: list[Encoded] = []

    @property
    def topics(self) -> Collection[Topic]:
        return ()

    def receive_text(self, data: str, now: Now) -> None:
        self._frames.append(Encoded(data.encode(), control=True))

    def receive_bytes(self, data: bytes, now: Now) -> None:
        self._frames.append(Encoded(data, control=True, binary=True))

    def handle_timer(self, now: Now) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def frames_to_send(self) -> list[Encoded]:
        frames, self._frames = self._frames, []
        return frames

    def commands_received(self) -> list[Command]:
        return []

    def answer(self, reply: Reply, now: Now) -> None:
        pass

    def send_error(self, message: str, now: Now) -> None:
        self._frames.append(Encoded(message.encode(), control=True))

    def release(self, topics: Iterable[Topic]) -> None:
        pass


class EchoSpec(FrontSpec):
    name = NAME
    paths = (PATH,)
    guarded = False

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        # no window, no byte budget: every message goes back at once, however large
        return Opened(EchoSession(), wire=NAME, max_items=1 << 20, max_bytes=0)


def spec(settings: SettingsGroups) -> EchoSpec | None:
    """The echo front, or None unless ``settings.server.test_echo``."""
    return EchoSpec() if settings.server.test_echo else None
