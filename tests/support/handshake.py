"""Refused handshakes, seen as each kind of client sees them.

A client without an ``Origin`` header (a script, an SDK) is refused with plain HTTP
before the upgrade; a browser (it always sends ``Origin``) gets the upgrade and then the
refusal's close code at once, since its WebSocket API cannot read an HTTP status.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus


async def http_refusal(url: str, **connect: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Connect expecting an HTTP refusal; its status, JSON body and headers."""
    with pytest.raises(InvalidStatus) as raised:
        async with websockets.connect(url, **connect):
            pass
    response = raised.value.response
    headers = {k.lower(): v for k, v in response.headers.raw_items()}
    return response.status_code, json.loads(response.body or b"{}"), headers


async def close_refusal(url: str, origin: str, **connect: Any) -> tuple[int, str, list[str]]:
    """Connect as a browser from ``origin``; the close code, its reason and every message
    received before it (a refusal sends none)."""
    messages: list[str] = []
    async with websockets.connect(url, origin=origin, **connect) as ws:  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(10):
                async for message in ws:
                    messages.append(str(message))
        except ConnectionClosed:
            pass
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or "", messages
