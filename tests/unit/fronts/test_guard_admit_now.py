"""``Guard.admit_now``: the fast path's admission at the upgrade (no ASGI call) takes a
client only when ``admit`` would admit it without waiting (no credential to look up),
and then decides exactly as ``admit`` does; anything else is left to ``admit``, with
nothing counted or held, so that a refusal is counted and answered once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tickcast.auth.credentials import ANONYMOUS, issue_token
from tickcast.config.settings import Settings
from tickcast.fronts.guard import Guard, UserCap
from tickcast.fronts.identity import Identity
from tickcast.observability.stats import Stats

SECRET = "x" * 40


def scope(*headers: tuple[bytes, bytes], query: bytes = b"", path: str = "/ws/x") -> dict[str, Any]:
    return {
        "headers": list(headers),
        "query_string": query,
        "path": path,
        "client": ("10.0.0.1", 5000),
    }


def guard_of(**settings: Any) -> Guard:
    options = Settings(**settings)
    identity = Identity(None, SECRET, 60)  # type: ignore[arg-type]
    return Guard(options.limits, options.auth, identity, Stats())


async def test_an_anonymous_client_is_admitted_as_admit_admits_it() -> None:
    guard = guard_of(max_anonymous_connections_per_address=5)
    ticket = guard.admit_now(scope((b"host", b"gw"), path="/ws/alerts"), user_cap=UserCap.PER_PATH)
    assert ticket is not None
    theirs, refusal = await guard.admit(
        scope((b"host", b"gw"), path="/ws/alerts"), user_cap=UserCap.PER_PATH
    )
    assert refusal is None
    for field in ("principal", "address", "address_key", "path", "key", "released"):
        assert getattr(ticket, field) == getattr(theirs, field), field
    assert ticket.principal is ANONYMOUS
    assert guard.addresses._counts == {ticket.address_key: 2}  # a slot each
    guard.release(ticket)
    guard.release(theirs)
    assert not guard.addresses._counts


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ([(b"authorization", b"Bearer abc")], b""),
        ([(b"x-api-key", b"tk_abc")], b""),
        ([], b"token=abc"),
        ([(b"cookie", b"tickcast_token=abc")], b""),
        ([(b"authorization", b"Basic abc")], b""),  # malformed: admit refuses it
        ([(b"x-api-key", b"a"), (b"x-api-key", b"b")], b""),  # ambiguous: refused
    ],
    ids=["bearer", "api-key", "query", "cookie", "malformed", "two"],
)
def test_a_request_with_a_credential_is_left_to_admit(
    headers: list[tuple[bytes, bytes]], query: bytes
) -> None:
    guard = guard_of()
    assert guard.admit_now(scope(*headers, query=query)) is None
    assert guard.stats.refusals == {}
    assert not guard.addresses._counts


async def test_a_refusal_is_left_to_admit_which_counts_it_once() -> None:
    guard = guard_of(allowed_origins=["https://app.example.com"])
    request = scope((b"origin", b"https://evil.example.com"))
    assert guard.admit_now(request) is None
    assert guard.stats.refusals == {}
    _, refusal = await guard.admit(request)
    assert refusal is not None
    assert guard.stats.refusals == {refusal.reason.value: 1}


async def test_a_full_address_is_left_to_admit_with_nothing_held() -> None:
    guard = guard_of(max_anonymous_connections_per_address=1)
    held = guard.admit_now(scope())
    assert held is not None
    assert guard.admit_now(scope()) is None  # the cap: admit refuses it (429 / 1013)
    assert guard.stats.refusals == {}
    assert guard.addresses._counts == {held.address_key: 1}
    _, refusal = await guard.admit(scope())
    assert refusal is not None
    guard.release(held)
    assert not guard.addresses._counts


def test_anonymous_market_access_off_is_left_to_admit_unless_the_front_authenticates_later() -> (
    None
):
    guard = guard_of(allow_anonymous=False)
    assert guard.admit_now(scope()) is None
    ticket = guard.admit_now(scope(), first_message_auth=True)
    assert ticket is not None
    guard.release(ticket)


async def test_a_token_still_goes_through_admit() -> None:
    guard = guard_of()
    jwt = issue_token(7, "olga", SECRET, time.time(), 600)
    request = scope((b"authorization", b"Bearer " + jwt.encode()))
    assert guard.admit_now(request) is None
    ticket, refusal = await guard.admit(request)
    assert refusal is None
    assert ticket.principal.user_id == 7
    guard.release(ticket)
