"""The monitoring front's spec: who may open a stream, the floor of who may read the
operators' channels on every front, and the first frame built for one subscriber."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from support.clock import ManualClock
from tickcast.auth.credentials import ANONYMOUS, Principal
from tickcast.closecodes import CloseCode
from tickcast.fronts.base import FrontSpec
from tickcast.fronts.guard import UserCap
from tickcast.fronts.monitoring import NOT_OPERATOR, SIGN_IN, STREAMS, MonitoringSpec
from tickcast.fronts.realtime import RealtimeSpec
from tickcast.model.channel import BUILTIN, Readers
from tickcast.model.envelope import Envelope
from tickcast.model.monitoring import Alert, AlertBatch, MonitoringEvent, Severity
from tickcast.model.topic import Topic
from tickcast.protocols.base import Subscribe
from tickcast.protocols.monitoring import codec

OPERATOR = Principal(1, "olga", role="operator")
USER = Principal(2, "uma")
ALERT = Alert("cpu-1", "cpu", "", Severity.HIGH, "CPU", "system", 1.0)


class Service:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def snapshot(self, channel: str) -> MonitoringEvent | None:
        self.asked.append(channel)
        return AlertBatch((ALERT,)) if channel == "alerts" else None


def ctx() -> Any:
    return SimpleNamespace(outbox=SimpleNamespace(batch_ms=100), clock=ManualClock())


@pytest.mark.parametrize("path", list(STREAMS))
def test_an_operator_gets_the_paths_stream(path: str) -> None:
    opened = MonitoringSpec(Service()).open({"path": path}, OPERATOR, ctx())
    assert opened.wire == codec.WIRE
    assert opened.session.close_reason is None
    assert opened.session.commands_received() == [Subscribe((Topic(STREAMS[path], "gateway"),))]


@pytest.mark.parametrize(
    ("principal", "code"),
    [(ANONYMOUS, CloseCode.AUTHENTICATION_REQUIRED), (USER, CloseCode.FORBIDDEN)],
)
def test_others_get_an_error_then_the_close(principal: Principal, code: CloseCode) -> None:
    opened = MonitoringSpec(Service()).open({"path": "/ws/alerts"}, principal, ctx())
    session = opened.session
    assert session.close_reason is code
    assert session.commands_received() == []
    (error,) = session.frames_to_send()
    assert json.loads(error.payload)["type"] == "error"


def test_only_operators_read_the_monitoring_channels_on_any_front() -> None:
    spec = MonitoringSpec(Service())
    topic = Topic("alerts", "gateway")
    assert BUILTIN.get("alerts").readers is Readers.OPERATOR
    assert spec.may_read(OPERATOR, topic, Readers.OPERATOR)
    assert not spec.may_read(USER, topic, Readers.OPERATOR)
    assert not spec.may_read(OPERATOR, Topic("quotes", "AAPL"), Readers.PUBLIC)
    realtime = RealtimeSpec(
        None,  # type: ignore[arg-type]
        cache_timeout_s=1.0,
        allow_anonymous=True,
        auth_timeout_s=1.0,
    )
    for principal in (ANONYMOUS, USER, OPERATOR):  # every other front: never
        assert not FrontSpec().may_read(principal, topic, Readers.OPERATOR)
        assert not FrontSpec().may_read_channel(principal, "alerts", Readers.OPERATOR)
        assert not realtime.may_read(principal, topic, Readers.OPERATOR)


def test_the_first_frame_is_built_for_one_subscriber_from_the_current_state() -> None:
    service = Service()
    spec = MonitoringSpec(service)
    topic = Topic("alerts", "gateway")
    cached = Envelope(topic, 4, 1.0, AlertBatch(()), "e1")  # the last change published
    first = spec.snapshot(topic, cached, ctx())
    assert first is not None
    assert first.payload == AlertBatch((ALERT,))  # the open alerts, not the last change
    assert (first.seq, first.epoch) == (4, "e1")
    assert json.loads(codec.encode(first))[0]["id"] == "cpu-1"
    assert spec.snapshot(Topic("metrics", "gateway"), None, ctx()) is None  # no sample yet
    assert service.asked == ["alerts", "metrics"]


def test_an_open_socket_whose_key_no_longer_names_an_operator_is_turned_away() -> None:
    spec = MonitoringSpec(Service(), recheck_s=5)
    assert spec.revoked(OPERATOR) is None
    assert spec.revoked(USER) == (NOT_OPERATOR, CloseCode.FORBIDDEN)
    assert spec.revoked(None) == (SIGN_IN, CloseCode.AUTHENTICATION_REQUIRED)
    assert spec.user_cap is UserCap.PER_PATH
    assert FrontSpec.user_cap is UserCap.SHARED
