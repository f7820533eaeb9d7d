"""Front 3 over SockJS at ``/stomp`` (docs/stomp.md) against a real ``tickcast serve``:
the routes, the transports (xhr polling, xhr_send, xhr_streaming, eventsource,
websocket) carrying STOMP, and the cases of SockJS 0.3.3's protocol test suite that a
STOMP service can show (its echo service replaced by STOMP frames: CONNECT answered by
CONNECTED, SUBSCRIBE by MESSAGEs). HTTP/1.1 through httpx, HTTP/1.0 through a raw
socket, the websocket transport through the ``websockets`` client.

Waits are on conditions (a frame, a count reaching 0) with generous deadlines, never
on durations."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from support.accounts import Account, seed
from support.server import Server, start_server

WAIT_S = 15.0
CONNECT = "CONNECT\naccept-version:1.2\nhost:tickcast\n\n\x00"


def frame(command: str, **headers: str) -> str:
    head = "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in headers.items())
    return f"{command}\n{head}\n\x00"


def messages(body: bytes) -> list[str]:
    """The messages of one ``a[...]`` frame (with its transport's newline)."""
    text = body.decode()
    assert text.startswith("a["), text
    return list(json.loads(text[1:].rstrip("\n")))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("sockjs"),
        rate=2000,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
        sockjs_response_limit=4096,
        sockjs_heartbeat_s=1.0,
        allowed_origins="http://good.example",
    )
    yield srv
    srv.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as client:
        yield client


def session_url() -> str:
    return f"/000/{uuid.uuid4().hex}"


def open_session(http: httpx.Client, url: str) -> None:
    r = http.post(f"{url}/xhr")
    assert (r.status_code, r.content) == (200, b"o\n")


def connected(http: httpx.Client, url: str) -> None:
    """A session with STOMP connected over xhr polling."""
    open_session(http, url)
    assert http.post(f"{url}/xhr_send", content=json.dumps([CONNECT])).status_code == 204
    got = messages(http.post(f"{url}/xhr").content)
    assert got[0].startswith("CONNECTED\nversion:1.2\n")


def stomp_connections(server: Server) -> int:
    status = httpx.get(f"{server.http}/realtime/status/", timeout=5).json()
    return int(status["global_stats"]["fronts"]["stomp"]["connections"])


def until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached in {WAIT_S} s: {what}")


# -- routes


def test_greeting_with_and_without_slash(http: httpx.Client) -> None:
    for path in ("", "/"):
        r = http.get(path)
        assert r.status_code == 200
        assert r.content == b"Welcome to SockJS!\n"
        assert r.headers["content-type"] == "text/plain; charset=UTF-8"


def test_info_is_fresh_and_uncached(http: httpx.Client) -> None:
    first, second = http.get("/info"), http.get("/info")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json; charset=UTF-8"
    assert "no-cache" in first.headers["cache-control"]
    body = first.json()
    assert body["websocket"] is True
    assert body["cookie_needed"] is False
    assert body["origins"] == ["*:*"]
    assert body["entropy"] != second.json()["entropy"]


def test_info_preflight(http: httpx.Client) -> None:
    r = http.options("/info", headers={"Origin": "http://good.example"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-methods"] == "OPTIONS, GET"
    assert r.headers["access-control-allow-origin"] == "http://good.example"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert int(r.headers["access-control-max-age"]) > 1_000_000
    assert "public" in r.headers["cache-control"]


@pytest.mark.parametrize(
    "path",
    ["/a.b/c/xhr", "/a/c.d/xhr", "//c/xhr", "/a//xhr", "/a/b/c/xhr", "/a/b", "/a/b/jsonp"],
)
def test_bad_session_paths_are_not_found(http: httpx.Client, path: str) -> None:
    assert http.post(path).status_code == 404


def test_wrong_methods_name_the_allowed_ones(http: httpx.Client) -> None:
    r = http.get("/a/b/xhr")
    assert r.status_code == 405
    assert r.headers["allow"] == "OPTIONS, POST"
    r = http.post("/a/b/eventsource")
    assert (r.status_code, r.headers["allow"]) == (405, "GET")
    assert http.post("/info").status_code == 405
    # the websocket transport without the upgrade
    assert http.get("/a/b/websocket").status_code == 400


def test_transport_preflight_echoes_the_request_headers(http: httpx.Client) -> None:
    r = http.options(
        "/abc/abc/xhr_send",
        headers={"Origin": "http://good.example", "Access-Control-Request-Headers": "a, b"},
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-methods"] == "OPTIONS, POST"
    assert r.headers["access-control-allow-headers"] == "a, b"


def test_a_foreign_origin_is_refused_before_any_session(server: Server, http: httpx.Client) -> None:
    url = session_url()
    evil = {"Origin": "http://evil.example"}
    for method, path in (("POST", "/xhr"), ("POST", "/xhr_streaming"), ("GET", "/eventsource")):
        r = http.request(method, f"{url}{path}", headers=evil)
        assert r.status_code == 403
        assert "access-control-allow-origin" not in r.headers
    assert http.request("OPTIONS", f"{url}/xhr", headers=evil).status_code == 403
    assert http.get("/info", headers=evil).status_code == 403
    # no session was made: a post to it is not found
    assert http.post(f"{url}/xhr_send", content='["x"]').status_code == 404
    # an allowed origin gets its grant
    r = http.post(f"{url}/xhr", headers={"Origin": "http://good.example"})
    assert (r.status_code, r.content) == (200, b"o\n")
    assert r.headers["access-control-allow-origin"] == "http://good.example"
    assert r.headers["access-control-allow-credentials"] == "true"


def test_the_raw_stomp_websocket_stays_at_stomp_websocket(server: Server) -> None:
    async def run() -> str:
        ws_url = f"ws://127.0.0.1:{server.port}/stomp/websocket"
        async with connect(ws_url, subprotocols=["v12.stomp"]) as ws:  # type: ignore[list-item]
            await ws.send(CONNECT)
            return str(await asyncio.wait_for(ws.recv(), WAIT_S))

    assert asyncio.run(run()).startswith("CONNECTED\n")  # bare STOMP: no SockJS frame


# -- xhr polling and xhr_send


def test_xhr_polling_carries_stomp(http: httpx.Client) -> None:
    url = session_url()
    r = http.post(f"{url}/xhr")
    assert (r.status_code, r.content) == (200, b"o\n")
    assert r.headers["content-type"] == "application/javascript; charset=UTF-8"
    assert "no-cache" in r.headers["cache-control"]
    r = http.post(f"{url}/xhr_send", content=json.dumps([CONNECT]))
    assert (r.status_code, r.content) == (204, b"")
    assert r.headers["content-type"] == "text/plain; charset=UTF-8"
    assert "no-cache" in r.headers["cache-control"]
    got = messages(http.post(f"{url}/xhr").content)
    assert got[0].startswith("CONNECTED\nversion:1.2\n")
    sub = frame("SUBSCRIBE", id="sub-0", destination="/topic/quotes.AAPL")
    assert http.post(f"{url}/xhr_send", content=json.dumps([sub])).status_code == 204
    seen: list[str] = []
    while not seen:  # a poll that gets a heartbeat (h) carries no message: poll again
        body = http.post(f"{url}/xhr").content
        if body.startswith(b"a"):
            seen = messages(body)
    assert seen[0].startswith("MESSAGE\n")
    assert "subscription:sub-0\n" in seen[0]
    assert "destination:/topic/quotes.AAPL\n" in seen[0]


def test_an_idle_poll_gets_a_heartbeat(http: httpx.Client) -> None:
    url = session_url()
    connected(http, url)  # no subscription: nothing to say but h (sockjs_heartbeat_s=1)
    r = http.post(f"{url}/xhr")
    assert (r.status_code, r.content) == (200, b"h\n")


def test_a_second_receiving_request_is_refused(server: Server, http: httpx.Client) -> None:
    url = session_url()
    connected(http, url)
    # a stream holds the session (a poll would end at the first heartbeat)
    with (
        httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as other,
        other.stream("POST", f"{url}/xhr_streaming") as stream,
    ):
        chunks = stream.iter_raw()
        received = b""
        while b"\n" not in received[2049:]:
            received += next(chunks)  # the prelude, then whatever comes first
        r = http.post(f"{url}/xhr")
        assert (r.status_code, r.content) == (
            200,
            b'c[2010,"Another connection still open"]\n',
        )
    # the stream's client went away mid-response: the session is over (as sockjs-node
    # does), and the id opens a new one
    bodies: list[bytes] = []
    until(
        lambda: bodies.append(http.post(f"{url}/xhr").content) or bodies[-1] == b"o\n",
        f"a new session after the stream was cut ({bodies[-3:]})",
    )
    assert set(bodies[:-1]) <= {b'c[2010,"Another connection still open"]\n'}


def test_xhr_send_refusals(http: httpx.Client) -> None:
    assert http.post(f"{session_url()}/xhr_send", content='["x"]').status_code == 404
    url = session_url()
    connected(http, url)
    r = http.post(f"{url}/xhr_send", content='["x')
    assert r.status_code == 500
    assert b"Broken JSON encoding." in r.content
    r = http.post(f"{url}/xhr_send", content="")
    assert r.status_code == 500
    assert b"Payload expected." in r.content
    assert http.post(f"{url}/xhr_send", content="[]").status_code == 204
    for content_type in ("text/plain", "application/json", "application/xml", "T", ""):
        r = http.post(f"{url}/xhr_send", content="[]", headers={"Content-Type": content_type})
        assert r.status_code == 204
    # a message that is not STOMP's: ERROR, then the session closes
    bad = frame("SUBSCRIBE", id="s", destination="/topic/bad")
    assert http.post(f"{url}/xhr_send", content=json.dumps([bad])).status_code == 204
    got: list[str] = []
    while not got:
        body = http.post(f"{url}/xhr").content
        if body.startswith(b"a"):
            got = messages(body)
    assert got[0].startswith("ERROR\n")


def test_a_closed_session_keeps_answering_its_close_frame(
    server: Server, http: httpx.Client
) -> None:
    url = session_url()
    connected(http, url)
    receipt = frame("DISCONNECT", receipt="bye")
    assert http.post(f"{url}/xhr_send", content=json.dumps([receipt])).status_code == 204
    bodies: list[bytes] = []
    while not bodies or not bodies[-1].startswith(b"c["):
        bodies.append(http.post(f"{url}/xhr").content)
    assert any(b"RECEIPT\\nreceipt-id:bye" in b for b in bodies)
    close = bodies[-1]
    assert http.post(f"{url}/xhr").content == close  # until it expires
    # and what the session held is released at once: its connection is gone
    until(lambda: stomp_connections(server) == 0, "the closed session's connection released")


def test_a_session_without_requests_expires_and_releases_everything(tmp_path: object) -> None:
    srv = start_server(tmp_path, rate=200, sockjs_disconnect_delay_s=1.0)  # type: ignore[arg-type]
    try:
        with httpx.Client(base_url=f"{srv.http}/stomp", timeout=WAIT_S) as http:
            url = session_url()
            connected(http, url)
            sub = frame("SUBSCRIBE", id="sub-0", destination="/topic/quotes.MSFT")
            assert http.post(f"{url}/xhr_send", content=json.dumps([sub])).status_code == 204
            assert stomp_connections(srv) == 1
            assert httpx.get(f"{srv.http}/ready").json()["connections"] == 1
            # no more polls: after the disconnect delay the session is gone
            until(lambda: stomp_connections(srv) == 0, "the session expired")
            assert httpx.get(f"{srv.http}/ready").json()["connections"] == 0
            assert http.post(f"{url}/xhr_send", content='["x"]').status_code == 404
            # the same id opens a new session
            r = http.post(f"{url}/xhr")
            assert r.content == b"o\n"
    finally:
        srv.stop()


# -- streaming


def read_stream(server: Server, url: str, method: str, path: str) -> Iterator[bytes]:
    """The chunks of a streaming response, as they come."""
    with (
        httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as client,
        client.stream(method, f"{url}/{path}") as response,
    ):
        assert response.status_code == 200
        yield response.headers["content-type"].encode()
        yield from response.iter_raw()


def test_xhr_streaming_prelude_frames_and_response_limit(
    server: Server, http: httpx.Client
) -> None:
    url = session_url()
    stream = read_stream(server, url, "POST", "xhr_streaming")
    assert next(stream) == b"application/javascript; charset=UTF-8"
    data = b""
    while len(data) < 2049 + 2:
        data += next(stream)
    assert data[:2049] == b"h" * 2048 + b"\n"
    assert data[2049:2051] == b"o\n"
    data = data[2051:]
    assert http.post(f"{url}/xhr_send", content=json.dumps([CONNECT])).status_code == 204
    sub = frame("SUBSCRIBE", id="sub-0", destination="/topic/quotes.AAPL")
    assert http.post(f"{url}/xhr_send", content=json.dumps([sub])).status_code == 204
    # quotes flow until the response has carried the limit (4096 here), then it ends
    for chunk in stream:
        data += chunk
    frames = data.split(b"\n")[:-1]
    assert messages(frames[0] + b"\n")[0].startswith("CONNECTED\n")
    assert any(f.startswith(b'a["MESSAGE\\n') for f in frames)
    assert len(b"o\n") + len(data) >= 4096
    # the session lives on: the next request gets what came since
    again = read_stream(server, url, "POST", "xhr_streaming")
    next(again)
    more = b""
    while len(more) <= 2049:
        more += next(again)
    assert more[:2049] == b"h" * 2048 + b"\n"
    assert more[2049:].startswith((b"a[", b"h"))


def test_eventsource_streams_stomp(server: Server, http: httpx.Client) -> None:
    url = session_url()
    stream = read_stream(server, url, "GET", "eventsource")
    assert next(stream) == b"text/event-stream; charset=UTF-8"
    data = b""
    while b"data: o\r\n\r\n" not in data:
        data += next(stream)
    assert data.startswith(b"\r\ndata: o\r\n\r\n")
    assert http.post(f"{url}/xhr_send", content=json.dumps([CONNECT])).status_code == 204
    while b"CONNECTED" not in data:
        data += next(stream)
    assert b'data: a["CONNECTED\\n' in data
    stream.close()


# -- websocket transport


def test_websocket_transport_carries_stomp(server: Server) -> None:
    async def run() -> None:
        ws_url = f"ws://127.0.0.1:{server.port}/stomp/000/{uuid.uuid4().hex}/websocket"
        async with connect(ws_url) as ws:
            assert await asyncio.wait_for(ws.recv(), WAIT_S) == "o"
            await ws.send(json.dumps([CONNECT]))
            got = str(await asyncio.wait_for(ws.recv(), WAIT_S))
            assert got.startswith('a["CONNECTED\\n')
            sub = frame("SUBSCRIBE", id="sub-0", destination="/topic/quotes.AAPL")
            await ws.send(json.dumps(sub))  # one JSON string is a message too
            subs = [
                frame("SUBSCRIBE", id=f"sub-{i}", destination=f"/topic/{c}.{s}")
                for i, (c, s) in enumerate(
                    ((c, s) for c in ("trades", "quotes") for s in ("MSFT", "NVDA", "TSLA")),
                    start=1,
                )
            ]
            await ws.send(json.dumps(subs))
            # every websocket message is one frame, however many wait at once
            stomp: list[str] = []
            while len(stomp) < 50:
                got = str(await asyncio.wait_for(ws.recv(), WAIT_S))
                if got != "h":
                    assert got.startswith("a[")
                    stomp += json.loads(got[1:])  # raises on a[...]a[...]
            assert all(m.startswith("MESSAGE\n") for m in stomp)

    asyncio.run(run())
    until(lambda: stomp_connections(server) == 0, "the websocket session released")


def test_websocket_transport_closes_on_broken_json(server: Server) -> None:
    async def run() -> tuple[int | None, str | None]:
        ws_url = f"ws://127.0.0.1:{server.port}/stomp/000/{uuid.uuid4().hex}/websocket"
        async with connect(ws_url) as ws:
            assert await asyncio.wait_for(ws.recv(), WAIT_S) == "o"
            await ws.send('["a')
            while True:
                try:
                    await asyncio.wait_for(ws.recv(), WAIT_S)
                except websockets.ConnectionClosed as closed:
                    received = closed.rcvd
                    break
            return (received.code, received.reason) if received else (None, None)

    assert asyncio.run(run()) == (3000, "Broken framing.")


def test_websocket_transport_refuses_a_foreign_origin(server: Server) -> None:
    async def run() -> None:
        ws_url = f"ws://127.0.0.1:{server.port}/stomp/000/{uuid.uuid4().hex}/websocket"
        async with connect(ws_url, origin="http://evil.example") as ws:  # type: ignore[arg-type]
            await asyncio.wait_for(ws.recv(), WAIT_S)

    with pytest.raises((websockets.InvalidStatus, websockets.ConnectionClosed)):
        asyncio.run(run())


# -- HTTP/1.0


def raw_request(server: Server, request: bytes, *, until_bytes: int | None = None) -> bytes:
    """Send ``request`` on a plain socket; read until the server closes (or until
    ``until_bytes`` of body, then close)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
            if (
                until_bytes is not None
                and b"\r\n\r\n" in data
                and len(data.split(b"\r\n\r\n", 1)[1]) >= until_bytes
            ):
                return data


def test_http10_polling_and_streaming_are_not_chunked(server: Server) -> None:
    url = f"/stomp{session_url()}"
    poll = f"POST {url}/xhr HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
    data = raw_request(server, poll)  # the server closes: HTTP/1.0 has no keep-alive
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"o\n"
    send = json.dumps([CONNECT]).encode()
    post = (
        f"POST {url}/xhr_send HTTP/1.0\r\nHost: x\r\nContent-Length: {len(send)}\r\n\r\n"
    ).encode() + send
    assert raw_request(server, post).startswith(b"HTTP/1.1 204")
    stream = f"POST {url}/xhr_streaming HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    data = raw_request(server, stream.encode(), until_bytes=2049 + 10)
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding" not in head.lower()
    assert b"content-length" not in head.lower()
    assert body.startswith(b"h" * 2048 + b"\n" + b'a["CONNECTED')


def test_http11_streaming_is_chunked(server: Server) -> None:
    url = f"/stomp{session_url()}"
    stream = f"POST {url}/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    data = raw_request(server, stream.encode(), until_bytes=2049 + 8)
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding: chunked" in head.lower()
    # one chunk: the prelude and the open frame (0x803 bytes)
    assert body.startswith(b"803\r\n" + b"h" * 2048 + b"\no\n\r\n")


def test_many_sessions_share_the_stream_without_disturbing_each_other(
    server: Server, http: httpx.Client
) -> None:
    """Two polling sessions on one topic both get MESSAGEs (each its own head)."""
    urls = [session_url(), session_url()]
    results: dict[str, str] = {}

    def poll(url: str, sub_id: str) -> None:
        with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as client:
            connected(client, url)
            sub = frame("SUBSCRIBE", id=sub_id, destination="/topic/trades.AAPL")
            assert client.post(f"{url}/xhr_send", content=json.dumps([sub])).status_code == 204
            while url not in results:
                body = client.post(f"{url}/xhr").content
                if body.startswith(b"a"):
                    results[url] = messages(body)[0]

    threads = [threading.Thread(target=poll, args=(u, f"id-{i}")) for i, u in enumerate(urls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 2)
    assert "subscription:id-0\n" in results[urls[0]]
    assert "subscription:id-1\n" in results[urls[1]]


# -- credentials


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Account]]:
    """Anonymous market data off; one user with an API key."""
    tmp = tmp_path_factory.mktemp("sockjs-private")
    url = f"sqlite+aiosqlite:///{tmp}/s.db"
    accounts = asyncio.run(seed(url, {"erin": {}}))
    srv = start_server(tmp, database_url=url, rate=200, allow_anonymous=False)
    yield srv, accounts["erin"]
    srv.stop()


def authenticated(server: Server) -> int:
    status = httpx.get(f"{server.http}/realtime/status/", timeout=5).json()
    return int(status["global_stats"]["fronts"]["stomp"]["authenticated_connections"])


def test_connect_credentials_over_sockjs(private: tuple[Server, Account]) -> None:
    server, account = private
    with httpx.Client(base_url=f"{server.http}/stomp", timeout=WAIT_S) as http:
        url = session_url()
        open_session(http, url)
        login = frame("CONNECT", accept_version="1.2", host="x", passcode=account.api_key)
        assert http.post(f"{url}/xhr_send", content=json.dumps([login])).status_code == 204
        got: list[str] = []
        while not got:
            body = http.post(f"{url}/xhr").content
            if body.startswith(b"a"):
                got = messages(body)
        assert got[0].startswith("CONNECTED\n")
        assert authenticated(server) == 1
        # without credentials, and anonymous access off: ERROR, then the close frame
        other = session_url()
        open_session(http, other)
        assert http.post(f"{other}/xhr_send", content=json.dumps([CONNECT])).status_code == 204
        bodies: list[bytes] = []
        while not bodies or not bodies[-1].startswith(b"c["):
            bodies.append(http.post(f"{other}/xhr").content)
        assert any(b"Authentication required" in b for b in bodies)
        assert bodies[-1].startswith(b"c[3503,")  # the close code of the refusal
        # a token in the query (sockjs-client keeps the URL's query on every request)
        # admits the session as the user; a request without it is a stranger's: 404
        third = session_url()
        token = {"token": account.api_key}
        r = http.post(f"{third}/xhr", params=token)
        assert r.content == b"o\n"
        until(lambda: authenticated(server) == 2, "the query's credential admitted")
        assert http.post(f"{third}/xhr_send", content=json.dumps([CONNECT])).status_code == 404
        sent = http.post(f"{third}/xhr_send", params=token, content=json.dumps([CONNECT]))
        assert sent.status_code == 204
        assert messages(http.post(f"{third}/xhr", params=token).content)[0].startswith(
            "CONNECTED\n"
        )
        # a bad token on the first request: refused before any session (401)
        fourth = session_url()
        assert http.post(f"{fourth}/xhr", params={"token": "nonsense"}).status_code == 401
        assert http.post(f"{fourth}/xhr_send", content='["x"]').status_code == 404
