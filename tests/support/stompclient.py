"""stomp.py against a running ``tickcast serve``: a listener that queues every frame it is
handed, waits on conditions (never sleeps), and a client for ``/stomp/websocket``."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

import stomp
from stomp.utils import Frame

from support.server import Server

PATH = "/stomp/websocket"
WAIT_S = 10.0


class Events(stomp.ConnectionListener):
    """Every frame stomp.py hands its listener, in order, as (kind, frame)."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, Frame | None]] = queue.Queue()

    def on_connected(self, frame: Frame) -> None:
        self.queue.put(("connected", frame))

    def on_message(self, frame: Frame) -> None:
        self.queue.put(("message", frame))

    def on_receipt(self, frame: Frame) -> None:
        self.queue.put(("receipt", frame))

    def on_error(self, frame: Frame) -> None:
        self.queue.put(("error", frame))

    def on_disconnected(self) -> None:
        self.queue.put(("disconnected", None))

    def until(self, predicate: Callable[[str, Frame | None], bool]) -> list[tuple[str, Any]]:
        """Every event up to and including the first that satisfies ``predicate``."""
        seen: list[tuple[str, Any]] = []
        deadline = time.monotonic() + WAIT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching event among {[k for k, _ in seen]}")
            kind, frame = self.queue.get(timeout=remaining)
            seen.append((kind, frame))
            if predicate(kind, frame):
                return seen

    def receipt(self, receipt_id: str) -> list[tuple[str, Any]]:
        return self.until(lambda k, f: k == "receipt" and f.headers["receipt-id"] == receipt_id)


def stomp_client(server: Server, **options: Any) -> tuple[stomp.WSConnection, Events]:
    conn = stomp.WSConnection([("127.0.0.1", server.port)], ws_path=PATH, **options)
    events = Events()
    conn.set_listener("events", events)
    return conn, events


def messages(seen: list[tuple[str, Any]]) -> list[Frame]:
    return [frame for kind, frame in seen if kind == "message"]
