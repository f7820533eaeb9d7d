"""Authentication, authorization and limits: pure rules, no I/O.

Modules:
    credentials: API keys (``tc_<prefix>_<secret>``), signed tokens (JWT, HS256), where a
        WebSocket handshake carries them, and the ``Principal`` a connection acts as.
    policy: who may read what (market data, portfolios), the Origin allow-list, and the
        catalogue of refusals (client-facing message, HTTP status, close code).
    limits: token buckets and message-rate verdicts, per-user connection counts,
        per-connection subscription caps.

Rules: every module here is pure. It takes data and ``now`` and returns data; it imports
no asyncio, socket, time, web framework or SQL. Looking a key up in storage, reading the
clock and closing sockets are the drivers' job (transport, fronts, storage).
"""
