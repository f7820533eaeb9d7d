"""Review of the public leaderboard (issue 12, Front 4) over a real gateway: defects a
client hits, each reproduced by a test that fails (xfail, strict) until it is fixed.

The gateway and clients are test_leaderboard.py's (alice, bob and carol have a public
portfolio each: ACME, BETA, GAMA, 1,000 invested, worth 1,000; dave a private one).
Waits are on conditions with generous timeouts, never sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from integration.test_leaderboard import (
    WAIT_S,
    BoardClient,
    board_gateway,
    poll,
    quote,
    ws_url,
)
from support.accounts import Account
from support.inloop import Gateway
from support.wsclient import closed_code, recv_json


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[tuple[Gateway, dict[str, Account]]]:
    async with board_gateway(tmp_path) as running:
        yield running


def gama(client: BoardClient) -> dict[str, Any]:
    return next(e for e in client.board if e["portfolio_name"] == "GAMA")


async def gama_rises_to_the_top(gateway: Gateway, client: BoardClient) -> None:
    """carol's GAMA from 3rd to 1st (+30 %); the /ws/updates client is told so."""
    await client.next()  # the snapshot
    quote(gateway, "GAMA", 130.0)
    await client.until(lambda c: c.ranks() == {"GAMA": 1, "ACME": 2, "BETA": 3})
    assert gama(client)["previous_rank"] == 3  # as documented: up from 3


async def test_previous_rank_is_kept_while_a_moved_entry_stays_put(
    board: tuple[Gateway, dict[str, Account]],
) -> None:
    gateway, _ = board
    async with connect(ws_url(gateway, "/ws/updates")) as ws:
        client = BoardClient(ws)
        await gama_rises_to_the_top(gateway, client)
        quote(gateway, "GAMA", 131.0)  # +31 %: still 1st, only its values change
        await client.until(lambda c: gama(c)["total_value"] == 1310.0)
        assert gama(client)["rank"] == 1
        assert gama(client)["previous_rank"] == 3


async def test_polling_and_new_subscribers_show_the_previous_rank_the_stream_showed(
    board: tuple[Gateway, dict[str, Account]],
) -> None:
    gateway, _ = board
    async with connect(ws_url(gateway, "/ws/updates")) as ws:
        client = BoardClient(ws)
        await gama_rises_to_the_top(gateway, client)
        streamed = {e["portfolio_name"]: e["previous_rank"] for e in client.board}
        polled = (await poll(gateway, "/leaderboard/top", params={"n": 3})).json()["data"]
        async with connect(ws_url(gateway, "/ws/top?n=3")) as top:
            first = await recv_json(top, WAIT_S)
        assert first["type"] == "top-performers"
        assert {e["portfolio_name"]: e["previous_rank"] for e in polled} == streamed
        assert {e["portfolio_name"]: e["previous_rank"] for e in first["data"]} == streamed


async def refusal_code(gateway: Gateway, path: str) -> int | None:
    """The close code a socket at ``path`` gets (None: it was served)."""
    async with connect(ws_url(gateway, path)) as ws:
        message = await recv_json(ws, WAIT_S)
        if message["type"] != "error":
            return None
        return await closed_code(ws, WAIT_S)


async def test_polling_and_the_socket_refuse_the_same_parameters(
    board: tuple[Gateway, dict[str, Account]],
) -> None:
    gateway, _ = board
    async with httpx.AsyncClient(base_url=f"{gateway.http}/api", timeout=10) as http:
        disagree = []
        for query in ("n=1&n=2", "n=01", "n=3"):
            answer = await http.get(f"/leaderboard/top?{query}")
            code = await refusal_code(gateway, f"/ws/top?{query}")
            refused_over_http = answer.status_code == 422
            if refused_over_http != (code == 3506):
                disagree.append((query, answer.status_code, code))
    assert disagree == []
