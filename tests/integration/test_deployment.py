"""The deployment files (Dockerfile, deploy/), checked as files and run.

- Static: every YAML file parses; compose runs two gateway nodes behind nginx; the
  Kubernetes probes name routes the gateway serves; every TICKCAST_* variable set
  anywhere is a real setting; ``nginx -t`` accepts the shipped deploy/nginx.conf; the
  Dockerfile builds in two stages and runs unprivileged with a health check; the systemd
  unit runs ``tickcast feed`` with flags it has, hardened (``systemd-analyze verify``
  when the machine has it).
- One node: a real ``tickcast serve`` behind a private nginx running the shipped
  configuration (tests/support/nginx.py): the market feed over a WebSocket, SockJS
  streaming and Engine.IO long-polling through the proxy, and the Dockerfile's own
  HEALTHCHECK command against the node.
- Two nodes over Redis behind the same nginx: a client whose node is killed reconnects
  through the proxy to the survivor and resumes. It needs the cluster layer
  (``tickcast.cluster``) and is skipped until that exists.

Waits are on conditions with generous deadlines (a busy 2-core machine), never on
durations.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from support.nginx import REPO, SHIPPED, check_config, nginx_binary, running_nginx, write_config
from support.postgres import fresh_database
from support.redis import require_redis
from support.server import Server, free_port, start_server
from support.wsclient import recv_json, recv_until, send_json
from tickcast.cli.main import SERVE_ENDPOINTS, build_parser
from tickcast.config.settings import Settings

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
WAIT_S = 60.0
#: The routes a probe may name: what `serve` answers to GET.
GET_ROUTES = {path for method, path, _ in SERVE_ENDPOINTS if method == "GET"}


def _yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _k8s(kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (named ``name``) in deploy/k8s."""
    found = [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        for doc in _yaml_documents(path)
        if doc["kind"] == kind and name in (None, doc["metadata"]["name"])
    ]
    assert len(found) == 1, f"one {kind} {name or ''} expected in deploy/k8s, not {len(found)}"
    return found[0]


def _setting_names() -> set[str]:
    """Every environment variable the gateway reads: TICKCAST_<field>, vendor names."""
    names = {f"TICKCAST_{name.upper()}" for name in Settings.model_fields}
    names |= {"ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY", "POLYGON_API_KEY", "MASSIVE_API_KEY"}
    return names


def _directives(text: str, name: str) -> list[str]:
    """The arguments of every ``name ...;`` directive in an nginx file (comments out)."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return [m.group(1).strip() for m in re.finditer(rf"(?m)^\s*{name}\b([^;{{]*);", code)]


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert match is not None, value
    return int(match.group(1)) * units[match.group(2) or "s"]


# -- static checks


def test_every_yaml_file_parses() -> None:
    paths = [DEPLOY / "compose.yaml", *sorted(K8S.glob("*.yaml"))]
    assert len(paths) >= 6
    for path in paths:
        documents = _yaml_documents(path)
        assert documents, f"{path} is empty"
        assert all(isinstance(doc, dict) for doc in documents), path


def test_compose_runs_two_gateway_nodes_behind_the_upgrading_proxy() -> None:
    compose = _yaml_documents(DEPLOY / "compose.yaml")[0]
    services = compose["services"]
    gateways = {name: s for name, s in services.items() if "build" in s}
    assert len(gateways) == 2
    envs = [g["environment"] for g in gateways.values()]
    assert sorted(env["TICKCAST_NODE_ID"] for env in envs) == ["node-a", "node-b"]
    for key in ("TICKCAST_JWT_SECRET", "TICKCAST_BUS_URL", "TICKCAST_DATABASE_URL"):
        assert len({env[key] for env in envs}) == 1, f"{key} must be the same on every node"
    env = envs[0]
    assert env["TICKCAST_BUS_URL"] == "redis://redis:6379/0"
    # the driver the project installs (pyproject: asyncpg) and the compose service
    assert env["TICKCAST_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["TICKCAST_DATABASE_URL"]
    assert '"asyncpg' in (REPO / "pyproject.toml").read_text()
    assert all(set(e) <= _setting_names() for e in envs), "a variable that is no setting"
    # the proxy: the shipped nginx.conf, its address the one the nodes trust
    nginx = services["nginx"]
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert env["TICKCAST_TRUSTED_PROXIES"] == nginx["networks"]["tickcast"]["ipv4_address"]
    upstream = {s.split(":")[0] for s in _directives(SHIPPED.read_text(), "server")}
    assert upstream == set(gateways), "nginx's upstream must name the gateway services"
    # start order by health, and every service has a health check
    for name in gateways:
        assert nginx["depends_on"][name] == {"condition": "service_healthy"}
        assert gateways[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
        assert gateways[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert all("healthcheck" in s for s in services.values())
    for gateway in gateways.values():
        probe = " ".join(gateway["healthcheck"]["test"])
        assert any(f"8000{route}'" in probe for route in GET_ROUTES)


def test_shipped_nginx_conf_has_what_websockets_and_polling_need() -> None:
    text = SHIPPED.read_text()
    assert re.search(r"map \$http_upgrade \$connection_upgrade \{[^}]*default upgrade;", text)
    assert _directives(text, "proxy_http_version") == ["1.1"]
    headers = _directives(text, "proxy_set_header")
    for header in (
        "Upgrade $http_upgrade",
        "Connection $connection_upgrade",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
        "X-Forwarded-Proto $scheme",
    ):
        assert header in headers
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        (value,) = _directives(text, timeout)
        assert _seconds(value) >= 3600, f"{timeout} {value} cuts idle streams"
    assert _directives(text, "proxy_buffering") == ["off"]
    # sticky by client (polling transports), never by something a client picks
    assert _directives(text, "ip_hash") == [""]
    assert not _directives(text, "hash")


def test_nginx_accepts_the_shipped_configuration(tmp_path: Path) -> None:
    binary = nginx_binary()
    conf = write_config(tmp_path, [free_port(), free_port()], free_port())
    checked = check_config(binary, tmp_path, conf)
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


def test_k8s_probes_name_routes_the_gateway_serves() -> None:
    deployment = _k8s("Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {"/ready", "/health"} <= GET_ROUTES
    # the pod is taken out of the endpoints, then drains, within its grace period
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    config = _k8s("ConfigMap")["data"]
    close_timeout_s = float(
        config.get("TICKCAST_CLOSE_TIMEOUT_S", Settings.model_fields["close_timeout_s"].default)
    )
    # uvicorn's graceful shutdown is close_timeout_s + 1 (cli/main.py)
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + close_timeout_s + 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    # settings from the ConfigMap and the Secret, every name a real setting
    secret = _k8s("Secret")
    refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {_k8s("ConfigMap")["metadata"]["name"], secret["metadata"]["name"]}
    names = set(config) | set(secret["stringData"]) | {e["name"] for e in container["env"]}
    assert names <= _setting_names()
    assert {"TICKCAST_JWT_SECRET", "TICKCAST_BUS_URL", "TICKCAST_DATABASE_URL"} <= names
    assert [e["name"] for e in container["env"]] == ["TICKCAST_NODE_ID"]
    # the Service, the PodDisruptionBudget and the Deployment select the same pods
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _k8s("Service", "tickcast")["spec"]["selector"] == labels
    pdb = _k8s("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == labels
    # Redis is outside: the bus URL names the ExternalName service
    redis = _k8s("Service", "tickcast-redis")
    assert redis["spec"]["type"] == "ExternalName"
    assert f"//{redis['metadata']['name']}:" in secret["stringData"]["TICKCAST_BUS_URL"]


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments)."""
    text = (REPO / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    stages: list[list[tuple[str, str]]] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        assert stages, "an instruction before FROM"
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def _instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [arguments for instruction, arguments in stage if instruction == name]


def test_dockerfile_builds_a_wheel_and_runs_unprivileged() -> None:
    build, final = _dockerfile_stages()
    assert _instructions(build, "FROM") == ["python:3.12-slim AS build"]
    assert _instructions(final, "FROM") == ["python:3.12-slim"]
    assert any("pip wheel" in run for run in _instructions(build, "RUN"))
    copied = [c.split()[0] for c in _instructions(build, "COPY")]
    assert copied == ["pyproject.toml", "src"]
    assert all((REPO / path).exists() for path in ("pyproject.toml", "README.md", "src"))
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {"*", "!pyproject.toml", "!README.md", "!src/"} <= set(ignore)
    # the runtime stage: what the build made, no compiler, no root
    assert [c.split()[0] for c in _instructions(final, "COPY")] == ["--from=build"]
    runs = " ".join(_instructions(final, "RUN"))
    assert not re.search(r"apt-get|gcc|build-essential|pip install", runs)
    (user,) = _instructions(final, "USER")
    assert user.split(":")[0] not in ("root", "0")
    assert _instructions(final, "EXPOSE") == ["8000"]
    (healthcheck,) = _instructions(final, "HEALTHCHECK")
    assert "/health" in healthcheck
    assert "python" in healthcheck
    (cmd,) = _instructions(final, "CMD")
    assert json.loads(cmd) == ["tickcast", "serve", "--host", "0.0.0.0"]
    env = " ".join(_instructions(final, "ENV"))
    assert set(re.findall(r"\b(TICKCAST_\w+)=", env)) <= _setting_names()


def _healthcheck_command() -> str:
    """The shell command of the Dockerfile's HEALTHCHECK."""
    (healthcheck,) = _instructions(_dockerfile_stages()[-1], "HEALTHCHECK")
    return healthcheck.split(" CMD ", 1)[1]


def _unit() -> dict[str, list[str]]:
    """The systemd unit's keys (a key may repeat), sections left out."""
    keys: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / "tickcast-feed.service").read_text().splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def test_systemd_unit_runs_the_feed_hardened() -> None:
    unit = _unit()
    (exec_start,) = unit["ExecStart"]
    program, *argv = shlex.split(exec_start.replace("%S", "/var/lib"))
    assert program.endswith("/tickcast")
    args = build_parser().parse_args(argv)  # every flag one `tickcast feed` has
    assert args.command == "feed"
    assert args.out == "/var/lib/tickcast-feed/prices.jsonl"
    assert unit["StateDirectory"] == ["tickcast-feed"]
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "Restart": "on-failure",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert unit[key] == [value], key
    assert unit["EnvironmentFile"] == ["/etc/tickcast/feed.env"]
    assert set(unit["RestartPreventExitStatus"][0].split()) == {"1", "2"}


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    tickcast = Path(sys.executable).with_name("tickcast")
    assert tickcast.exists()
    text = (DEPLOY / "systemd" / "tickcast-feed.service").read_text()
    unit = tmp_path / "tickcast-feed.service"
    unit.write_text(text.replace("/opt/tickcast/bin/tickcast", str(tickcast)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "tickcast-feed.service" not in done.stderr, done.stderr


# -- one node behind the shipped nginx


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Any]]:
    """One gateway behind the private nginx."""
    tmp = tmp_path_factory.mktemp("deploy-single")
    nginx_binary()  # skip (or fail under CI) before starting anything
    server = start_server(
        tmp, rate=500, trusted_proxies="127.0.0.1", max_anonymous_connections_per_address=0
    )
    try:
        with running_nginx(tmp / "nginx", [server.port]) as nginx:
            yield server, nginx
    finally:
        server.stop()


async def test_market_feed_through_the_proxy(single: tuple[Server, Any]) -> None:
    _, nginx = single
    async with connect(f"{nginx.ws}/ws/market/feed?seq=1") as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
        subscribed = await recv_until(ws, lambda m: m.get("type") == "subscribed", WAIT_S)
        assert subscribed["symbols"] == ["AAPL", "MSFT"]
        seen: set[str] = set()
        while seen != {"quotes.AAPL", "quotes.MSFT"}:
            message = await recv_json(ws, WAIT_S)
            assert message["price"] > 0
            seen.add(message["topic"])
        await send_json(ws, {"action": "ping"})
        assert (await recv_until(ws, lambda m: m.get("type") == "pong", WAIT_S))["timestamp"]


def test_forwarding_headers_reach_the_gateway(single: tuple[Server, Any]) -> None:
    _, nginx = single
    info = httpx.get(
        f"{nginx.http}/realtime/websocket-info/",
        headers={"Host": "feed.example:8443"},
        timeout=WAIT_S,
    ).json()
    assert info["websocket_url"] == "ws://feed.example:8443/ws/realtime/"


def test_sockjs_streaming_through_the_proxy(single: tuple[Server, Any]) -> None:
    """xhr_streaming: frames reach the client while the response is still open (nginx
    buffering would hold them), and xhr_send reaches the same session."""
    _, nginx = single
    base = f"{nginx.http}/stomp/000/{uuid.uuid4().hex}"
    connect_frame = "CONNECT\naccept-version:1.2\nhost:tickcast\n\n\x00"
    subscribe = "SUBSCRIBE\nid:sub-0\ndestination:/topic/quotes.AAPL\n\n\x00"
    with (
        httpx.Client(timeout=WAIT_S) as client,
        client.stream("POST", f"{base}/xhr_streaming") as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_raw()
        data = b""
        while b"o\n" not in data:
            data += next(chunks)
        assert data.startswith(b"h" * 2048 + b"\n")
        for frame in (connect_frame, subscribe):
            sent = client.post(f"{base}/xhr_send", content=json.dumps([frame]))
            assert sent.status_code == 204
        while b'a["MESSAGE\\n' not in data:
            data += next(chunks)
        assert b'a["CONNECTED\\n' in data


def test_engineio_polling_through_the_proxy(single: tuple[Server, Any]) -> None:
    """Engine.IO long-polling: the handshake, the Socket.IO CONNECT and the poll that
    answers it are three requests of one session."""
    _, nginx = single
    with httpx.Client(base_url=nginx.http, timeout=WAIT_S) as client:
        query = {"EIO": "4", "transport": "polling"}
        opened = client.get("/socket.io/", params=query)
        assert opened.status_code == 200
        assert opened.text.startswith("0{")
        query["sid"] = json.loads(opened.text[1:])["sid"]
        assert client.post("/socket.io/", params=query, content="40").text == "OK"
        packets = client.get("/socket.io/", params=query).text.split("\x1e")
        assert packets[0].startswith("40{")
        assert any(p.startswith('42["welcome"') for p in packets)
        assert client.post("/socket.io/", params=query, content="1").text == "OK"


def test_the_dockerfile_healthcheck_command_checks_the_gateway(
    single: tuple[Server, Any], tmp_path: Path
) -> None:
    server, _ = single
    command = _healthcheck_command()
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"

    def run(port: int) -> int:
        env = {"PATH": path, "TICKCAST_PORT": str(port)}
        done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=60)
        return done.returncode

    assert run(server.port) == 0
    assert run(free_port()) != 0  # nothing listens there


# -- two nodes over Redis behind the shipped nginx


def _cluster(server: Server) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"{server.http}/cluster", timeout=5)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def _node_name(entry: Any) -> str:
    """A node as ``/cluster`` lists it: its id, or an object naming it."""
    if isinstance(entry, str):
        return entry
    return str(entry.get("node") or entry.get("id") or entry.get("node_id"))


def _formed(nodes: dict[str, Server]) -> bool:
    """Every node lists every other and names the same leader, one of them."""
    views = [_cluster(server) for server in nodes.values()]
    return (
        all(
            view is not None
            and set(nodes) <= {_node_name(n) for n in view["nodes"]}
            and view["leader"] in nodes
            for view in views
        )
        and len({view["leader"] for view in views if view is not None}) == 1
    )


def _until(predicate: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not reached in {WAIT_S} s: {what}")


async def _connect_through(url: str) -> ClientConnection:
    """Connect through the proxy, retrying while it answers 502 for a node just lost."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return await connect(url)
        except Exception as exc:  # OSError, InvalidStatus (a 502 for the node just lost)
            if time.monotonic() > deadline:
                raise AssertionError(f"no connection through the proxy: {exc}") from exc
            await asyncio.sleep(0.2)


async def _read_until_closed(ws: ClientConnection, last: dict[str, dict[str, Any]]) -> None:
    """Read until the connection drops: what was already on its way still counts."""
    while True:
        try:
            message = await recv_json(ws, WAIT_S)
        except ConnectionClosed:
            return
        if _data(message):
            last[message["topic"]] = message


def _data(message: dict[str, Any]) -> bool:
    return "topic" in message and message.get("type") in (None, "trade")


@pytest.mark.postgresql
async def test_a_client_through_the_proxy_survives_the_death_of_its_node(
    tmp_path: Path,
) -> None:
    """The topology of deploy/compose.yaml without containers: two nodes, the real Redis
    and PostgreSQL, the shipped nginx in front; a client survives its node's death."""
    nginx_binary()
    require_redis()
    async with fresh_database("tickcast_deploy") as database_url:
        await _two_nodes_behind_nginx(tmp_path, database_url)


async def _two_nodes_behind_nginx(tmp_path: Path, database_url: str) -> None:
    shared: dict[str, object] = {
        "bus_url": "redis://127.0.0.1:6379/0",
        "bus_prefix": f"deploytest-{uuid.uuid4().hex[:12]}",
        "jwt_secret": uuid.uuid4().hex + uuid.uuid4().hex,
        "database_url": database_url,
        "rate": 300,
        "history_size": 4096,
        "trusted_proxies": "127.0.0.1",
        "max_anonymous_connections_per_address": 0,
    }
    nodes = {
        node_id: start_server(tmp_path, node_id=node_id, **shared)
        for node_id in ("node-a", "node-b")
    }
    try:
        _until(lambda: _formed(nodes), "a cluster of two nodes with one leader")
        extra = ["add_header X-Upstream $upstream_addr always;"]
        ports = [server.port for server in nodes.values()]
        with running_nginx(tmp_path / "nginx", ports, extra=extra) as nginx:
            await _survive_the_death_of_its_node(nginx, nodes)
    finally:
        for server in nodes.values():
            server.stop()


async def _survive_the_death_of_its_node(nginx: Any, nodes: dict[str, Server]) -> None:
    url = f"{nginx.ws}/ws/market/feed?seq=1"
    request = {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes", "trades"]}
    topics = ("quotes.AAPL", "trades.AAPL")
    by_port = {str(server.port): node_id for node_id, server in nodes.items()}
    last: dict[str, dict[str, Any]] = {}
    ws = await _connect_through(url)
    try:
        victim = by_port[ws.response.headers["X-Upstream"].rsplit(":", 1)[1]]
        await send_json(ws, request)
        await recv_until(ws, lambda m: m.get("type") == "subscribed", WAIT_S)
        while len(last) < len(topics) or last["trades.AAPL"]["seq"] < 3:
            message = await recv_json(ws, WAIT_S)
            if _data(message):
                last[message["topic"]] = message
        nodes[victim].proc.kill()  # SIGKILL: no close frame, no drain
        await _read_until_closed(ws, last)
    finally:
        await ws.close()
    (survivor,) = set(nodes) - {victim}
    # the survivor leads once the victim's lease has expired (if it was the leader)
    _until(
        lambda: (_cluster(nodes[survivor]) or {}).get("leader") == survivor,
        f"{survivor} leading",
    )

    ws = await _connect_through(url)
    try:
        assert by_port[ws.response.headers["X-Upstream"].rsplit(":", 1)[1]] == survivor
        resume = {t: {"epoch": m["epoch"], "seq": m["seq"]} for t, m in last.items()}
        await send_json(ws, {**request, "resume": resume})
        await recv_until(ws, lambda m: m.get("type") == "subscribed", WAIT_S)
        after: dict[str, list[dict[str, Any]]] = {topic: [] for topic in topics}
        while min(len(messages) for messages in after.values()) < 3:
            message = await recv_json(ws, WAIT_S)
            if message.get("topic") in after:
                after[message["topic"]].append(message)
    finally:
        await ws.close()

    for topic, (first, *rest) in after.items():
        before = last[topic]
        if first.get("type") == "reset":  # a new numbering, said out loud
            assert first["requested"] == before["seq"]
            assert all(m["epoch"] == first["epoch"] for m in rest)
        else:  # the same numbering, picked up where the client left it
            assert first["epoch"] == before["epoch"]
            if topic.startswith("trades."):  # never conflated: exactly the next one
                assert first["seq"] == before["seq"] + 1, (before, first)
            else:
                assert first["seq"] > before["seq"]
    assert all(_data(m) for messages in after.values() for m in messages[1:])
