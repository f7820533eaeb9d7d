"""The guard's per-user caps as a front keys them (``UserCap``), and the API keys of
open connections looked at again (``Guard.watch`` / ``recheck``), at the unit level: a
real ``Identity`` whose database lookup is replaced, no sockets."""

from __future__ import annotations

import time
from typing import Any

from tickcast.auth.credentials import Principal, issue_token, new_api_key
from tickcast.auth.policy import Reason
from tickcast.config.settings import Settings
from tickcast.fronts.guard import Guard, Ticket, UserCap
from tickcast.fronts.identity import Identity, _Key
from tickcast.observability.stats import Stats

SECRET = "x" * 40


def scope(credential: str, path: str) -> dict[str, Any]:
    header = (b"authorization", b"Bearer " + credential.encode())
    return {"headers": [header], "query_string": b"", "path": path}


def guard_of(identity: Identity, per_user: int) -> Guard:
    settings = Settings(max_connections_per_user=per_user)
    return Guard(settings.limits, settings.auth, identity, Stats())


async def test_per_path_connections_have_a_count_of_their_own() -> None:
    guard = guard_of(Identity(None, SECRET, 60), per_user=2)  # type: ignore[arg-type]
    jwt = issue_token(7, "olga", SECRET, time.time(), 600, role="operator")
    held: list[Ticket] = []
    for path in ("/ws/alerts", "/ws/metrics"):
        for _ in range(2):  # each path up to the cap
            ticket, refusal = await guard.admit(scope(jwt, path), user_cap=UserCap.PER_PATH)
            assert refusal is None
            held.append(ticket)
    _, refusal = await guard.admit(scope(jwt, "/ws/alerts"), user_cap=UserCap.PER_PATH)
    assert refusal is not None
    assert refusal.reason is Reason.CONNECTION_LIMIT
    # the shared count (the market fronts) is untouched
    for _ in range(2):
        ticket, refusal = await guard.admit(scope(jwt, "/ws/market/feed"))
        assert refusal is None
        held.append(ticket)
    _, refusal = await guard.admit(scope(jwt, "/ws/market/feed"))
    assert refusal is not None
    for ticket in held:
        guard.release(ticket)
    ticket, refusal = await guard.admit(scope(jwt, "/ws/alerts"), user_cap=UserCap.PER_PATH)
    assert refusal is None
    assert ticket.key is None  # a token: nothing to look up again
    guard.release(ticket)


async def test_a_watched_front_hears_what_an_open_connections_key_names_now() -> None:
    clock = [1000.0]
    identity = Identity(None, SECRET, 60, clock=lambda: clock[0])  # type: ignore[arg-type]
    key = new_api_key()
    roles = ["operator"]

    async def query(prefix: str, now: float) -> _Key:
        principal = Principal(7, "olga", role=roles[0])
        return _Key(now + 30, None, principal, key.secret_hash)  # no use recorded

    identity._query = query  # type: ignore[method-assign]
    guard = guard_of(identity, per_user=5)
    heard: list[tuple[Any, str | None]] = []
    guard.watch("monitoring", lambda conn, ticket, p: heard.append((conn, p and p.role)))
    ticket, refusal = await guard.admit(scope(key.token, "/ws/alerts"), user_cap=UserCap.PER_PATH)
    assert refusal is None
    assert ticket.key == key.prefix
    guard.roster("monitoring")["conn"] = ticket
    roles[0] = "user"
    await guard.recheck("monitoring")  # still cached: no lookup, nothing heard
    assert heard == []
    clock[0] += 31
    await guard.recheck("monitoring")
    assert heard == [("conn", "user")]
    guard.release(ticket)
