"""Review of the changes merged on 2026-12-05 (round 4): findings reproduced over real
sockets, each marked ``xfail(strict=True)`` until it is fixed. Waits are bounded; no
assertion is on a duration."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from pathlib import Path

import httpx

from support.inloop import Gateway, running_gateway
from tickcast.model.signal import Signal

WAIT_S = 10.0
CONNECT = "CONNECT\naccept-version:1.2\nhost:tickcast\nheart-beat:0,0\n\n\x00"
SUBSCRIBE = "SUBSCRIBE\nid:sub-0\ndestination:/topic/signals\n\n\x00"


def signal(n: int) -> Signal:
    return Signal(
        "QUANTUM_CIPHER",
        "BUY",
        100.0 + n % 50,
        "AAPL",
        "1m",
        f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
        f"sig-review4-{n}",
        "external",
    )


async def _read_until(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytearray, needle: bytes, start: int
) -> int:
    """Read ``sock`` into ``data`` until ``needle`` occurs at or after ``start`` (bounded by
    the caller); its index."""
    while (at := data.find(needle, start)) < 0:
        chunk = await loop.sock_recv(sock, 65536)
        assert chunk, "the stream ended"
        data += chunk
    return at


async def test_xhr_streaming_heartbeats_resume_after_a_write_waited_for_its_peer(
    tmp_path: Path,
) -> None:
    """A client of xhr_streaming that stops reading for a while (a slow link: uvicorn's
    flow control pauses the response's ``send``) and then reads again must go on getting
    the ``h`` heartbeat frame every ``sockjs_heartbeat_s`` once the stream is idle (a
    proxy between closes an idle response; sockjs-client relies on them)."""
    async with running_gateway(
        tmp_path,
        sockjs_heartbeat_s=0.2,
        sockjs_response_limit=256 * 1024 * 1024,
        slow_client_timeout_s=600.0,
    ) as gateway:
        await asyncio.wait_for(_heartbeats_after_backpressure(gateway), 60)


async def _heartbeats_after_backpressure(gateway: Gateway) -> None:
    loop = asyncio.get_running_loop()
    url = f"/stomp/000/{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", gateway.port))
        await loop.sock_sendall(
            sock,
            f"POST {url}/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode(),
        )
        data = bytearray()
        await asyncio.wait_for(_read_until(loop, sock, data, b"o\n", 0), WAIT_S)
        async with httpx.AsyncClient(base_url=gateway.http, timeout=WAIT_S) as http:
            sent = await http.post(f"{url}/xhr_send", content=json.dumps([CONNECT, SUBSCRIBE]))
            assert sent.status_code == 204
        await asyncio.wait_for(_read_until(loop, sock, data, b"CONNECTED", 0), WAIT_S)
        # the client stops reading; the gateway writes ~3 MB of MESSAGEs, far past what
        # the kernel buffers and uvicorn's write buffer hold: the response's send waits
        count = 6000
        for first in range(0, count, 200):
            gateway.publish(*(signal(n) for n in range(first, first + 200)))
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)  # several heartbeat periods pass while the write waits
        last = f"sig-review4-{count - 1}".encode()
        end = await asyncio.wait_for(_read_until(loop, sock, data, last, 0), 30)
        # everything is read: the stream is idle now, and beats again
        await asyncio.wait_for(_read_until(loop, sock, data, b"\r\nh\n\r\n", end), WAIT_S)
    finally:
        sock.close()
