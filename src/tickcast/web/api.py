"""The portfolio HTTP API: a FastAPI application mounted at ``/api``.

    POST /auth/token                        an API key in, a JWT out
    GET  /me                                who the caller is
    GET  /portfolios                        the caller's portfolios, valued live
    POST /portfolios                        {"name"} -> 201; 409 for a name the caller uses
    GET  /portfolios/{id}                   one portfolio, valued live, with its positions
    GET  /portfolios/{id}/positions         its positions, valued live
    GET  /portfolios/{id}/transactions      newest first, ``?limit=`` (1..1000, default 100)
    POST /portfolios/{id}/transactions      a buy or a sell -> 201 with the new position
    POST /portfolios/{id}/deposits          {"amount"} -> 201 with the portfolio
    POST /portfolios/{id}/withdrawals       {"amount"} -> 201; 422 beyond the cash balance
    GET  /portfolios/{id}/cash-transactions deposits and withdrawals, newest first
    GET  /assets                            the known assets, latest price, previous close
    POST /signals                           publish a trading signal (``web/signals.py``)
    GET  /signals                           the recent trading signals, ``?symbol=&since=``
    GET  /docs, /openapi.json               Swagger UI (served by the gateway: web/pages.py),
                                            the OpenAPI description

Rules: thin. Every number comes from the PortfolioService (its in-memory book, the same
one the WebSocket fronts publish from) or from the repositories; this module only checks
who asks, validates the request and shapes the answer (the wire models, the grammar of
what requests send and what each figure means are in ``schemas.py``; every status an
operation answers, with its headers and links, in ``contract.py``). It keeps no state.
The OpenAPI description is a contract the test suite holds the running server to.

Choices (also stated in the OpenAPI description):
    - Money and quantities are JSON *strings* in every response (``"1575"``, ``"62.5"``):
      a JSON number is read as a binary float by JavaScript and most JSON libraries and
      loses exactness. The text is canonical: no exponent, no trailing zeros, ``"0"``
      never ``"-0"``. Requests accept strings (exact, preferred) or numbers (read as they
      are written; beyond 15 significant digits a number may already have been rounded
      by the JSON parser); at most 10 decimal places and 18 integer digits, as stored.
    - Someone else's portfolio answers 404, exactly as a portfolio that does not exist,
      so that ids cannot be probed (the WebSocket fronts answer 403 through
      ``auth.policy.check_portfolio``, where the id comes from the client's own
      subscription; over HTTP an id in a URL is easily enumerated).
    - Credentials are those of the WebSockets (``auth.credentials.
      credentials_from_handshake``): ``Authorization: Bearer <JWT or API key>``, then
      ``X-API-Key``, then the ``tickcast_token`` cookie; never a ``?token=`` query
      parameter (URLs end up in logs). Missing or bad credentials answer 401 with a
      ``WWW-Authenticate: Bearer`` challenge (RFC 6750 §3).
    - A request with a body must say ``Content-Type: application/json`` (else 415): with
      cookie authentication this keeps cross-site forms and no-CORS fetches (which cannot
      send that type without a preflight) from placing trades.
    - Every 422 has FastAPI's validation shape, ours included (an unknown symbol, a sell
      of more than is held, a withdrawal of more than the cash): ``{"detail": [{"type",
      "loc", "msg", "input"}]}``.
    - A buy needs no deposit first: when the cash is short, the shortfall is recorded as
      an automatic deposit (``portfolio/cash.py``), returned with the transaction.
    - ``GET /assets`` is public market data: anonymous callers are served when
      ``allow_anonymous`` is set, as on the WebSockets (its OpenAPI security then lists
      the empty requirement: credentials optional). A credential that is sent is still
      checked: a malformed or ambiguous one is a 401 there too.
    - Requests are read strictly, by the grammar the OpenAPI description publishes
      (``schemas.py``): a symbol, a name, an amount or a time that does not match is a
      422, never silently trimmed or reinterpreted (spaces around a portfolio name and
      the case of a symbol or a side are the only leniencies, and they are documented).

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' signatures
at run time, and the endpoints are closures over ``build_api``'s arguments.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import fastapi
from fastapi import Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from tickcast import __version__
from tickcast.auth import policy
from tickcast.auth.credentials import (
    ANONYMOUS,
    DEFAULT_COOKIE,
    InvalidCredentials,
    Principal,
    credentials_from_handshake,
    looks_like_api_key,
)
from tickcast.fronts.guard import Guard
from tickcast.fronts.identity import CredentialsUnavailable
from tickcast.portfolio.assets import ReferenceKind
from tickcast.portfolio.cash import InsufficientCash
from tickcast.portfolio.service import PortfolioService
from tickcast.portfolio.valuation import (
    CONTEXT,
    PERCENT_PLACES,
    InsufficientQuantity,
    Valuation,
    price_to_decimal,
)
from tickcast.signals.service import SignalService
from tickcast.storage.errors import Conflict, NotFound
from tickcast.storage.ledger import CashTransactions
from tickcast.storage.records import Asset, AssetKind, CashTransaction, Portfolio
from tickcast.storage.repositories import Assets, Transactions
from tickcast.storage.tables import AMOUNT_PRECISION, AMOUNT_SCALE
from tickcast.web import pages
from tickcast.web.contract import (
    BODY,
    CREDENTIALS,
    NOT_FOUND,
    READERS,
    WRITERS,
    header,
    install_handlers,
    links,
    refusals,
)
from tickcast.web.leaderboard import LeaderboardRoutes, add_leaderboard_routes
from tickcast.web.monitoring import Monitoring, add_monitoring_routes
from tickcast.web.schemas import (
    MAX_ID,
    AssetOut,
    CashIn,
    CashRecordedOut,
    CashTransactionOut,
    ErrorOut,
    MeOut,
    PortfolioDetailOut,
    PortfolioIn,
    PortfolioOut,
    PortfolioPatch,
    PositionOut,
    TokenOut,
    TransactionIn,
    TransactionOut,
    TransactionRecordedOut,
    WholeText,
    decimal_text,
)
from tickcast.web.signals import add_signal_routes

#: Transactions listed when ``?limit=`` is not given, and the most one request may ask.
DEFAULT_TRANSACTIONS: Final = 100
MAX_TRANSACTIONS: Final = 1000
#: A trade's ``quantity * price`` must stay below this (stored as NUMERIC(28, 10)).
MAX_TRADE_AMOUNT: Final = Decimal(10) ** (AMOUNT_PRECISION - AMOUNT_SCALE)
REALM: Final = "tickcast"
UNAUTHENTICATED: Final = (
    "Authentication required: send Authorization: Bearer <JWT or API key>, "
    f"X-API-Key: <API key> or the {DEFAULT_COOKIE} cookie"
)

_DESCRIPTION = """\
Portfolios, positions, transactions and assets of the tickcast gateway, valued live
from the same market data the WebSockets stream.

**Authentication**: `Authorization: Bearer <JWT or API key>`, `X-API-Key: <API key>` or
the `tickcast_token` cookie. `POST /auth/token` exchanges an API key for a JWT.

**Money** (prices, quantities, values, P&L) is a JSON **string** in every response,
e.g. `"1575"` or `"62.5"`: exact, where a JSON number would be a binary float in
JavaScript. Requests accept strings (preferred) or numbers.

**Someone else's portfolio** answers 404, like one that does not exist.

**Trading signals** (`/signals`) keep the shape the Socket.IO `new_signal` event
carries (their `price` is a JSON number). Publishing one needs an API key made with
the `publish:signals` permission; reading them is public market data.

**Cash**: a portfolio has a cash balance (deposits, withdrawals, what buys pay, what
sells receive), part of its `total_value`. A buy never needs a deposit first: when the
cash is short, the shortfall is recorded as an automatic deposit, so the cash never goes
negative and `total_value = net_deposits + unrealized_pnl + realized_pnl`.
"""


# -- the caller


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller; ``by_api_key`` tells how it proved it."""

    user_id: int
    username: str
    by_api_key: bool
    role: str = "user"


# Registered for the OpenAPI description (Swagger's "Authorize"); the credential itself is
# read by ``credentials_from_handshake``, the same function the WebSockets use.
_bearer = HTTPBearer(auto_error=False, description="A JWT or an API key.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)
_cookie = APIKeyCookie(name=DEFAULT_COOKIE, auto_error=False)
_CHALLENGE_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def _unauthorized(message: str, *, invalid: bool) -> HTTPException:
    challenge = f'Bearer realm="{REALM}"'
    if invalid:  # RFC 6750 §3: error_description is a restricted ASCII set
        description = _CHALLENGE_UNSAFE.sub("", message)
        challenge += f', error="invalid_token", error_description="{description}"'
    return HTTPException(401, message, headers={"WWW-Authenticate": challenge})


def _invalid(loc: str, kind: str, message: str, value: Any) -> RequestValidationError:
    """A 422 in FastAPI's own validation shape."""
    return RequestValidationError(
        [{"type": kind, "loc": ("body", loc), "msg": message, "input": value}]
    )


def _not_found(portfolio_id: int) -> HTTPException:
    return HTTPException(404, f"Portfolio {portfolio_id} not found")


async def _json_body(request: Request) -> None:
    """Refuse a body that is not declared JSON (415); see the module docstring."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json" and not (
        kind.startswith("application/") and kind.endswith("+json")
    ):
        raise HTTPException(415, "Content-Type must be application/json")


def build_api(
    service: PortfolioService,
    engine: AsyncEngine,
    guard: Guard,
    *,
    is_known: Callable[[str], bool],
    symbols: frozenset[str],
    allow_anonymous: bool,
    signals: SignalService | None = None,
    leaderboard: LeaderboardRoutes | None = None,
    monitoring: Monitoring | None = None,
) -> fastapi.FastAPI:
    """The portfolio API, to mount at ``/api``.

    Args:
        service: the portfolio service (the book, transactions, cash, references).
        engine: the database (transactions, cash movements and stored assets are read).
        guard: whose ``identity`` authenticates callers and issues tokens.
        is_known: whether a symbol may be traded (the universe and the stored assets).
        symbols: the feed's universe (``GET /assets`` lists it with the stored assets).
        allow_anonymous: whether anonymous callers get public market data.
        signals: the signal service (``POST``/``GET /signals``); None serves no signals.
        leaderboard: the leaderboard service and its settings (``GET /leaderboard...``);
            None serves no leaderboard.
        monitoring: the monitoring service (``GET /monitoring/...``, operators); None
            serves none.
    """
    api = fastapi.FastAPI(
        title="tickcast portfolio API",
        version=__version__,
        description=_DESCRIPTION,
        # FastAPI's own docs pages load Swagger UI (and ReDoc) from a CDN with an inline
        # script: the gateway serves its own page instead, every file from this host.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url="/openapi.json",
    )
    api.add_route("/docs", pages.api_docs_page(), include_in_schema=False)
    install_handlers(api)

    async def credentials(
        request: Request,
        _b: Annotated[Any, Depends(_bearer)],
        _k: Annotated[Any, Depends(_api_key)],
        _c: Annotated[Any, Depends(_cookie)],
    ) -> tuple[Principal, bool]:
        """The caller (ANONYMOUS without credentials) and whether it used an API key."""
        try:
            token = credentials_from_handshake(request.scope.get("headers", ()), b"")
            if token is None:
                return ANONYMOUS, False
            return await guard.identity.authenticate(token), looks_like_api_key(token)
        except InvalidCredentials as exc:
            raise _unauthorized(str(exc) or "Invalid credentials", invalid=True) from None
        except CredentialsUnavailable as exc:  # the accounts database is down: not a 401
            raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None

    async def authenticated(
        found: Annotated[tuple[Principal, bool], Depends(credentials)],
    ) -> Caller:
        principal, by_api_key = found
        if principal.user_id is None or principal.username is None:
            raise _unauthorized(UNAUTHENTICATED, invalid=False)
        return Caller(principal.user_id, principal.username, by_api_key, principal.role)

    CallerDep = Annotated[Caller, Depends(authenticated)]
    PortfolioId = Annotated[int, Path(ge=1, le=MAX_ID), WholeText]
    Limit = Annotated[int, Query(ge=1, le=MAX_TRANSACTIONS), WholeText]
    json_body = [Depends(_json_body)]

    def owned(caller: Caller, portfolio_id: int) -> Portfolio:
        """The caller's portfolio, or 404 (another user's answers the same)."""
        if service.owner_of(portfolio_id) != caller.user_id:
            raise _not_found(portfolio_id)
        for portfolio in service.portfolios_of(caller.user_id):
            if portfolio.id == portfolio_id:
                return portfolio
        raise _not_found(portfolio_id)  # pragma: no cover - owner_of said it exists

    def positions(v: Valuation) -> list[PositionOut]:
        return [PositionOut.of(p) for p in sorted(v.positions, key=lambda p: p.symbol)]

    def cash_recorded(portfolio: Portfolio, entry: CashTransaction) -> CashRecordedOut:
        valuation = service.book.valuation(portfolio.id, positions=False)
        return CashRecordedOut(
            cash_transaction=CashTransactionOut.of(entry),
            portfolio=PortfolioOut.of(portfolio, valuation, service.clock()),
        )

    @api.post(
        "/auth/token",
        operation_id="issue_token",
        summary="Exchange an API key for a JWT",
        responses={
            **CREDENTIALS,
            403: {"model": ErrorOut, "description": "Not an API key."},
        },
    )
    async def token(caller: CallerDep) -> TokenOut:
        """Send the API key as ``Authorization: Bearer`` or ``X-API-Key``. A JWT cannot
        be exchanged for another: tokens expire, keys are revoked."""
        if not caller.by_api_key:
            raise HTTPException(403, "A token is issued in exchange for an API key only")
        principal = Principal(caller.user_id, caller.username, role=caller.role)
        ttl_s = guard.identity.jwt_ttl_s
        return TokenOut(access_token=guard.identity.issue(principal), expires_in=int(ttl_s))

    @api.get("/me", operation_id="me", summary="The caller", responses=CREDENTIALS)
    async def me(caller: CallerDep) -> MeOut:
        return MeOut(user_id=caller.user_id, username=caller.username)

    @api.get(
        "/portfolios",
        operation_id="list_portfolios",
        summary="The caller's portfolios, valued live",
        responses=CREDENTIALS,
    )
    async def list_portfolios(caller: CallerDep) -> list[PortfolioOut]:
        now = service.clock()
        service.roll(now)
        mine = sorted(service.portfolios_of(caller.user_id), key=lambda p: p.id)
        return [
            PortfolioOut.of(p, service.book.valuation(p.id, positions=False), now) for p in mine
        ]

    @api.post(
        "/portfolios",
        operation_id="create_portfolio",
        status_code=201,
        summary="Create a portfolio",
        dependencies=json_body,
        responses={
            201: {
                "headers": {"Location": header("The new portfolio's URL.", "/api/portfolios/1")},
                "links": links("$response.body#/id", *READERS, *WRITERS),
            },
            **CREDENTIALS,
            **BODY,
            409: {"model": ErrorOut, "description": "The caller has a portfolio of this name."},
        },
    )
    async def create_portfolio(
        body: PortfolioIn, caller: CallerDep, request: Request, response: Response
    ) -> PortfolioOut:
        try:
            portfolio = await service.create_portfolio(
                caller.user_id, body.name, public=body.public
            )
        except Conflict:
            raise HTTPException(409, f"You already have a portfolio named {body.name!r}") from None
        except NotFound:  # a valid token of a deleted user
            raise _unauthorized(
                "The account of these credentials does not exist", invalid=True
            ) from None
        response.headers["Location"] = (
            f"{request.scope.get('root_path', '')}/portfolios/{portfolio.id}"
        )
        return PortfolioOut.of(
            portfolio, service.book.valuation(portfolio.id, positions=False), service.clock()
        )

    @api.get(
        "/portfolios/{portfolio_id}",
        operation_id="get_portfolio",
        summary="One portfolio, valued live, with its positions",
        responses={**CREDENTIALS, **NOT_FOUND},
    )
    async def get_portfolio(portfolio_id: PortfolioId, caller: CallerDep) -> PortfolioDetailOut:
        portfolio = owned(caller, portfolio_id)
        now = service.clock()
        service.roll(now)
        v = service.book.valuation(portfolio_id)
        summary = PortfolioOut.of(portfolio, v, now)
        return PortfolioDetailOut(**dict(summary), positions=positions(v))

    @api.patch(
        "/portfolios/{portfolio_id}",
        operation_id="update_portfolio",
        summary="Opt a portfolio in to the public leaderboard, or out",
        dependencies=json_body,
        responses={**CREDENTIALS, **BODY, **NOT_FOUND},
    )
    async def update_portfolio(
        portfolio_id: PortfolioId, body: PortfolioPatch, caller: CallerDep
    ) -> PortfolioOut:
        """By the owner. Opting in shows the portfolio's name, the owner's username and
        its performance on the public leaderboard at once; opting out removes them."""
        owned(caller, portfolio_id)
        try:
            portfolio = await service.set_public(portfolio_id, body.public)
        except NotFound:
            raise _not_found(portfolio_id) from None
        now = service.clock()
        service.roll(now)
        return PortfolioOut.of(
            portfolio, service.book.valuation(portfolio_id, positions=False), now
        )

    @api.get(
        "/portfolios/{portfolio_id}/positions",
        operation_id="list_positions",
        summary="A portfolio's positions, valued live (by symbol)",
        responses={**CREDENTIALS, **NOT_FOUND},
    )
    async def list_positions(portfolio_id: PortfolioId, caller: CallerDep) -> list[PositionOut]:
        owned(caller, portfolio_id)
        service.roll(service.clock())
        return positions(service.book.valuation(portfolio_id))

    @api.get(
        "/portfolios/{portfolio_id}/transactions",
        operation_id="list_transactions",
        summary="A portfolio's transactions, newest first",
        responses={**CREDENTIALS, **NOT_FOUND},
    )
    async def list_transactions(
        portfolio_id: PortfolioId,
        caller: CallerDep,
        limit: Limit = DEFAULT_TRANSACTIONS,
    ) -> list[TransactionOut]:
        owned(caller, portfolio_id)
        async with engine.connect() as conn:
            found = await Transactions(conn).list_for_portfolio(portfolio_id, limit=limit)
        return [TransactionOut.of(t) for t in found]

    @api.post(
        "/portfolios/{portfolio_id}/transactions",
        operation_id="record_transaction",
        status_code=201,
        summary="Record a buy or a sell",
        dependencies=json_body,
        responses={
            201: {"links": links("$response.body#/transaction/portfolio_id", *READERS)},
            **CREDENTIALS,
            **BODY,
            **NOT_FOUND,
            **refusals(
                "`unknown_symbol`: not a known asset (see GET /assets)",
                "`insufficient_quantity`: a sell of more than is held (no short selling)",
                "`amount_too_large`: quantity x price of 10^18 or more",
                "`value_error`: an amount the portfolio cannot hold",
            ),
        },
    )
    async def record_transaction(
        portfolio_id: PortfolioId, body: TransactionIn, caller: CallerDep
    ) -> TransactionRecordedOut:
        """422 for an unknown symbol, a quantity that is not positive, a negative price,
        or a sell of more than is held (short selling is not supported)."""
        owned(caller, portfolio_id)
        if not is_known(body.symbol):
            raise _invalid(
                "symbol", "unknown_symbol", f"Unknown symbol {body.symbol!r}", body.symbol
            )
        if CONTEXT.multiply(body.quantity, body.price) >= MAX_TRADE_AMOUNT:
            raise _invalid(
                "quantity",
                "amount_too_large",
                f"quantity x price must be below {MAX_TRADE_AMOUNT:f}",
                str(body.quantity),
            )
        try:
            recorded = await service.record_transaction(
                portfolio_id, body.symbol, body.side, body.quantity, body.price, body.executed_at
            )
        except InsufficientQuantity as exc:
            message = (  # the error's own text, with amounts in canonical form
                f"cannot sell {decimal_text(exc.requested)} {exc.symbol}: "
                f"only {decimal_text(exc.held)} held"
            )
            raise _invalid(
                "quantity", "insufficient_quantity", message, str(body.quantity)
            ) from None
        except NotFound:  # deleted meanwhile
            raise _not_found(portfolio_id) from None
        except ValueError as exc:  # an amount the book or the database cannot hold
            raise _invalid("quantity", "value_error", str(exc), str(body.quantity)) from None
        deposit = recorded.deposit
        return TransactionRecordedOut(
            transaction=TransactionOut.of(recorded.transaction),
            position=PositionOut.of(service.book.position(portfolio_id, body.symbol)),
            automatic_deposit=CashTransactionOut.of(deposit) if deposit is not None else None,
            cash=service.book.cash(portfolio_id).balance,
        )

    @api.post(
        "/portfolios/{portfolio_id}/deposits",
        operation_id="deposit",
        status_code=201,
        summary="Deposit cash",
        dependencies=json_body,
        responses={
            201: {"links": links("$response.body#/portfolio/id", *READERS, *WRITERS)},
            **CREDENTIALS,
            **BODY,
            **NOT_FOUND,
            **refusals("`value_error`: a balance of 10^18 or more"),
        },
    )
    async def deposit(
        portfolio_id: PortfolioId, body: CashIn, caller: CallerDep
    ) -> CashRecordedOut:
        """422 for an amount that is not positive, or a balance beyond what is stored
        (18 integer digits)."""
        portfolio = owned(caller, portfolio_id)
        try:
            moved = await service.deposit(portfolio_id, body.amount, body.executed_at)
        except NotFound:  # deleted meanwhile
            raise _not_found(portfolio_id) from None
        except ValueError as exc:  # a balance beyond what storage holds
            raise _invalid("amount", "value_error", str(exc), str(body.amount)) from None
        return cash_recorded(portfolio, moved.entry)

    @api.post(
        "/portfolios/{portfolio_id}/withdrawals",
        operation_id="withdraw",
        status_code=201,
        summary="Withdraw cash",
        dependencies=json_body,
        responses={
            201: {"links": links("$response.body#/portfolio/id", *READERS, *WRITERS)},
            **CREDENTIALS,
            **BODY,
            **NOT_FOUND,
            **refusals(
                "`insufficient_cash`: more than the cash balance (sell first)",
                "`value_error`: net deposits the portfolio cannot hold",
            ),
        },
    )
    async def withdraw(
        portfolio_id: PortfolioId, body: CashIn, caller: CallerDep
    ) -> CashRecordedOut:
        """422 for an amount that is not positive, or more than the cash balance
        (``insufficient_cash``: sell first, the proceeds are cash)."""
        portfolio = owned(caller, portfolio_id)
        try:
            moved = await service.withdraw(portfolio_id, body.amount, body.executed_at)
        except InsufficientCash as exc:
            message = (
                f"cannot withdraw {decimal_text(exc.requested)}: "
                f"only {decimal_text(exc.balance)} in cash"
            )
            raise _invalid("amount", "insufficient_cash", message, str(body.amount)) from None
        except NotFound:  # deleted meanwhile
            raise _not_found(portfolio_id) from None
        except ValueError as exc:  # net deposits beyond what storage holds
            raise _invalid("amount", "value_error", str(exc), str(body.amount)) from None
        return cash_recorded(portfolio, moved.entry)

    @api.get(
        "/portfolios/{portfolio_id}/cash-transactions",
        operation_id="list_cash_transactions",
        summary="A portfolio's deposits and withdrawals, newest first",
        responses={**CREDENTIALS, **NOT_FOUND},
    )
    async def list_cash_transactions(
        portfolio_id: PortfolioId,
        caller: CallerDep,
        limit: Limit = DEFAULT_TRANSACTIONS,
    ) -> list[CashTransactionOut]:
        """Automatic deposits included (``transaction_id`` names the buy each paid for)."""
        owned(caller, portfolio_id)
        async with engine.connect() as conn:
            found = await CashTransactions(conn).list_for_portfolio(portfolio_id, limit=limit)
        return [CashTransactionOut.of(c) for c in found]

    @api.get(
        "/assets",
        operation_id="list_assets",
        summary="The known assets, with the latest price and previous close",
        responses=CREDENTIALS,
        # Public market data: the empty requirement says credentials are optional (OpenAPI
        # 3.1 §4.8.30), true only while anonymous callers are served.
        openapi_extra={"security": [{}]} if allow_anonymous else None,
    )
    async def list_assets(
        found: Annotated[tuple[Principal, bool], Depends(credentials)],
    ) -> list[AssetOut]:
        """Public market data: anonymous callers are served when the gateway allows
        anonymous market data. ``change`` is against ``change_reference``: the previous
        close, else the first price this gateway saw today (``change_reference_kind``
        says which)."""
        if not policy.may_read_market(found[0], allow_anonymous):
            raise _unauthorized(UNAUTHENTICATED, invalid=False)
        async with engine.connect() as conn:
            stored = {a.symbol: a for a in await Assets(conn).list_all()}
        service.roll(service.clock())
        return [
            _asset(service, symbol, stored.get(symbol))
            for symbol in sorted(symbols | stored.keys())
        ]

    if signals is not None:
        add_signal_routes(
            api,
            signals,
            credentials,
            unauthenticated=lambda: _unauthorized(UNAUTHENTICATED, invalid=False),
            json_body=_json_body,
            allow_anonymous=allow_anonymous,
        )
    if leaderboard is not None:
        add_leaderboard_routes(
            api,
            leaderboard.board,
            credentials,
            unauthenticated=lambda: _unauthorized(UNAUTHENTICATED, invalid=False),
            public=leaderboard.settings.leaderboard_public,
            max_top=leaderboard.settings.leaderboard_max_top,
            max_window=leaderboard.settings.leaderboard_max_window,
        )
    if monitoring is not None:
        add_monitoring_routes(
            api,
            monitoring,
            credentials,
            unauthenticated=lambda: _unauthorized(UNAUTHENTICATED, invalid=False),
        )
    return api


def _asset(service: PortfolioService, symbol: str, stored: Asset | None) -> AssetOut:
    """One asset as ``AssetOut`` documents it. The previous close and the change
    reference are the portfolio service's (``PortfolioService.reference``: the same
    numbers the positions are valued against, so that ``change`` and every position's
    ``daily_change`` agree); the first price seen today is only ever the change
    reference, and said to be. The caller has rolled the service to now."""
    live = service.assets.price(symbol)
    price = price_to_decimal(live) if live is not None else service.book.price(symbol)
    if price is None and stored is not None:
        price = stored.last_price
    found = service.reference(symbol)
    close = reference = change = percent = None
    reference_kind: Literal["previous_close", "first_price_today"] | None = None
    if found is not None:
        reference, reference_of = found
        reference_kind = reference_of.value
        if reference_of is ReferenceKind.PREVIOUS_CLOSE:
            close = reference
    if price is not None and reference is not None:
        change = CONTEXT.subtract(price, reference)
        percent = CONTEXT.divide(CONTEXT.multiply(change, Decimal(100)), reference).quantize(
            PERCENT_PLACES, context=CONTEXT
        )
    kind = AssetKind.CRYPTO if "/" in symbol else AssetKind.STOCK
    return AssetOut(
        symbol=symbol,
        name=stored.name if stored is not None else symbol,
        kind=stored.kind if stored is not None else kind,
        price=price,
        live=live is not None,
        previous_close=close,
        change_reference=reference,
        change_reference_kind=reference_kind,
        change=change,
        change_percent=percent,
    )
