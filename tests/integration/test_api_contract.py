"""The portfolio API's OpenAPI description is a contract: schemathesis holds the real
server to it.

A real ``tickcast serve`` (a subprocess on a free port, a fresh SQLite file: PostgreSQL is
not needed for the contract) with two users seeded, then schemathesis's CLI (``python -m
schemathesis.cli run``) reads ``/api/openapi.json`` as a client would and drives every
operation with alice's API key (made with ``publish:signals``, so that ``POST /signals``
publishes rather than answering 403 to everything):

- the examples, coverage and fuzzing phases, with data the schema allows (it must be
  accepted) and data it refuses (it must be a 4xx), ``N_EXAMPLES`` per operation;
- the stateful phase, which follows the schema's own links only (inference is off): a
  portfolio that ``POST /portfolios`` creates feeds its id to ``GET
  /portfolios/{portfolio_id}``, ``POST .../transactions`` and the rest, and so on from
  each answer;
- every check schemathesis has (``--checks all``): no 5xx, only documented status codes,
  content types and headers, bodies that match their schema, the ``Allow`` of a 405,
  401 without credentials where the schema says they are needed...

A valid body can still break a rule of the data that no JSON Schema states (a symbol
must be a known asset; a sell needs the quantity held; a withdrawal, the cash): the
operations that have such rules document a 422 for them, and only for those three is a
422 an acceptable answer to schema-valid data (``CONFIG``).

Reproducible: generation is derandomized (the same cases on every run), with no example
database and no schemathesis cache carried from a run to the next, and nothing depends on
the machine's speed (no health check on generation time, no request timeout that a busy
machine could reach). When schemathesis
finds something, the failure shows its report: each case, the answer and a curl line to
replay it, and the end of the server's log.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.accounts import Account, seed
from support.server import Server, start_server
from tickcast.app import build_app
from tickcast.config.settings import Settings

#: Test cases per operation in each of the examples, coverage and fuzzing phases.
N_EXAMPLES = 25
#: Longest chain of linked calls in one stateful scenario.
MAX_STEPS = 80
#: Operations whose schema-valid body may break a rule of the data (a documented 422).
DATA_RULES = ("record_transaction", "deposit", "withdraw")
#: ``publish_signal`` is configured apart (``CONFIG``): its schema cannot say "a time
#: zone" or "finite" (a 422), a repeated id is a 409, and a body may pass 4096 bytes
#: (a 413); like the data rules, it may meet a generated Authorization header (a 401).
#: Operations on one portfolio: each must be reached through a link of the schema.
PORTFOLIO_OPERATIONS = frozenset(
    {
        "GET /portfolios/{portfolio_id}",
        "GET /portfolios/{portfolio_id}/positions",
        "GET /portfolios/{portfolio_id}/transactions",
        "POST /portfolios/{portfolio_id}/transactions",
        "POST /portfolios/{portfolio_id}/deposits",
        "POST /portfolios/{portfolio_id}/withdrawals",
        "GET /portfolios/{portfolio_id}/cash-transactions",
    }
)
CONFIG = """\
headers = {{ "X-API-Key" = "{key}" }}
cache.enabled = false
generation.database = "none"
generation.max-examples = {n_examples}

[phases.stateful]
max-steps = {max_steps}
inference.algorithms = []

[[operations]]
include-operation-id = {data_rules}
checks.positive_data_acceptance.expected-statuses = [201, 401, 404, 422]

[[operations]]
include-operation-id = ["publish_signal"]
checks.positive_data_acceptance.expected-statuses = [201, 401, 409, 413, 422]
"""
_TRANSITION = re.compile(
    r"(?P<source>.+?) -> \[(?P<status>[^\]]+)\] (?P<link>\S+) -> (?P<target>.+)"
)


@dataclass
class Gateway:
    server: Server
    alice: Account
    bob: Account

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = httpx.get(f"{self.server.http}/api/openapi.json", timeout=30).json()
        return spec


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A real server on a fresh SQLite file; alice owns nothing yet, bob one portfolio
    (whose id alice's requests may hit, and must get 404 for)."""
    tmp = tmp_path_factory.mktemp("contract")
    accounts = asyncio.run(
        seed(
            f"sqlite+aiosqlite:///{tmp}/tickcast.db",
            {"alice": {}, "bob": {"Income": [("AAPL", "buy", "2", "100")]}},
            permissions={"alice": "publish:signals"},  # so that signals are published
        )
    )
    server = start_server(tmp, rate=20)
    try:
        yield Gateway(server, accounts["alice"], accounts["bob"])
    finally:
        server.stop()


def _operations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``"GET /me"`` -> the operation, for every operation of the schema."""
    return {
        f"{method.upper()} {path}": operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }


def _schemathesis(gateway: Gateway, workdir: Path) -> subprocess.CompletedProcess[str]:
    config = workdir / "schemathesis.toml"
    config.write_text(
        CONFIG.format(
            key=gateway.alice.api_key,
            n_examples=N_EXAMPLES,
            max_steps=MAX_STEPS,
            data_rules=json.dumps(list(DATA_RULES)),
        )
    )
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{gateway.server.http}/api/openapi.json",
        "--checks",
        "all",
        "--generation-deterministic",
        "--workers",
        "1",
        # nothing here may depend on how busy the machine is: no health check on how fast
        # cases are generated, and a request is given all the time it needs
        "--suppress-health-check",
        "too_slow",
        "--request-timeout",
        "300",
        "--no-color",
        "--report",
        "junit,ndjson",
        "--report-junit-path",
        str(workdir / "junit.xml"),
        "--report-ndjson-path",
        str(workdir / "events.ndjson"),
    ]
    # cwd: schemathesis and hypothesis keep their working files there, not in the repo.
    # The timeout only ends a hang (the run takes about 20 s idle, 70 s on a loaded machine).
    return subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=900, check=False
    )


def _found(output: str) -> str:
    """What schemathesis reports: from its FAILURES (or ERRORS) section to the end."""
    for title in ("= FAILURES =", "= ERRORS =", "= WARNINGS =", "= SUMMARY ="):
        at = output.find(title)
        if at >= 0:
            return output[output.rfind("\n", 0, at) + 1 :]
    return output


def _tested(junit: Path) -> set[str]:
    return {case.attrib["name"] for case in ET.parse(junit).iter("testcase")}


def _transitions(events: Path) -> set[tuple[str, str, str]]:
    """(source, link name, target) of every link the stateful phase followed."""
    found: set[tuple[str, str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            transition = node.get("transition")
            if isinstance(transition, dict) and isinstance(transition.get("id"), str):
                match = _TRANSITION.fullmatch(transition["id"])
                if match is not None:
                    found.add((match["source"], match["link"], match["target"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with events.open() as lines:
        for line in lines:
            walk(json.loads(line))
    return found


@pytest.mark.slow
def test_schemathesis_finds_nothing_the_openapi_description_does_not_say(
    gateway: Gateway, tmp_path: Path
) -> None:
    spec = gateway.spec()
    result = _schemathesis(gateway, tmp_path)
    server_log = "\n".join(gateway.server.log().splitlines()[-40:])
    assert result.returncode == 0, (
        f"schemathesis (exit {result.returncode}) found answers the OpenAPI description "
        f"does not allow:\n{_found(result.stdout)}\n{result.stderr[-3000:]}\n"
        f"--- the server's log, last lines ---\n{server_log}"
    )
    assert gateway.server.proc.poll() is None, "the server died under the fuzzing"

    # every operation was tested, and the stateful phase ran
    operations = _operations(spec)
    # 14, PATCH /portfolios/{id}, the 3 leaderboard polls and the 5 monitoring routes
    assert len(operations) == 23
    assert _tested(tmp_path / "junit.xml") == {*operations, "Stateful tests"}

    # ...following the schema's links: from a created portfolio to every operation on it
    followed = _transitions(tmp_path / "events.ndjson")
    declared = {
        (label, name, link["operationId"])
        for label, operation in operations.items()
        for response in operation["responses"].values()
        for name, link in response.get("links", {}).items()
    }
    assert declared, "the schema declares no links"
    ids = {operation["operationId"]: label for label, operation in operations.items()}
    assert {(s, name, ids[target]) for s, name, target in declared} >= followed
    assert any(source == "POST /portfolios" for source, _, _ in followed), followed
    assert {target for _, _, target in followed} == PORTFOLIO_OPERATIONS


def test_every_operation_documents_the_credential_refusals(gateway: Gateway) -> None:
    for label, operation in _operations(gateway.spec()).items():
        responses = operation["responses"]
        assert {"401", "503"} <= responses.keys(), label
        assert "WWW-Authenticate" in responses["401"]["headers"], label
        if "requestBody" in operation:
            assert {"400", "415", "422"} <= responses.keys(), label


@pytest.mark.parametrize(
    "authorization",
    ["Basic YWxpY2U6c2VjcmV0", "{key}", "Bearer {key}"],
    ids=["basic", "no-scheme", "twice"],
)
def test_a_malformed_or_second_authorization_beside_a_valid_key_is_401_on_every_operation(
    gateway: Gateway, authorization: str
) -> None:
    """A valid X-API-Key never makes up for a bad Authorization header: the request is
    refused, not served as alice (issue 8, item 6)."""
    key = gateway.alice.api_key
    headers = {"X-API-Key": key, "Authorization": authorization.format(key=key)}
    pid = gateway.bob.portfolios["Income"]
    for label, operation in _operations(gateway.spec()).items():
        method, path = label.split(" ", 1)
        url = f"{gateway.server.http}/api{path.replace('{portfolio_id}', str(pid))}"
        r = httpx.request(method, url, headers=headers, json={}, timeout=30)
        assert r.status_code == 401, (label, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer"), label
        assert "401" in operation["responses"], label
    # the same key alone is served, and nothing else was disturbed
    me = httpx.get(f"{gateway.server.http}/api/me", headers={"X-API-Key": key}, timeout=30)
    assert me.json()["username"] == "alice"


def test_assets_say_credentials_are_optional_and_are_served_without_them(
    gateway: Gateway,
) -> None:
    assets = gateway.spec()["paths"]["/assets"]["get"]
    assert {} in assets["security"]
    assert {"APIKeyHeader": []} in assets["security"]
    r = httpx.get(f"{gateway.server.http}/api/assets", timeout=30)
    assert r.status_code == 200
    assert {a["symbol"] for a in r.json()} >= {"AAPL", "BTC/USDT"}


async def test_assets_need_credentials_in_the_schema_when_anonymous_is_denied() -> None:
    app = build_app(Settings(allow_anonymous=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        spec = (await client.get("/api/openapi.json")).json()
    security = spec["paths"]["/assets"]["get"]["security"]
    assert {} not in security
    assert {"APIKeyHeader": []} in security


def test_the_symbol_rules_are_in_the_schema_and_an_unknown_symbol_is_a_documented_422(
    gateway: Gateway,
) -> None:
    spec = gateway.spec()
    symbol = spec["components"]["schemas"]["TransactionIn"]["properties"]["symbol"]
    assert symbol["pattern"] == "^[A-Za-z0-9][A-Za-z0-9./:_-]{0,31}$"
    assert (symbol["minLength"], symbol["maxLength"]) == (1, 32)
    assert "known asset" in symbol["description"]
    record = spec["paths"]["/portfolios/{portfolio_id}/transactions"]["post"]
    assert "unknown_symbol" in record["responses"]["422"]["description"]

    key = gateway.alice.api_key
    headers = {"X-API-Key": key}
    created = httpx.post(
        f"{gateway.server.http}/api/portfolios", json={"name": "rules"}, headers=headers
    )
    assert created.status_code == 201, created.text
    url = f"{gateway.server.http}/api/portfolios/{created.json()['id']}/transactions"
    trade = {"side": "buy", "quantity": "1", "price": "1"}
    unknown = httpx.post(url, json={**trade, "symbol": "0"}, headers=headers)
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["type"] == "unknown_symbol"
    outside = httpx.post(url, json={**trade, "symbol": " AAPL"}, headers=headers)
    assert outside.status_code == 422
    assert outside.json()["detail"][0]["type"] == "symbol_format"
    known = httpx.post(url, json={**trade, "symbol": "aapl"}, headers=headers)
    assert known.status_code == 201, known.text
    assert known.json()["transaction"]["symbol"] == "AAPL"


def test_a_string_that_is_not_unicode_is_a_422_and_the_server_carries_on(
    gateway: Gateway,
) -> None:
    """JSON can spell a lone surrogate; echoing it back in the 422 made a 500."""
    headers = {"X-API-Key": gateway.alice.api_key, "Content-Type": "application/json"}
    url = f"{gateway.server.http}/api/portfolios"
    r = httpx.post(url, content=b'{"name": "\\ud800x"}', headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "name"]
    assert httpx.get(url, headers=headers).status_code == 200


def test_a_405_lists_every_method_of_the_resource(gateway: Gateway) -> None:
    r = httpx.request("DELETE", f"{gateway.server.http}/api/portfolios", timeout=30)
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"  # Starlette said GET: the first route's only
    assert r.headers["content-type"] == "application/json"


def test_every_url_under_api_gets_the_apis_json_answers(gateway: Gateway) -> None:
    """A line break in a path segment made Starlette's mount miss, and the gateway's
    plain-text 404 answered instead of the API's JSON."""
    headers = {"X-API-Key": gateway.alice.api_key}
    r = httpx.get(f"{gateway.server.http}/api/portfolios/%0A", headers=headers, timeout=30)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "portfolio_id"]
