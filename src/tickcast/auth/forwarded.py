"""Forwarded: who the client is behind reverse proxies, trusting only configured ones.

Rules: pure. :meth:`TrustedProxies.resolve` takes the TCP peer's address, the scheme the
gateway saw and the request headers, and returns the client's address, scheme and host.
Nothing here reads a socket or an ASGI scope (``web/proxyheaders.py`` does, once per
request, for everything downstream: the connection caps, the logs, websocket-info).

Trust (``trusted_proxies``, addresses or CIDRs; empty by default) and one header family
(``forwarded_headers``: ``x-forwarded``, the default, or ``forwarded``):

- Exactly one family is read: ``X-Forwarded-For``/``-Proto``/``-Host``, or ``Forwarded``
  (RFC 7239); the other is ignored whatever it says. A proxy overwrites or appends to the
  family it writes and passes the other through from the client untouched, so reading
  both (or mixing them: the address from one, the scheme or host from the other) would
  let a client forge what the proxy never checked.

- A peer that is not a trusted proxy is the client, and its forwarding headers are
  ignored, whatever they say: anyone can send ``X-Forwarded-For: 1.2.3.4``.
- From a trusted peer, the forwarding chain is read from the right (the hop nearest the
  gateway) to the left, skipping trusted proxies: the first address that is not a
  trusted proxy is the client (if every hop is trusted, the leftmost one is). Hops left
  of the client were written by the client itself and are never believed.
- A hop that does not name its client (``for=unknown``, an obfuscated ``for=_name``, no
  ``for`` at all, or ``X-Forwarded-Proto``/``-Host`` without ``X-Forwarded-For``)
  leaves the client's address the peer's; the scheme and host the trusted proxy saw are
  still used.
- The scheme and host are those the client used (what the proxy in front of it saw):
  with ``Forwarded`` (RFC 7239) the ``proto`` and ``host`` of the client's element; with
  ``X-Forwarded-Proto`` / ``X-Forwarded-Host``, the entry at the client's position when
  the list is as long as ``X-Forwarded-For``, else the last entry (a proxy that
  overwrites the header rather than appending to it).
- A chain that cannot be parsed is ignored as a whole (the peer stays the client), never
  half-used.

Example: ``trusted_proxies = ("10.0.0.0/8",)``, peer ``10.0.0.5`` sends
``X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.0.0.9`` and ``X-Forwarded-Proto: https``:
the client is ``203.0.113.7`` over https (``6.6.6.6`` is whatever the client claimed).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from tickcast.errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Which forwarding headers a trusted proxy's word is read from (one family, never both).
HeaderFamily = Literal["x-forwarded", "forwarded"]
HEADER_FAMILIES: Final[tuple[HeaderFamily, ...]] = ("x-forwarded", "forwarded")

#: Longest forwarding header read, in bytes; a longer one is ignored as a whole.
MAX_HEADER_BYTES: Final = 8192
_HOST_RE: Final = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?")
#: Longest host name (RFC 1035: 253 characters) with a port, that is advertised.
MAX_HOST_CHARS: Final = 253 + len(":65535")
_SCHEMES: Final = frozenset({"http", "https", "ws", "wss"})
#: RFC 7239 §4: forwarded-pair = token "=" value, value = token / quoted-string (an
#: unquoted value may hold ``:``, as proxies write ``for=192.0.2.60:8080``, but no ``"``).
_PAIR_RE: Final = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s"]*)\s*'
)


@dataclass(frozen=True, slots=True)
class Client:
    """Who a request is from, as far as the gateway can trust.

    Attributes:
        address: the client's IP address (or the server's own name for the peer when it
            is not an IP address, e.g. a test client's).
        scheme: ``http``/``https`` for HTTP, ``ws``/``wss`` for a WebSocket.
        host: the ``Host`` the client asked for (``name[:port]``); None when unknown.
        forwarded: whether the answer came from a trusted proxy's headers.
    """

    address: str
    scheme: str
    host: str | None
    forwarded: bool = False


class TrustedProxies:
    """The proxies whose forwarding headers are believed; see the module rules.

    Args:
        entries: addresses (``10.0.0.5``, ``::1``) or CIDRs (``10.0.0.0/8``); empty
            trusts nobody.
        family: the one header family read from them: ``x-forwarded``
            (``X-Forwarded-For``/``-Proto``/``-Host``) or ``forwarded`` (RFC 7239).

    Raises:
        ConfigError: an entry is neither, or is refused by :func:`parse_network`.
    """

    __slots__ = ("family", "networks")

    def __init__(self, entries: Iterable[str] = (), family: HeaderFamily = "x-forwarded") -> None:
        if family not in HEADER_FAMILIES:
            raise ConfigError(f"forwarded_headers: {family!r} is not one of {HEADER_FAMILIES}")
        self.networks: tuple[IPNetwork, ...] = tuple(parse_network(e) for e in entries)
        self.family: HeaderFamily = family

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (an IP address; anything else is never trusted) is a proxy."""
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def resolve(
        self, peer: str, scheme: str, host: str | None, headers: Sequence[tuple[bytes, bytes]]
    ) -> Client:
        """The client behind ``peer`` (the TCP peer's address).

        Args:
            peer: the address the connection came from.
            scheme: the scheme the gateway saw (``http``, ``ws``...).
            host: the request's ``Host`` header, if any.
            headers: the request's headers, ASGI-style ``(name, value)`` byte pairs.
        """
        direct = Client(peer, scheme, host)
        if not self.networks or not self.trusts(peer):
            return direct
        if self.family == "forwarded":
            hops = _forwarded_hops(headers) or []
        else:
            hops = _x_forwarded_hops(headers)
        if not hops:
            return direct
        index = len(hops) - 1
        while index > 0 and self.trusts(hops[index].address):
            index -= 1
        hop = hops[index]
        websocket = scheme in ("ws", "wss")
        proto = _scheme(hop.proto, websocket) or scheme
        ip = _ip(hop.address)
        # "unknown", an obfuscated name or no "for" at all: the client's address stays
        # the peer's, but the scheme and host that trusted proxy saw are still its word
        address = peer if ip is None else str(ip)
        return Client(address, proto, hop.host or host, forwarded=True)


def parse_network(entry: str) -> IPNetwork:
    """``10.0.0.5``, ``10.0.0.0/8``, ``::1`` or ``fd00::/8`` as a network, strictly.

    Surrounding spaces are dropped; everything else that is not exactly an address or a
    network is refused rather than guessed at: an empty entry, a host name, a CIDR with
    host bits set (``10.0.0.5/8``: a typo for ``10.0.0.0/8`` or ``10.0.0.5``?), an IPv6
    zone (``fe80::1%eth0``) and a network of every address (``0.0.0.0/0``, ``::/0``:
    every client could then name itself whatever address it likes).

    Raises:
        ConfigError: anything else (the message names the entry and what is wrong).
    """
    text = entry.strip()
    shown = repr(entry[:80])
    if not text:
        raise ConfigError("trusted_proxies: an empty entry (a stray comma?)")
    if "%" in text:
        raise ConfigError(f"trusted_proxies: {shown} has an IPv6 zone; list the address alone")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(
            f"trusted_proxies: {shown} is not an IP address or a CIDR such as 10.0.0.0/8"
        ) from None
    if network.network_address != ipaddress.ip_network(text.partition("/")[0]).network_address:
        raise ConfigError(
            f"trusted_proxies: {shown} has host bits set; write {network} for the network "
            f"or {text.partition('/')[0]} for the one address"
        )
    if network.prefixlen == 0:
        raise ConfigError(
            f"trusted_proxies: {shown} trusts every address, so any client could forge its "
            "own; list your proxies' addresses or network"
        )
    return network


def validate_trusted_proxies(entries: Iterable[str]) -> tuple[str, ...]:
    """The entries, normalized (``10.0.0.0/8``), for settings validation at start-up.

    Raises:
        ConfigError: an entry is refused by :func:`parse_network`.
    """
    return tuple(dict.fromkeys(str(parse_network(entry)) for entry in entries))


#: The NAT64 well-known prefix (RFC 6052): the IPv4 address is the last 32 bits.
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
#: The IPv6 prefix length a client is counted by, by default (one subscriber's block).
DEFAULT_IPV6_CLIENT_PREFIX: Final = 64


@functools.lru_cache(maxsize=4096)
def address_key(address: str, ipv6_prefix: int = DEFAULT_IPV6_CLIENT_PREFIX) -> str:
    """The key one client's connections are counted under, for a per-address cap
    (remembered for the last 4,096 addresses: a reconnecting client's is parsed once).

    - An IPv4 address is itself.
    - An IPv6 address that carries an IPv4 address is counted as that IPv4 address:
      IPv4-mapped (``::ffff:0:0/96``), NAT64 (``64:ff9b::/96``, RFC 6052), 6to4
      (``2002::/16``) and Teredo (``2001::/32``, the client's de-obfuscated address).
      Otherwise every IPv4 client behind one NAT64 gateway or Teredo server would share
      one /64 and one cap, and one 6to4 host could open the cap again from each of its
      65,536 /64s.
    - Any other IPv6 address counts as its ``/ipv6_prefix`` network (64 by default: the
      block one subscriber line or host usually holds; counting single IPv6 addresses
      would let one client open the cap again from each of its 2**64 addresses).
    - Anything that is not an IP address is counted as it is.
    """
    ip = _ip(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return str(embedded)
    return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


# -- parsing


@dataclass(frozen=True, slots=True)
class _Hop:
    address: str
    proto: str | None = None
    host: str | None = None


def _headers(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    """Every ``name`` header joined by commas (RFC 9110 §5.3); None if absent or too long."""
    values = [value for key, value in headers if key.lower() == name]
    if not values:
        return None
    joined = b", ".join(values)
    if len(joined) > MAX_HEADER_BYTES:
        return None
    return joined.decode("latin-1")


def _forwarded_hops(headers: Sequence[tuple[bytes, bytes]]) -> list[_Hop] | None:
    """The hops of a ``Forwarded`` header; None without one; [] if it cannot be parsed."""
    text = _headers(headers, b"forwarded")
    if text is None:
        return None
    hops: list[_Hop] = []
    for element in _split_elements(text):
        pairs: dict[str, str] = {}
        position = 0
        while position < len(element):
            match = _PAIR_RE.match(element, position)
            if match is None:
                return []
            name, value = match[1].lower(), _unquote(match[2])
            if name in pairs:  # RFC 7239 §4: each parameter at most once per element
                return []
            pairs[name] = value
            position = match.end()
            if position < len(element):
                if element[position] != ";":
                    return []
                position += 1
        hops.append(
            _Hop(
                _node_address(pairs.get("for", "unknown")),  # RFC 7239: "for" is optional
                pairs.get("proto"),
                valid_host(pairs.get("host")),
            )
        )
    return hops


def _split_elements(text: str) -> list[str]:
    """Split on the commas outside quoted strings."""
    elements: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            elements.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    elements.append("".join(current).strip())
    return [e for e in elements if e]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _node_address(node: str) -> str:
    """RFC 7239 §6 node: ``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]:4711``, ``unknown``."""
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node


def _x_forwarded_hops(headers: Sequence[tuple[bytes, bytes]]) -> list[_Hop]:
    addresses = _list(_headers(headers, b"x-forwarded-for"))
    protos = _list(_headers(headers, b"x-forwarded-proto"))
    hosts = _list(_headers(headers, b"x-forwarded-host"))
    if not addresses:  # a proxy that names the scheme or host, not the client
        if not protos and not hosts:
            return []
        addresses = ["unknown"]
    return [
        _Hop(
            _node_address(address),
            _aligned(protos, index, len(addresses)),
            valid_host(_aligned(hosts, index, len(addresses))),
        )
        for index, address in enumerate(addresses)
    ]


def _list(text: str | None) -> list[str]:
    return [] if text is None else [item.strip() for item in text.split(",") if item.strip()]


def _aligned(values: list[str], index: int, hops: int) -> str | None:
    """The entry for hop ``index``: aligned when there is one per hop, else the last."""
    if not values:
        return None
    return values[index] if len(values) == hops else values[-1]


def valid_host(host: str | None) -> str | None:
    """``host`` if it is a plain ``name[:port]``, ``a.b.c.d[:port]`` or ``[v6][:port]``,
    else None: no spaces, ``@``, ``/``, userinfo or paths, at most ``MAX_HOST_CHARS``,
    a port up to 65535 and a bracketed part that is an IPv6 address. A host that fails
    is never put into a URL the gateway advertises."""
    if host is None or len(host) > MAX_HOST_CHARS:
        return None
    match = _HOST_RE.fullmatch(host)
    if match is None:
        return None
    bracketed, port = match[1], match[2]
    if port is not None and int(port) > 65535:
        return None
    if bracketed is not None and not isinstance(_ip(bracketed), ipaddress.IPv6Address):
        return None
    return host


def _scheme(proto: str | None, websocket: bool) -> str | None:
    """A forwarded proto as this request's scheme (``https`` is ``wss`` on a WebSocket)."""
    if proto is None or proto.lower() not in _SCHEMES:
        return None
    secure = proto.lower() in ("https", "wss")
    if websocket:
        return "wss" if secure else "ws"
    return "https" if secure else "http"


def _ip(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None
