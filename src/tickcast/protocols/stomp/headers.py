"""What a STOMP client's frames say: CONNECT's negotiation and SUBSCRIBE's headers.

Rules: pure. The session (``session.StompSession``) is the state machine; this module
reads the headers it is given and applies the rules that depend on nothing but them and
the subscriptions already held: the version both sides speak, the heart-beat intervals,
the credentials, and a SUBSCRIBE's ``id``, ``destination``, ``ack``, ``max-rate``,
``resume-seq`` / ``resume-epoch`` (the session's module docstring says what each means).
A frame that breaks a rule raises ``Fatal``: the session answers it with ERROR and the
close code it carries.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Final, NamedTuple

from tickcast.auth.limits import SubscriptionCap
from tickcast.closecodes import CloseCode
from tickcast.model.envelope import ResumePoint
from tickcast.model.topic import Topic
from tickcast.protocols import maxrate
from tickcast.protocols.stomp.frames import message_head

__all__ = [
    "ACK_MODES",
    "CAP_MESSAGE",
    "MAX_HEARTBEAT_MS",
    "MAX_RATE_HEADER",
    "MAX_TOKEN_CHARS",
    "VERSIONS",
    "WHOLE",
    "Fatal",
    "SubscribeHeaders",
    "Subscription",
    "Unreadable",
    "check_overlap",
    "connect_heartbeats",
    "connect_version",
    "credentials",
    "negotiate_heartbeat",
    "negotiate_version",
    "read_subscribe",
    "resume_point",
    "subscription_cap",
    "unsubscribe_id",
]

#: The key of a resolved topic that names its whole channel (every topic, channel-wide).
WHOLE: Final = "*"
#: The versions we speak, lowest first.
VERSIONS: Final = ("1.0", "1.1", "1.2")
ACK_MODES: Final = frozenset({"auto", "client", "client-individual"})
#: The refusal of a subscription over the cap, ``{max}`` standing for the cap.
CAP_MESSAGE: Final = "Too many subscriptions: at most {max} per connection"
MAX_TOKEN_CHARS: Final = 4096
#: A heart-beat value above this (ms) counts as this.
MAX_HEARTBEAT_MS: Final = 3_600_000
#: The SUBSCRIBE header that rates a subscription (messages per second).
MAX_RATE_HEADER: Final = "max-rate"


def subscription_cap(max_subscriptions: int) -> SubscriptionCap:
    """The subscription cap in this protocol's words (the front's wording, pinned)."""
    return SubscriptionCap(max_subscriptions, CAP_MESSAGE)


class Subscription(NamedTuple):
    """One SUBSCRIBE the session holds.

    Attributes:
        id: the client's ``id`` (unique on the connection).
        topic: what ``destination`` resolved to.
        destination: as the client wrote it.
        ack: ``auto``, ``client`` or ``client-individual``.
        head: the MESSAGE head of this subscription (``frames.message_head``), built once.
        escaped: whether heads escape (not in STOMP 1.0).
        max_rate: its ``max-rate`` (messages per second), or None (no limit).
    """

    id: str
    topic: Topic
    destination: str
    ack: str
    head: bytes
    escaped: bool = True
    max_rate: float | None = None

    def head_for(self, message_id: str) -> bytes:
        """The head of one MESSAGE: the shared ``head`` for ``ack:auto``; with ``ack``
        (``message_id`` as its value) for the other modes."""
        if self.ack == "auto":
            return self.head
        return message_head(self.id, message_id, escaped=self.escaped)


class Unreadable(Exception):
    """Raised by a front's ``resolve`` for a destination it serves that this client may
    not read (a per-user one, anonymously): ERROR with this message, close 1008."""


class Fatal(Exception):
    """A frame the session answers with ERROR and a close."""

    def __init__(self, message: str, code: CloseCode, *, version: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.version = version


def negotiate_version(accept_version: str | None) -> str | None:
    """The highest version in ``accept-version`` we speak (absent: 1.0); None if none."""
    if accept_version is None:
        return "1.0"
    offered = {v.strip() for v in accept_version.split(",")}
    common = [v for v in VERSIONS if v in offered]
    return common[-1] if common else None


def _beat(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise ValueError(text)
    return min(int(text), MAX_HEARTBEAT_MS)


def negotiate_heartbeat(client: str | None, server: tuple[int, int]) -> tuple[int, int]:
    """(outgoing, incoming) intervals in ms, 0 meaning none, from the client's
    ``heart-beat: cx,cy`` (absent: 0,0) and ours ``(sx, sy)``: we send every
    ``max(sx, cy)`` when both are non-zero, the client every ``max(cx, sy)`` when both
    are non-zero.

    Raises:
        ValueError: the header is not two integers >= 0 separated by a comma.
    """
    cx = cy = 0
    if client is not None:
        parts = client.split(",")
        try:
            if len(parts) != 2:
                raise ValueError(client)
            cx, cy = _beat(parts[0].strip()), _beat(parts[1].strip())
        except ValueError:
            raise ValueError(f"not a heart-beat: {client[:40]!r}") from None
    sx, sy = server
    outgoing = max(sx, cy) if sx and cy else 0
    incoming = max(cx, sy) if cx and sy else 0
    return outgoing, incoming


def connect_version(headers: Mapping[str, str]) -> str:
    """The version a CONNECT's ``accept-version`` negotiates (``negotiate_version``)."""
    version = negotiate_version(headers.get("accept-version"))
    if version is None:
        raise Fatal(
            f"Supported protocol versions are {' '.join(VERSIONS)}",
            CloseCode.PROTOCOL_ERROR,
            version=True,
        )
    return version


def connect_heartbeats(headers: Mapping[str, str], ours: tuple[int, int]) -> tuple[int, int]:
    """The (outgoing, incoming) intervals a CONNECT's ``heart-beat`` negotiates with
    ``ours`` (``negotiate_heartbeat``)."""
    try:
        return negotiate_heartbeat(headers.get("heart-beat"), ours)
    except ValueError:
        raise Fatal(
            "heart-beat must be two integers, as in 10000,10000", CloseCode.PROTOCOL_ERROR
        ) from None


def credentials(headers: Mapping[str, str]) -> str | None:
    """The token CONNECT carries: ``Authorization: Bearer <t>``, else ``passcode``,
    else ``login``; None without any. One over ``MAX_TOKEN_CHARS`` is refused."""
    authorization = headers.get("Authorization", headers.get("authorization"))
    token: str | None
    if authorization:
        scheme, _, rest = authorization.partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else authorization
    else:
        token = headers.get("passcode") or headers.get("login") or None
    if token is not None and len(token) > MAX_TOKEN_CHARS:
        raise Fatal("Invalid credentials", CloseCode.INVALID_CREDENTIALS)
    return token


class SubscribeHeaders(NamedTuple):
    """What a SUBSCRIBE asks for, read before its destination is resolved."""

    destination: str
    id: str
    ack: str
    max_rate: float | None


def read_subscribe(
    headers: Mapping[str, str], version: str | None, held: Collection[str]
) -> SubscribeHeaders:
    """A SUBSCRIBE's ``destination``, ``id`` (in STOMP 1.0 the destination when absent;
    not one of the ``held`` ids), ``ack`` and ``max-rate``, checked in that order."""
    destination = headers.get("destination")
    if not destination:
        raise Fatal("SUBSCRIBE needs a destination header", CloseCode.PROTOCOL_ERROR)
    id_ = headers.get("id")
    if id_ is None and version == "1.0":
        id_ = destination  # 1.0: the id is optional, the destination names it
    if not id_:
        raise Fatal("SUBSCRIBE needs an id header", CloseCode.PROTOCOL_ERROR)
    if id_ in held:
        raise Fatal(f"Subscription id {id_[:60]} is in use", CloseCode.PROTOCOL_ERROR)
    ack = headers.get("ack", "auto")
    if ack not in ACK_MODES:
        raise Fatal("ack must be auto, client or client-individual", CloseCode.PROTOCOL_ERROR)
    return SubscribeHeaders(destination, id_, ack, _max_rate(headers))


def check_overlap(
    topic: Topic,
    destination: str,
    point: ResumePoint | None,
    subscriptions: Iterable[Subscription],
    whole: Mapping[str, tuple[Subscription, ...]],
) -> None:
    """A channel is read whole or by key on one connection, not both (``subscriptions``
    held, ``whole``: the channel-wide ones by channel); and a resume names a position on
    one topic."""
    if topic.key == WHOLE:
        if point is not None:
            raise Fatal(
                f"resume-seq names a position on one topic, not on {destination[:80]}",
                CloseCode.PROTOCOL_ERROR,
            )
        keyed = next(
            (s for s in subscriptions if s.topic.channel == topic.channel and s.topic.key != WHOLE),
            None,
        )
        if keyed is not None:
            raise Fatal(
                f"{destination[:80]}: {keyed.destination[:80]} is held on this "
                "connection; read a channel whole or by key, not both",
                CloseCode.POLICY_VIOLATION,
            )
    elif topic.channel in whole:
        held = whole[topic.channel][0]
        raise Fatal(
            f"{destination[:80]}: {held.destination[:80]} is held on this "
            "connection; read a channel whole or by key, not both",
            CloseCode.POLICY_VIOLATION,
        )


def unsubscribe_id(
    headers: Mapping[str, str], version: str | None, held: Mapping[str, Subscription]
) -> str:
    """The id an UNSUBSCRIBE names (not checked against the ``held`` ones). STOMP 1.0
    unsubscribes by destination when it gives no id: the subscription made without an
    id (keyed by its destination), else the first one made to it with an id."""
    id_ = headers.get("id")
    if id_ is None and version == "1.0":
        destination = headers.get("destination")
        id_ = destination
        if destination is not None and destination not in held:
            id_ = next((i for i, s in held.items() if s.destination == destination), destination)
    if not id_:
        raise Fatal("UNSUBSCRIBE needs an id header", CloseCode.PROTOCOL_ERROR)
    return id_


def _max_rate(headers: Mapping[str, str]) -> float | None:
    """``max-rate``: a decimal number of messages per second (``maxrate.from_header``);
    None when absent."""
    text = headers.get(MAX_RATE_HEADER)
    if text is None:
        return None
    try:
        return maxrate.from_header(text)
    except ValueError:
        raise Fatal(f"{MAX_RATE_HEADER} must be {maxrate.RULE}", CloseCode.PROTOCOL_ERROR) from None


def resume_point(headers: Mapping[str, str]) -> ResumePoint | None:
    """``resume-seq`` (an integer >= 0) and, optionally, ``resume-epoch`` (as sent in the
    ``epoch`` header); a bare seq counts in the current epoch."""
    seq = headers.get("resume-seq")
    epoch = headers.get("resume-epoch")
    if seq is None:
        if epoch is not None:
            raise Fatal("resume-epoch needs resume-seq", CloseCode.PROTOCOL_ERROR)
        return None
    if not (seq.isascii() and seq.isdigit()) or len(seq) > 19:
        raise Fatal("resume-seq must be an integer >= 0", CloseCode.PROTOCOL_ERROR)
    if epoch is not None and not epoch:
        raise Fatal("resume-epoch must not be empty", CloseCode.PROTOCOL_ERROR)
    return ResumePoint(int(seq), epoch)
