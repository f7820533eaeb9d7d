"""Layering rules, checked on the source (an AST walk over src/tickcast; nothing is imported).

Every import counts: module level, inside functions, and under ``if TYPE_CHECKING``.

Rules:
    - ``tickcast.clock`` (``Now``, ``Clock``, ``SYSTEM``) is the one module every layer may
      import, pure ones included: it imports no tickcast module and no I/O but ``time``.
    - No ambient time: the drivers that run on the injected clock (the connection, the
      pumps, the loop monitor, the publisher, the node, the front contract, the market
      front, the guard, the composition root) call no ``time.time``/``time.monotonic`` and
      no loop's ``time()``; nothing in src sets a ``.now`` attribute (a pass time is
      passed, ``Subscriber.deliver(item, key, now)``, never parked on a shared object).
    - Pure modules (model/, hub/ except pump.py, protocols/, signals/ except the signal
      service and its Redis source (the signal side's I/O, as portfolio/service.py is
      the portfolio side's), leaderboard/ (its ranking), retry, errors,
      closecodes, the calendar and the market simulator) import no I/O, no clock and no
      server framework.
    - Provider parsers and messages (``providers/<vendor>/parse.py``, ``messages.py``), the
      book builder, the failover policy, dead letters and quote enrichment are pure too.
    - ``websockets`` is imported only by transport/, the provider streams
      (``providers/<vendor>/stream.py``), the vendor emulators (emulators/) and the
      client SDK's driver (``client/feed.py``).
    - model imports nothing from tickcast but model.
    - client/ (the SDK) imports only model/, protocols/native/, retry, errors,
      closecodes and clock; its ``feed.py`` is its one WebSocket driver and its
      ``streams.py`` and ``queue.py`` are pure.
    - protocols import only model, errors, closecodes, protocols and auth.limits (the
      subscription cap); never the hub (``Encoded`` lives in ``protocols/wire.py``).
    - hub never imports bus, transport, fronts, node, app or cli.
    - Only cli imports cli (``tickcast.__main__``, the ``python -m`` shim, counts as cli).
    - Only app and cli import app.
    - config imports no provider (its defaults live in ``config/defaults.py``).
    - A front built on the contract (a module that imports ``fronts.base``, and the test
      front in ``tests/contract/test_fronts.py``) uses what ``FrontContext`` gives: it
      imports no ``node``, ``app``, ``transport/``, ``hub.hub``, ``hub.pump`` or
      ``hub.outbox``.
    - node names no service: it never imports ``tickcast.portfolio`` or the signal
      service (not even under ``if TYPE_CHECKING``) and never mentions ``portfolios``,
      ``PortfolioService``, ``signals`` or ``SignalService`` (no
      attribute, annotation, call or locator); the composition root (``app.py``) builds
      the service, registers its tap and hands it to what uses it.
    - No service locator: nothing in ``web/`` or ``fronts/`` imports ``tickcast.node``;
      they are given what they use.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "tickcast"

IO_MODULES = frozenset(
    {
        "asyncio",
        "socket",
        "time",
        "select",
        "threading",
        "uvicorn",
        "starlette",
        "redis",
        "sqlalchemy",
        "websockets",
    }
)
PURE_PACKAGES = (
    "tickcast.model",
    "tickcast.hub",
    "tickcast.protocols",
    "tickcast.signals",
    "tickcast.leaderboard",
    "tickcast.monitoring",
)
#: Modules any layer may import (model, protocols and storage included).
SHARED_MODULES = frozenset({"tickcast.clock"})
#: Drivers that read time only through the injected ``tickcast.clock.Clock``.
ON_THE_CLOCK = (
    "transport/connection.py",
    "transport/degrading.py",
    "transport/inbound.py",
    "transport/headed.py",
    "hub/pump.py",
    "hub/publisher.py",
    "observability/loop.py",
    "node.py",
    "app.py",
    "fronts/base.py",
    "fronts/dispatcher.py",
    "fronts/sockjs.py",
    "fronts/sockjs_stream.py",
    "fronts/sockjs_websocket.py",
    "transport/sockjs_socket.py",
    "fronts/socketio.py",
    "transport/socketio_socket.py",
    "fronts/market.py",
    "fronts/stomp.py",
    "fronts/guard.py",
    "bus/memory.py",
    "bus/leader.py",
    "cluster/service.py",
)
PURE_EXCEPTIONS = frozenset(
    {
        "tickcast.hub.pump",
        "tickcast.signals.service",
        "tickcast.signals.redis_source",
        "tickcast.monitoring.service",
        "tickcast.leaderboard.service",
    }
)
PURE_MODULES = frozenset(
    {
        "tickcast.retry",
        "tickcast.errors",
        "tickcast.closecodes",
        "tickcast.providers.calendar",
        "tickcast.providers.simulator.market",
        "tickcast.providers.simulator.pacing",
        "tickcast.providers.book",
        "tickcast.providers.failover",
        "tickcast.providers.deadletter",
        "tickcast.providers.enrich",
        "tickcast.providers.replay.format",
        "tickcast.auth",
        "tickcast.auth.credentials",
        "tickcast.auth.policy",
        "tickcast.auth.limits",
        "tickcast.auth.forwarded",
        "tickcast.auth.usage",
        "tickcast.portfolio.assets",
        "tickcast.portfolio.cash",
        "tickcast.portfolio.closes",
        "tickcast.portfolio.valuation",
        "tickcast.portfolio.book",
        "tickcast.portfolio.userfeeds",
        "tickcast.observability.overload",
        "tickcast.observability.faults",
        "tickcast.client.streams",
        "tickcast.client.queue",
        "tickcast.client.load",
        "tickcast.client.advice",
        "tickcast.bus.base",
        "tickcast.bus.wire",
        "tickcast.cluster.members",
        "tickcast.cluster.publisher",
    }
)
#: The client SDK's one WebSocket driver.
CLIENT_TRANSPORT = frozenset({"tickcast.client.feed"})
#: What the client SDK may import from tickcast (it ships to users: no server in it).
CLIENT_MAY_IMPORT = (
    "tickcast.client",
    "tickcast.model",
    "tickcast.protocols.native",
    "tickcast.retry",
    "tickcast.errors",
    "tickcast.closecodes",
    "tickcast.clock",
)
#: Every provider's parse.py and messages.py is pure (matched by the last name part).
PURE_PROVIDER_PARTS = frozenset({"parse", "messages"})
#: ``python -m tickcast`` must import the CLI; it is the CLI's entry point, not a user of it.
CLI_SHIMS = frozenset({"tickcast.__main__"})


class Import(NamedTuple):
    """One imported module (resolved to an absolute dotted name) and where."""

    importer: str
    target: str
    names: tuple[str, ...]  # names taken with ``from target import ...``; () for ``import``
    line: int

    def __str__(self) -> str:
        taken = f" ({', '.join(self.names)})" if self.names else ""
        return f"{self.importer} imports {self.target}{taken} at line {self.line}"


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(dotted: str, root: Path = SRC) -> bool:
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_in(source: str, importer: str, *, is_package: bool, root: Path = SRC) -> list[Import]:
    """Every import in ``source``, with relative imports and ``from pkg import mod`` resolved."""
    found: list[Import] = []
    package = importer if is_package else importer.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(Import(importer, a.name, (), node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if is_module(submodule, root):
                    found.append(Import(importer, submodule, (), node.lineno))
                else:
                    found.append(Import(importer, base, (alias.name,), node.lineno))
    return found


@functools.cache
def all_imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found.extend(
            imports_in(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
        )
    return tuple(found)


def all_modules() -> list[str]:
    return [module_name(path) for path in sorted(PACKAGE.rglob("*.py"))]


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def is_pure(module: str) -> bool:
    if module in PURE_MODULES:
        return True
    if within(module, "tickcast.providers") and module.rsplit(".", 1)[-1] in PURE_PROVIDER_PARTS:
        return True
    return within(module, *PURE_PACKAGES) and module not in PURE_EXCEPTIONS


def violations(rule: Callable[[Import], bool], imports: Iterable[Import] | None = None) -> str:
    bad = [str(i) for i in (all_imports() if imports is None else imports) if rule(i)]
    return "\n".join(bad)


def tickcast(target: str) -> bool:
    return within(target, "tickcast")


# -- the rules


def test_the_clock_imports_nothing_of_tickcast_and_no_io_but_time() -> None:
    bad = violations(
        lambda i: (
            i.importer == "tickcast.clock"
            and (tickcast(i.target) or i.target.split(".")[0] in IO_MODULES - {"time"})
        )
    )
    assert not bad, f"tickcast.clock must stay importable from every layer:\n{bad}"
    assert ("tickcast.protocols.base", "tickcast.clock") in {
        (i.importer, i.target) for i in all_imports()
    }


def ambient_time(source: str) -> list[str]:
    """Where ``source`` reads the time itself: ``time.time()``, ``time.monotonic()``, a
    loop's ``time()`` (``loop.time()``, ``self._loop.time()``, ``x.loop.time()``), or
    sets a ``.now`` attribute (an ambient pass time)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = (
                owner.id
                if isinstance(owner, ast.Name)
                else owner.attr
                if isinstance(owner, ast.Attribute)
                else ""
            )
            if (name == "time" and node.func.attr in ("time", "monotonic")) or (
                name.lstrip("_") == "loop" and node.func.attr == "time"
            ):
                found.append(f"{ast.unparse(node)} at line {node.lineno}")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "now":
                    found.append(f"{ast.unparse(target)} set at line {node.lineno}")
    return found


def test_no_ambient_time_in_the_drivers_on_the_clock() -> None:
    bad = [
        f"{path}: {hit}"
        for path in ON_THE_CLOCK
        for hit in ambient_time((PACKAGE / path).read_text())
    ]
    assert not bad, "read time through the injected Clock:\n" + "\n".join(bad)


def test_nothing_sets_an_ambient_now() -> None:
    bad = [
        f"{path.relative_to(PACKAGE)}: {hit}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for hit in ambient_time(path.read_text())
        if hit.split(" set at ")[0].endswith(".now")
    ]
    assert not bad, "pass the time (deliver(item, key, now)); never park it on an object:\n" + (
        "\n".join(bad)
    )


@pytest.mark.parametrize(
    "source",
    [
        "import time\nt = time.time()",
        "import time\nt = time.monotonic()",
        "def f(loop):\n    return loop.time()",
        "class C:\n    def f(self):\n        return self._loop.time()",
        "class C:\n    def f(self):\n        return self.pump.loop.time()",
        "def f(pump):\n    pump.now = 1.0",
    ],
)
def test_the_ambient_time_rule_catches(source: str) -> None:
    assert ambient_time(source)


def test_the_ambient_time_rule_allows_the_clock_and_perf_counter() -> None:
    source = (
        "import time\ndef f(clock):\n    return clock.monotonic(), clock.now(), time.perf_counter()"
    )
    assert ambient_time(source) == []


def test_provider_parsers_are_held_pure() -> None:
    assert is_pure("tickcast.providers.alpaca.parse")
    assert is_pure("tickcast.providers.polygon.messages")
    assert not is_pure("tickcast.providers.alpaca.stream")


def test_pure_modules_import_no_io() -> None:
    bad = violations(lambda i: is_pure(i.importer) and i.target.split(".")[0] in IO_MODULES)
    assert not bad, f"pure modules must not import I/O:\n{bad}"


def _may_import_websockets(module: str) -> bool:
    if within(module, "tickcast.transport", "tickcast.emulators"):
        return True
    if module in CLIENT_TRANSPORT:
        return True
    return within(module, "tickcast.providers") and module.rsplit(".", 1)[-1] == "stream"


def test_websockets_is_imported_only_by_transport_provider_streams_and_emulators() -> None:
    bad = violations(
        lambda i: i.target.split(".")[0] == "websockets" and not _may_import_websockets(i.importer)
    )
    assert not bad, f"only transport, provider streams and emulators may import websockets:\n{bad}"


def _client_import_refused(i: Import) -> bool:
    return (
        within(i.importer, "tickcast.client")
        and tickcast(i.target)
        and not within(i.target, *CLIENT_MAY_IMPORT)
    )


def test_client_imports_only_model_native_protocol_retry_errors_closecodes_and_clock() -> None:
    bad = violations(_client_import_refused)
    assert not bad, (
        f"client/ imports only model/, protocols/native/, retry, errors, closecodes, clock:\n{bad}"
    )
    assert is_pure("tickcast.client.streams")
    assert is_pure("tickcast.client.queue")
    assert is_pure("tickcast.client.advice")
    assert not is_pure("tickcast.client.feed")


@pytest.mark.parametrize(
    "source",
    [
        "from tickcast.hub.outbox import Outbox",
        "from tickcast.protocols.stomp import codec",
        "def f():\n    import tickcast.transport.connection",
    ],
)
def test_client_rule_catches_a_server_import(source: str) -> None:
    found = imports_in(source, "tickcast.client.feed", is_package=False)
    assert violations(_client_import_refused, found)


def test_model_imports_only_model() -> None:
    bad = violations(
        lambda i: (
            within(i.importer, "tickcast.model")
            and tickcast(i.target)
            and not within(i.target, "tickcast.model")
            and i.target not in SHARED_MODULES
        )
    )
    assert not bad, f"model must import nothing from tickcast but model:\n{bad}"


def _protocol_import_allowed(i: Import) -> bool:
    if within(i.target, "tickcast.model", "tickcast.protocols") or i.target in SHARED_MODULES:
        return True
    return i.target in ("tickcast.errors", "tickcast.closecodes", "tickcast.auth.limits")


def test_protocols_import_only_model_errors_closecodes_protocols_and_limits() -> None:
    bad = violations(
        lambda i: (
            within(i.importer, "tickcast.protocols")
            and tickcast(i.target)
            and not _protocol_import_allowed(i)
        )
    )
    assert not bad, (
        f"protocols may import only model, errors, closecodes, protocols, auth.limits:\n{bad}"
    )


def test_protocols_never_import_hub() -> None:
    bad = violations(
        lambda i: within(i.importer, "tickcast.protocols") and within(i.target, "tickcast.hub")
    )
    assert not bad, f"protocols must not import the hub (Encoded is protocols.wire's):\n{bad}"


HUB_FORBIDDEN = tuple(
    f"tickcast.{layer}" for layer in ("bus", "transport", "fronts", "node", "app", "cli")
)


def test_hub_never_imports_bus_transport_fronts_node_app_or_cli() -> None:
    bad = violations(
        lambda i: within(i.importer, "tickcast.hub") and within(i.target, *HUB_FORBIDDEN)
    )
    assert not bad, f"hub must not depend on outer layers:\n{bad}"


def test_the_bus_knows_no_node_hub_front_or_service() -> None:
    """bus/ is a transport between nodes: it imports only bus/, model/, errors, clock
    and retry; cluster/ (the bridge) never imports fronts/, web/, transport/, app or cli."""
    allowed = (
        "tickcast.bus",
        "tickcast.model",
        "tickcast.errors",
        "tickcast.clock",
        "tickcast.retry",
    )
    bad = violations(
        lambda i: (
            within(i.importer, "tickcast.bus")
            and tickcast(i.target)
            and not within(i.target, *allowed)
        )
    )
    assert not bad, f"bus/ must not depend on the gateway:\n{bad}"
    outer = (
        "tickcast.fronts",
        "tickcast.web",
        "tickcast.transport",
        "tickcast.app",
        "tickcast.cli",
    )
    bad = violations(lambda i: within(i.importer, "tickcast.cluster") and within(i.target, *outer))
    assert not bad, f"cluster/ must not depend on outer layers:\n{bad}"


def test_storage_imports_only_errors_and_storage() -> None:
    bad = violations(
        lambda i: (
            within(i.importer, "tickcast.storage")
            and tickcast(i.target)
            and not within(i.target, "tickcast.storage")
            and i.target != "tickcast.errors"
            and i.target not in SHARED_MODULES
        )
    )
    assert not bad, f"storage must import only tickcast.errors and storage:\n{bad}"


def test_only_cli_imports_cli() -> None:
    bad = violations(
        lambda i: (
            within(i.target, "tickcast.cli")
            and not within(i.importer, "tickcast.cli")
            and i.importer not in CLI_SHIMS
        )
    )
    assert not bad, f"nothing but cli may import cli:\n{bad}"


def test_only_app_and_cli_import_app() -> None:
    bad = violations(
        lambda i: (
            within(i.target, "tickcast.app")
            and not within(i.importer, "tickcast.app", "tickcast.cli")
        )
    )
    assert not bad, f"only app and cli may import app:\n{bad}"


def _config_imports_a_provider(i: Import) -> bool:
    return within(i.importer, "tickcast.config") and within(i.target, "tickcast.providers")


def test_config_imports_no_provider() -> None:
    bad = violations(_config_imports_a_provider)
    assert not bad, f"config must not import a provider:\n{bad}"


#: What a front built on the contract reaches only through ``FrontContext``.
FRONT_FORBIDDEN = (
    "tickcast.node",
    "tickcast.app",
    "tickcast.transport",
    "tickcast.hub.hub",
    "tickcast.hub.pump",
    "tickcast.hub.outbox",
)
#: The contract itself (and its SockJS and Socket.IO endpoints, which serve a contract
#: front's spec over SockJS or Engine.IO as ``WebSocketFront`` does over one WebSocket),
#: the registry that lists the fronts, and the composition root that builds the context:
#: not fronts.
FRONT_CONTRACT = frozenset(
    {
        "tickcast.fronts.base",
        "tickcast.fronts.sockjs",
        "tickcast.fronts.socketio",
        "tickcast.fronts.registry",
        "tickcast.app",
    }
)
#: A front defined outside src: the contract suite's own.
TEST_FRONTS = SRC.parent / "tests" / "contract" / "test_fronts.py"


def contract_fronts(imports: Iterable[Import]) -> set[str]:
    """The modules built on the front contract (they import ``fronts.base``)."""
    return {
        i.importer
        for i in imports
        if i.target == "tickcast.fronts.base" and i.importer not in FRONT_CONTRACT
    }


def _front_reaches_past_its_context(i: Import, fronts: set[str]) -> bool:
    return i.importer in fronts and within(i.target, *FRONT_FORBIDDEN)


def test_fronts_use_only_the_contracts() -> None:
    imports = [
        *all_imports(),
        *imports_in(TEST_FRONTS.read_text(), "contract.test_fronts", is_package=False),
    ]
    fronts = contract_fronts(imports)
    assert {
        "tickcast.fronts.echo",
        "tickcast.fronts.market",
        "tickcast.fronts.realtime",
        "tickcast.fronts.stomp",
        "contract.test_fronts",
    } <= fronts
    bad = violations(lambda i: _front_reaches_past_its_context(i, fronts), imports)
    assert not bad, (
        f"a front uses what FrontContext gives, not node/transport/hub internals:\n{bad}"
    )


def _reaches_the_node(i: Import) -> bool:
    return within(i.importer, "tickcast.web", "tickcast.fronts") and within(
        i.target, "tickcast.node"
    )


def test_web_and_fronts_never_import_the_node() -> None:
    bad = violations(_reaches_the_node)
    assert not bad, f"web/ and fronts/ are given what they use, never the node:\n{bad}"


@pytest.mark.parametrize(
    ("source", "importer"),
    [
        ("from tickcast.node import Node", "tickcast.web.api"),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tickcast.node",
            "tickcast.fronts.realtime",
        ),
        ("def f():\n    from tickcast import node", "tickcast.web.realtime"),
    ],
)
def test_node_rule_catches_web_or_a_front_importing_the_node(source: str, importer: str) -> None:
    assert violations(_reaches_the_node, imports_in(source, importer, is_package=False))


#: What node.py must never mention: the service, or a locator for it.
SERVICE_NAMES = frozenset({"portfolios", "PortfolioService", "signals", "SignalService"})
#: What node.py must never import: the services' packages and modules.
SERVICE_MODULES = (
    "tickcast.portfolio",
    "tickcast.signals.service",
    "tickcast.signals.redis_source",
)


def service_uses_in_node(source: str) -> list[str]:
    """What in node.py's source names the portfolio service: any import of
    ``tickcast.portfolio`` (under ``if TYPE_CHECKING`` too), and any name, attribute,
    parameter or string annotation ``portfolios`` or ``PortfolioService``."""
    found = [
        str(i)
        for i in imports_in(source, "tickcast.node", is_package=False)
        if within(i.target, *SERVICE_MODULES) or SERVICE_NAMES & set(i.names)
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            named = node.attr
        elif isinstance(node, ast.Name):
            named = node.id
        elif isinstance(node, ast.arg):
            named = node.arg
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = node.value  # a string annotation
        else:
            continue
        if named in SERVICE_NAMES:
            found.append(f"node.py names {named} at line {node.lineno}")
    return found


def test_node_names_no_service() -> None:
    bad = service_uses_in_node((PACKAGE / "node.py").read_text())
    assert not bad, "the node must name no service (app.py composes them):\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "from tickcast.portfolio.service import PortfolioService",
        "def f():\n    import tickcast.portfolio.service",
        "class Node:\n    def ingest(self):\n        self.portfolios.on_market([])",
        "from x import PortfolioService\nclass Node:\n    def __init__(self):\n"
        "        self.p = PortfolioService(None)",
        # the locator, even typed only for the checker
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from tickcast.portfolio.service import PortfolioService\n"
        "class Node:\n"
        "    portfolios: PortfolioService\n",
        "class Node:\n    portfolios: 'Service'\n",
        "class Node:\n    service: 'PortfolioService'\n",
        "def add(node, portfolios):\n    pass\n",
        "from tickcast.signals.service import SignalService",
        "class Node:\n    def ingest(self):\n        self.signals.on_published([])",
    ],
)
def test_node_rule_catches_a_service(source: str) -> None:
    assert service_uses_in_node(source)


def test_node_rule_lets_the_docstrings_say_what_composes_the_service() -> None:
    source = '"""A service (the portfolio service) is built by app.py."""\nclass Node:\n    pass\n'
    assert service_uses_in_node(source) == []


# -- the checker itself


def test_the_rules_see_the_modules_they_govern() -> None:
    modules = all_modules()
    for name in PURE_MODULES | PURE_EXCEPTIONS | CLI_SHIMS | SHARED_MODULES:
        assert name in modules, f"{name} is named in a rule but does not exist"
    for path in ON_THE_CLOCK:
        assert (PACKAGE / path).is_file(), f"{path} is named in a rule but does not exist"
    pure = [m for m in modules if is_pure(m)]
    assert "tickcast.hub.outbox" in pure
    assert "tickcast.protocols.native.session" in pure
    assert "tickcast.protocols.sockjs.session" in pure
    assert "tickcast.model.market" in pure
    assert "tickcast.hub.pump" not in pure
    assert "tickcast.transport.connection" not in pure
    # Sanity: the walk sees real imports, including the ones inside functions.
    imports = {(i.importer, i.target) for i in all_imports()}
    assert ("tickcast.hub.pump", "asyncio") in imports
    assert ("tickcast.cli.main", "tickcast.app") in imports


def test_import_resolution(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    for name in ("__init__.py", "top.py", "sub/__init__.py", "sub/sib.py", "sub/leaf.py"):
        (package / name).write_text("")
    source = (
        "import time, os.path\n"
        "from . import sib\n"
        "from .sib import thing\n"
        "from .. import top, other\n"
        "from pkg.sub import leaf, Name\n"
        "def f():\n"
        "    import asyncio\n"
    )
    found = imports_in(source, "pkg.sub.leaf", is_package=False, root=tmp_path)
    assert sorted((i.target, i.names, i.line) for i in found) == sorted(
        [
            ("time", (), 1),
            ("os.path", (), 1),
            ("pkg.sub.sib", (), 2),
            ("pkg.sub.sib", ("thing",), 3),
            ("pkg.top", (), 4),
            ("pkg", ("other",), 4),
            ("pkg.sub.leaf", (), 5),
            ("pkg.sub", ("Name",), 5),
            ("asyncio", (), 7),
        ]
    )
    from_init = imports_in("from . import sib", "pkg.sub", is_package=True, root=tmp_path)
    assert [i.target for i in from_init] == ["pkg.sub.sib"]


@pytest.mark.parametrize(
    ("source", "importer"),
    [
        ("import asyncio", "tickcast.hub.outbox"),
        ("def f():\n    from time import monotonic", "tickcast.protocols.wsframe"),
        ("import websockets.frames", "tickcast.retry"),
    ],
)
def test_io_rule_catches_a_violation(source: str, importer: str) -> None:
    found = imports_in(source, importer, is_package=False)
    bad = violations(lambda i: is_pure(i.importer) and i.target.split(".")[0] in IO_MODULES, found)
    assert importer in bad


def test_config_rule_catches_a_provider_import() -> None:
    source = "from tickcast.providers.simulator.market import DEFAULT_SYMBOLS"
    found = imports_in(source, "tickcast.config.settings", is_package=False)
    assert violations(_config_imports_a_provider, found)


def test_front_rule_catches_a_front_that_reaches_the_node() -> None:
    source = "from tickcast.fronts.base import FrontSpec\nfrom tickcast.node import Node\n"
    found = imports_in(source, "tickcast.fronts.loud", is_package=False)
    assert violations(lambda i: _front_reaches_past_its_context(i, contract_fronts(found)), found)


# -- settings groups: the whole Settings only where the parts are composed

#: The flat ``Settings`` and its loader.
WHOLE_SETTINGS = ("tickcast.config.settings", "tickcast.config.load")
#: Where the parts are composed, and so where the whole ``Settings`` may be named: the
#: composition root, the node (it hands its parts their groups), the command line, the
#: settings themselves, and the front registry (``app`` passes it the settings; each
#: front's factory takes ``config.groups.SettingsGroups`` and picks its group).
COMPOSITION = ("tickcast.app", "tickcast.node", "tickcast.cli", "tickcast.config")
SETTINGS_EXCEPTIONS = frozenset({"tickcast.fronts.registry"})


def _names_the_whole_settings(i: Import) -> bool:
    return (
        within(i.target, *WHOLE_SETTINGS)
        and not within(i.importer, *COMPOSITION)
        and i.importer not in SETTINGS_EXCEPTIONS
    )


def test_only_composition_names_the_whole_settings() -> None:
    """A component takes its own group (``config/groups.py``: ``settings.server``,
    ``.limits``, ``.outbox``, ``.upstream``, ``.auth``, ``.storage``, ``.realtime``), never
    the flat ``Settings``: only app, node, cli, config and the front registry import
    ``tickcast.config.settings`` (or its loader). The groups import no provider either
    (``test_config_imports_no_provider``)."""
    bad = violations(_names_the_whole_settings)
    assert not bad, f"only composition modules may import the whole Settings:\n{bad}"
    imports = {(i.importer, i.target) for i in all_imports()}
    assert ("tickcast.fronts.guard", "tickcast.config.groups") in imports
    assert ("tickcast.providers.registry", "tickcast.config.groups") in imports
    assert ("tickcast.app", "tickcast.config.settings") in imports
    for source in (
        "from tickcast.config.settings import Settings",
        "from tickcast.config import settings",
        "def f():\n    from tickcast.config.load import load_settings",
    ):
        found = imports_in(source, "tickcast.providers.supervisor", is_package=False)
        assert violations(_names_the_whole_settings, found), source


def test_the_signal_engine_history_and_intake_stay_pure() -> None:
    """The signal service and its Redis source may do I/O; the rest of signals/ may not."""
    for module in ("engine", "indicators", "history", "intake"):
        assert is_pure(f"tickcast.signals.{module}")
    for module in ("service", "redis_source"):
        assert not is_pure(f"tickcast.signals.{module}")


def test_the_leaderboard_ranking_stays_pure() -> None:
    """The ranking core does no I/O; a service that keeps it live would be an exception."""
    assert is_pure("tickcast.leaderboard")
    assert is_pure("tickcast.leaderboard.ranking")


def test_the_monitoring_rules_stay_pure() -> None:
    """The monitoring service samples the host and runs a task; its rules, alerts and
    figures do no I/O."""
    for module in ("rules", "alerts", "figures"):
        assert is_pure(f"tickcast.monitoring.{module}")
    assert not is_pure("tickcast.monitoring.service")
