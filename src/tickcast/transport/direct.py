"""The fast path's contract: a connection driven by its server protocol, not a task.

Under uvicorn with tickcast's WebSocket protocol (``uvicorn_protocols``), an accepted
WebSocket's scope carries a ``Direct`` under ``scope["extensions"][DIRECT_EXTENSION]``.
A front that hands it its ``Connection`` (``attach``) and returns from the ASGI call
leaves the connection to the protocol: each complete message the protocol parses in
``data_received`` goes to ``Connection.receive_text`` (or the session's
``receive_bytes``), a close or the end of the TCP connection to ``Connection.finished``.
The ASGI task ends there and the protocol drops its receive queue and the scope: nothing
awaits per connection while it is open.

A front that does not attach (any other server, or the ``ws_fast_path`` setting off)
runs ``Connection.run(receive)`` as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from tickcast.transport.connection import Connection

#: ASGI scope extension under which tickcast's uvicorn protocol offers ``Direct``.
DIRECT_EXTENSION: Final = "tickcast.direct"


class Direct(Protocol):
    def attach(
        self, connection: Connection, on_end: Callable[[Connection], None] | None = None
    ) -> None:
        """Drive ``connection`` (started: ``Connection.start`` was called) from the
        protocol from now on; ``on_end`` is called once after ``finished``. Call it after
        the accept, with no await in between, and return from the ASGI call: the ASGI
        receive channel is not read any more."""
