"""Pumps: one pump per window; each flushes its due outboxes in order, skips stale
entries, yields between slices.

The tests run on the real event loop, so they assert what holds however late the loop
runs on a busy machine (order, never before the deadline), never that something has
not happened yet after a short sleep.
"""

from __future__ import annotations

import asyncio

import pytest

from tickcast.clock import SYSTEM
from tickcast.hub.pump import Pumps


class FakeWriter:
    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name
        self.due: float | None = None
        self.flushed_at: list[float] = []

    def due_at(self) -> float | None:
        return self.due

    def flush(self, now: float, force: bool) -> None:
        self.log.append(self.name)
        self.flushed_at.append(now)
        self.due = None


async def test_window_zero_flushes_everything_marked_in_one_pass() -> None:
    pump = Pumps(SYSTEM).get(0.0)
    log: list[str] = []
    writers = [FakeWriter(log, f"w{i}") for i in range(5)]
    for writer in writers:
        writer.due = SYSTEM.monotonic()
        pump.mark(writer, writer.due)
    assert log == []  # nothing is written until the current pass ends
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert log == ["w0", "w1", "w2", "w3", "w4"]
    assert pump.flushes == 5


async def test_window_zero_flushes_a_writer_marked_twice_once() -> None:
    """Flushed early (a reply) and refilled before the pass, a writer has two entries:
    the pass flushes it once, at the first, and the second finds it empty."""
    pump = Pumps(SYSTEM).get(0.0)
    log: list[str] = []
    a, b = FakeWriter(log, "a"), FakeWriter(log, "b")
    a.due = SYSTEM.monotonic()
    pump.mark(a, a.due)
    b.due = SYSTEM.monotonic()
    pump.mark(b, b.due)
    a.due = None  # flushed early
    a.due = SYSTEM.monotonic()  # and refilled: marked again
    pump.mark(a, a.due)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert log == ["a", "b"]
    assert pump.flushes == 2


async def test_windowed_outboxes_flush_at_their_deadline_in_order() -> None:
    pump = Pumps(SYSTEM).get(0.05)
    log: list[str] = []
    first, second = FakeWriter(log, "first"), FakeWriter(log, "second")
    first.due = first_due = SYSTEM.monotonic() + 0.05
    pump.mark(first, first.due)
    await asyncio.sleep(0.02)
    second.due = second_due = SYSTEM.monotonic() + 0.05
    pump.mark(second, second.due)
    for _ in range(500):  # until both are flushed (5 s at most on a stalled machine)
        if len(log) == 2:
            break
        await asyncio.sleep(0.01)
    assert log == ["first", "second"]
    # Never early: a timer serves every outbox due within slack_s of it, no more.
    slack_s = Pumps(SYSTEM).slack_s
    assert first.flushed_at[0] >= first_due - slack_s
    assert second.flushed_at[0] >= second_due - slack_s


async def test_stale_entry_of_an_early_flushed_writer_is_skipped() -> None:
    pump = Pumps(SYSTEM).get(0.02)
    log: list[str] = []
    writer = FakeWriter(log, "w")
    writer.due = SYSTEM.monotonic() + 0.02
    pump.mark(writer, writer.due)
    writer.flush(SYSTEM.monotonic(), force=True)  # a control reply flushed it early
    writer.due = SYSTEM.monotonic() + 60  # and it refilled: its new entry is due much later
    pump.mark(writer, writer.due)
    await asyncio.sleep(0.05)  # the stale entry's deadline passes
    assert log == ["w"], "only the early flush: the first entry is stale"
    pump.close()


async def test_a_long_pass_yields_to_the_loop_between_slices() -> None:
    loop = asyncio.get_running_loop()
    pump = Pumps(SYSTEM, slice_s=0.0).get(0.0)  # yield after every 32 flushes
    log: list[str] = []
    writers = [FakeWriter(log, "w") for _ in range(100)]
    for writer in writers:
        writer.due = SYSTEM.monotonic()
        pump.mark(writer, writer.due)
    loop.call_soon(loop.call_soon, log.append, "other work")
    for _ in range(10):
        await asyncio.sleep(0)
    assert log.count("w") == 100
    assert 0 < log.index("other work") < 100, "other callbacks ran in between slices"


async def test_a_writer_that_raises_does_not_strand_the_writers_behind_it() -> None:
    pump = Pumps(SYSTEM).get(0.0)
    log: list[str] = []

    class Broken(FakeWriter):
        def flush(self, now: float, force: bool) -> None:
            raise RuntimeError("a bug in one connection")

    broken, reader = Broken(log, "broken"), FakeWriter(log, "reader")
    for writer in (broken, reader):
        writer.due = SYSTEM.monotonic()
        pump.mark(writer, writer.due)
    for _ in range(10):
        await asyncio.sleep(0)
    assert log == ["reader"]
    assert pump.faults.counts == {"pump": 1}


def test_one_pump_per_window_made_on_first_use_sharing_faults_and_stall_clock() -> None:
    pumps = Pumps(SYSTEM)
    assert pumps.windows == ()
    batch, immediate = pumps.get(0.05), pumps.get(0.0)
    assert pumps.get(0.05) is batch
    assert immediate is not batch
    assert pumps.windows == (0.05, 0.0)
    assert (batch.window_s, immediate.window_s) == (0.05, 0.0)
    assert batch.faults is immediate.faults is pumps.faults
    assert batch.stalled(1.0) == 0.0  # no loop monitor yet
    pumps.stall_clock = lambda now: now / 10
    assert batch.stalled(1.0) == immediate.stalled(1.0) == 0.1
    with pytest.raises(ValueError, match="window"):
        pumps.get(-0.1)


async def test_two_windows_coexist_and_each_writer_is_flushed_by_its_own_pump() -> None:
    """A window-0 outbox marked behind a 50 ms one is not held up by it: each window has
    its own FIFO (one FIFO for both would flush neither before 50 ms)."""
    pumps = Pumps(SYSTEM)
    batched, immediate = pumps.get(0.05), pumps.get(0.0)
    log: list[str] = []
    slow, fast = FakeWriter(log, "w50"), FakeWriter(log, "w0")
    slow.due = slow_due = SYSTEM.monotonic() + 0.05
    batched.mark(slow, slow.due)
    fast.due = SYSTEM.monotonic()
    immediate.mark(fast, fast.due)
    for _ in range(500):  # until both are flushed (5 s at most on a stalled machine)
        if len(log) == 2:
            break
        await asyncio.sleep(0.01)
    assert log == ["w0", "w50"]
    assert (immediate.flushes, batched.flushes, pumps.flushes) == (1, 1, 2)
    assert slow.flushed_at[0] >= slow_due - pumps.slack_s  # never early
    pumps.close()


async def test_close_stops_every_pump_and_drops_what_was_queued() -> None:
    pumps = Pumps(SYSTEM)
    log: list[str] = []
    for window in (0.0, 0.01):
        writer = FakeWriter(log, "before close")
        writer.due = SYSTEM.monotonic() + window
        pumps.get(window).mark(writer, writer.due)
    pumps.close()
    for window in (0.0, 0.01):  # marked again after the close: only these are flushed
        writer = FakeWriter(log, f"after close {window}")
        writer.due = SYSTEM.monotonic() + window
        pumps.get(window).mark(writer, writer.due)
    for _ in range(500):
        if len(log) >= 2:
            break
        await asyncio.sleep(0.01)
    assert sorted(log) == ["after close 0.0", "after close 0.01"]
    pumps.close()


async def test_window_zero_is_behind_from_a_pass_out_of_time_until_a_whole_pass() -> None:
    pump = Pumps(SYSTEM, slice_s=0.0).get(0.0)  # out of time after every 32 flushes
    log: list[str] = []

    def mark(count: int) -> None:
        for _ in range(count):
            writer = FakeWriter(log, "w")
            writer.due = SYSTEM.monotonic()
            pump.mark(writer, writer.due)

    assert not pump.behind
    mark(100)
    await asyncio.sleep(0)
    assert log.count("w") == 32
    assert pump.behind
    for _ in range(10):
        await asyncio.sleep(0)
    assert log.count("w") == 100
    assert pump.behind, "the pass that finished went on from one out of time"
    mark(5)  # a pass that flushes all it finds within its slice
    for _ in range(2):
        await asyncio.sleep(0)
    assert log.count("w") == 105
    assert not pump.behind
