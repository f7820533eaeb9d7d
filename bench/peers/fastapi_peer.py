"""Peer 1: FastAPI + uvicorn, one ``await websocket.send_text(msg)`` per subscriber per tick.

This is how Front 1's original hand-written system fanned out: no batching, no per-client
queue, the broadcast loop awaits every send in turn. Run:

    .venv/bin/python bench/peers/fastapi_peer.py --port 8001 --nsymbols 100 --rate 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, Response
from ticksource import TickSource, run_peer, symbol_names


def build_app(args: argparse.Namespace) -> FastAPI:
    symbols = symbol_names(args)
    known = set(symbols)
    source = TickSource(symbols, args.rate, args.seed, "peer-fastapi")
    subscribers: dict[str, set[WebSocket]] = {s: set() for s in symbols}

    async def broadcast_loop() -> None:
        cap = max(1, int(args.rate / 100))  # at most 10 ms of ticks per pass
        source.start = time.time()
        while True:
            due = source.due(time.time(), cap)
            for _ in range(due):
                symbol, msg = source.next_tick()
                text = json.dumps(msg, separators=(",", ":"))
                for ws in list(subscribers[symbol]):
                    try:
                        await ws.send_text(text)
                    except Exception:
                        subscribers[symbol].discard(ws)
            await source.pace(due, cap)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(broadcast_loop())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.get("/ready")
    async def ready() -> PlainTextResponse:
        return PlainTextResponse("ready")

    @app.get("/stats")
    async def stats() -> Response:
        return Response(source.stats(), media_type="application/json")

    @app.websocket("/ws/market/feed")
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        mine: set[str] = set()
        try:
            while True:
                text = await websocket.receive_text()
                try:
                    req = json.loads(text)
                    action = req["action"]
                    syms = [s for s in req.get("symbols", []) if s in known]
                except (ValueError, KeyError, TypeError):
                    await websocket.send_text(
                        json.dumps({"type": "error", "message": "Invalid subscription request"})
                    )
                    continue
                if action == "subscribe":
                    for s in syms:
                        subscribers[s].add(websocket)
                        mine.add(s)
                    await websocket.send_text(json.dumps({"type": "subscribed", "symbols": syms}))
                elif action == "unsubscribe":
                    for s in syms:
                        subscribers[s].discard(websocket)
                        mine.discard(s)
                    await websocket.send_text(json.dumps({"type": "unsubscribed", "symbols": syms}))
                elif action == "ping":
                    await websocket.send_text(json.dumps({"type": "pong"}))
        except WebSocketDisconnect:
            pass
        finally:
            for s in mine:
                subscribers[s].discard(websocket)

    return app


def main() -> None:
    run_peer(__doc__, build_app)


if __name__ == "__main__":
    main()
