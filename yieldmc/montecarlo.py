"""The Monte Carlo sweep: chunks of dies on joblib (loky) or dask workers, streamed to disk.

One task is one chunk of consecutive dies. A worker builds the :class:`~yieldmc.die.DieModel`
once per process (from the config and the run's trained network), simulates its chunk,
writes the chunk's files itself (:meth:`RunStore.write_chunk_files`) and returns the small
record; the parent alone updates the manifest. Die ``d`` depends only on
``(config, seed, d)``, so results do not depend on workers, chunk size, backend or order.

The parent builds the die model before ``out`` is touched (so that the settings are
checked against the network first) and, before any worker starts, simulates a few dies
that compile (or load from numba's cache) every kernel a worker uses, so that workers never
compile at the same time. A loky worker watches its parent and exits within a second when the parent dies
(``kill -9``); dask's own worker processes do so already. A sweep that fails for a reason
outside the user's input (a worker killed, a full disk) raises :class:`SweepFailed`, whose
one-line message says how to resume.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import math
import numbers
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yieldmc.config import Config
from yieldmc.errors import (DISK_ERRNOS, ConfigError, SweepFailed, YieldmcError, describe_os_error, os_errno,
                            store_write_error)
from yieldmc import schema
from yieldmc.store import RUN_FILE, STORE_VOLTAGES, ChunkRecord, RunStore, atomic_path, load_dies

#: Accuracy a die must reach to count as good in the sweep's one-line summary.
DEFAULT_THRESHOLD = 0.8
BACKENDS = ("loky", "dask")
#: ``--jobs`` above this many workers per available core is refused (a typo such as 1000);
#: between one and this many per core it is lowered to the core count, with a warning.
MAX_JOBS_PER_CORE = 4
#: Seconds between a loky worker's checks that the sweep's parent process is alive.
WATCHDOG_INTERVAL_S = 0.5
#: Seconds of model preparation (network training, numba compilation) before a notice.
NOTICE_AFTER_S = 1.0


def _kept_hint(out: str | Path) -> str:
    return f"finished chunks are kept: run again with --resume --out {out}"


def _worker_died(exc: BaseException) -> bool:
    """A loky pool broken by a dead worker, its pipe cut by one (depending on when the worker
    died), or dask's KilledWorker (a task whose workers died)."""
    if isinstance(exc, (concurrent.futures.BrokenExecutor, BrokenPipeError, ConnectionResetError, EOFError)):
        return True
    return type(exc).__name__ == "KilledWorker" and type(exc).__module__.startswith("distributed")


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to rebuild the die model: small and picklable."""

    config: Config
    network_path: str

    @property
    def key(self) -> str:
        return json.dumps(self.config.to_dict(), sort_keys=True) + self.network_path


_MODELS: dict[str, Any] = {}  # per-process cache: one DieModel per run


def _model(spec: ModelSpec):
    from yieldmc.die import DieModel

    model = _MODELS.get(spec.key)
    if model is None:
        _MODELS.clear()
        model = DieModel.build(spec.config, Path(spec.network_path))
        _MODELS[spec.key] = model
    return model


def simulate_chunk(spec: ModelSpec, dies: range, store_voltages: str = "test") -> tuple[dict, dict]:
    """Simulate consecutive dies; return per-die columns and voltage tensors.

    Returns
    -------
    columns : dict of str -> numpy.ndarray
        One entry per column of the die table (without run_id, seed, chunk).
    voltages : dict of str -> numpy.ndarray
        Image set -> float32 output voltages (dies, images, outputs); empty for ``none``.
    """
    model = _model(spec)
    sets = {"none": (), "test": ("test",), "all": ("train", "test")}[store_voltages]
    x_test, y_test = model.images("test")
    extra = {name: model.images(name) for name in sets if name != "test"}
    rows: dict[str, list] = {k: [] for k in (
        "die", "defect_type", "defect_params", "layers_affected", "n_stuck_on", "n_stuck_off",
        "fault_fraction", "accuracy", "n_images", "n_correct", "solver_max_residual",
        "solver_converged", "elapsed_s")}
    volts: dict[str, list] = {name: [] for name in sets}
    for die in dies:
        t0 = time.perf_counter()
        (out, *others), s = model.die_outputs(die, [x_test, *(x for x, _ in extra.values())],
                                              strict=False)  # the table flags a failed solve
        n_correct = int(np.count_nonzero(out.argmax(axis=1) == y_test))
        if "test" in volts:
            volts["test"].append(out.astype(np.float32))
        for name, o in zip(extra, others):
            volts[name].append(o.astype(np.float32))
        rows["die"].append(die)
        for key in ("defect_type", "n_stuck_on", "n_stuck_off", "fault_fraction",
                    "solver_max_residual", "solver_converged"):
            rows[key].append(s[key])
        rows["defect_params"].append(schema.encode_params(s["defect_params"]))
        rows["layers_affected"].append(schema.encode_layers(s["layers_affected"]))
        rows["n_images"].append(len(y_test))
        rows["n_correct"].append(n_correct)
        rows["accuracy"].append(n_correct / len(y_test))
        rows["elapsed_s"].append(time.perf_counter() - t0)
    columns = {k: np.asarray(v) for k, v in rows.items()}
    voltages = {k: np.stack(v) if v else np.empty((0, 0, 0), np.float32) for k, v in volts.items()}
    return columns, voltages


def labels_for(spec: ModelSpec, store_voltages: str) -> dict[str, np.ndarray]:
    model = _model(spec)
    sets = {"none": (), "test": ("test",), "all": ("train", "test")}[store_voltages]
    return {name: model.images(name)[1] for name in sets}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """numba and BLAS on one thread inside the block (numba's setting is restored after).

    Workers must not oversubscribe the cores, and every process (the parent with
    ``jobs=1`` too) must build and run the dies with the same thread counts.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        threadpool_limits = None
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(1) if threadpool_limits is not None else contextlib.nullcontext():
            yield
    finally:
        numba.set_num_threads(before)


_WATCHDOG: list[threading.Thread] = []  # this process's parent watchdog, once started


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


def _watch_parent(parent_pid: int | None) -> None:
    """Start (once per process) a daemon thread that ends this worker when its parent dies.

    loky workers otherwise finish the tasks already sent to them and then idle for
    minutes; a chunk half written when the process ends leaves only a temporary file,
    which ``--resume`` removes.
    """
    if parent_pid is None or parent_pid == os.getpid() or any(t.is_alive() for t in _WATCHDOG):
        return
    ppid = os.getppid()

    def watch() -> None:
        while not _parent_gone(parent_pid, ppid):
            time.sleep(WATCHDOG_INTERVAL_S)
        os._exit(1)

    thread = threading.Thread(target=watch, name="yieldmc-parent-watchdog", daemon=True)
    thread.start()
    _WATCHDOG[:] = [thread]


def _chunk_task(spec: ModelSpec, store: RunStore, chunk: int,
                parent_pid: int | None = None) -> tuple[ChunkRecord, np.ndarray]:
    """One task: simulate a chunk, write its files, return the record and accuracies.

    ``parent_pid``: the sweep's process, watched by a loky worker (None: not watched).
    """
    _watch_parent(parent_pid)
    store_voltages = store.info["store_voltages"]
    with _one_thread():
        columns, voltages = simulate_chunk(spec, store.chunk_range(chunk), store_voltages)
    labels = labels_for(spec, store_voltages)
    record = store.write_chunk_files(chunk, columns, voltages or None, labels or None)
    return record, columns["accuracy"]


def _check_layers(config: Config) -> None:
    """``defects.layers`` against the network's layer count, before anything slow or written
    (the die model checks it again, with the same message)."""
    n_layers = len(config.network.hidden) + 1
    bad = [layer for layer in config.defects.layers if layer >= n_layers]
    if bad:
        raise ConfigError(f"defects.layers {bad} out of range: the network has {n_layers} layers "
                          f"(0..{n_layers - 1})")


def _weights_path(config: Config, own: Path | None) -> Path:
    """The run's own weights (``own``: a resumed run's network.npz) or the user cache's
    (``$YIELDMC_CACHE``, trained there once per network setting)."""
    from yieldmc.die import _training_key, default_cache_dir

    return own or default_cache_dir() / f"network-{_training_key(config)}.npz"


def _preparing_message(weights: Path) -> str:
    if not weights.is_file():
        return ("preparing the die model: training the network and compiling numba kernels "
                "(once per machine and network setting, about a minute)...")
    return "preparing the die model (compiling numba kernels the first time: about a minute)..."


@contextlib.contextmanager
def _notice_if_slow(log: Callable[[str], None] | None, message: str) -> Iterator[None]:
    """Call ``log(message)`` if the block is still running after :data:`NOTICE_AFTER_S`."""
    if log is None:
        yield
        return
    timer = threading.Timer(NOTICE_AFTER_S, log, args=(message,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()


#: How a die's arrays are updated (``DieResult.methods``: see
#: :func:`yieldmc.circuit.update.faulty_transfer` and ``SinhArray.method``); each one runs
#: its own kernels.
UPDATE_METHODS = {"linear": frozenset({"reuse", "woodbury", "solve"}), "sinh": frozenset({"newton"})}
#: Most dies the parent simulates to warm the kernels up (some defect kinds never use
#: every update method).
WARM_UP_DIES = 32


def _warm_up(model, dies: range) -> int:
    """Simulate dies here until they have used every update method of the device (at most
    :data:`WARM_UP_DIES`), so that every kernel a worker runs is compiled and cached once,
    before the workers start: they would otherwise all compile at the same time, each for
    up to a minute. Returns the number of dies simulated."""
    wanted = UPDATE_METHODS.get(model.config.device.model, frozenset())
    seen: set[str] = set()
    x = model.images("test")[0]
    n = 0
    with _one_thread():
        for n, die in enumerate(dies[:WARM_UP_DIES], start=1):
            seen.update(model.die_outputs(die, [x], strict=False)[1]["methods"])
            if seen >= wanted:
                break
    return n


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; os.cpu_count() elsewhere)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _parse_jobs(jobs: int, *, local: bool = True, log: Callable[[str], None] | None = None) -> int:
    """Worker count for ``--jobs``: -1 is every core; local workers are capped at the cores.

    Above one worker per core a local sweep only adds memory and contention, so ``jobs``
    is lowered to the core count (with a warning), and refused above
    :data:`MAX_JOBS_PER_CORE` per core (a typo). With a given dask scheduler (``local``
    False) the cluster decides, and ``jobs`` is kept as given.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or jobs == 0 or jobs < -1:
        raise ConfigError(f"--jobs must be a positive number of workers or -1 (all cores), got {jobs}")
    cores = available_cores()
    if jobs == -1:
        return cores
    jobs = int(jobs)
    if not local or jobs <= cores:
        return jobs
    if jobs > MAX_JOBS_PER_CORE * cores:
        raise ConfigError(f"--jobs {jobs} is more than {MAX_JOBS_PER_CORE} workers per core on this machine "
                          f"({cores} cores); use at most {cores}, or -1 for one worker per core")
    if log is not None:
        log(f"warning: --jobs {jobs} is more than the {cores} available cores: lowered to {cores}")
    return cores


class RateMeter:
    """Dies per second since the first finished chunk, and the time left at that rate.

    The first report (before any worker starts) and the start-up of the workers (their
    model build, the first chunk) are left out, so the early rate is not too low; a rate
    is given once :data:`RATE_WINDOW_S` have passed since the first finished chunk.
    """

    RATE_WINDOW_S = 1.0

    def __init__(self) -> None:
        self._n0: int | None = None
        self._first: tuple[float, int] | None = None
        self.rate: float | None = None  #: dies per second, or None while unknown
        self.eta_s: float | None = None  #: seconds left at ``rate``, or None

    def update(self, done: int, total: int, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        if self._n0 is None:
            self._n0 = done
        elif self._first is None:
            if done > self._n0:
                self._first = (now, done)
        else:
            t1, n1 = self._first
            if done > n1 and now - t1 >= self.RATE_WINDOW_S:
                self.rate = (done - n1) / (now - t1)
        self.eta_s = 0.0 if done >= total else (total - done) / self.rate if self.rate else None


def default_chunk_size(n_dies: int, jobs: int) -> int:
    """About eight chunks per worker, between 16 and 2000 dies each."""
    return int(min(2000, max(16, math.ceil(n_dies / (8 * max(jobs, 1))))))


def _run_loky(tasks, jobs: int) -> Iterator:
    from joblib import Parallel, delayed

    if jobs == 1:
        for t in tasks:
            yield _chunk_task(*t[:3])  # in this process: no parent to watch
        return
    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered",
                        pre_dispatch="2*n_jobs")
    yield from parallel(delayed(_chunk_task)(*t) for t in tasks)


def _dask_client(scheduler_address: str | None, scheduler_file: str | None, jobs: int):
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
    except Exception as exc:  # noqa: BLE001 - dask raises OSError, TimeoutError, ValueError, AssertionError
        where = scheduler_address or f"the scheduler of {scheduler_file}"
        raise ConfigError(f"cannot reach the dask scheduler ({where}): {exc or type(exc).__name__}") from None
    cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                           dashboard_address=":0")  # any free port: 8787 may be another cluster's
    return Client(cluster), cluster


def _run_dask(tasks, jobs: int, client) -> Iterator:
    """Run the tasks on ``client``'s cluster, at most ``2 * jobs`` (at least 4) in flight."""
    from dask.distributed import as_completed

    window = max(2 * jobs, 4)
    tasks = iter(tasks)
    pending = as_completed()
    for t in tasks:
        pending.add(client.submit(_chunk_task, *t, pure=False))
        if pending.count() >= window:
            break
    for future in pending:
        yield future.result()
        future.release()
        nxt = next(tasks, None)
        if nxt is not None:
            pending.add(client.submit(_chunk_task, *nxt, pure=False))


def run_sample(
    config: Config,
    n_dies: int,
    out: str | Path,
    *,
    jobs: int = 1,
    chunk_size: int | None = None,
    backend: str = "loky",
    scheduler_address: str | None = None,
    scheduler_file: str | None = None,
    store_voltages: str = "test",
    resume: bool = False,
    overwrite: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Simulate ``n_dies`` dies of ``config`` into the run directory ``out``.

    Parameters
    ----------
    config : Config
        The die design, defects and root seed.
    n_dies : int
        Dies in the run (>= 1).
    out : path
        Run directory (see docs/data.md); refused if it exists and is not empty, unless
        ``resume`` (finish it) or ``overwrite`` (replace yieldmc's files there). Nothing is
        written there before the settings are checked against the network (the die model
        is built first).
    jobs : int
        Worker processes (-1: all cores). Local workers (loky, a dask LocalCluster) are
        capped at the available cores (a warning through ``log``) and at the chunks left
        to do; above :data:`MAX_JOBS_PER_CORE` per core ``jobs`` is refused. With a given
        dask scheduler, the cluster's thread count when larger: it sizes the default chunks
        and the tasks kept in flight.
    chunk_size : int, optional
        Dies per task; default about eight chunks per worker (kept from run.json on resume).
    backend : {"loky", "dask"}
        joblib's loky processes, or dask.distributed (a scheduler address or file, or a
        local cluster of ``jobs`` workers).
    store_voltages : {"none", "test", "all"}
        Which images' output voltages to keep in HDF5.
    threshold : float
        Accuracy threshold of the summary's yield.
    progress : callable, optional
        Called as ``progress(dies_done, n_dies)`` once before the workers start and after
        every chunk.
    log : callable, optional
        Called with one-line messages for the user: ``"warning: ..."`` (``jobs`` lowered)
        and a notice when preparing the model takes long (first run: numba compiles).

    Returns
    -------
    dict
        Summary: dies, mean_accuracy, yield, threshold, unconverged_dies, elapsed_s,
        dies_per_s, ... ``mean_accuracy`` and ``yield`` are over the dies whose circuit
        solves converged (None if none did); ``unconverged_dies`` counts the others.

    Raises
    ------
    ConfigError
        Bad arguments or settings (nothing written to ``out``).
    SweepFailed
        A worker died or a file could not be written (disk full, read-only); finished
        chunks are kept and ``resume`` finishes the run.
    """
    if isinstance(n_dies, bool) or not isinstance(n_dies, numbers.Integral) or n_dies < 1:
        raise ConfigError(f"--dies must be a positive integer, got {n_dies!r}")
    n_dies = int(n_dies)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if store_voltages not in STORE_VOLTAGES:
        raise ConfigError(f"--store-voltages must be one of {', '.join(STORE_VOLTAGES)}, got {store_voltages!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
    if resume and overwrite:
        raise ConfigError("pass either --resume or --overwrite, not both")
    _check_layers(config)
    given_cluster = backend == "dask" and bool(scheduler_address or scheduler_file)
    jobs = _parse_jobs(jobs, local=not given_cluster, log=log)
    out = Path(out)
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"--chunk-size must be a positive integer, got {chunk_size}")
    with contextlib.ExitStack() as stack:
        client = None
        if given_cluster:
            # connect before touching ``out`` (a bad address leaves no run behind), and size the
            # chunks and the task window by the cluster's threads rather than by ``jobs``
            client, _ = _dask_client(scheduler_address, scheduler_file, jobs)
            stack.callback(client.close)
            jobs = max(jobs, sum(client.nthreads().values()))
        return _sweep(config, n_dies, out, jobs=jobs, chunk_size=chunk_size, backend=backend,
                      client=client, stack=stack, store_voltages=store_voltages, resume=resume,
                      overwrite=overwrite, threshold=threshold, progress=progress, log=log)


def _sweep(config: Config, n_dies: int, out: Path, *, jobs: int, chunk_size: int | None, backend: str,
           client, stack: contextlib.ExitStack, store_voltages: str, resume: bool, overwrite: bool,
           threshold: float, progress: Callable[[int, int], None] | None,
           log: Callable[[str], None] | None) -> dict[str, Any]:
    """:func:`run_sample` after its checks; ``client``: a connected dask client or None."""
    if chunk_size is None and resume and (out / RUN_FILE).exists():
        from yieldmc.store import read_run_info

        chunk_size = int(read_run_info(out).get("chunk_size") or 0) or None
    chunk_size = chunk_size or default_chunk_size(n_dies, jobs)
    run_info = {"config": config.to_dict(), "seed": config.seed, "n_dies": n_dies,
                "chunk_size": chunk_size, "store_voltages": store_voltages,
                "device": config.device.model}
    store = None
    if out.exists() and (not out.is_dir() or (not overwrite and any(out.iterdir()))):
        # a refusal (which touches nothing) or the resume of a run whose settings, checked
        # against its run.json, already built a model: neither waits for the model build
        store = RunStore.create(out, run_info, resume=resume, overwrite=overwrite)
        stack.callback(store.release)  # the run's lock, also on failure (no-op after finish)
    hint = None  # the resume hint, once ``out`` holds a run
    try:
        own = store.network_path if store is not None and store.network_path.is_file() else None
        weights = _weights_path(config, own)
        with _notice_if_slow(log, _preparing_message(weights)):
            with _one_thread():  # as in the workers, where _chunk_task builds the model
                from yieldmc.die import DieModel

                model = DieModel.build(config, weights)  # a bad setting fails here
            if store is None:
                store = RunStore.create(out, run_info, resume=resume, overwrite=overwrite)
                stack.callback(store.release)
            hint = _kept_hint(out)
            if not store.network_path.is_file():
                try:
                    with atomic_path(store.network_path) as tmp:
                        shutil.copyfile(weights, tmp)
                except OSError as exc:  # name the run's file, not the cache copy it read
                    raise store_write_error(exc, store.network_path, out, f"run again with --resume --out {out}") from None
            done = store.finished_chunks(verify=False)  # create() verified and repaired them
            todo = [c for c in range(store.n_chunks) if c not in done]
            workers = max(1, min(jobs, len(todo)))  # never more workers than chunks
            if todo and (workers > 1 or backend == "dask"):  # worker processes will start
                _warm_up(model, range(store.chunk_range(todo[0]).start, n_dies))
        spec = ModelSpec(config, str(store.network_path))
        _MODELS.clear()
        _MODELS[spec.key] = model  # the in-process path (jobs = 1) reuses it
        return _run_chunks(store, spec, model, todo, done, workers=workers, backend=backend,
                           client=client, stack=stack, threshold=threshold, progress=progress)
    except YieldmcError:
        raise  # the store's own one-line errors (a full disk: StoreWriteError) pass unchanged
    except OSError as exc:
        if hint is not None and _worker_died(exc):
            raise SweepFailed(f"a worker process died (killed, or out of memory?); {hint}") from None
        if hint is None and os_errno(exc) not in DISK_ERRNOS:
            raise  # e.g. a missing data file: the user's input, reported as such
        raise SweepFailed(describe_os_error(exc) + (f"; {hint}" if hint else "")) from exc
    except Exception as exc:
        if _worker_died(exc):
            raise SweepFailed(f"a worker process died (killed, or out of memory?); {hint}") from None
        raise


def _run_chunks(store: RunStore, spec: ModelSpec, model, todo: list[int], done: set[int], *,
                workers: int, backend: str, client, stack: contextlib.ExitStack, threshold: float,
                progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    """Simulate the chunks ``todo`` on ``workers`` workers, record them, finish the run."""
    n_dies = store.info["n_dies"]
    n_done = sum(len(store.chunk_range(c)) for c in done)
    if progress:
        progress(n_done, n_dies)
    start = time.perf_counter()
    simulated = 0
    if backend == "dask" and client is None and todo:  # a LocalCluster for this run
        client, cluster = _dask_client(None, None, workers)
        stack.callback(cluster.close)
        stack.callback(client.close)  # callbacks run last-in first-out: the client closes first
    if not todo:  # a finished run: start no workers
        runner = iter(())
    elif backend == "loky":  # a loky worker watches this process and ends when it dies
        runner = _run_loky(((spec, store, c, os.getpid()) for c in todo), workers)
    else:  # dask's worker processes end with their parent by themselves
        runner = _run_dask(((spec, store, c) for c in todo), workers, client)
    for record, _acc in runner:
        store.record_chunk(record)
        simulated += record.n_rows
        n_done += record.n_rows
        if progress:
            progress(n_done, n_dies)
    elapsed = time.perf_counter() - start

    table = load_dies(store.path, columns=["accuracy", "defect_type", "solver_converged"], verify=False)
    acc = table["accuracy"].to_numpy()
    converged = table["solver_converged"].to_numpy(dtype=bool)
    good = acc[converged]  # a die whose solve failed has no trustworthy accuracy
    summary = {
        "out": str(store.path),
        "dies": int(len(acc)),
        "dies_simulated_now": simulated,
        "mean_accuracy": float(good.mean()) if good.size else None,
        "threshold": threshold,
        "yield": float(np.mean(good >= threshold)) if good.size else None,
        "software_accuracy": model.software_accuracy(),
        "fault_free_accuracy": model.fault_free_accuracy(),
        "unconverged_dies": int((~converged).sum()),
        "device": spec.config.device.model,
        "elapsed_s": elapsed,
        "dies_per_s": simulated / elapsed if simulated and elapsed > 0 else None,
        "jobs": workers,
        "backend": backend,
        "chunk_size": store.info["chunk_size"],
    }
    store.finish(summary)
    return summary
