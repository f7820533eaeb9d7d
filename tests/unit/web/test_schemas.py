"""The request grammar the OpenAPI description publishes is the one the API applies.

For each field a client sends, a JSON Schema validator (jsonschema-rs: ECMA-262 regexes
and exact ``multipleOf``, as the schema's readers have them) and the request model agree
on every value: what the schema allows is accepted, what it refuses is refused. Values are
drawn by hypothesis from the patterns themselves, from near misses and from junk, with a
fixed derandomized seed. Pure: no server, no event loop, no clock.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tickcast.web.schemas import (
    AMOUNT_PATTERN,
    DATE_TIME_PATTERN,
    MONEY_PATTERN,
    NAME_PATTERN,
    SYMBOL_PATTERN,
    CashIn,
    PortfolioIn,
    TransactionIn,
    decimal_text,
)

TRADE: dict[str, Any] = {"symbol": "AAPL", "side": "buy", "quantity": "1", "price": "1"}
SEARCH = settings(max_examples=400, derandomize=True, database=None, deadline=None)

#: Characters a JSON client can send (no lone surrogates: see the API tests for those).
_text = st.text(st.characters(codec="utf-8"), max_size=40)


def _agree(model: type[BaseModel], body: dict[str, Any]) -> tuple[bool, bool]:
    """(the schema allows ``body``, the model accepts it), for one body."""
    schema = model.model_json_schema()
    allowed = jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(body)
    try:
        model.model_validate(body)  # as FastAPI does, on the parsed JSON
    except ValidationError:
        return allowed, False
    return allowed, True


def _check(model: type[BaseModel], body: dict[str, Any]) -> None:
    allowed, accepted = _agree(model, body)
    assert allowed == accepted, f"schema {'allows' if allowed else 'refuses'} {body!r}"


@SEARCH
@given(
    st.from_regex(SYMBOL_PATTERN, fullmatch=True)
    | _text
    | st.sampled_from([" AAPL", "AAPL ", "AAPL\n", "aapl", "", "A" * 33, "-A", "BTC/USDT", "0"])
)
def test_symbol_schema_and_model_agree(symbol: str) -> None:
    _check(TransactionIn, {**TRADE, "symbol": symbol})


@SEARCH
@given(
    st.from_regex(NAME_PATTERN, fullmatch=True)
    | _text
    | st.sampled_from(
        ["  growth ", " ", "\tx", "x\n", "a\x00b", "\u3000x", "x" * 100, "x" * 100 + " ", "é"]
    )
)
def test_portfolio_name_schema_and_model_agree(name: str) -> None:
    _check(PortfolioIn, {"name": name})


_AMOUNT_EDGES = ["0", "0.0", "00", "1.", ".5", "+1", "-1", "1e3", "1_000", " 1", "1\n", "NaN"]
_amounts = (
    st.from_regex(AMOUNT_PATTERN, fullmatch=True)
    | st.text("0123456789.+-eE_ \n", max_size=30)
    | st.sampled_from([*_AMOUNT_EDGES, "1.00000000001", "9" * 18, "1" + "0" * 18])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.decimals(min_value=0, max_value=10**6, places=12).map(float)
    | st.booleans()
    | st.none()
)


@SEARCH
@given(_amounts)
def test_amount_schema_and_model_agree(amount: Any) -> None:
    _check(CashIn, {"amount": amount})
    _check(TransactionIn, {**TRADE, "quantity": amount})
    _check(TransactionIn, {**TRADE, "price": amount})


@SEARCH
@given(st.from_regex("^([Bb][Uu][Yy]|[Ss][Ee][Ll][Ll])$", fullmatch=True) | _text)
def test_side_schema_and_model_agree(side: str) -> None:
    _check(TransactionIn, {**TRADE, "side": side})


_times = (
    st.from_regex(DATE_TIME_PATTERN, fullmatch=True)
    | st.datetimes(timezones=st.timezones() | st.none()).map(lambda t: t.isoformat())
    | st.datetimes().map(lambda t: t.isoformat(sep=" ") + "Z")
    | _text
    | st.integers()
    | st.none()
    | st.sampled_from(
        [
            "2026-03-02T14:30:00Z",
            "2026-03-02t14:30:00z",
            "2026-03-02T14:30:00.123456789+05:30",
            "2026-03-02T14:30Z",
            "2026-03-02 14:30:00Z",
            "2026-03-02T14:30:00+0000",
            "2026-12-31T23:59:60Z",
            "2026-02-30T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
        ]
    )
)


@SEARCH
@given(_times)
def test_executed_at_schema_and_model_agree(executed_at: Any) -> None:
    _check(CashIn, {"amount": "1", "executed_at": executed_at})


# -- what the grammar means, case by case


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("1e3", "decimal_format"),  # a Decimal, but not the published grammar
        (" 1", "decimal_format"),
        ("1.", "decimal_format"),
        ("0", "greater_than"),  # pydantic's own types where it has one
        ("1.00000000001", "decimal_max_places"),
        (0.30000000000000004, "decimal_max_places"),
        (True, "decimal_type"),
    ],
)
def test_amounts_outside_the_grammar_are_refused_with_a_type(amount: Any, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CashIn.model_validate({"amount": amount})
    assert caught.value.errors()[0]["type"] == error


def test_amounts_in_the_grammar_are_exact() -> None:
    assert CashIn.model_validate({"amount": "0.0000000001"}).amount == Decimal("1E-10")
    assert CashIn.model_validate({"amount": 190.5}).amount == Decimal("190.5")
    assert CashIn.model_validate({"amount": "999999999999999999.9999999999"}).amount == Decimal(
        "999999999999999999.9999999999"
    )


def test_symbols_are_answered_in_upper_case_and_names_lose_their_end_spaces() -> None:
    assert TransactionIn.model_validate({**TRADE, "symbol": "btc/usdt"}).symbol == "BTC/USDT"
    assert TransactionIn.model_validate({**TRADE, "side": "SeLL"}).side == "sell"
    assert PortfolioIn.model_validate({"name": "  Growth  "}).name == "Growth"


@pytest.mark.parametrize(
    ("executed_at", "error"),
    [
        (1_700_000_000, "datetime_format"),  # a number of seconds is not a time here
        ("2026-03-02T10:00:00", "timezone_aware"),
        ("0001-01-01T00:00:00+01:00", "datetime_format"),  # no UTC time to store
    ],
)
def test_times_outside_the_grammar_are_refused_with_a_type(executed_at: Any, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CashIn.model_validate({"amount": "1", "executed_at": executed_at})
    assert caught.value.errors()[0]["type"] == error


@pytest.mark.parametrize(
    ("value", "text"),
    [("1575.0000000000", "1575"), ("1E+3", "1000"), ("62.50", "62.5"), ("-0.0", "0")],
)
def test_amounts_in_responses_match_the_published_money_pattern(value: str, text: str) -> None:
    money = jsonschema_rs.validator_for({"type": "string", "pattern": MONEY_PATTERN})
    assert decimal_text(Decimal(value)) == text
    assert money.is_valid(text)
    assert not money.is_valid(text + ".0")


@pytest.mark.parametrize(
    "name",
    [
        "\u200b",  # zero-width space
        " \u200b\u200c\u200d ",  # zero-width space, non-joiner and joiner
        "\ufeff",  # byte order mark
        "\u2060\u00ad",  # word joiner, soft hyphen
        "\u3164",  # Hangul filler
        "\u2800",  # braille blank
        "\u200e\u200f",  # direction marks
        "Growth\u202e",  # right-to-left override
        "\u2066Growth\u2069",  # isolates
        "a\u202ab",  # embedding
    ],
)
def test_names_of_invisible_characters_or_with_bidi_controls_are_refused(name: str) -> None:
    """They were accepted: a portfolio could be named nothing visible, or reorder the
    text around it on the screen (a right-to-left override)."""
    with pytest.raises(ValidationError) as refused:
        PortfolioIn.model_validate({"name": name})
    assert refused.value.errors()[0]["type"] == "name_format"
    allowed, _ = _agree(PortfolioIn, {"name": name})
    assert not allowed  # the published pattern says so too


@pytest.mark.parametrize(
    "name",
    ["\u200bGrowth", "Growth\u200d", "\u05e6\u05de\u05d9\u05d7\u05d4", "👨\u200d👩", "a\u00adb"],
)
def test_invisible_characters_beside_visible_ones_are_kept(name: str) -> None:
    assert PortfolioIn.model_validate({"name": name}).name == name
    assert _agree(PortfolioIn, {"name": name}) == (True, True)
