"""The tickcast exception tree.

::

    TickcastError                 base of everything tickcast raises on purpose
    ├── ConfigError               settings that cannot work (bad file, bad value)
    └── ProtocolError             the peer misbehaved; answered with an error frame or close
        ├── InvalidMessage        bad JSON, unknown action, wrong types
        └── LimitExceeded         too many symbols, message too big, too fast

Rules: "the peer misbehaved" is a ProtocolError and becomes a reply or a close code;
"our own code misused an API" is a bug and is left to raise (TypeError, ValueError).
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
