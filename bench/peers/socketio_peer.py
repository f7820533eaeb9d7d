"""Peer 2: python-socketio ASGI server, one room per symbol, ``sio.emit("tick", ...)``.

Clients connect with Engine.IO v4 (``/socket.io/?EIO=4&transport=websocket``), emit
``subscribe`` with ``{"symbols": [...]}``, get ``subscribed`` back, then ``tick`` events whose
payload is the Front 1 market-data object. Run:

    .venv/bin/python bench/peers/socketio_peer.py --port 8002 --nsymbols 100 --rate 2000
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import socketio
from ticksource import TickSource, run_peer, symbol_names


def build_app(args: argparse.Namespace) -> Any:
    symbols = symbol_names(args)
    known = set(symbols)
    source = TickSource(symbols, args.rate, args.seed, "peer-socketio")
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")

    @sio.event
    async def subscribe(sid: str, data: Any) -> None:
        syms = [s for s in (data or {}).get("symbols", []) if s in known]
        for s in syms:
            await sio.enter_room(sid, s)
        await sio.emit("subscribed", {"type": "subscribed", "symbols": syms}, to=sid)

    async def broadcast_loop() -> None:
        cap = max(1, int(args.rate / 100))
        source.start = time.time()
        while True:
            due = source.due(time.time(), cap)
            for _ in range(due):
                symbol, msg = source.next_tick()
                await sio.emit("tick", msg, room=symbol)  # Socket.IO encodes compact JSON
            await source.pace(due, cap)

    async def other(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    app_state["task"] = asyncio.create_task(broadcast_loop())
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/ready":
            body, ctype, status = b"ready", b"text/plain", 200
        elif path == "/stats":
            body, ctype, status = source.stats(), b"application/json", 200
        else:
            body, ctype, status = b"not found", b"text/plain", 404
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", ctype)],
            }
        )
        await send({"type": "http.response.body", "body": body})

    app_state: dict[str, Any] = {}
    return socketio.ASGIApp(sio, other_asgi_app=other)


def main() -> None:
    run_peer(__doc__, build_app)


if __name__ == "__main__":
    main()
