"""The tickcast exception tree.

::

    TickcastError                 base of everything tickcast raises on purpose
    ├── ConfigError               settings that cannot work (bad file, bad value)
    ├── ProtocolError             the peer misbehaved; answered with an error frame or close
    │   ├── InvalidMessage        bad JSON, unknown action, wrong types
    │   └── LimitExceeded         too many symbols, message too big, too fast
    ├── UpstreamError             a provider failed; the supervisor retries or fails over
    │   ├── UpstreamAuthError     credentials refused or feed not entitled: terminal, never hammered
    │   ├── UpstreamLimitError    connection or symbol limit (Alpaca 406/405, Polygon
    │   │                         max_connections): retried only after a long back-off
    │   └── UpstreamStale         no data while the market is open (raised by the supervisor)
    ├── BusError                  the cluster's bus engine (Redis, NATS) cannot be reached
    │                             or refused an operation (bus/base.py)
    ├── FeedError                 the client SDK (tickcast.client) cannot go on
    │   ├── FeedRefused           a terminal refusal (bad credentials, forbidden, ...): not retried
    │   ├── FeedSubscriptionError the server refused a subscribe or unsubscribe request
    │   ├── SlowConsumer          the caller fell behind a reliable stream (on_full="raise")
    │   └── FeedGaveUp            max_attempts reconnects failed in a row
    ├── auth.credentials.InvalidCredentials   a bad, forged or revoked token or key (1008/401)
    │   └── ExpiredCredentials                a token past its expiry
    ├── storage.errors.NotFound   no such row (a 404, or "not found" to a client)
    └── storage.errors.Conflict   a unique constraint (a 409: the name is taken)

    ValueError, on purpose, for a request that breaks the accounting rules:
    └── portfolio.valuation.InsufficientQuantity   selling more than is held (a 422)

Rules: "the peer misbehaved" is a ProtocolError and becomes a reply or a close code;
"our own code misused an API" is a bug and is left to raise (TypeError, ValueError).
A provider's ``run`` ends with an UpstreamError (or any other exception, treated as a
transient failure); what the supervisor does with each kind is in providers/supervisor.py.
"""

from __future__ import annotations


class TickcastError(Exception):
    """Base class of tickcast's own errors."""


class ConfigError(TickcastError):
    """Settings that cannot work."""


class ProtocolError(TickcastError):
    """The peer sent something the protocol does not allow."""


class InvalidMessage(ProtocolError):
    """A client message that cannot be understood (JSON, action, types, symbols)."""


class LimitExceeded(ProtocolError):
    """A client exceeded a configured limit."""


class UpstreamError(TickcastError):
    """A provider's upstream failed (disconnected, refused, misbehaved). Retried."""


class UpstreamAuthError(UpstreamError):
    """The upstream refused our credentials or entitlement. Terminal for that provider."""


class UpstreamLimitError(UpstreamError):
    """The upstream's connection or symbol limit was hit. Retried after a long back-off."""


class UpstreamStale(UpstreamError):
    """The upstream went silent while its market is open."""


class BusError(TickcastError):
    """The bus engine cannot be reached, or refused an operation."""


class FeedError(TickcastError):
    """The market-feed client cannot go on."""


class FeedRefused(FeedError):
    """The server refused the connection for good (a close code or HTTP status whose
    advice is "do not reconnect": 3500-3506, 1008, 401, 403, ...). Retrying the same
    connection cannot help: change the token, the URL or the Origin first.

    Attributes:
        code: the close code (the server's, or the one its HTTP refusal names), or the
            HTTP status when the server named none.
        reason: the server's words.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"refused by the server ({code}): {reason}")
        self.code = code
        self.reason = reason


class FeedSubscriptionError(FeedError):
    """A subscribe or unsubscribe was answered with ``{"type": "error"}``."""


class SlowConsumer(FeedError):
    """The caller did not take reliable messages (trades, bars, book, signals, resets)
    fast enough and the receive queue was full: raised rather than drop one silently."""


class FeedGaveUp(FeedError):
    """The connection failed ``max_attempts`` times in a row."""
