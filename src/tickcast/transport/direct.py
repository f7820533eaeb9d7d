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

A connect without an ASGI call: before it makes the task of the ASGI call, the protocol
offers the handshake to the application's ``connect_direct(scope, direct)``
(``DirectConnect``; tickcast's ``app.WebSocketDispatch``), if it has one. An app that
can admit the client without waiting for anything (no credential to look up) accepts
it (``Direct.accept``) and attaches its connection there and then, and returns True:
no task, no ASGI call, no receive queue. False (anything to wait for, any refusal,
another path) and nothing was done: the ASGI call runs as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar

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
    def accept(self, subprotocol: str | None = None) -> None:
        """Answer the handshake (the 101, with ``subprotocol`` if any) at once: only in
        ``DirectConnect.connect_direct``, before ``attach`` (the ASGI path sends
        ``websocket.accept`` instead)."""

    def attach(self, connection: _A, on_end: Callable[[_A], None] | None = None) -> None:
        """Drive ``connection`` (started: a ``Connection``'s ``start`` was called) from
        the protocol from now on; ``on_end`` is called once after ``finished``. Call it
        after the accept, with no await in between, and return from the ASGI call: the
        ASGI receive channel is not read any more."""


class DirectConnect(Protocol):
    """An application that can connect a WebSocket client without an ASGI call."""

    def connect_direct(self, scope: dict[str, Any], direct: Direct) -> bool:
        """Admit, accept (``direct.accept``) and attach the client of ``scope`` now,
        and True; or False, having done nothing (the ASGI call then runs)."""
        ...
