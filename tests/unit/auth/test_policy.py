"""Policy: the Origin allow-list (cross-site WebSocket hijacking), who may read what, refusals."""

from __future__ import annotations

import importlib.util

import pytest

from tickcast.auth.credentials import ANONYMOUS, ExpiredCredentials, InvalidCredentials, Principal
from tickcast.auth.policy import (
    MAX_CLOSE_REASON_BYTES,
    Reason,
    Refusal,
    auth_timeout,
    check_market,
    check_origin,
    check_portfolio,
    expired,
    forbidden,
    invalid_credentials,
    may_read_market,
    may_read_portfolio,
    normalize_origin,
    origin_allowed,
    origin_refused,
    rate_limited,
    too_many_anonymous,
    too_many_connections,
    too_many_subscriptions,
    unauthenticated,
    unavailable,
    validate_allowed_origins,
)
from tickcast.closecodes import CloseCode, info
from tickcast.errors import ConfigError

#: Property-based tests run where hypothesis is installed (it is optional).
HAVE_HYPOTHESIS = importlib.util.find_spec("hypothesis") is not None

SITE = ("https://app.example.com", "http://localhost:8080")
ADA = Principal(1, "ada")
BOB = Principal(2, "bob")


# -- origins


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com",
        "HTTPS://APP.EXAMPLE.COM",
        "https://App.Example.Com",
        "https://app.example.com:443",  # the default port is the same origin
        "http://localhost:8080",
    ],
)
def test_listed_origins_are_allowed(origin: str) -> None:
    assert origin_allowed(origin, SITE)
    assert check_origin(origin, SITE) is None


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://app.example.com",  # scheme mismatch
        "https://app.example.com:8443",  # port mismatch
        "http://localhost:8081",
        "http://localhost",
        "https://app.example.com/",  # a trailing slash: not a browser's Origin
        "https://app.example.com/path",
        "https://app.example.com.evil.example",  # never a prefix match
        "https://evil-app.example.com",
        "https://sub.app.example.com",  # never a suffix match
        "https://user@app.example.com",
        "https://app.example.com?x=1",
        "https://app.example.com#x",
        " https://app.example.com",
        "app.example.com",
        "null",
        "NULL",
        "",
        "*",
        "https://app.example.com:99999",
        "https://" + "a" * 5000,
    ],
)
def test_other_origins_are_refused(origin: str) -> None:
    assert not origin_allowed(origin, SITE)
    refusal = check_origin(origin, SITE)
    assert refusal is not None
    assert refusal.reason is Reason.ORIGIN
    assert refusal.http_status == 403
    assert refusal.close_code is CloseCode.POLICY_VIOLATION == 1008


def test_null_origin_is_allowed_only_when_listed() -> None:
    assert not origin_allowed("null", SITE)
    assert origin_allowed("null", (*SITE, "null"))


def test_empty_allow_list_allows_any_origin() -> None:
    assert origin_allowed("https://evil.example", ())
    assert origin_allowed("null", ())
    assert origin_allowed("junk", ())


def test_missing_origin_is_allowed_as_a_non_browser_client() -> None:
    # Browsers always send Origin on a WebSocket handshake; no Origin means an SDK or a
    # script, which cannot be used for cross-site hijacking and still has to authenticate.
    assert origin_allowed(None, SITE)
    assert check_origin(None, SITE) is None


def test_allow_list_entries_are_normalized_too() -> None:
    assert origin_allowed("https://app.example.com", ("HTTPS://App.Example.com:443",))
    assert origin_allowed("http://[::1]:8000", ("http://[::1]:8000",))


def test_malformed_allow_list_entries_match_nothing() -> None:
    assert not origin_allowed("https://app.example.com", ("https://app.example.com/",))
    assert not origin_allowed("https://a.example.com", ("https://*.example.com",))
    assert not origin_allowed("https://app.example.com", ("*",))


@pytest.mark.parametrize(
    ("origin", "normalized"),
    [
        ("https://App.Example.com:443", "https://app.example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://example.com:443", "http://example.com:443"),
        ("https://example.com:080", "https://example.com:80"),
        ("wss://example.com:443", "wss://example.com"),
        ("chrome-extension://abcdef", "chrome-extension://abcdef"),
        ("null", "null"),
        ("https://example.com/", None),
        ("https://example.com:", None),
        ("https://example.com:65536", None),
        ("https://", None),
        ("//example.com", None),
    ],
)
def test_normalize_origin(origin: str, normalized: str | None) -> None:
    assert normalize_origin(origin) == normalized


def test_validate_allowed_origins_normalizes_and_deduplicates() -> None:
    entries = [" https://App.Example.com ", "https://app.example.com:443", "null"]
    assert validate_allowed_origins(entries) == ("https://app.example.com", "null")
    assert validate_allowed_origins([]) == ()


@pytest.mark.parametrize(
    "entry", ["https://app.example.com/", "*", "https://*.example.com", "example.com", ""]
)
def test_validate_allowed_origins_refuses_non_origins(entry: str) -> None:
    with pytest.raises(ConfigError, match="is not an origin"):
        validate_allowed_origins(["https://ok.example", entry])


if HAVE_HYPOTHESIS:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, database=None, deadline=None)
    @given(st.text(max_size=200), st.lists(st.text(max_size=50), max_size=4))
    def test_origin_rules_never_crash_on_junk(origin: str, allowed: list[str]) -> None:
        result = origin_allowed(origin, allowed)
        assert isinstance(result, bool)
        normalized = normalize_origin(origin)
        assert normalized is None or normalize_origin(normalized) == normalized

else:  # pragma: no cover

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_property_based_junk_origins() -> None: ...


# -- who may read what


def test_market_data_for_users_always_and_for_anonymous_if_allowed() -> None:
    assert may_read_market(ADA, allow_anonymous=False)
    assert may_read_market(ADA, allow_anonymous=True)
    assert may_read_market(ANONYMOUS, allow_anonymous=True)
    assert not may_read_market(ANONYMOUS, allow_anonymous=False)


def test_check_market_refuses_anonymous_with_401() -> None:
    assert check_market(ANONYMOUS, allow_anonymous=True) is None
    refusal = check_market(ANONYMOUS, allow_anonymous=False)
    assert refusal is not None
    assert refusal.reason is Reason.UNAUTHENTICATED
    assert refusal.http_status == 401
    assert "Authentication required" in refusal.message


def test_portfolio_goes_only_to_its_owner() -> None:
    assert may_read_portfolio(ADA, owner_id=1)
    assert not may_read_portfolio(BOB, owner_id=1)
    assert not may_read_portfolio(ANONYMOUS, owner_id=1)


def test_check_portfolio_tells_anonymous_from_another_user() -> None:
    assert check_portfolio(ADA, 1) is None
    anonymous = check_portfolio(ANONYMOUS, 1)
    other = check_portfolio(BOB, 1)
    assert anonymous is not None
    assert anonymous.http_status == 401
    assert other is not None
    assert (other.reason, other.http_status) == (Reason.FORBIDDEN, 403)
    assert "owner only" in other.message


# -- refusals


def test_invalid_and_expired_credentials_keep_their_message() -> None:
    invalid = invalid_credentials(InvalidCredentials("Invalid token: bad signature"))
    old = invalid_credentials(ExpiredCredentials("Token expired: sign in again"))
    assert (invalid.reason, invalid.message, invalid.http_status) == (
        Reason.INVALID_CREDENTIALS,
        "Invalid token: bad signature",
        401,
    )
    assert old.reason is Reason.EXPIRED
    assert (invalid.close_code, old.close_code) == (3500, 3501)
    assert invalid_credentials(InvalidCredentials()).message == "Invalid credentials"


@pytest.mark.parametrize(
    ("refusal", "reason", "status", "text", "code"),
    [
        (auth_timeout(10), Reason.AUTH_TIMEOUT, 401, "No credentials within 10 s", 3502),
        (too_many_connections(5), Reason.CONNECTION_LIMIT, 429, "at most 5 per user", 3001),
        (too_many_anonymous(10), Reason.ADDRESS_LIMIT, 429, "at most 10 (authenticate", 3001),
        (too_many_subscriptions(50), Reason.SUBSCRIPTION_LIMIT, 429, "at most 50 subscr", 1008),
        (rate_limited(20, 40), Reason.RATE_LIMITED, 429, "at most 20 per second (bursts", 3002),
        (unauthenticated(), Reason.UNAUTHENTICATED, 401, "Authentication required", 3503),
        (forbidden("no"), Reason.FORBIDDEN, 403, "no", 3504),
        (expired(), Reason.EXPIRED, 401, "Token expired", 3501),
        (unavailable("down"), Reason.UNAVAILABLE, 503, "down", 1013),
        (origin_refused("https://x.example"), Reason.ORIGIN, 403, "'https://x.example'", 1008),
    ],
)
def test_refusal_catalogue(
    refusal: Refusal, reason: Reason, status: int, text: str, code: int
) -> None:
    assert refusal.reason is reason
    assert refusal.http_status == status
    assert text in refusal.message
    assert refusal.close_code == code
    assert refusal.reconnect is info(refusal.close_code).reconnect


def test_only_a_busy_server_or_a_busy_client_is_worth_a_retry() -> None:
    """Credentials, origins and policy are terminal; limits and outages are not."""
    retry = {r.reason for r in _every_refusal() if r.reconnect}
    assert retry == {
        Reason.CONNECTION_LIMIT,
        Reason.ADDRESS_LIMIT,
        Reason.RATE_LIMITED,
        Reason.UNAVAILABLE,
    }


def test_each_kind_of_closing_refusal_has_its_own_close_code() -> None:
    """Except those the WebSocket standard names (1008 origin, 1013 try again later)
    and the two connection caps, which ask the client for the same thing."""
    codes: dict[CloseCode, set[Reason]] = {}
    for refusal in _every_refusal():
        codes.setdefault(refusal.close_code, set()).add(refusal.reason)
    shared = {code: reasons for code, reasons in codes.items() if len(reasons) > 1}
    assert shared == {
        CloseCode.POLICY_VIOLATION: {Reason.ORIGIN, Reason.SUBSCRIPTION_LIMIT},
        CloseCode.TOO_MANY_CONNECTIONS: {Reason.CONNECTION_LIMIT, Reason.ADDRESS_LIMIT},
    }


def _every_refusal() -> list[Refusal]:
    return [
        auth_timeout(1),
        too_many_connections(1),
        too_many_anonymous(1),
        too_many_subscriptions(1),
        rate_limited(1, 1),
        unauthenticated(),
        forbidden("x"),
        expired(),
        unavailable("x"),
        origin_refused(None),
        invalid_credentials(InvalidCredentials("x")),
        invalid_credentials(ExpiredCredentials("x")),
    ]


def test_close_reason_fits_a_close_frame() -> None:
    short = Refusal(Reason.FORBIDDEN, "no", 403, CloseCode.FORBIDDEN)
    assert short.close_reason == "no"
    long = Refusal(Reason.FORBIDDEN, "é" * 200, 403, CloseCode.FORBIDDEN)
    assert len(long.close_reason.encode()) <= MAX_CLOSE_REASON_BYTES
    assert long.close_reason.endswith("...")


def test_origin_refusal_message_is_capped_and_names_the_origin() -> None:
    refusal = check_origin("https://" + "e" * 500, SITE)
    assert refusal is not None
    assert len(refusal.message) < 120
    assert refusal.message.startswith("Origin 'https://eee")
