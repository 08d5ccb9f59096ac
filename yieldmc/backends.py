"""Where a sweep's chunks run: this process's threads, loky worker processes, or dask.

The sweep (:mod:`yieldmc.montecarlo`) hands every backend the same two things: the chunks
to do and a function that turns one chunk into its written record. Each backend yields the
records as chunks finish; none of them changes what a die is (die ``d`` depends only on
the config, the root seed and ``d``).

* ``threads``: this process. One chunk at a time, its dies split across numba's threads
  inside the compiled kernel; the chunk's files are written by a writer thread while the
  next chunk computes. No worker start-up, no second copy of the design.
* ``loky``: joblib's worker processes, one chunk each at a time (one thread each). A
  worker watches its parent and exits within a second when the parent dies.
* ``dask``: dask.distributed workers (a given scheduler, or a LocalCluster), at most
  ``2 * jobs`` chunks in flight.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from yieldmc.errors import ConfigError

#: Seconds between a loky worker's checks that the sweep's parent process is alive.
WATCHDOG_INTERVAL_S = 0.5


@contextlib.contextmanager
def thread_limits(numba_threads: int = 1) -> Iterator[None]:
    """numba on ``numba_threads`` threads and BLAS on one inside the block (numba's setting
    is restored after).

    Workers must not oversubscribe the cores, and every process (the parent with
    ``jobs=1`` too) must build and run the dies with the same BLAS thread count.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        threadpool_limits = None
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(numba_threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        with threadpool_limits(1) if threadpool_limits is not None else contextlib.nullcontext():
            yield
    finally:
        numba.set_num_threads(before)


def worker_died(exc: BaseException) -> bool:
    """A loky pool broken by a dead worker, its pipe cut by one (depending on when the worker
    died), or dask's KilledWorker (a task whose workers died)."""
    if isinstance(exc, (concurrent.futures.BrokenExecutor, BrokenPipeError, ConnectionResetError, EOFError)):
        return True
    return type(exc).__name__ == "KilledWorker" and type(exc).__module__.startswith("distributed")


WATCHDOG_THREAD = "yieldmc-parent-watchdog"  #: name of the thread watching the parent process


def _parent_gone(parent_pid: int, ppid: int) -> bool:
    """True once the process ``parent_pid`` is dead (this process was re-parented, or it is gone)."""
    if os.getppid() != ppid:
        return True
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists (owned by someone else)
        pass
    return False


def watch_parent(parent_pid: int | None) -> None:
    """Start (once per process) a daemon thread that ends this worker when its parent dies.

    loky workers otherwise finish the tasks already sent to them and then idle for
    minutes; a chunk half written when the process ends leaves only a temporary file,
    which ``--resume`` removes.
    """
    if parent_pid is None or parent_pid == os.getpid() or any(
            t.name == WATCHDOG_THREAD for t in threading.enumerate()):
        return
    ppid = os.getppid()

    def watch() -> None:
        while not _parent_gone(parent_pid, ppid):
            time.sleep(WATCHDOG_INTERVAL_S)
        os._exit(1)

    threading.Thread(target=watch, name=WATCHDOG_THREAD, daemon=True).start()


def run_threads(compute: Callable[[int], Any], write: Callable[[int, Any], Any],
                chunks: Iterable[int]) -> Iterator[Any]:
    """Chunks in this process: ``compute(chunk)`` here, ``write(chunk, result)`` on a writer
    thread while the next chunk computes; yields ``write``'s returns in chunk order.

    At most two chunks' results are held at once. A write that has finished is handed on
    before the next compute starts (so a failed write stops the run at once), and when a
    compute fails or is interrupted (Ctrl-C), the write in flight is waited for and, if it
    landed, handed on before the error is raised: the caller records every chunk whose
    files were written (a write is atomic: it lands whole or not at all).
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="yieldmc-writer") as writer:
        pending = None
        try:
            for chunk in chunks:
                if pending is not None and pending.done():
                    done, pending = pending, None
                    yield done.result()
                try:
                    result = compute(chunk)
                except BaseException:
                    if pending is not None:
                        done, pending = pending, None
                        concurrent.futures.wait([done])
                        if done.exception() is None:
                            yield done.result()
                    raise
                if pending is not None:
                    done, pending = pending, None
                    yield done.result()
                pending = writer.submit(write, chunk, result)
                del result
            if pending is not None:
                done, pending = pending, None
                yield done.result()
        finally:
            if pending is not None:
                pending.cancel()
                concurrent.futures.wait([pending])


def run_loky(task: Callable[..., Any], tasks: Iterable[tuple], jobs: int) -> Iterator[Any]:
    """``task(*args)`` for every ``args`` of ``tasks`` on ``jobs`` loky worker processes
    (in this process when ``jobs`` is 1, where ``args``' fourth item, the parent pid to
    watch, is dropped); results in completion order."""
    from joblib import Parallel, delayed

    if jobs == 1:
        for t in tasks:
            yield task(*t[:3])  # in this process: no parent to watch
        return
    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered",
                        pre_dispatch="2*n_jobs")
    yield from parallel(delayed(task)(*t) for t in tasks)


def dask_client(scheduler_address: str | None, scheduler_file: str | None, jobs: int):
    """``(client, cluster)``: a client of the given scheduler (cluster None) or of a new LocalCluster."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("the dask backend needs dask[distributed]: pip install 'yieldmc[dask]'") from None
    if scheduler_file and not Path(scheduler_file).is_file():
        raise ConfigError(f"scheduler file not found: {scheduler_file}")
    try:
        if scheduler_address:
            return Client(scheduler_address, timeout="10s"), None
        if scheduler_file:
            return Client(scheduler_file=scheduler_file, timeout="10s"), None
    except Exception as exc:  # dask raises OSError, TimeoutError, ValueError, AssertionError
        where = scheduler_address or f"the scheduler of {scheduler_file}"
        raise ConfigError(f"cannot reach the dask scheduler ({where}): {exc or type(exc).__name__}") from None
    cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                           dashboard_address=":0")  # any free port: 8787 may be another cluster's
    return Client(cluster), cluster


def run_dask(task: Callable[..., Any], tasks: Iterable[tuple], jobs: int, client) -> Iterator[Any]:
    """``task(*args)`` on ``client``'s cluster, at most ``2 * jobs`` (at least 4) in flight;
    results in completion order."""
    from dask.distributed import as_completed

    window = max(2 * jobs, 4)
    tasks = iter(tasks)
    pending = as_completed()
    for t in tasks:
        pending.add(client.submit(task, *t, pure=False))
        if pending.count() >= window:
            break
    for future in pending:
        yield future.result()
        future.release()
        nxt = next(tasks, None)
        if nxt is not None:
            pending.add(client.submit(task, *nxt, pure=False))
