"""Forwarded: the client behind trusted proxies, and nobody else's word for it."""

from __future__ import annotations

import pytest

from tickcast.auth.forwarded import (
    MAX_HEADER_BYTES,
    Client,
    TrustedProxies,
    address_key,
    parse_network,
    valid_host,
    validate_trusted_proxies,
)
from tickcast.errors import ConfigError

PROXIES = TrustedProxies(["10.0.0.0/8", "::1"])  # X-Forwarded-* (the default family)
RFC_PROXIES = TrustedProxies(["10.0.0.0/8", "::1"], "forwarded")


def resolve(
    peer: str,
    *headers: tuple[str, str],
    scheme: str = "http",
    host: str | None = "gw:8000",
    proxies: TrustedProxies = PROXIES,
) -> Client:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    return proxies.resolve(peer, scheme, host, raw)


def rfc(peer: str, *headers: tuple[str, str], scheme: str = "http") -> Client:
    return resolve(peer, *headers, scheme=scheme, proxies=RFC_PROXIES)


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_claims() -> None:
    headers = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]
    assert TrustedProxies().resolve("10.0.0.5", "http", "gw", headers) == Client(
        "10.0.0.5", "http", "gw"
    )
    assert not TrustedProxies()


def test_an_untrusted_peer_cannot_forward() -> None:
    client = resolve(
        "203.0.113.9",
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "for=1.2.3.4;proto=https;host=evil.example"),
    )
    assert client == Client("203.0.113.9", "http", "gw:8000", forwarded=False)


def test_a_trusted_proxy_names_the_client_scheme_and_host() -> None:
    client = resolve(
        "10.0.0.5",
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "app.example.com"),
    )
    assert client == Client("203.0.113.7", "https", "app.example.com", forwarded=True)


def test_on_a_websocket_https_means_wss() -> None:
    client = resolve("10.0.0.5", ("X-Forwarded-For", "203.0.113.7"), scheme="ws")
    assert client.scheme == "ws"
    client = resolve(
        "10.0.0.5", ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"), scheme="ws"
    )
    assert client.scheme == "wss"


def test_the_chain_is_read_from_the_right_skipping_trusted_hops() -> None:
    client = resolve("10.0.0.5", ("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.0.0.9"))
    assert client.address == "203.0.113.7"  # 6.6.6.6 is whatever the client claimed


def test_a_chain_of_trusted_hops_only_gives_the_leftmost() -> None:
    assert resolve("10.0.0.5", ("X-Forwarded-For", "10.1.1.1, 10.2.2.2")).address == "10.1.1.1"


def test_proto_and_host_lists_align_with_the_hops_or_take_the_last() -> None:
    aligned = resolve(
        "10.0.0.5",
        ("X-Forwarded-For", "203.0.113.7, 10.0.0.9"),
        ("X-Forwarded-Proto", "https, http"),
        ("X-Forwarded-Host", "app.example.com, inner:8000"),
    )
    assert (aligned.scheme, aligned.host) == ("https", "app.example.com")
    overwritten = resolve(
        "10.0.0.5",
        ("X-Forwarded-For", "203.0.113.7, 10.0.0.9"),
        ("X-Forwarded-Proto", "https"),
    )
    assert overwritten.scheme == "https"


def test_duplicate_headers_are_one_list() -> None:
    raw = [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.7")]
    assert PROXIES.resolve("10.0.0.5", "http", None, raw).address == "203.0.113.7"


def test_rfc_7239_forwarded_element_carries_proto_and_host() -> None:
    client = rfc(
        "10.0.0.5",
        ("Forwarded", 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;host=a.example'),
        ("Forwarded", "for=10.0.0.9;proto=http"),
        ("X-Forwarded-For", "198.51.100.1"),
    )
    assert client == Client("2001:db8:cafe::17", "https", "a.example", forwarded=True)


def test_forwarded_parameters_are_case_insensitive_and_ports_dropped() -> None:
    client = rfc("::1", ("Forwarded", "For=192.0.2.60:8080;Proto=HTTPS;By=10.0.0.1"))
    assert (client.address, client.scheme) == ("192.0.2.60", "https")


@pytest.mark.parametrize(
    "forwarded",
    [
        "for=1.2.3.4;for=5.6.7.8",  # a parameter twice in one element
        "for=1.2.3.4 junk",
        'for="1.2.3.4',  # an unclosed quote
        "for=" + "1" * MAX_HEADER_BYTES,
    ],
)
def test_a_forwarded_header_that_cannot_be_parsed_is_ignored_as_a_whole(forwarded: str) -> None:
    client = rfc("10.0.0.5", ("Forwarded", forwarded), ("X-Forwarded-For", "198.51.100.1"))
    assert client == Client("10.0.0.5", "http", "gw:8000")


@pytest.mark.parametrize(
    "headers",
    [
        [("Forwarded", "proto=https;host=app.example")],  # no for: RFC 7239 allows it
        [("Forwarded", "for=unknown;proto=https;host=app.example")],
        [("Forwarded", "for=203.0.113.7, proto=https;host=app.example")],
        [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "app.example")],
        [("X-Forwarded-For", "unknown"), ("X-Forwarded-Proto", "https")],
    ],
)
def test_a_trusted_proxy_that_does_not_name_the_client_still_gives_scheme_and_host(
    headers: list[tuple[str, str]],
) -> None:
    proxies = RFC_PROXIES if headers[0][0] == "Forwarded" else PROXIES
    client = resolve("10.0.0.5", *headers, scheme="ws", proxies=proxies)
    assert client.address == "10.0.0.5"  # the peer: nobody said who the client is
    assert client.scheme == "wss"
    assert client.host in ("app.example", "gw:8000")
    # from an untrusted peer, the same headers change nothing
    assert resolve("203.0.113.9", *headers, scheme="ws", proxies=proxies) == Client(
        "203.0.113.9", "ws", "gw:8000"
    )


@pytest.mark.parametrize("node", ["unknown", "_hidden", "not-an-ip"])
def test_an_obfuscated_or_unknown_client_keeps_the_peer(node: str) -> None:
    assert rfc("10.0.0.5", ("Forwarded", f"for={node}")).address == "10.0.0.5"
    assert resolve("10.0.0.5", ("X-Forwarded-For", node)).address == "10.0.0.5"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Forwarded-Host", "evil.example/path"),
        ("X-Forwarded-Host", "a b"),
        ("X-Forwarded-Proto", "gopher"),
    ],
)
def test_junk_scheme_or_host_falls_back_to_what_the_gateway_saw(header: str, value: str) -> None:
    client = resolve("10.0.0.5", ("X-Forwarded-For", "203.0.113.7"), (header, value))
    assert (client.address, client.scheme, client.host) == ("203.0.113.7", "http", "gw:8000")


def test_trust_is_by_address_or_network_and_never_for_names() -> None:
    proxies = TrustedProxies(["192.0.2.1", "fd00::/8"])
    assert proxies.trusts("192.0.2.1")
    assert not proxies.trusts("192.0.2.2")
    assert proxies.trusts("fd00::1")
    assert not proxies.trusts("testclient")
    assert proxies


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("proxy.example", "not an IP address"),
        ("localhost", "not an IP address"),
        ("10.0.0.0/33", "not an IP address"),
        ("*", "not an IP address"),
        ("1.2.3.4/8/8", "not an IP address"),
        ("10.0.0.5/8", "host bits set; write 10.0.0.0/8 .* or 10.0.0.5"),
        ("2001:db8::1/32", "host bits set"),
        ("0.0.0.0/0", "trusts every address"),
        ("::/0", "trusts every address"),
        ("fe80::1%eth0", "zone"),
    ],
)
def test_a_bad_trusted_proxy_entry_is_a_config_error(entry: str, why: str) -> None:
    with pytest.raises(ConfigError, match=f"trusted_proxies: .*{why}"):
        parse_network(entry)
    with pytest.raises(ConfigError):
        TrustedProxies([entry])


def test_entries_are_normalized_for_the_settings() -> None:
    assert validate_trusted_proxies([" 10.0.0.0/8", "::1", "10.0.0.0/8", "192.0.2.7/32"]) == (
        "10.0.0.0/8",
        "::1/128",
        "192.0.2.7/32",
    )


def test_address_keys_group_an_ipv6_client_by_its_64_block() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("testclient") == "testclient"


FORGED_FORWARDED = ("Forwarded", "for=1.2.3.4;proto=https;host=evil.example")
FORGED_X_FORWARDED = [
    ("X-Forwarded-For", "1.2.3.4"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
]


def test_x_forwarded_family_ignores_a_forwarded_header_the_proxy_passed_through() -> None:
    # nginx-style: the proxy appends X-Forwarded-For and forwards the client's own
    # Forwarded header untouched; it must not name the client, scheme or host
    client = resolve("10.0.0.5", FORGED_FORWARDED, ("X-Forwarded-For", "203.0.113.7"), scheme="ws")
    assert client == Client("203.0.113.7", "ws", "gw:8000", forwarded=True)
    # and with no X-Forwarded-For at all, the forged Forwarded still changes nothing
    assert resolve("10.0.0.5", FORGED_FORWARDED) == Client("10.0.0.5", "http", "gw:8000")


def test_forwarded_family_ignores_every_x_forwarded_header() -> None:
    client = rfc("10.0.0.5", ("Forwarded", "for=203.0.113.7"), *FORGED_X_FORWARDED)
    assert client == Client("203.0.113.7", "http", "gw:8000", forwarded=True)
    assert rfc("10.0.0.5", *FORGED_X_FORWARDED) == Client("10.0.0.5", "http", "gw:8000")


def test_scheme_and_host_never_come_from_the_other_family() -> None:
    # address from one family, proto/host from the other: never mixed
    client = resolve("10.0.0.5", ("X-Forwarded-For", "203.0.113.7"), FORGED_FORWARDED)
    assert (client.scheme, client.host) == ("http", "gw:8000")
    client = rfc("10.0.0.5", ("Forwarded", "for=203.0.113.7"), *FORGED_X_FORWARDED[1:])
    assert (client.scheme, client.host) == ("http", "gw:8000")


def test_an_unknown_header_family_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="forwarded_headers"):
        TrustedProxies(["10.0.0.1"], "both")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ipv6", "ipv4"),
    [
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4-mapped
        ("64:ff9b::cb00:7107", "203.0.113.7"),  # NAT64 (RFC 6052 well-known prefix)
        ("2002:cb00:7107:1::1", "203.0.113.7"),  # 6to4
        ("2002:cb00:7107:ffff::9", "203.0.113.7"),  # ... from another of its /64s
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),  # Teredo (de-obfuscated)
    ],
)
def test_an_ipv6_address_carrying_an_ipv4_address_counts_as_it(ipv6: str, ipv4: str) -> None:
    assert address_key(ipv6) == ipv4
    assert address_key(ipv6, 48) == ipv4


def test_clients_behind_one_nat64_gateway_or_teredo_server_do_not_share_a_cap() -> None:
    assert address_key("64:ff9b::cb00:7107") != address_key("64:ff9b::c633:6401")
    teredo = "2001:0:4136:e378:8000:63bf:3fff:{}"  # one server, two clients
    assert address_key(teredo.format("fdd2")) != address_key(teredo.format("fdd1"))


def test_the_ipv6_client_prefix_is_a_parameter() -> None:
    assert address_key("2001:db8:1:2::1", 48) == address_key("2001:db8:1:ff::1", 48)
    assert address_key("2001:db8:1:2::1", 48) == "2001:db8:1::/48"
    assert address_key("2001:db8::1", 128) != address_key("2001:db8::2", 128)
    assert address_key("2001:db8::1") == "2001:db8::/64"


@pytest.mark.parametrize(
    "host",
    [
        "a b.example",
        "user@evil.example",
        "evil.example/path",
        "evil.example:99999",
        "evil.example:80:80",
        "[not-an-ip]:80",
        "[1.2.3.4]",
        "a" * 300 + ".example",
        "",
    ],
)
def test_a_forwarded_host_that_is_not_a_plain_name_and_port_is_dropped(host: str) -> None:
    assert valid_host(host) is None
    client = resolve("10.0.0.5", ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Host", host))
    assert client.host == "gw:8000"
    client = rfc("10.0.0.5", ("Forwarded", f'for=203.0.113.7;host="{host}"'))
    assert client.host == "gw:8000"


@pytest.mark.parametrize(
    "host", ["app.example.com", "app.example.com:8443", "192.0.2.1:80", "[2001:db8::1]:443"]
)
def test_plain_hosts_are_valid(host: str) -> None:
    assert valid_host(host) == host
    client = resolve("10.0.0.5", ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Host", host))
    assert client.host == host
