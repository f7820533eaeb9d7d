"""The leaderboard's wire (protocols/leaderboard): the messages' JSON shapes, the memo,
and which stream a socket's path and query choose (or the refusal and its close)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tickcast.closecodes import CloseCode
from tickcast.model.envelope import Envelope
from tickcast.model.leaderboard import (
    AroundView,
    BoardMessage,
    LeaderboardEntry,
    RankedEntry,
    TopView,
)
from tickcast.model.topic import Topic
from tickcast.protocols.leaderboard import codec
from tickcast.protocols.leaderboard.request import (
    BadParameter,
    Limits,
    Refusal,
    around_window,
    choose,
    parse_query,
    portfolio_id_of,
    top_n,
)

ENTRY = RankedEntry(
    1,
    2,
    LeaderboardEntry(
        7,
        "Growth",
        "alice",
        Decimal("12.50"),
        Decimal("11250.00"),
        Decimal("120.50"),
        Decimal("1.08"),
    ),
)
WIRE_ENTRY = {
    "rank": 1,
    "portfolio_id": 7,
    "portfolio_name": "Growth",
    "owner_name": "alice",
    "return_percent": 12.5,
    "total_value": 11250.0,
    "daily_change": 120.5,
    "daily_change_percent": 1.08,
    "previous_rank": 2,
}


def test_the_documented_shapes_with_money_as_numbers() -> None:
    snapshot = codec.encode(BoardMessage("snapshot", 0.0, entries=(ENTRY,)))
    assert b'"return_percent":12.50,' in snapshot  # the Decimal's digits, as a number
    assert json.loads(snapshot) == {"type": "snapshot", "data": [WIRE_ENTRY]}
    new = RankedEntry(3, None, ENTRY.entry)
    update = BoardMessage("update", 0.0, moved=(ENTRY,), entered=(new,), left=(9,))
    assert json.loads(codec.encode(update)) == {
        "type": "update",
        "data": {
            "moved": [WIRE_ENTRY],
            "entered": [{**WIRE_ENTRY, "rank": 3, "previous_rank": None}],
            "updated": [],
            "left": [9],
        },
    }
    top = json.loads(codec.encode(TopView(10, (ENTRY,), 0.0)))
    assert top == {"type": "top-performers", "data": [WIRE_ENTRY]}
    around = AroundView(7, 5, (ENTRY,), 0.0)
    assert json.loads(codec.encode(around)) == {"type": "update", "data": [WIRE_ENTRY]}
    first = AroundView(7, 5, (ENTRY,), 0.0, "snapshot")
    assert json.loads(codec.encode(first))["type"] == "snapshot"
    assert json.loads(codec.error("nope")) == {"type": "error", "data": {"message": "nope"}}


def test_one_payload_is_encoded_once() -> None:
    memo = codec.Memo(size=2)
    payload = TopView(1, (ENTRY,), 0.0)
    first = memo.encode(payload)
    assert memo.encode(payload) is first
    for n in range(3):  # pushed out by newer ones
        memo.encode(TopView(n, (), 0.0))
    again = memo.encode(payload)
    assert again == first
    assert again is not first


def test_the_hub_codec_takes_only_leaderboard_payloads() -> None:
    topic = Topic("leaderboard_top", "1")
    payload = TopView(1, (), 0.0)
    assert codec.encode_envelope(Envelope(topic, 1, 0.0, payload)) == codec.encode(payload)


LIMITS = Limits(max_top=100, max_window=50)


def pick(path: str, query: str = "", public: tuple[int, ...] = (7,)) -> Topic | Refusal:
    return choose(path, query, limits=LIMITS, is_public=lambda pid: pid in public)


def test_paths_and_queries_choose_a_topic() -> None:
    assert pick("/ws/updates") == Topic("leaderboard", "all")
    assert pick("/ws/top") == Topic("leaderboard_top", "10")
    assert pick("/ws/top", "n=100&token=x") == Topic("leaderboard_top", "100")
    assert pick("/ws/around", "portfolio_id=7") == Topic("leaderboard_around", "7:5")
    assert pick("/ws/around", "portfolio_id=7&window=0") == Topic("leaderboard_around", "7:0")


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/ws/top", "n=0"),
        ("/ws/top", "n=101"),
        ("/ws/top", "n="),
        ("/ws/top", "n=abc"),
        ("/ws/top", "n=-1"),
        ("/ws/top", "n=1.5"),
        ("/ws/top", "n=%C2%B2"),  # a superscript two is a digit to str.isdigit alone
        ("/ws/top", "n=1&n=2"),
        ("/ws/top", "n=01"),  # one text per number, as in every URL of the API
        ("/ws/top", "n=%2B1"),
        ("/ws/top", "n=+1"),
        ("/ws/top", "n=1_0"),
        ("/ws/around", "portfolio_id=07"),
        ("/ws/around", "portfolio_id=7&portfolio_id=7"),
        ("/ws/top", "n=" + "9" * 40),
        ("/ws/around", ""),
        ("/ws/around", "portfolio_id=0"),
        ("/ws/around", "portfolio_id=x"),
        ("/ws/around", "portfolio_id=7&window=51"),
        ("/ws/around", "portfolio_id=7&window=-1"),
    ],
)
def test_a_bad_parameter_is_refused_with_3506(path: str, query: str) -> None:
    refusal = pick(path, query)
    assert isinstance(refusal, Refusal)
    assert refusal.code is CloseCode.INVALID_REQUEST
    assert refusal.message.startswith("Invalid request: ")


def test_a_portfolio_not_on_the_board_is_refused_with_3505() -> None:
    for query in ("portfolio_id=8", "portfolio_id=999999999999"):
        refusal = pick("/ws/around", query)
        assert isinstance(refusal, Refusal)
        assert refusal.code is CloseCode.NOT_FOUND
        assert "not on the leaderboard" in refusal.message


def test_one_reading_of_the_parameters_for_sockets_and_polls() -> None:
    """The polling routes read ``n``, ``window`` and the id with the same functions, so
    a query is accepted or refused alike, with the same message."""
    assert top_n(parse_query(b"n=3&token=x"), LIMITS) == 3
    assert top_n(parse_query(b""), LIMITS) == 10
    assert around_window(parse_query("window=0"), LIMITS) == 0
    assert portfolio_id_of("7") == 7
    for query in ("n=1&n=2", "n=01", "n=", "n=0"):
        with pytest.raises(BadParameter) as refused:
            top_n(parse_query(query), LIMITS)
        refusal = pick("/ws/top", query)
        assert isinstance(refusal, Refusal)
        assert refusal.message == refused.value.message
        assert refused.value.name == "n"
    with pytest.raises(BadParameter):
        portfolio_id_of("0")
