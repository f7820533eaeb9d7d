"""The portfolio API's wire models: what ``/api`` reads and writes about portfolios,
positions, transactions, cash and assets, and how each figure is computed.

Rules: pydantic models and the conversions from the portfolio package's values, nothing
else (no I/O, no request handling: that is ``api.py``). Every amount in a response is a
JSON string (``Money``, see ``decimal_text``); requests accept strings or numbers with
at most 18 integer digits and 10 decimal places, as stored. The descriptions are the
API's documentation (OpenAPI, ``/api/docs``): keep them true to ``portfolio/``.

No ``from __future__ import annotations`` here: pydantic reads the annotations at run
time.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
)

from tickcast.portfolio.valuation import (
    CONTEXT,
    MONEY_PLACES,
    PositionValue,
    Side,
    Valuation,
)
from tickcast.storage.records import CashTransaction, Portfolio, Transaction
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


#: An amount in a response: a JSON string (see ``decimal_text``).
Money = Annotated[Decimal, PlainSerializer(decimal_text, return_type=str)]
#: Request amounts: at most 18 integer digits and 10 decimal places (the stored scale).
Quantity = Annotated[
    Decimal,
    Field(
        gt=0,
        max_digits=AMOUNT_PRECISION,
        decimal_places=AMOUNT_SCALE,
        allow_inf_nan=False,
        examples=["10"],
    ),
]
Price = Annotated[
    Decimal,
    Field(
        ge=0,
        max_digits=AMOUNT_PRECISION,
        decimal_places=AMOUNT_SCALE,
        allow_inf_nan=False,
        examples=["190.5"],
    ),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class Model(BaseModel):
    """Base of the wire models: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


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

    @classmethod
    def of(cls, portfolio: Portfolio, v: Valuation, now: float) -> "PortfolioOut":
        return cls(
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

    name: Name


class TransactionIn(Model):
    """A buy or a sell. Amounts as strings (exact) or numbers."""

    symbol: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    side: Side
    quantity: Quantity
    price: Price
    executed_at: AwareDatetime | None = Field(
        None, description="ISO-8601 with an offset; default: now."
    )

    @field_validator("symbol")
    @classmethod
    def _upper(cls, symbol: str) -> str:
        return symbol.upper()

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

    amount: Quantity
    executed_at: AwareDatetime | None = Field(
        None, description="ISO-8601 with an offset; default: now."
    )


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
    kind: str
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
