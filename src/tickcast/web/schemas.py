"""The portfolio API's wire models: what ``/api`` reads and writes about portfolios,
positions, transactions, cash and assets, and how each figure is computed.

Rules: pydantic models and the conversions from the portfolio package's values, nothing
else (no I/O, no request handling: that is ``api.py``). Every amount in a response is a
JSON string (``Money``, see ``decimal_text``); requests accept strings or numbers with
at most 18 integer digits and 10 decimal places, as stored. The descriptions are the
API's documentation (OpenAPI, ``/api/docs``): keep them true to ``portfolio/``.

What a request may send is a grammar published in the JSON Schema (``SYMBOL_PATTERN``,
``NAME_PATTERN``, ``AMOUNT_PATTERN``, ``DATE_TIME_PATTERN``) and checked by the server
with the same patterns, so that what the schema allows is accepted and what it refuses
is a 422 (schemathesis checks both ways in ``tests/integration/test_api_contract.py``).

No ``from __future__ import annotations`` here: pydantic reads the annotations at run
time.
"""

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StringConstraints,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from tickcast.portfolio.valuation import (
    CONTEXT,
    MONEY_PLACES,
    PositionValue,
    Side,
    Valuation,
)
from tickcast.storage.records import AssetKind, CashTransaction, Portfolio, Transaction
from tickcast.storage.tables import AMOUNT_PRECISION, AMOUNT_SCALE


def decimal_text(value: Decimal) -> str:
    """The canonical text of an amount: no exponent, no trailing zeros, never ``-0``.

    ``Decimal("1575.0000000000")`` -> ``"1575"``; ``Decimal("1E+3")`` -> ``"1000"``;
    ``Decimal("62.50")`` -> ``"62.5"``. Exact: the digits are never rounded.
    """
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# -- the grammar of what the API reads and writes. Each pattern is published in the OpenAPI
# schema and is what the server checks, so it is spelled to read the same in ECMA-262 (the
# JSON Schema dialect), Python and Rust (pydantic) regexes: explicit ranges, no \s or \d.

#: A symbol: the grammar of every front (``protocols/*/session.py``), in either case.
SYMBOL_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9./:_-]{0,31}$"
SYMBOL_MAX_CHARS: Final = 32
_CONTROL: Final = r"\x00-\x1f\x7f-\x9f"
_SPACE: Final = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Bidirectional embeddings, overrides and isolates: they reorder the text around them.
_BIDI: Final = r"\u202a-\u202e\u2066-\u2069"
#: Characters that show nothing by themselves (format characters, fillers, blanks).
_INVISIBLE: Final = (
    r"\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2060-\u2064"
    r"\u206a-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0"
)
_NAME_CHAR: Final = f"[^{_CONTROL}{_BIDI}]"
_NAME_EDGE: Final = f"[^{_CONTROL}{_BIDI}{_SPACE}]"
_NAME_VISIBLE: Final = f"[^{_CONTROL}{_BIDI}{_SPACE}{_INVISIBLE}]"
#: A portfolio name: no control characters and no bidirectional controls, at least one
#: visible character; spaces at either end are removed.
NAME_PATTERN: Final = (
    rf"^ *(?:{_NAME_EDGE}{_NAME_CHAR}*)?{_NAME_VISIBLE}(?:{_NAME_CHAR}*{_NAME_EDGE})? *$"
)
NAME_MAX_CHARS: Final = 100
_WHOLE_DIGITS: Final = AMOUNT_PRECISION - AMOUNT_SCALE
#: An amount sent as a string: digits, then optionally a point and 1 to 10 decimals.
AMOUNT_PATTERN: Final = rf"^[0-9]{{1,{_WHOLE_DIGITS}}}(\.[0-9]{{1,{AMOUNT_SCALE}}})?$"
_ZERO_PATTERN: Final = r"^0+(\.0+)?$"
#: Amounts must stay below this (18 integer digits), as stored.
AMOUNT_LIMIT: Final = 10**_WHOLE_DIGITS
#: An amount in a response, as ``decimal_text`` writes it.
MONEY_PATTERN: Final = r"^(0|-?(0\.[0-9]*[1-9]|[1-9][0-9]*(\.[0-9]*[1-9])?))$"
#: Years 2 to 9998: each such time has a UTC time to be stored as (year 1 at +01:00 has not).
_YEAR: Final = (
    r"(000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
)
_LOCAL_TIME: Final = (
    _YEAR + r"-[0-9]{2}-[0-9]{2}[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
)
_OFFSET: Final = r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
#: A time in a request: RFC 3339 ``date-time`` with its offset (no leap second).
DATE_TIME_PATTERN: Final = f"^{_LOCAL_TIME}{_OFFSET}$"


def _whole(pattern: str) -> re.Pattern[str]:
    """``pattern`` for ``fullmatch``: Python's ``$`` would also match before a final newline."""
    return re.compile(pattern.removeprefix("^").removesuffix("$"))


_AMOUNT_TEXT: Final = _whole(AMOUNT_PATTERN)
_NAME_TEXT: Final = _whole(NAME_PATTERN)
_SYMBOL_TEXT: Final = _whole(SYMBOL_PATTERN)
#: Without its offset too: then pydantic's ``timezone_aware`` error says what is missing.
_DATE_TIME_TEXT: Final = re.compile(f"{_LOCAL_TIME}{_OFFSET}?")


#: A whole number in a path or a query: decimal digits, no sign, spaces, separators or
#: leading zero, so that each resource has one URL ("01", "+1", "1.0" or "1_0" are not 1).
_WHOLE_TEXT: Final = re.compile(r"0|[1-9][0-9]{0,18}")
#: The largest id storage holds (BIGINT).
MAX_ID: Final = 2**63 - 1


def _whole_text(value: Any) -> Any:
    """A path or query integer as its canonical text only (pydantic alone reads "+1",
    " 1", "01", "1.0" and "1_0"); a 20th digit is past every id stored."""
    if isinstance(value, str) and not _WHOLE_TEXT.fullmatch(value):
        raise PydanticCustomError(
            "int_format",
            "Input should be a whole number in decimal digits, such as '42': no sign, "
            "spaces, separators, decimals or leading zero, at most 19 digits",
        )
    return value


#: An integer read from a URL (add ``Path``/``Query`` bounds beside it).
WholeText = BeforeValidator(_whole_text)


def _amount_text(value: Any, handler: ValidatorFunctionWrapHandler) -> Decimal:
    """pydantic's checks first (their error types are the API's: ``greater_than``,
    ``decimal_max_places``...), then the string grammar, stricter than ``Decimal()``."""
    amount: Decimal = handler(value)
    if isinstance(value, str) and not _AMOUNT_TEXT.fullmatch(value):
        raise PydanticCustomError(
            "decimal_format",
            "Input should be a decimal such as '190.5': digits, optionally a point and at "
            "most 10 decimals; no sign, exponent or spaces",
        )
    return amount


def _amount_schema(*, positive: bool, example: str) -> WithJsonSchema:
    """A string (exact, preferred) or a number, either below 10^18 with at most 10 decimals."""
    text: dict[str, Any] = {"type": "string", "pattern": AMOUNT_PATTERN}
    number: dict[str, Any] = {
        "type": "number",
        "exclusiveMaximum": AMOUNT_LIMIT,
        "multipleOf": float(Decimal(1).scaleb(-AMOUNT_SCALE)),
    }
    if positive:
        text["not"] = {"pattern": _ZERO_PATTERN}
        number["exclusiveMinimum"] = 0
    else:
        number["minimum"] = 0
    return WithJsonSchema({"anyOf": [text, number], "examples": [example]}, mode="validation")


def _date_time_text(value: Any) -> Any:
    """Only the RFC 3339 text: pydantic alone would also take a number of seconds, a
    space for the T, or an offset without its colon."""
    if not isinstance(value, str) or not _DATE_TIME_TEXT.fullmatch(value):
        raise PydanticCustomError(
            "datetime_format",
            "Input should be an RFC 3339 date-time with an offset in the years 2 to 9998, "
            "such as '2026-03-02T14:30:00Z' or '2026-03-02T09:30:00.5-05:00'",
        )
    return value


def _name(name: str) -> str:
    if not _NAME_TEXT.fullmatch(name):
        raise PydanticCustomError(
            "name_format",
            "Input should have a visible character, no control or bidirectional "
            "control characters and no other whitespace than spaces at either end",
        )
    return name.strip(" ")


def _symbol(symbol: str) -> str:
    if not _SYMBOL_TEXT.fullmatch(symbol):
        raise PydanticCustomError(
            "symbol_format",
            "Input should be a ticker such as 'AAPL' or 'BTC/USDT': a letter or a digit, "
            "then letters, digits and . / : _ -",
        )
    return symbol.upper()


_AMOUNT_FORMS: Final = (
    'a string such as "{example}" (exact, preferred) or a JSON number (beyond 15 '
    "significant digits, JSON parsers round numbers); below 10^18, at most 10 decimals."
)

#: An amount in a response: a JSON string (see ``decimal_text``).
Money = Annotated[
    Decimal,
    PlainSerializer(decimal_text, return_type=str),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN}, mode="serialization"),
]
_AMOUNT_FIELD: Final = {
    "max_digits": AMOUNT_PRECISION,
    "decimal_places": AMOUNT_SCALE,
    "allow_inf_nan": False,
}
#: Request amounts: at most 18 integer digits and 10 decimal places (the stored scale).
Quantity = Annotated[
    Decimal,
    Field(gt=0, **_AMOUNT_FIELD),
    WrapValidator(_amount_text),
    _amount_schema(positive=True, example="10"),
]
Price = Annotated[
    Decimal,
    Field(ge=0, **_AMOUNT_FIELD),
    WrapValidator(_amount_text),
    _amount_schema(positive=False, example="190.5"),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NAME_MAX_CHARS),
    AfterValidator(_name),
    Field(json_schema_extra={"pattern": NAME_PATTERN}),
]
Symbol = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SYMBOL_MAX_CHARS),
    AfterValidator(_symbol),
    Field(json_schema_extra={"pattern": SYMBOL_PATTERN}),
]
#: When a trade or a cash movement happened; None: now.
ExecutedAt = Annotated[
    Annotated[AwareDatetime, BeforeValidator(_date_time_text)] | None,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN},
                {"type": "null"},
            ],
            "description": "When it happened: an RFC 3339 date-time with an offset (Z or "
            "+hh:mm), such as 2026-03-02T14:30:00Z, in the years 2 to 9998; at most 9 "
            "decimals of seconds, kept to the microsecond. Absent or null: now.",
            "examples": ["2026-03-02T14:30:00Z"],
        },
        mode="validation",
    ),
]


class Model(BaseModel):
    """Base of the wire models: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(Model):
    """An error other than a validation error."""

    detail: str


class TokenOut(Model):
    """A signed token (HS256 JWT), for ``Authorization: Bearer`` or the cookie."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the token is valid for.")


class MeOut(Model):
    """The authenticated caller."""

    user_id: int
    username: str


class PositionOut(Model):
    """One holding, valued at the current market price (average-cost accounting).

    Every amount is a string (see the API description). A closed position (quantity
    ``"0"``) is listed: it carries the realized P&L of its sells.
    """

    symbol: str
    quantity: Money
    average_cost: Money = Field(description="cost_basis / quantity; 0 when closed.")
    cost_basis: Money = Field(
        description="Total cost of the quantity held: what its buys paid, less the "
        "average cost of what was sold."
    )
    price: Money | None = Field(
        description="The market price used; null before the symbol's first price (then "
        "the position is valued at its previous close, or at its cost)."
    )
    market_value: Money = Field(description="quantity * price.")
    unrealized_pnl: Money = Field(description="market_value - cost_basis.")
    realized_pnl: Money = Field(
        description="Realized by the sells of this symbol, ever: each sell's amount "
        "less the average cost of the quantity sold."
    )
    daily_change: Money = Field(
        description="quantity * (price - the symbol's change_reference): its previous "
        "close, else the first price this gateway saw today (UTC); see GET /assets."
    )

    @classmethod
    def of(cls, value: PositionValue) -> "PositionOut":
        quantity = value.quantity
        average = Decimal(0)
        if quantity:  # as Holding.average_cost: to the stored scale
            average = CONTEXT.divide(value.cost_basis, quantity).quantize(
                MONEY_PLACES, context=CONTEXT
            )
        return cls(
            symbol=value.symbol,
            quantity=quantity,
            average_cost=average,
            cost_basis=value.cost_basis,
            price=value.price,
            market_value=value.market_value,
            unrealized_pnl=value.unrealized_pnl,
            realized_pnl=value.realized_pnl,
            daily_change=value.daily_change,
        )


class PortfolioOut(Model):
    """A portfolio and its live value. Every amount is a string.

    ``total_value = market_value + cash = net_deposits + unrealized_pnl + realized_pnl``.
    """

    id: int
    name: str
    created_at: datetime
    total_value: Money = Field(description="market_value + cash.")
    market_value: Money = Field(description="Sum of the positions' market values.")
    cash: Money = Field(
        description="Cash balance, never negative: deposits - withdrawals - what buys "
        "paid + what sells received. A buy that needs more than the balance first "
        "records an automatic deposit of the shortfall."
    )
    net_deposits: Money = Field(
        description="Deposits (automatic ones included) - withdrawals, ever: the money "
        "put in. Negative once more was withdrawn than deposited."
    )
    cost_basis: Money = Field(description="Sum of the positions' cost bases (invested).")
    daily_change: Money = Field(
        description="Sum of the positions' daily changes (price moves since each "
        "symbol's change_reference; cash has none)."
    )
    daily_change_percent: Money = Field(
        description="100 * daily_change / (total_value - daily_change): against what the "
        "same holdings and cash were worth at the references; 6 decimal places at most, "
        "0 when that is 0."
    )
    unrealized_pnl: Money = Field(description="market_value - cost_basis.")
    realized_pnl: Money = Field(description="Sum of the positions' realized P&L, ever.")
    unpriced_positions: int = Field(
        description="Open positions valued without a market price yet (estimated)."
    )
    as_of: datetime = Field(description="When the value was read.")
    public: bool = Field(
        False,
        description="On the public leaderboard: its name, its owner's username and its "
        "performance are shown to anyone (`PATCH` to opt in or out).",
    )

    @classmethod
    def of(cls, portfolio: Portfolio, v: Valuation, now: float) -> "PortfolioOut":
        return cls(
            public=portfolio.public,
            id=portfolio.id,
            name=portfolio.name,
            created_at=portfolio.created_at,
            total_value=v.total_value,
            market_value=v.market_value,
            cash=v.cash,
            net_deposits=v.net_deposits,
            cost_basis=v.cost_basis,
            daily_change=v.daily_change,
            daily_change_percent=v.daily_change_percent,
            unrealized_pnl=v.unrealized_pnl,
            realized_pnl=v.realized_pnl,
            unpriced_positions=v.unpriced,
            as_of=datetime.fromtimestamp(now, UTC),
        )


class PortfolioDetailOut(PortfolioOut):
    """A portfolio, its live value and its positions (by symbol)."""

    positions: list[PositionOut]


class PortfolioIn(Model):
    """A new portfolio; the name is unique among the caller's portfolios."""

    name: Name = Field(
        description="1 to 100 characters with a visible one, no control or bidirectional "
        "control characters (U+202A-U+202E, U+2066-U+2069); spaces at either end are "
        "removed. Unique among the caller's portfolios (else 409).",
        examples=["Growth"],
    )
    public: StrictBool = Field(
        False,
        description="Opt in to the public leaderboard from the start (default false).",
    )


class PortfolioPatch(Model):
    """A change to a portfolio: its place on the public leaderboard."""

    public: StrictBool = Field(
        description="true: opt in to the public leaderboard (its name, the owner's "
        "username and its performance are shown to anyone); false: opt out."
    )


class TransactionIn(Model):
    """A buy or a sell. Amounts as strings (exact) or numbers."""

    symbol: Symbol = Field(
        description="A ticker such as AAPL or BTC/USDT: 1 to 32 characters, a letter or a "
        "digit then letters, digits and . / : _ -, in either case (recorded in upper "
        "case). It must be a known asset, one that GET /assets lists (the gateway's "
        "market symbols and the asset table): an unknown one is a 422 unknown_symbol.",
        examples=["AAPL"],
    )
    side: Annotated[
        Side,
        WithJsonSchema(
            {"type": "string", "pattern": "^([Bb][Uu][Yy]|[Ss][Ee][Ll][Ll])$"},
            mode="validation",
        ),
    ] = Field(description="buy or sell, in any case.", examples=["buy"])
    quantity: Quantity = Field(
        description="How many, more than 0: " + _AMOUNT_FORMS.format(example="10")
    )
    price: Price = Field(
        description="The price of one, 0 or more: " + _AMOUNT_FORMS.format(example="190.5")
    )
    executed_at: ExecutedAt = None

    @field_validator("side", mode="before")
    @classmethod
    def _lower(cls, side: Any) -> Any:
        return side.lower() if isinstance(side, str) else side


class TransactionOut(Model):
    """An executed buy or sell. Amounts are strings."""

    id: int
    portfolio_id: int
    symbol: str
    side: Side
    quantity: Money
    price: Money
    executed_at: datetime

    @classmethod
    def of(cls, t: Transaction) -> "TransactionOut":
        return cls(
            id=t.id,
            portfolio_id=t.portfolio_id,
            symbol=t.symbol,
            side=Side(t.side.value),
            quantity=t.quantity,
            price=t.price,
            executed_at=t.executed_at,
        )


class CashIn(Model):
    """A deposit or a withdrawal. The amount as a string (exact) or a number."""

    amount: Quantity = Field(
        description="How much, more than 0: " + _AMOUNT_FORMS.format(example="1000")
    )
    executed_at: ExecutedAt = None


class CashTransactionOut(Model):
    """A deposit or a withdrawal. Amounts are strings."""

    id: int
    portfolio_id: int
    kind: Literal["deposit", "withdrawal"]
    amount: Money
    executed_at: datetime
    transaction_id: int | None = Field(
        description="For an automatic deposit: the buy it paid for (the balance was "
        "short). null for a deposit or withdrawal asked for."
    )

    @classmethod
    def of(cls, c: CashTransaction) -> "CashTransactionOut":
        return cls(
            id=c.id,
            portfolio_id=c.portfolio_id,
            kind=c.kind.value,
            amount=c.amount,
            executed_at=c.executed_at,
            transaction_id=c.transaction_id,
        )


class CashRecordedOut(Model):
    """The recorded deposit or withdrawal, and the portfolio it leaves, valued live."""

    cash_transaction: CashTransactionOut
    portfolio: PortfolioOut


class TransactionRecordedOut(Model):
    """The recorded transaction, the position it leaves (valued live), the automatic
    deposit it needed and the cash balance after it."""

    transaction: TransactionOut
    position: PositionOut
    automatic_deposit: CashTransactionOut | None = Field(
        description="The deposit of the shortfall a buy made first when the cash was "
        "short; null when the cash sufficed (and for every sell)."
    )
    cash: Money = Field(description="The cash balance after the transaction.")


class AssetOut(Model):
    """A known asset. Amounts are strings; null when unknown."""

    symbol: str
    name: str
    kind: AssetKind = Field(description="What it is (crypto: a pair such as BTC/USDT).")
    price: Money | None = Field(description="The latest price: live, else the stored one.")
    live: bool = Field(description="Whether price comes from the live feed of this node.")
    previous_close: Money | None = Field(
        description="A real close, never a price of today: the last price this gateway "
        "saw before today (UTC), else the asset table's (tickcast update-prices "
        "--historical). null when neither is known."
    )
    change_reference: Money | None = Field(
        description="What change and change_percent (and the positions' daily_change) "
        "are measured against: previous_close when known, else the first price this "
        "gateway saw today (UTC). null when neither is known."
    )
    change_reference_kind: Literal["previous_close", "first_price_today"] | None = Field(
        description="Which of the two change_reference is."
    )
    change: Money | None = Field(description="price - change_reference.")
    change_percent: Money | None = Field(
        description="100 * change / change_reference, 6 decimal places at most."
    )
