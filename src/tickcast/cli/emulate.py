"""``tickcast emulate alpaca|polygon``: a vendor's stream protocol, served offline.

Rules: the emulator's credentials come from the same environment variables as the
adapters' (so ``tickcast serve --feed alpaca`` and the emulator agree with no flags), or
fixed development defaults; never from the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence

from tickcast.emulators.base import EmulatorServer, parse_fault_schedule

log = logging.getLogger("tickcast.emulator")

VENDORS = ("alpaca", "polygon")


def build(
    vendor: str,
    *,
    host: str,
    port: int,
    symbols: Sequence[str] | None,
    seed: int,
    rate: float,
    faults: str,
    connection_limit: int,
    delayed: bool = False,
) -> EmulatorServer:
    """The emulator for ``vendor``. Raises ValueError on a bad fault schedule."""
    schedule = parse_fault_schedule(faults)
    common: dict[str, object] = {
        "host": host,
        "port": port,
        "seed": seed,
        "rate": rate,
        "schedule": schedule,
        "connection_limit": connection_limit,
    }
    if symbols:
        common["symbols"] = tuple(symbols)
    if vendor == "alpaca":
        from tickcast.emulators import alpaca

        return alpaca.build_server(
            key=os.environ.get("ALPACA_API_KEY_ID", "emulator-key"),
            secret=os.environ.get("ALPACA_API_SECRET_KEY", "emulator-secret"),
            **common,  # type: ignore[arg-type]
        )
    if vendor == "polygon":
        from tickcast.emulators import polygon

        key = os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY")
        return polygon.build_server(
            key=key or "emulator-key",
            delayed=delayed,
            **common,  # type: ignore[arg-type]
        )
    raise ValueError(f"unknown vendor {vendor!r}; choose from {', '.join(VENDORS)}")


def run(server: EmulatorServer) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with server:
            log.info(
                "%s emulator listening on %s (control: http://%s:%d/emulator/state)",
                server.vendor,
                server.url,
                server.host,
                server.port,
            )
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0
