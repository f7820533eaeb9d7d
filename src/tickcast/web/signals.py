"""The signal routes of the API (mounted at ``/api`` with the portfolio routes):

    POST /signals   publish one trading signal (a key with ``publish:signals``) -> 201
    GET  /signals   the signal history, ``?symbol=&since=&limit=`` (public market data)

Rules: thin. What a signal is, is ``model.signal.decode_signal``'s to say (through
``signals.intake.read_signal``), never pydantic's: the body is read as bytes, so the
size limit is checked before parsing and the decoder's reason is the answer's. The
request body's JSON Schema below is published for clients and for the contract test;
every rule in it is one the decoder enforces (the decoder has more: a time zone on the
timestamp, a finite price), so what the schema refuses is refused.

Answers of ``POST /signals``: 201 with the signal as published (an ``id`` is given to
one sent without); 401 without valid credentials; 403 for a caller whose credential
does not carry ``publish:signals`` (API keys only: tokens carry no permission); 400
for a body that is not JSON (or not UTF-8); 413 for more than 4096 bytes; 415 for a
body not declared JSON; 422 for JSON that is not a valid signal, with the decoder's
reason (``{"detail": [{"type": "invalid_signal", "loc": ["body"], "msg": ...}]}``);
409 for an id the history holds (published already).

Signals keep the seed's shape in both directions (``price`` is a JSON number, unlike
the portfolio amounts), so that what this API returns is what ``new_signal`` carries.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' signatures
at run time.
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final, Literal

import fastapi
from fastapi import Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from tickcast.auth import policy
from tickcast.auth.credentials import PUBLISH_SIGNALS, Principal
from tickcast.model.signal import MAX_SIGNAL_BYTES, Signal, iso_utc
from tickcast.signals.intake import Refused, read_signal
from tickcast.signals.service import Duplicate, SignalService
from tickcast.web.contract import BODY, CREDENTIALS, Responses
from tickcast.web.schemas import ErrorOut, WholeText

#: Signals listed when ``?limit=`` is not given, and the most one request may ask.
DEFAULT_SIGNALS: Final = 100
MAX_SIGNALS: Final = 1000
#: The source name HTTP-ingested signals are counted (and given ids) under.
SOURCE: Final = "http"

_TEXT: Final = {"type": "string", "minLength": 1, "pattern": r"\S"}
#: The body of ``POST /signals``, as the decoder reads it (``model/signal.py``).
SIGNAL_IN_SCHEMA: Final[dict[str, Any]] = {
    "title": "SignalIn",
    "type": "object",
    "description": "One trading signal, at most 4096 bytes of JSON. Unknown fields are "
    "refused. `id` and `source` may be left out: an id is then given (`http-<ms>-<n>`) "
    "and the source is `external`.",
    "additionalProperties": False,
    "required": ["type", "signal", "price", "symbol", "timeframe", "timestamp"],
    "properties": {
        "type": {**_TEXT, "description": "The strategy.", "examples": ["QUANTUM_CIPHER"]},
        "signal": {"type": "string", "enum": ["BUY", "SELL"]},
        "price": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "A finite number > 0.",
            "examples": [162.5],
        },
        "symbol": {**_TEXT, "examples": ["BTC/USDT"]},
        "timeframe": {**_TEXT, "examples": ["1m"]},
        "timestamp": {
            **_TEXT,
            "description": "ISO 8601 date and time with a time zone (`Z` or an offset); "
            "anything else is a 422.",
            "examples": ["2026-01-02T03:04:05.000Z"],
        },
        "id": {"type": "string", "description": "Unique; a repeated id is a 409."},
        "source": {"type": "string", "description": "Who produced it (default external)."},
    },
}


class SignalOut(BaseModel):
    """A trading signal, in the shape the Socket.IO ``new_signal`` event carries."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Unique among the signals held.")
    source: str = Field(description="`engine` (built in), or the producer's name.")
    type: str = Field(description="The strategy, e.g. `MA_CROSS`, `RSI`, `QUANTUM_CIPHER`.")
    signal: Literal["BUY", "SELL"]
    price: float = Field(description="A JSON number (the seed's shape), > 0.")
    symbol: str
    timeframe: str
    timestamp: str = Field(description="The strategy's time, ISO 8601.")

    @classmethod
    def of(cls, signal: Signal) -> "SignalOut":
        return cls(
            id=signal.id,
            source=signal.source,
            type=signal.type,
            signal=signal.signal,
            price=signal.price,
            symbol=signal.symbol,
            timeframe=signal.timeframe,
            timestamp=signal.timestamp,
        )


class SignalRecordOut(SignalOut):
    """A signal of the history, with when and in what order the gateway published it."""

    published_at: str = Field(description="When the gateway published it, ISO 8601 UTC.")
    seq: int = Field(description="Its sequence number on the hub (publication order).")


def _refused(service: SignalService, exc: Refused) -> Exception:
    service.refuse(SOURCE, exc.reason)
    if exc.reason == "too_large":
        return HTTPException(413, exc.message)
    if exc.reason == "malformed":
        return HTTPException(400, f"The body is not a JSON document: {exc.message}")
    return _invalid(exc)


def _invalid(exc: Refused) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "invalid_signal", "loc": ("body",), "msg": exc.message, "input": None}]
    )


async def _body(request: Request, service: SignalService) -> bytes:
    """The body, refused (413) as soon as it is known to pass the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_SIGNAL_BYTES:
        service.refuse(SOURCE, "too_large")
        raise HTTPException(413, f"A signal is at most {MAX_SIGNAL_BYTES} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_SIGNAL_BYTES:
            service.refuse(SOURCE, "too_large")
            raise HTTPException(413, f"A signal is at most {MAX_SIGNAL_BYTES} bytes")
    return bytes(data)


def add_signal_routes(
    api: fastapi.FastAPI,
    service: SignalService,
    credentials: Callable[..., Coroutine[Any, Any, tuple[Principal, bool]]],
    *,
    unauthenticated: Callable[[], Exception],
    json_body: Callable[..., Coroutine[Any, Any, None]],
    allow_anonymous: bool,
) -> None:
    """``POST /signals`` and ``GET /signals`` on ``api``.

    Args:
        service: publishes and holds the signals.
        credentials: the API's dependency: the caller (ANONYMOUS without credentials)
            and whether it used an API key; it answers 401 for a bad credential.
        unauthenticated: the 401 for a caller that sent none where one is needed.
        json_body: the API's dependency refusing a body not declared JSON (415).
        allow_anonymous: whether anonymous callers read public market data.
    """
    Found = Annotated[tuple[Principal, bool], Depends(credentials)]
    Limit = Annotated[int, Query(ge=1, le=MAX_SIGNALS), WholeText]
    publish_responses: Responses = {
        **CREDENTIALS,
        **BODY,
        400: {"model": ErrorOut, "description": "The body is not JSON (or not UTF-8)."},
        403: {
            "model": ErrorOut,
            "description": "The credential does not carry the `publish:signals` "
            "permission (an API key made with `tickcast keys create --permission "
            "publish:signals`; tokens carry no permission).",
        },
        409: {"model": ErrorOut, "description": "A signal with this id was published."},
        413: {"model": ErrorOut, "description": "More than 4096 bytes."},
        422: {
            "description": "JSON that is not a valid signal (`invalid_signal`, with the "
            "reason: an unknown or missing field, a wrong type, an empty name, a price "
            "that is not a finite number > 0, a timestamp without a time zone, a symbol "
            "that is not a ticker, or one symbol more than `signals_max_symbols` outside "
            "the feed).",
        },
    }

    @api.post(
        "/signals",
        operation_id="publish_signal",
        status_code=201,
        summary="Publish a trading signal",
        dependencies=[Depends(json_body)],
        responses=publish_responses,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": SIGNAL_IN_SCHEMA}},
            }
        },
    )
    async def publish_signal(request: Request, found: Found) -> SignalOut:
        """For producers: a caller whose API key carries `publish:signals`. The signal
        goes to every front at once (Socket.IO `new_signal`, the WebSocket channels)
        and into the history."""
        principal, _ = found
        if not principal.authenticated:
            raise unauthenticated()
        if not policy.may_publish_signals(principal):
            raise HTTPException(
                403, f"Publishing signals needs an API key with the {PUBLISH_SIGNALS} permission"
            )
        data = await _body(request, service)
        try:
            signal = read_signal(data)
        except Refused as exc:
            raise _refused(service, exc) from None
        try:
            published = service.submit(signal, SOURCE)
        except Duplicate as exc:
            raise HTTPException(409, str(exc)) from None
        except Refused as exc:  # too_many_symbols (counted by the service)
            raise _invalid(exc) from None
        return SignalOut.of(published)

    @api.get(
        "/signals",
        operation_id="list_signals",
        summary="The recent trading signals, oldest first",
        responses=CREDENTIALS,
        openapi_extra={"security": [{}]} if allow_anonymous else None,
    )
    async def list_signals(
        found: Found,
        symbol: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=64,
                description="Only this symbol (matched upper-case, as signals store it).",
            ),
        ] = None,
        since: Annotated[
            float | None,
            Query(
                ge=0,
                le=1e11,
                allow_inf_nan=False,
                description="Only those published at or after this time (epoch seconds).",
            ),
        ] = None,
        limit: Limit = DEFAULT_SIGNALS,
    ) -> list[SignalRecordOut]:
        """Public market data: anonymous callers are served when the gateway allows
        anonymous market data. The history holds the last `signals_history_size`
        signals, none older than `signals_history_window_s`; `limit` gives the most
        recent ones of those that match."""
        if not policy.may_read_market(found[0], allow_anonymous):
            raise unauthenticated()
        if symbol is not None:
            symbol = symbol.strip().upper()
        held = service.history.query(service.clock.wall(), symbol=symbol, since=since, limit=limit)
        records = []
        for envelope in held:
            signal = envelope.payload
            assert isinstance(signal, Signal)
            base = SignalOut.of(signal)
            records.append(
                SignalRecordOut(
                    **dict(base), published_at=iso_utc(envelope.server_ts), seq=envelope.seq
                )
            )
        return records
