"""The operator role in tokens and principals (who may read the monitoring streams)."""

from __future__ import annotations

import jwt
import pytest

from tickcast.auth.credentials import (
    ANONYMOUS,
    Claims,
    InvalidCredentials,
    Principal,
    issue_token,
    verify_token,
)

SECRET = "s" * 43
NOW = 1_800_000_000.0


def test_an_operators_token_carries_the_role_and_a_users_none() -> None:
    token = issue_token(1, "olga", SECRET, NOW, 60, role="operator")
    claims = verify_token(token, SECRET, NOW)
    assert claims == Claims(1, "olga", NOW + 60, "operator")
    assert Principal.from_claims(claims).operator
    plain = issue_token(2, "uma", SECRET, NOW, 60)
    assert "role" not in jwt.decode(plain, options={"verify_signature": False})
    assert verify_token(plain, SECRET, NOW).role == "user"
    assert not Principal.from_claims(verify_token(plain, SECRET, NOW)).operator


def test_an_unknown_role_is_refused_both_ways() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        issue_token(1, "olga", SECRET, NOW, 60, role="admin")
    forged = jwt.encode(
        {"sub": "1", "name": "olga", "iat": int(NOW), "exp": int(NOW) + 60, "role": "admin"},
        SECRET.encode(),
        algorithm="HS256",
    )
    with pytest.raises(InvalidCredentials, match="'role'"):
        verify_token(forged, SECRET, NOW)
    listed = jwt.encode(
        {"sub": "1", "name": "olga", "iat": int(NOW), "exp": int(NOW) + 60, "role": ["operator"]},
        SECRET.encode(),
        algorithm="HS256",
    )
    with pytest.raises(InvalidCredentials):
        verify_token(listed, SECRET, NOW)


def test_anonymous_is_never_an_operator() -> None:
    assert not ANONYMOUS.operator
    with pytest.raises(ValueError, match="no role"):
        Principal(role="operator")
