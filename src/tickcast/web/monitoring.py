"""The monitoring routes of the API (mounted at ``/api``): the polling fallback of the
monitoring sockets, for operators.

    GET /monitoring/alerts[?resolved=true|false]   array of alerts
    GET /monitoring/metrics                        the latest system metrics
    GET /monitoring/pipeline                       the latest pipeline
    GET /monitoring/telemetry                      the latest telemetry
    GET /monitoring/dlq                            array of the current dead letters

Rules: thin. Each body is the monitoring codec's (``protocols/monitoring/codec.py``):
the same bytes the socket sends for the same state, so that a poll and a frame are
equal. ``alerts`` without ``resolved`` gives the open ones then the recently resolved
ones; ``resolved=false`` the open ones (what ``/ws/alerts`` gives on connect);
``resolved=true`` the recently resolved ones.

Every answer carries an ``ETag`` (a hash of the body) and ``Cache-Control: no-cache``;
a request whose ``If-None-Match`` names the current one is answered 304 with no body.
401 without credentials (or with refused ones), 403 for a user without the operator
role, 503 before the first sample (the service takes one when it starts).

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' signatures
at run time.
"""

import hashlib
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final, Protocol

import fastapi
from fastapi import Depends, Header, HTTPException, Query, Response

from tickcast.auth.credentials import Principal
from tickcast.fronts.monitoring import NOT_OPERATOR
from tickcast.model.monitoring import (
    Alert,
    AlertBatch,
    DeadLetterBatch,
    DeadLetterItem,
    MonitoringEvent,
)
from tickcast.protocols.monitoring import codec
from tickcast.web.contract import CREDENTIALS, Responses, header
from tickcast.web.schemas import ErrorOut

_TIME: Final = {"type": "string", "description": "ISO 8601 UTC with milliseconds and a Z."}
_NUMBER_OR_NULL: Final = {"type": ["number", "null"]}
_INTEGER_OR_NULL: Final = {"type": ["integer", "null"]}
_UNREAD: Final = "null when the reading failed (see the log)."

ALERT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["id", "severity", "message", "timestamp", "source", "resolved"],
    "properties": {
        "id": {"type": "string", "examples": ["stale_feed-k3x9qa.3"]},
        "severity": {"type": "string", "enum": ["CRITICAL", "HIGH", "MEDIUM", "LOW"]},
        "message": {"type": "string"},
        "timestamp": {
            **_TIME,
            "description": "When it opened, or, once resolved, when it resolved.",
        },
        "source": {"type": "string", "examples": ["feed", "system", "hub", "dlq"]},
        "resolved": {"type": "boolean"},
    },
}
_USAGE: Final = {
    "type": "object",
    "required": ["used", "total", "percentage"],
    "properties": {
        "used": {**_INTEGER_OR_NULL, "description": f"Bytes; {_UNREAD}"},
        "total": {**_INTEGER_OR_NULL, "description": f"Bytes; {_UNREAD}"},
        "percentage": {**_NUMBER_OR_NULL, "description": _UNREAD},
    },
}
METRICS_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["timestamp", "cpu", "memory", "disk", "network"],
    "properties": {
        "timestamp": _TIME,
        "cpu": {
            "type": "object",
            "required": ["usage", "cores"],
            "properties": {
                "usage": {**_NUMBER_OR_NULL, "description": _UNREAD},
                "cores": {"type": "integer"},
            },
        },
        "memory": _USAGE,
        "disk": _USAGE,
        "network": {
            "type": "object",
            "required": ["bytesIn", "bytesOut"],
            "properties": {
                "bytesIn": {**_INTEGER_OR_NULL, "description": _UNREAD},
                "bytesOut": {**_INTEGER_OR_NULL, "description": _UNREAD},
            },
        },
    },
}
PIPELINE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["timestamp", "providers", "hub"],
    "properties": {
        "timestamp": _TIME,
        "providers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "name",
                    "state",
                    "active",
                    "messages_per_s",
                    "last_message_age_s",
                    "dead_letters",
                    "failovers",
                ],
                "properties": {
                    "name": {"type": "string"},
                    "state": {"type": "string"},
                    "active": {"type": "boolean"},
                    "messages_per_s": {"type": "number"},
                    "last_message_age_s": _NUMBER_OR_NULL,
                    "dead_letters": {"type": "integer"},
                    "failovers": {"type": "integer"},
                },
            },
        },
        "hub": {
            "type": "object",
            "required": [
                "publish_per_s",
                "deliveries_per_s",
                "outbox_depth",
                "conflated",
                "slow_closes",
            ],
            "properties": {
                "publish_per_s": {"type": "number"},
                "deliveries_per_s": {"type": "number"},
                "outbox_depth": {"type": "integer"},
                "conflated": {"type": "integer"},
                "slow_closes": {"type": "integer"},
            },
        },
    },
}
TELEMETRY_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": [
        "timestamp",
        "connections",
        "messages_in_per_s",
        "messages_out_per_s",
        "latency_ms",
        "gc",
    ],
    "properties": {
        "timestamp": _TIME,
        "connections": {
            "type": "object",
            "description": "Open connections by front, and their `total`.",
            "additionalProperties": {"type": "integer"},
        },
        "messages_in_per_s": {"type": "number"},
        "messages_out_per_s": {"type": "number"},
        "latency_ms": {
            "type": "object",
            "required": ["p50", "p95", "p99"],
            "description": "Of the deliveries sampled in the interval (null: none was). A "
            "percentile above the histogram's top bucket is given as that bucket's bound "
            "(2500 ms): at least that.",
            "properties": {"p50": _NUMBER_OR_NULL, "p95": _NUMBER_OR_NULL, "p99": _NUMBER_OR_NULL},
        },
        "gc": {
            "type": "object",
            "required": ["collections", "pause_ms_total", "pause_ms_max"],
            "properties": {
                "collections": {"type": "integer"},
                "pause_ms_total": {"type": "number"},
                "pause_ms_max": {"type": "number"},
            },
        },
    },
}
DEAD_LETTER_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["id", "source", "reason", "preview", "timestamp"],
    "properties": {
        "id": {"type": "string"},
        "source": {"type": "string", "examples": ["alpaca", "signals:redis"]},
        "reason": {"type": "string"},
        "preview": {"type": "string", "description": "At most `dlq_preview_bytes` of UTF-8."},
        "timestamp": _TIME,
    },
}


class Monitoring(Protocol):
    """What the routes read of the monitoring service."""

    def alerts(self, resolved: bool | None = None) -> list[Alert]: ...
    def snapshot(self, channel: str) -> MonitoringEvent | None: ...
    def dead_letters(self) -> list[DeadLetterItem]: ...


def etag(body: bytes) -> str:
    """The strong validator of ``body``."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag`` (or is ``*``)."""
    if not if_none_match:
        return False
    names = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in names or tag in names


def answer(body: bytes, if_none_match: str | None) -> Response:
    """``body`` as JSON with its ETag, or 304 when the client holds it already."""
    tag = etag(body)
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _responses(schema: dict[str, Any], what: str) -> Responses:
    cached = {
        "ETag": header("The body's validator, for If-None-Match.", '"5d41402abc4b2a76b9719d91"'),
        "Cache-Control": header("Always revalidate.", "no-cache"),
    }
    return {
        200: {
            "description": what,
            "content": {"application/json": {"schema": schema}},
            "headers": cached,
        },
        304: {"description": "Not modified: `If-None-Match` names the current ETag."},
        **CREDENTIALS,
        403: {"model": ErrorOut, "description": "The user does not have the operator role."},
        503: {
            "model": ErrorOut,
            "description": "The accounts database cannot answer to check an API key, or "
            "no sample was taken yet: retry.",
            "headers": {"Retry-After": header("Seconds to wait before retrying.", "5")},
        },
    }


def add_monitoring_routes(
    api: fastapi.FastAPI,
    service: Monitoring,
    credentials: Callable[..., Coroutine[Any, Any, tuple[Principal, bool]]],
    *,
    unauthenticated: Callable[[], Exception],
) -> None:
    """The ``/monitoring/...`` routes on ``api``.

    Args:
        service: the monitoring service.
        credentials: the API's dependency: the caller (ANONYMOUS without credentials);
            it answers 401 for a bad credential.
        unauthenticated: the 401 for a caller that sent none.
    """
    Found = Annotated[tuple[Principal, bool], Depends(credentials)]
    IfNoneMatch = Annotated[
        str | None,
        Header(alias="If-None-Match", description="An ETag of an earlier answer."),
    ]

    def operator(found: tuple[Principal, bool]) -> None:
        principal = found[0]
        if not principal.authenticated:
            raise unauthenticated()
        if not principal.operator:
            raise HTTPException(403, NOT_OPERATOR)

    def latest(channel: str) -> bytes:
        current = service.snapshot(channel)
        if current is None:
            raise HTTPException(503, "No sample yet: retry", headers={"Retry-After": "5"})
        return codec.encode_payload(current)

    @api.get(
        "/monitoring/alerts",
        operation_id="monitoring_alerts",
        summary="Alerts (operators)",
        response_class=Response,
        responses=_responses(
            {"type": "array", "items": ALERT_SCHEMA}, "Alerts, as `/ws/alerts` carries them."
        ),
    )
    async def alerts(
        found: Found,
        if_none_match: IfNoneMatch = None,
        resolved: Annotated[
            bool | None,
            Query(
                description="`false`: the open alerts (what `/ws/alerts` gives on connect); "
                "`true`: the recently resolved ones; absent: both, open first."
            ),
        ] = None,
    ) -> Response:
        operator(found)
        return answer(
            codec.encode_payload(AlertBatch(tuple(service.alerts(resolved)))), if_none_match
        )

    def add_latest(channel: str, schema: dict[str, Any], summary: str, pushes: str) -> None:
        """``GET /monitoring/<channel>``: the latest sample, as its socket pushes it."""

        async def latest_sample(found: Found, if_none_match: IfNoneMatch = None) -> Response:
            operator(found)
            return answer(latest(channel), if_none_match)

        api.add_api_route(
            f"/monitoring/{channel}",
            latest_sample,
            methods=["GET"],
            operation_id=f"monitoring_{channel}",
            summary=summary,
            response_class=Response,
            responses=_responses(schema, pushes),
        )

    add_latest(
        "metrics",
        METRICS_SCHEMA,
        "The latest system metrics (operators)",
        "As `/ws/metrics` pushes them.",
    )
    add_latest(
        "pipeline",
        PIPELINE_SCHEMA,
        "The latest pipeline figures (operators)",
        "As `/ws/pipeline` pushes them.",
    )
    add_latest(
        "telemetry",
        TELEMETRY_SCHEMA,
        "The latest telemetry (operators)",
        "As `/ws/telemetry` pushes it.",
    )

    @api.get(
        "/monitoring/dlq",
        operation_id="monitoring_dlq",
        summary="The current dead letters (operators)",
        response_class=Response,
        responses=_responses(
            {"type": "array", "items": DEAD_LETTER_SCHEMA},
            "The newest dead letters, oldest first, as `/ws/dlq` gives them on connect.",
        ),
    )
    async def dlq(found: Found, if_none_match: IfNoneMatch = None) -> Response:
        operator(found)
        body = codec.encode_payload(DeadLetterBatch(tuple(service.dead_letters())))
        return answer(body, if_none_match)
