"""The threads backend's pipeline (``backends.run_threads``): every written chunk reaches the
caller, also when a later compute fails or is interrupted, and a failed write stops the run."""

from __future__ import annotations

import os
import threading
import time

import pytest

from yieldmc import backends
from yieldmc.backends import run_threads


def test_written_chunks_reach_the_caller_in_order():
    computed: list[int] = []

    def compute(c: int) -> int:
        computed.append(c)
        return c * 10

    got = list(run_threads(compute, lambda c, r: (c, r), range(5)))
    assert got == [(c, c * 10) for c in range(5)] and computed == list(range(5))


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_compute_still_hands_on_the_write_in_flight(error):
    written = threading.Event()

    def compute(c: int) -> int:
        if c == 2:
            raise error
        return c

    def write(c: int, r: int) -> int:
        time.sleep(0.05)  # still writing chunk 1 when chunk 2 fails
        written.set()
        return c

    got: list[int] = []
    with pytest.raises(type(error)):
        for record in run_threads(compute, write, range(5)):
            got.append(record)
    assert got == [0, 1] and written.is_set()  # chunk 1 was written, so it is recorded


def test_a_failed_write_stops_the_run_before_more_computing():
    computed: list[int] = []

    def compute(c: int) -> int:
        computed.append(c)
        time.sleep(0.05)  # the failed write is done before the next chunk would start
        return c

    def write(c: int, r: int) -> int:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        list(run_threads(compute, write, range(10)))
    # chunk 0's write fails at once: raised before chunk 1 computes, or (if chunk 1 had
    # started) right after it; never later
    assert computed in ([0], [0, 1])


def test_one_parent_watchdog_per_process() -> None:
    """A worker that runs many tasks starts its watchdog once (found by thread name, not by
    module state); watching its own pid or no pid starts none."""
    def watchdogs() -> int:
        return sum(t.name == backends.WATCHDOG_THREAD for t in threading.enumerate())

    before = watchdogs()
    backends.watch_parent(None)
    backends.watch_parent(os.getpid())
    assert watchdogs() == before
    backends.watch_parent(os.getppid())  # alive for the whole test run: the thread only polls
    backends.watch_parent(os.getppid())
    assert watchdogs() == max(before, 1) == 1
