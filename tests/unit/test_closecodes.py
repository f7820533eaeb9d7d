"""Close codes: every code has its reason and reconnect advice, following the code ranges."""

from __future__ import annotations

import re
from pathlib import Path

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
        (CloseCode.TOO_MANY_CONNECTIONS, True),
        (CloseCode.RATE_LIMITED, True),
        (CloseCode.IDLE_TIMEOUT, True),
        (CloseCode.INVALID_CREDENTIALS, False),
        (CloseCode.TOKEN_EXPIRED, False),
        (CloseCode.AUTH_TIMEOUT, False),
        (CloseCode.AUTHENTICATION_REQUIRED, False),
        (CloseCode.FORBIDDEN, False),
    ],
)
def test_reconnect_advice(code: CloseCode, reconnect: bool) -> None:
    assert info(code).reconnect is reconnect


ROOT = Path(__file__).resolve().parents[2]
_ROW = re.compile(r"^\| (\d{4}) \| ([^|]+) \| (yes|no) \| [^|]+ \|$")


def _docs_table() -> dict[int, tuple[str, bool]]:
    text = (ROOT / "docs" / "realtime.md").read_text()
    section = text.split("### Close codes", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            rows[int(match[1])] = (match[2].strip(), match[3] == "yes")
    return rows


def test_the_docs_close_code_table_is_the_catalogue() -> None:
    """docs/realtime.md lists every code, its reason and its advice, and nothing else."""
    assert _docs_table() == {
        entry.code: (entry.reason, entry.reconnect) for entry in CLOSE_INFO.values()
    }


def test_the_browser_client_stops_on_every_terminal_code() -> None:
    """web/static/tickcast.js retries exactly the codes the catalogue says to retry
    (1000, a normal closure, is the page's own choice and not checked)."""
    source = (ROOT / "src" / "tickcast" / "web" / "static" / "tickcast.js").read_text()
    listed = re.search(r"const TERMINAL_CODES = new Set\(\[([\d, ]+)\]\)", source)
    assert listed is not None
    terminal_below_3000 = {int(code) for code in listed[1].split(",")}
    assert "code >= 3500 && code <= 3999" in source
    for code, entry in CLOSE_INFO.items():
        if code == CloseCode.NORMAL:
            continue
        js_terminal = code in terminal_below_3000 or 3500 <= code <= 3999
        assert js_terminal is not entry.reconnect, code
