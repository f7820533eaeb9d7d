"""Server lifecycle and handshake hardening: shutdown, slowloris, secrets in logs."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from support.server import start_server
from support.wsclient import closed_code, recv_json, send_json
from tickcast.auth.credentials import issue_token


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_shutdown_signal_closes_clients_with_1001(tmp_path: Path, signum: int) -> None:
    srv = start_server(tmp_path)
    try:
        async with connect(srv.feed) as ws:
            await send_json(ws, {"action": "subscribe", "symbols": ["AAPL"]})
            await recv_json(ws)
            loop = asyncio.get_running_loop()
            stopped = loop.run_in_executor(None, srv.stop, signum)
            assert await closed_code(ws) == 1001
            assert await stopped == 0
    finally:
        srv.stop()


def test_half_sent_handshake_is_closed_after_the_timeout(tmp_path: Path) -> None:
    srv = start_server(tmp_path, handshake_timeout_s=1)
    try:
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(b"GET /ws/market/feed HTTP/1.1\r\nHost: x\r\n")  # never finished
            sock.settimeout(10)
            started = time.monotonic()
            assert sock.recv(1024) == b"", "the server closes the connection"
            assert time.monotonic() - started < 9
    finally:
        srv.stop()


async def test_query_string_tokens_never_reach_the_logs(tmp_path: Path) -> None:
    secret = "j" * 40
    srv = start_server(tmp_path, log_level="debug", jwt_secret=secret)
    token = issue_token(7, "dave", secret, time.time(), 600)
    try:
        async with connect(srv.feed + f"?token={token}") as ws:
            await send_json(ws, {"action": "ping"})
            await recv_json(ws)
        with pytest.raises(InvalidStatus):  # refused before the upgrade: HTTP 401
            async with connect(srv.feed + "?token=FORGED-abc.def"):
                pass
    finally:
        srv.stop()
    log = srv.log()
    assert "/ws/market/feed" in log, "the handshake is logged"
    assert token not in log
    assert token.split(".")[2] not in log  # not even the signature
    assert "FORGED" not in log
