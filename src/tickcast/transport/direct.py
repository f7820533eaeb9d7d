"""The fast path's contract: a connection driven by its server protocol, not a task.

Under uvicorn with tickcast's WebSocket protocol (``uvicorn_protocols``), an accepted
WebSocket's scope carries a ``Direct`` under ``scope["extensions"][DIRECT_EXTENSION]``.
A front that hands it what receives its client's messages (``attach``: an ``Attached``,
its ``Connection`` for a plain WebSocket front, or an adapter such as SockJS's websocket
transport, whose messages are SockJS frames around the session's) and returns from the
ASGI call leaves the connection to the protocol: each complete message the protocol
parses in ``data_received`` goes to ``Attached.receive_text`` (or ``receive_bytes``), a
close or the end of the TCP connection to ``Attached.finished``. The ASGI task ends
there and the protocol drops its receive queue and the scope: nothing awaits per
connection while it is open.

A front that does not attach (any other server, or the ``ws_fast_path`` setting off)
runs ``Connection.run(receive)`` (or its own receive loop) as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol, TypeVar

#: ASGI scope extension under which tickcast's uvicorn protocol offers ``Direct``.
DIRECT_EXTENSION: Final = "tickcast.direct"


class Attached(Protocol):
    """What the protocol calls on what a front attached (``Connection`` is one)."""

    def receive_text(self, text: str) -> bool:
        """One text message: False once the connection is closing (the protocol then
        calls ``finished`` and reads no more messages into it)."""
        ...

    def receive_bytes(self, data: bytes) -> bool:
        """One binary message, as ``receive_text``."""
        ...

    def finished(self, close_code: int | None = None) -> None:
        """The connection is over (called once by the protocol): the client closed
        (``close_code`` its code), the TCP connection was lost (1006), the server closed
        it (its code), or ``receive_*`` returned False (None)."""
        ...


_A = TypeVar("_A", bound=Attached)


class Direct(Protocol):
    def attach(self, connection: _A, on_end: Callable[[_A], None] | None = None) -> None:
        """Drive ``connection`` (started: a ``Connection``'s ``start`` was called) from
        the protocol from now on; ``on_end`` is called once after ``finished``. Call it
        after the accept, with no await in between, and return from the ASGI call: the
        ASGI receive channel is not read any more."""
