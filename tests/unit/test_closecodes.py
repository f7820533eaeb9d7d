"""Close codes: every code has its reason and reconnect advice, following the code ranges."""

from __future__ import annotations

import pytest

from tickcast.closecodes import CLOSE_INFO, CloseCode, CloseInfo, info


def test_every_close_code_has_close_info() -> None:
    assert set(CLOSE_INFO) == set(CloseCode)


@pytest.mark.parametrize("code", list(CloseCode), ids=lambda c: f"{c.name}-{c.value}")
def test_close_info_matches_its_code(code: CloseCode) -> None:
    entry = info(code)
    assert entry is CLOSE_INFO[code]
    assert isinstance(entry, CloseInfo)
    assert entry.code == code.value
    assert entry.reason
    # RFC 6455 5.5: a control frame payload is at most 125 bytes, 2 of them the code.
    assert len(entry.reason.encode()) <= 123


@pytest.mark.parametrize("code", list(CloseCode), ids=lambda c: f"{c.name}-{c.value}")
def test_codes_are_valid_to_send(code: CloseCode) -> None:
    # RFC 6455 7.4: 1004-1006 and 1015 are reserved and must never be sent.
    assert code in range(1000, 1016) or code in range(3000, 5000)
    assert code not in (1004, 1005, 1006, 1015)


@pytest.mark.parametrize(
    "code", [c for c in CloseCode if 3000 <= c <= 3999], ids=lambda c: f"{c.name}-{c.value}"
)
def test_application_codes_follow_the_reconnect_range_convention(code: CloseCode) -> None:
    assert info(code).reconnect is (code < 3500)


def test_there_is_at_least_one_application_code() -> None:
    # Keeps the range test above from passing vacuously.
    assert CloseCode.IDLE_TIMEOUT in [c for c in CloseCode if 3000 <= c <= 3999]


@pytest.mark.parametrize(
    ("code", "reconnect"),
    [
        (CloseCode.NORMAL, False),
        (CloseCode.GOING_AWAY, True),
        (CloseCode.POLICY_VIOLATION, False),
        (CloseCode.MESSAGE_TOO_BIG, False),
        (CloseCode.INTERNAL_ERROR, True),
        (CloseCode.TRY_AGAIN_LATER, True),
        (CloseCode.IDLE_TIMEOUT, True),
    ],
)
def test_reconnect_advice(code: CloseCode, reconnect: bool) -> None:
    assert info(code).reconnect is reconnect
