"""Pump: flushes due outboxes in order, skips stale entries, yields between slices."""

from __future__ import annotations

import asyncio

from tickcast.hub.pump import Pump


class FakeWriter:
    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name
        self.due: float | None = None

    def due_at(self) -> float | None:
        return self.due

    def flush(self, now: float, *, force: bool) -> None:
        self.log.append(self.name)
        self.due = None


async def test_window_zero_flushes_everything_marked_in_one_pass() -> None:
    loop = asyncio.get_running_loop()
    pump = Pump(0.0)
    log: list[str] = []
    writers = [FakeWriter(log, f"w{i}") for i in range(5)]
    for writer in writers:
        writer.due = loop.time()
        pump.mark(writer, writer.due)
    assert log == []  # nothing is written until the current pass ends
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert log == ["w0", "w1", "w2", "w3", "w4"]
    assert pump.flushes == 5


async def test_windowed_outboxes_flush_at_their_deadline_in_order() -> None:
    loop = asyncio.get_running_loop()
    pump = Pump(0.05)
    log: list[str] = []
    first, second = FakeWriter(log, "first"), FakeWriter(log, "second")
    first.due = loop.time() + 0.05
    pump.mark(first, first.due)
    await asyncio.sleep(0.02)
    second.due = loop.time() + 0.05
    pump.mark(second, second.due)
    await asyncio.sleep(0.04)
    assert log == ["first"]
    await asyncio.sleep(0.04)
    assert log == ["first", "second"]


async def test_stale_entry_of_an_early_flushed_writer_is_skipped() -> None:
    loop = asyncio.get_running_loop()
    pump = Pump(0.02)
    log: list[str] = []
    writer = FakeWriter(log, "w")
    writer.due = loop.time() + 0.02
    pump.mark(writer, writer.due)
    writer.flush(loop.time(), force=True)  # a control reply flushed it early
    writer.due = loop.time() + 0.5  # and it refilled: its new entry is due later
    pump.mark(writer, writer.due)
    await asyncio.sleep(0.05)
    assert log == ["w"], "only the early flush: the first entry is stale"
    pump.close()


async def test_a_long_pass_yields_to_the_loop_between_slices() -> None:
    loop = asyncio.get_running_loop()
    pump = Pump(0.0, slice_s=0.0)  # yield after every 32 flushes
    log: list[str] = []
    writers = [FakeWriter(log, "w") for _ in range(100)]
    for writer in writers:
        writer.due = loop.time()
        pump.mark(writer, writer.due)
    loop.call_soon(loop.call_soon, log.append, "other work")
    for _ in range(10):
        await asyncio.sleep(0)
    assert log.count("w") == 100
    assert 0 < log.index("other work") < 100, "other callbacks ran in between slices"
