"""Review findings for Front 3 over SockJS (``/stomp``), each reproduced against a real
``tickcast serve`` and each fixed since. Waits are on conditions with
generous deadlines, never on durations."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.accounts import Account, seed
from support.server import Server, start_server
from tickcast.auth.credentials import issue_token

WAIT_S = 20.0
CONNECT = "CONNECT\naccept-version:1.2\nhost:tickcast\n\n\x00"


def frame(command: str, **headers: str) -> str:
    head = "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in headers.items())
    return f"{command}\n{head}\n\x00"


def session_url() -> str:
    return f"/000/{uuid.uuid4().hex}"


def stomp_connections(server: Server) -> int:
    status = httpx.get(f"{server.http}/realtime/status/", timeout=5).json()
    return int(status["global_stats"]["fronts"]["stomp"]["connections"])


def until(predicate: object, what: str, wait_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached in {wait_s} s: {what}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """Trades flowing; a disconnect delay long enough that only the rule under test (an
    abort, the slow-client rule) can end a session within the test's deadlines."""
    srv = start_server(
        tmp_path,
        rate=2000,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
        slow_client_timeout_s=1.0,
        sockjs_disconnect_delay_s=600.0,
        allowed_origins="http://good.example",
    )
    yield srv
    srv.stop()


def open_stream(server: Server, url: str, version: str = "1.1") -> socket.socket:
    """A raw xhr_streaming request, read up to its open frame."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    sock.sendall(
        f"POST /stomp{url}/xhr_streaming HTTP/{version}\r\nHost: x\r\n"
        "Content-Length: 0\r\n\r\n".encode()
    )
    data = b""
    while b"o\n" not in data.split(b"\r\n\r\n", 1)[-1]:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return sock


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_a_stream_whose_client_vanishes_ends_its_session(server: Server, version: str) -> None:
    """docs/stomp.md: "A client that goes away in the middle of a request ends its
    session at once". The client opens a stream, connects, subscribes to trades, reads a
    MESSAGE, then its socket closes: the connection (slot, subscriptions) must go."""
    url = session_url()
    sock = open_stream(server, url, version)
    with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as http:
        sub = frame("SUBSCRIBE", id="sub-0", destination="/topic/trades.AAPL")
        assert http.post(f"{url}/xhr_send", content=json.dumps([CONNECT, sub])).status_code == 204
        data = b""
        while b"MESSAGE" not in data:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
        assert stomp_connections(server) == 1
        sock.close()
        until(lambda: stomp_connections(server) == 0, "the vanished stream's session ended")
        assert httpx.get(f"{server.http}/ready").json()["connections"] == 0


def test_a_stream_whose_client_stops_reading_then_vanishes_ends_its_session(
    server: Server,
) -> None:
    """As above, but the client stops reading first (its receive buffer fills, the
    server's write backs up) and only then goes away."""
    url = session_url()
    sock = open_stream(server, url)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as http:
        subs = [
            frame("SUBSCRIBE", id=f"sub-{i}", destination=f"/topic/{c}.{s}")
            for i, (c, s) in enumerate(
                (c, s) for c in ("trades", "quotes", "book") for s in ("AAPL", "MSFT", "GOOGL")
            )
        ]
        r = http.post(f"{url}/xhr_send", content=json.dumps([CONNECT, *subs]))
        assert r.status_code == 204
        # not reading: the stream backs up; wait till the server closes it or notices
        until(lambda: stomp_connections(server) == 1, "connected")
        time.sleep(3)  # let the backlog build (not an assertion on time)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST
        until(lambda: stomp_connections(server) == 0, "the vanished stream's session ended")
        assert httpx.get(f"{server.http}/ready").json()["connections"] == 0


def test_a_poller_that_stops_polling_while_trades_flow_is_closed_as_slow(
    server: Server,
) -> None:
    """docs/stomp.md: "a client that takes nothing for slow_client_timeout_s while trades
    wait is closed as slow" (the disconnect delay here is 600 s: only that rule can end
    it). Its next poll then gets what was queued, then c[1013,...]."""
    url = session_url()
    with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as http:
        assert http.post(f"{url}/xhr").content == b"o\n"
        sub = frame("SUBSCRIBE", id="sub-0", destination="/topic/trades.AAPL")
        assert http.post(f"{url}/xhr_send", content=json.dumps([CONNECT, sub])).status_code == 204
        assert http.post(f"{url}/xhr").content.startswith(b'a["CONNECTED')
        body = b""
        while b"MESSAGE" not in body:
            body = http.post(f"{url}/xhr").content
        # stop polling
        until(lambda: stomp_connections(server) == 0, "the idle poller closed as slow")
        bodies = [http.post(f"{url}/xhr").content]
        while not bodies[-1].startswith(b"c["):
            bodies.append(http.post(f"{url}/xhr").content)
        assert bodies[-1].startswith(b"c[1013,")


GOOD = "http://good.example"


def test_xhr_send_errors_carry_the_cors_grant(server: Server) -> None:
    """SockJS: CORS on every XHR endpoint. A browser reads an xhr_send's
    404 (expired session) or 500 (broken JSON) only with the grant: without it the page
    sees a network error instead of the status (sockjs-node sets the CORS headers before
    the handler answers, errors included)."""
    url = session_url()
    with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as http:
        gone = http.post(f"{url}/xhr_send", content='["x"]', headers={"Origin": GOOD})
        assert gone.status_code == 404
        assert gone.headers.get("access-control-allow-origin") == GOOD
        assert http.post(f"{url}/xhr", headers={"Origin": GOOD}).content == b"o\n"
        broken = http.post(f"{url}/xhr_send", content="[x", headers={"Origin": GOOD})
        assert broken.status_code == 500
        assert broken.headers.get("access-control-allow-origin") == GOOD


# -- per-user destinations over SockJS

World = tuple[Server, dict[str, Account]]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path}/p.db"
    accounts = asyncio.run(
        seed(url, {"alice": {"Growth": [("AAPL", "buy", "10", "100")]}, "mallory": {}})
    )
    srv = start_server(
        tmp_path,
        database_url=url,
        rate=200,
        allow_anonymous=False,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
    )
    yield srv, accounts
    srv.stop()


def poll_until(http: httpx.Client, url: str, needle: bytes, **kw: Any) -> list[bytes]:
    bodies: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        body = http.post(f"{url}/xhr", **kw).content
        bodies.append(body)
        if needle in body or body.startswith(b"c["):
            return bodies
    return bodies


def test_another_user_cannot_read_a_users_sockjs_session(world: World) -> None:
    """docs/stomp.md: the per-user destinations are the connection's user's, "and nobody
    else's, ever". Alice's SockJS session is admitted by her key; Mallory, with her own
    valid key (and anonymous access off), names Alice's session id on xhr_send and xhr:
    her requests must be refused, not given Alice's positions."""
    server, accounts = world
    alice, mallory = accounts["alice"], accounts["mallory"]
    growth = alice.portfolios["Growth"]
    url = session_url()
    with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as http:
        a = {"X-API-Key": alice.api_key}
        assert http.post(f"{url}/xhr", headers=a).content == b"o\n"
        assert (
            http.post(f"{url}/xhr_send", content=json.dumps([CONNECT]), headers=a).status_code
            == 204
        )
        assert b"CONNECTED" in poll_until(http, url, b"CONNECTED", headers=a)[-1]
        # Mallory, authenticated as herself, drives Alice's session
        m = {"X-API-Key": mallory.api_key}
        sub = frame("SUBSCRIBE", id="steal", destination="/topic/position-update")
        sent = http.post(f"{url}/xhr_send", content=json.dumps([sub]), headers=m)
        seen = b"".join(poll_until(http, url, b"subscription:steal", headers=m))
        assert f'\\"portfolioId\\":{growth}'.encode() not in seen, seen[:300]
        assert sent.status_code in (403, 404)


def test_a_subscribe_behind_connect_waits_for_its_credentials_over_sockjs(
    world: World,
) -> None:
    """docs/stomp.md: frames that follow CONNECT in one message wait for the credentials'
    check. Over SockJS one xhr_send carries CONNECT (passcode) and a SUBSCRIBE to the
    user's positions: the SUBSCRIBE is read as the user's."""
    server, accounts = world
    alice = accounts["alice"]
    url = session_url()
    with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as http:
        assert http.post(f"{url}/xhr").content == b"o\n"
        login = frame("CONNECT", accept_version="1.2", host="x", passcode=alice.api_key)
        sub = frame("SUBSCRIBE", id="p", destination="/topic/position-update")
        assert http.post(f"{url}/xhr_send", content=json.dumps([login, sub])).status_code == 204
        seen = b"".join(poll_until(http, url, b"subscription:p"))
        assert b"subscription:p" in seen, seen[:300]


def test_shutdown_ends_a_sockjs_stream_with_a_close_frame(server: Server) -> None:
    """A WebSocket client is told 1001 on shutdown (test_lifecycle); a SockJS client on
    xhr_streaming must be told too: a ``c[1001,...]`` frame ends its stream, so
    sockjs-client reports a clean close rather than a network error (today
    ``TickcastHttpProtocol.shutdown`` cuts a streaming response mid-air: for HTTP/1.1
    not even the chunked terminator is sent)."""
    url = session_url()
    sock = open_stream(server, url)
    with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as http:
        assert http.post(f"{url}/xhr_send", content=json.dumps([CONNECT])).status_code == 204
    data = b""
    while b"CONNECTED" not in data:
        chunk = sock.recv(65536)
        assert chunk
        data += chunk
    stopped = threading.Thread(target=server.stop)
    stopped.start()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    stopped.join(WAIT_S)
    sock.close()
    assert b'c[1001,"' in data, data[-200:]


SECRET = "s" * 40


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db"
    accounts = asyncio.run(seed(url, {"alice": {"Growth": [("AAPL", "buy", "10", "100")]}}))
    srv = start_server(
        tmp_path,
        database_url=url,
        rate=200,
        jwt_secret=SECRET,
        sockjs_disconnect_delay_s=600.0,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
    )
    yield srv, accounts
    srv.stop()


def test_an_expired_token_closes_the_sockjs_session_3501(tokens: World) -> None:
    """docs/stomp.md: expired credentials close with 3501; over SockJS the session's
    polls then get c[3501,...], and the user's positions stop."""
    server, accounts = tokens
    alice = accounts["alice"]
    token = issue_token(alice.user_id, "alice", SECRET, time.time(), 2.0)
    url = session_url()
    with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as http:
        assert http.post(f"{url}/xhr").content == b"o\n"
        login = frame("CONNECT", accept_version="1.2", host="x", passcode=token)
        sub = frame("SUBSCRIBE", id="p", destination="/topic/position-update")
        assert http.post(f"{url}/xhr_send", content=json.dumps([login, sub])).status_code == 204
        assert b"subscription:p" in b"".join(poll_until(http, url, b"subscription:p"))
        bodies: list[bytes] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (bodies and bodies[-1].startswith(b"c[")):
            bodies.append(http.post(f"{url}/xhr").content)
        assert bodies[-1].startswith(b"c[3501,"), bodies[-3:]
        until(lambda: stomp_connections(server) == 0, "the expired session released")


def seqs_of(body: bytes, sub: str) -> list[int]:
    """The ``seq`` of each MESSAGE for ``sub`` in a stream's frames."""
    found: list[int] = []
    for line in body.split(b"\n"):
        if not line.startswith(b"a["):
            continue
        for message in json.loads(line[1:]):
            if f"subscription:{sub}\n" in message:
                found.append(int(message.split("\nseq:", 1)[1].split("\n", 1)[0]))
    return found


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(
        tmp_path,
        rate=2000,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
        sockjs_response_limit=4096,
        sockjs_disconnect_delay_s=600.0,
        slow_client_timeout_s=30.0,
    )
    yield srv
    srv.stop()


def test_trades_are_contiguous_across_streaming_responses(limited: Server) -> None:
    """docs/stomp.md: a streaming response ends after the response limit; "the client
    opens the next and nothing is lost meanwhile". Trades (reliable) read over several
    consecutive xhr_streaming responses have contiguous seqs: no gap, no duplicate."""
    url = session_url()
    seqs: list[int] = []
    with httpx.Client(base_url=f"{limited.http}/stomp", timeout=WAIT_S) as http:
        for n in range(8):
            with http.stream("POST", f"{url}/xhr_streaming") as response:
                if n == 0:
                    sub = frame("SUBSCRIBE", id="t", destination="/topic/trades.AAPL")
                    with httpx.Client(timeout=WAIT_S) as other:
                        r = other.post(
                            f"{limited.http}/stomp{url}/xhr_send",
                            content=json.dumps([CONNECT, sub]),
                        )
                        assert r.status_code == 204
                body = response.read()
            seqs += seqs_of(body, "t")
    assert len(seqs) > 10
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
