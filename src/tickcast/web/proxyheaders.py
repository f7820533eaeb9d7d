"""ProxyHeaders: the one place that decides who a client is, for every request.

Rules: thin I/O around ``auth.forwarded`` (the trust rules, pure). It runs first, on
every HTTP request and WebSocket handshake, and rewrites the ASGI scope so that
everything downstream reads the same answer: ``scope["client"]`` is the client's
address (the connection caps and the logs use it), ``scope["scheme"]`` the scheme it
used (``request.url`` and ``/realtime/websocket-info/`` follow) and the ``Host`` header
the host it asked for. The TCP peer stays in ``scope["tickcast.peer"]``.

uvicorn's own ``--proxy-headers`` stays off (``cli/main.py``): it reads only
``X-Forwarded-For``/``-Proto``, not ``Forwarded`` or the host, and two layers rewriting
the same scope would disagree. Forwarding headers from a peer that is not trusted are
ignored; the first such peer is logged once as a warning, since behind a proxy that is
not listed every client looks like the proxy (and shares one per-address cap).
"""

from __future__ import annotations

import logging
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from tickcast.auth.forwarded import TrustedProxies

log = logging.getLogger("tickcast.web.proxyheaders")

#: The scope key that keeps the TCP peer ``(host, port)`` once ``client`` is rewritten.
PEER: Final = "tickcast.peer"
_FORWARDING: Final = frozenset({b"forwarded", b"x-forwarded-for"})


class ProxyHeaders:
    """ASGI middleware: resolve the client with ``proxies``; see the module rules.

    Args:
        app: the application behind it.
        proxies: the trusted proxies (empty: every peer is the client).
    """

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies
        self._warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = self.resolve(scope)
        await self.app(scope, receive, send)

    def resolve(self, scope: Scope) -> Scope:
        """A copy of ``scope`` with the client, scheme and host as the proxies say."""
        peer = scope.get("client")
        headers = scope.get("headers") or []
        if peer is None:
            return scope
        host = next((v.decode("latin-1") for k, v in headers if k.lower() == b"host"), None)
        default = "ws" if scope["type"] == "websocket" else "http"
        client = self.proxies.resolve(
            str(peer[0]), str(scope.get("scheme", default)), host, headers
        )
        if not client.forwarded:
            if not self._warned and any(k.lower() in _FORWARDING for k, _ in headers):
                self._warned = True
                log.warning(
                    "forwarding headers from %s ignored: it is not in trusted_proxies "
                    "(set it if this is your proxy; this is logged once)",
                    peer[0],
                )
            return scope
        resolved = dict(scope)
        resolved[PEER] = peer
        resolved["client"] = (client.address, 0)
        resolved["scheme"] = client.scheme
        if client.host is not None and client.host != host:
            resolved["headers"] = [(k, v) for k, v in headers if k.lower() != b"host"] + [
                (b"host", client.host.encode("latin-1"))
            ]
        return resolved
