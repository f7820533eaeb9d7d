"""Pump: flushes due outboxes in order, skips stale entries, yields between slices.

The tests run on the real event loop, so they assert what holds however late the loop
runs on a busy machine (order, never before the deadline), never that something has
not happened yet after a short sleep.
"""

from __future__ import annotations

import asyncio

from tickcast.hub.pump import Pump


class FakeWriter:
    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name
        self.due: float | None = None
        self.flushed_at: list[float] = []

    def due_at(self) -> float | None:
        return self.due

    def flush(self, now: float, *, force: bool) -> None:
        self.log.append(self.name)
        self.flushed_at.append(now)
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
    first.due = first_due = loop.time() + 0.05
    pump.mark(first, first.due)
    await asyncio.sleep(0.02)
    second.due = second_due = loop.time() + 0.05
    pump.mark(second, second.due)
    for _ in range(500):  # until both are flushed (5 s at most on a stalled machine)
        if len(log) == 2:
            break
        await asyncio.sleep(0.01)
    assert log == ["first", "second"]
    # Never early: a timer serves every outbox due within slack_s of it, no more.
    assert first.flushed_at[0] >= first_due - pump.slack_s
    assert second.flushed_at[0] >= second_due - pump.slack_s


async def test_stale_entry_of_an_early_flushed_writer_is_skipped() -> None:
    loop = asyncio.get_running_loop()
    pump = Pump(0.02)
    log: list[str] = []
    writer = FakeWriter(log, "w")
    writer.due = loop.time() + 0.02
    pump.mark(writer, writer.due)
    writer.flush(loop.time(), force=True)  # a control reply flushed it early
    writer.due = loop.time() + 60  # and it refilled: its new entry is due much later
    pump.mark(writer, writer.due)
    await asyncio.sleep(0.05)  # the stale entry's deadline passes
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


async def test_a_writer_that_raises_does_not_strand_the_writers_behind_it() -> None:
    loop = asyncio.get_running_loop()
    pump = Pump(0.0)
    log: list[str] = []

    class Broken(FakeWriter):
        def flush(self, now: float, *, force: bool) -> None:
            raise RuntimeError("a bug in one connection")

    broken, reader = Broken(log, "broken"), FakeWriter(log, "reader")
    for writer in (broken, reader):
        writer.due = loop.time()
        pump.mark(writer, writer.due)
    for _ in range(10):
        await asyncio.sleep(0)
    assert log == ["reader"]
    assert pump.faults.counts == {"pump": 1}
