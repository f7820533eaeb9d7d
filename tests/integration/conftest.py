"""Integration fixtures: a real `tickcast serve` process on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.server import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A shared server: fast simulator, default 100 ms window, small history, and a
    message rate limit high enough for the floods these tests send on purpose (the
    limit itself is tested in test_market_auth.py)."""
    srv = start_server(
        tmp_path_factory.mktemp("server"),
        rate=2000,
        history_size=64,
        max_subscriptions=20,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
    )
    yield srv
    srv.stop()
