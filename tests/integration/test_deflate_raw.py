"""With permessage-deflate negotiated the frame socket is not ``raw``: the gateway's
frames go through websockets' compressor (RSV1 set), never as the hub's pre-built,
uncompressed frames. The socket is made before the handshake, so this checks that the
protocol tells it the extensions when it answers (``UvicornFrameSocket.opened``)."""

from __future__ import annotations

from pathlib import Path

from websockets.asyncio.client import connect

from support.server import start_server
from support.wsclient import recv_json, send_json


def _first_bytes(stream: bytes) -> list[int]:
    """The first byte (FIN, RSV1-3, opcode) of every server frame (unmasked) in order."""
    heads: list[int] = []
    i = 0
    while i + 2 <= len(stream):
        length, start = stream[i + 1] & 0x7F, i + 2
        if length == 126:
            length, start = int.from_bytes(stream[i + 2 : i + 4], "big"), i + 4
        elif length == 127:
            length, start = int.from_bytes(stream[i + 2 : i + 10], "big"), i + 10
        heads.append(stream[i])
        i = start + length
    return heads


async def test_data_frames_are_compressed_when_deflate_is_negotiated(tmp_path: Path) -> None:
    srv = start_server(tmp_path, permessage_deflate="true", rate=500)
    try:
        async with connect(srv.feed, compression="deflate") as ws:
            assert ws.protocol.extensions, "permessage-deflate was negotiated"
            received = bytearray()
            receive_data = ws.protocol.receive_data

            def recording(data: bytes) -> None:
                received.extend(data)
                receive_data(data)

            ws.protocol.receive_data = recording  # type: ignore[method-assign]
            await send_json(ws, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
            assert (await recv_json(ws))["type"] == "subscribed"
            assert (await recv_json(ws))["symbol"] in {"AAPL", "MSFT"}
        texts = [head for head in _first_bytes(bytes(received)) if head & 0x0F == 0x1]
        assert len(texts) >= 2
        assert all(head & 0x40 for head in texts), [hex(h) for h in texts]  # RSV1
    finally:
        srv.stop()
