"""Storage errors: what a repository raises when the database says no.

::

    TickcastError                 (tickcast.errors)
    ├── NotFound                  the row asked for, or a row it refers to, does not exist
    └── Conflict                  the row would break a unique rule (a taken username, a
                                  second portfolio of the same name, a reused key prefix)

Rules: repositories turn the database's unique and foreign-key violations into these two,
so callers never catch a driver's exception or an ``IntegrityError``. Anything else the
database refuses (a CHECK, a NOT NULL, a value too large for NUMERIC(28, 10)) is a bug in
the caller and is left to raise.
"""

from __future__ import annotations

from tickcast.errors import TickcastError


class NotFound(TickcastError):
    """A row that does not exist: asked for by key, or referred to by a new row."""


class Conflict(TickcastError):
    """A row that would break a unique constraint."""
