"""The session of a Front 4 stream: one topic, pushed; the client only listens.

Rules: pure (no clock, no I/O). The leaderboard's and the monitoring's sockets
(``/ws/updates``, ``/ws/top``, ``/ws/around``, ``/ws/alerts``, ``/ws/metrics``...) each
carry one stream, chosen by the path and the URL's query when the client connects: the
front decides which topic that is (or refuses), and the session holds it from the start.
Seed 002's Angular client sends nothing on these sockets; whatever a client sends is
ignored (the rate limit and the message size limit still apply: the front's guard).

A refusal is decided at opening (``StreamSession.refused``): the session queues an
error message in the stream's own words (``error``, from the front's codec) and closes
with the refusal's code, so nothing else ever reaches that client. When the front
refuses the subscription itself (the floor of who may read what: ``release`` of the
one topic), the session closes likewise, with ``denied_code``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.model.topic import Topic
from tickcast.protocols.base import Command, Reply, Subscribe
from tickcast.protocols.wire import Encoded

#: Builds the stream's error message (its own words) from a text.
ErrorMessage = Callable[[str], bytes]


class StreamSession:
    """One pushed stream: holds ``topic`` from the start.

    Args:
        topic: the stream's topic.
        error: how this stream says an error (a leaderboard socket:
            ``{"type": "error", "data": {"message": ...}}``).
        denied_code: the close when the front refuses the topic (who may read it).
    """

    def __init__(
        self,
        topic: Topic,
        error: ErrorMessage,
        *,
        denied_code: CloseCode = CloseCode.FORBIDDEN,
    ) -> None:
        self.close_reason: CloseCode | None = None
        self._error = error
        self._denied_code = denied_code
        self._topics: set[Topic] = {topic}
        self._commands: list[Command] = [Subscribe((topic,))]
        self._frames: list[Encoded] = []

    @classmethod
    def refused(cls, message: str, code: CloseCode, error: ErrorMessage) -> StreamSession:
        """A session that says ``message`` and closes with ``code`` (nothing held)."""
        session = cls.__new__(cls)
        session.close_reason = code
        session._error = error
        session._denied_code = code
        session._topics = set()
        session._commands = []
        session._frames = [Encoded(error(message), control=True)]
        return session

    @property
    def topics(self) -> Collection[Topic]:
        return self._topics

    def receive_text(self, data: str, now: Now) -> None:
        pass  # a listener's socket: what the client says is not a command

    def receive_bytes(self, data: bytes, now: Now) -> None:
        pass

    def handle_timer(self, now: Now) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def frames_to_send(self) -> list[Encoded]:
        frames, self._frames = self._frames, []
        return frames

    def commands_received(self) -> list[Command]:
        commands, self._commands = self._commands, []
        return commands

    def answer(self, reply: Reply, now: Now) -> None:
        pass  # no command of this session has a reply

    def send_error(self, message: str, now: Now) -> None:
        self._frames.append(Encoded(self._error(message), control=True))

    def release(self, topics: Iterable[Topic]) -> None:
        """The front dropped the stream's topic: refused (or the connection is done)."""
        released = set(topics)
        if released & self._topics:
            self._topics -= released
            if self.close_reason is None:
                self.close_reason = self._denied_code
