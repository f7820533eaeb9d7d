"""Server options a deployment turns on: idle timeout, permessage-deflate."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.utils import apply_mask

from support.server import start_server
from support.wsclient import closed_code, recv_json, send_json


async def test_idle_client_is_closed_with_3008(tmp_path: Path) -> None:
    srv = start_server(tmp_path, idle_timeout_s=1)
    try:
        async with connect(srv.feed) as ws:
            await send_json(ws, {"action": "subscribe", "symbols": ["AAPL"]})
            # Data keeps flowing, but the client says nothing.
            assert await closed_code(ws) == 3008
    finally:
        srv.stop()


async def test_compression_when_enabled_and_bombs_are_capped(tmp_path: Path) -> None:
    srv = start_server(tmp_path, permessage_deflate="true", rate=500)
    try:
        async with connect(srv.feed, compression="deflate") as ws:
            assert ws.protocol.extensions, "permessage-deflate was negotiated"
            await send_json(ws, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
            assert (await recv_json(ws))["type"] == "subscribed"
            assert (await recv_json(ws))["symbol"] in {"AAPL", "MSFT"}

        # A bomb: 64 MiB of zeros, about 64 KiB compressed, far over the 64 KiB limit.
        process = psutil.Process(srv.proc.pid)
        rss_before = process.memory_info().rss
        bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = bomb.compress(b"0" * (64 << 20)) + bomb.flush(zlib.Z_SYNC_FLUSH)
        payload = payload[:-4]  # permessage-deflate strips the sync-flush tail
        factory = ClientPerMessageDeflateFactory()
        async with connect(srv.feed, extensions=[factory], compression=None) as ws:
            # Write the pre-compressed frame below the library's own compressor.
            ws.transport.write(_compressed_text_frame(payload))
            with pytest.raises(ConnectionClosed) as closed:
                await recv_json(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
        assert process.memory_info().rss - rss_before < 2 * 65536 + 8 * 1024 * 1024
    finally:
        srv.stop()


def _compressed_text_frame(payload: bytes) -> bytes:
    """A masked client text frame with RSV1 set (RFC 7692): its payload is deflated."""
    mask = os.urandom(4)
    header = struct.pack("!BBQ", 0x80 | 0x40 | 0x1, 0x80 | 127, len(payload))
    return header + mask + apply_mask(payload, mask)
