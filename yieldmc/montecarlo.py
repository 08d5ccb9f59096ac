"""The Monte Carlo sweep: chunks of dies simulated and streamed to disk, resumably.

One task is one chunk of consecutive dies: simulate it (:func:`simulate_chunk`), write
its files (:meth:`RunStore.write_chunk_files`), return the small record; the parent alone
updates the manifest. Die ``d`` depends only on ``(config, seed, d)``, so results do not
depend on workers, chunk size, backend or order.

A run without wafers holds ``n_dies`` dies; a run on wafers (``config.wafer.wafers > 0``)
every die site of its wafers, lot by lot, wafer by wafer, site by site
(:func:`yieldmc.waferdies.wafer_die_count`), with the wafer columns of
:data:`yieldmc.schema.WAFER_COLUMNS`; a chunk's wafer draws are made once per wafer
(:func:`yieldmc.waferdies.wafer_dies`) and decide which arrays each die's defects hit.

Two engines simulate a chunk, giving the same dies: ``compiled`` (default), one numba
call per chunk (:mod:`yieldmc.engine.chunk`), and ``reference``, the readable per-die
path of :class:`~yieldmc.die.DieModel`. The compiled engine covers the linear device
(with or without programming noise); ``sinh`` dies always take the reference path.
Three backends run the chunks (:mod:`yieldmc.backends`): ``threads`` (this process; the
compiled kernel splits each chunk across numba threads while a writer thread stores the
previous chunk), ``loky`` worker processes and ``dask``; ``auto`` is ``threads`` for the
compiled engine and ``loky`` for the reference one.

The parent builds the die model before ``out`` is touched (so that the settings are
checked against the network first) and, before any worker starts, simulates a few dies
that compile (or load from numba's cache) every kernel a worker uses, so that workers never
compile at the same time. A loky worker watches its parent and exits within a second when
the parent dies (``kill -9``); dask's own worker processes do so already. A sweep that
fails for a reason outside the user's input (a worker killed, a full disk) raises
:class:`SweepFailed`, whose one-line message says how to resume.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yieldmc import backends, schema
from yieldmc.cache import network_cache_path
from yieldmc.config import Config
from yieldmc.defect_params import params_array
from yieldmc.errors import (
    DISK_ERRNOS,
    ConfigError,
    SweepFailed,
    YieldmcError,
    describe_os_error,
    os_errno,
    store_write_error,
)
from yieldmc.runformat import COMPRESSIONS
from yieldmc.store import RUN_FILE, STORE_VOLTAGES, ChunkRecord, RunStore, atomic_path, load_dies

#: Accuracy a die must reach to count as good in the sweep's one-line summary.
DEFAULT_THRESHOLD = 0.8
#: ``auto``: ``threads`` for the compiled engine, ``loky`` for the reference one.
BACKENDS = ("auto", "threads", "loky", "dask")
#: ``compiled``: one numba call per chunk; ``reference``: the readable per-die path.
ENGINES = ("compiled", "reference")
#: Image sets whose output voltages a run stores, per ``--store-voltages``.
VOLTAGE_SETS = {"none": (), "test": ("test",), "all": ("train", "test")}
#: Largest voltage tensor of one default-sized chunk (bytes): ``--store-voltages all``
#: stores 1,797 images per die, so its chunks hold fewer dies.
CHUNK_VOLTAGE_BYTES = 32 * 2**20
#: ``--jobs`` above this many workers per available core is refused (a typo such as 1000);
#: between one and this many per core it is lowered to the core count, with a warning.
MAX_JOBS_PER_CORE = 4
#: Seconds of model preparation (network training, numba compilation) before a notice.
NOTICE_AFTER_S = 1.0


def _kept_hint(out: str | Path) -> str:
    return f"finished chunks are kept: run again with --resume --out {out}"


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to rebuild the die model and simulate dies: small and picklable.

    ``engine``: ``"compiled"`` or ``"reference"`` (:data:`ENGINES`); it does not change
    the model, only how its dies are simulated. ``cache_dir``: of the task data (None:
    each process's :func:`yieldmc.cache.default_cache_dir`). ``model``: the model itself,
    for tasks run in the process that built it (``threads``, one loky worker); it is not
    pickled (a worker process builds its own, :func:`die_model`) and not compared.
    """

    config: Config
    network_path: str
    engine: str = "compiled"
    cache_dir: str | None = None
    model: Any = field(default=None, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "model": None}


def die_model(spec: ModelSpec):
    """The :class:`~yieldmc.die.DieModel` of ``spec``: ``spec.model``, or one built once per process."""
    return spec.model if spec.model is not None else _built_model(spec)


@functools.lru_cache(maxsize=1)
def _built_model(spec: ModelSpec):
    """Build the die model of ``spec`` once per process: a loky or dask worker runs many chunk
    tasks of one run, each handed only the picklable spec, and reuses the model (data,
    weights, fault-free solves: 0.2 s to seconds) after its first task. ``maxsize=1``: a
    process serves one run at a time."""
    from yieldmc.die import DieModel

    return DieModel.build(spec.config, Path(spec.network_path), cache_dir=spec.cache_dir)


def compiled_covers(config: Config) -> bool:
    """True when the compiled engine simulates ``config``'s dies (the linear device);
    the others (``sinh``) take the reference path whatever the engine asked for."""
    from yieldmc.engine.chunk import check_supported

    try:
        check_supported(config)
    except ConfigError:
        return False
    return True


def effective_engine(engine: str, config: Config) -> str:
    """The engine that simulates ``config``'s dies when ``engine`` is asked for."""
    return "compiled" if engine == "compiled" and compiled_covers(config) else "reference"


def simulate_chunk(spec: ModelSpec, dies: range, store_voltages: str = "test") -> tuple[dict, dict]:
    """Simulate consecutive dies with ``spec.engine``; return per-die columns and voltages.

    Both engines give the same per-die columns (the ``elapsed_s`` of a compiled chunk is
    its time shared equally) and voltages equal to float32 rounding of values within
    1e-9 of each other (docs/performance.md).

    Returns
    -------
    columns : dict of str -> numpy.ndarray or pyarrow.Array
        One entry per column of the die table (without run_id, seed, chunk).
    voltages : dict of str -> numpy.ndarray
        Image set -> float32 output voltages (dies, images, outputs); empty for ``none``.
    """
    model = die_model(spec)
    sets = VOLTAGE_SETS[store_voltages]
    wafer = model.wafer_dies(np.arange(dies.start, dies.stop)) if model.config.wafer.enabled else None
    affected = None if wafer is None else wafer.affected
    if effective_engine(spec.engine, model.config) == "compiled":
        from yieldmc.engine.chunk import design_for, simulate_chunk_compiled

        design = design_for(model, sets or ("test",))  # once per process
        result = simulate_chunk_compiled(design, np.arange(dies.start, dies.stop, dtype=np.int64),
                                         affected=affected)
        columns, voltages = result.columns(), result.voltages(sets)
    else:
        columns, voltages = simulate_reference(model, dies, sets, affected)
    if wafer is not None:
        columns.update(wafer.columns)
    return columns, voltages


def simulate_reference(model, dies: range, sets: tuple[str, ...],
                       affected: np.ndarray | None = None) -> tuple[dict, dict]:
    """:func:`simulate_chunk` on the readable path: :meth:`DieModel.die_outputs` die by die
    (``affected``: the arrays each die's defects hit, one row per die; default the
    model's :meth:`~yieldmc.die.DieModel.die_affected`)."""
    x_test, y_test = model.images("test")
    extra = {name: model.images(name) for name in sets if name != "test"}
    rows: dict[str, list] = {k: [] for k in (
        "die", "defect_type", "defect_params", "layers_affected", "n_stuck_on", "n_stuck_off",
        "fault_fraction", "accuracy", "n_images", "n_correct", "solver_max_residual",
        "solver_converged", "elapsed_s")}
    volts: dict[str, list] = {name: [] for name in sets}
    for i, die in enumerate(dies):
        t0 = time.perf_counter()
        (out, *others), s = model.die_outputs(die, [x_test, *(x for x, _ in extra.values())],
                                              strict=False,  # the table flags a failed solve
                                              affected=None if affected is None else affected[i])
        n_correct = int(np.count_nonzero(out.argmax(axis=1) == y_test))
        if "test" in volts:
            volts["test"].append(out.astype(np.float32))
        for name, o in zip(extra, others, strict=True):
            volts[name].append(o.astype(np.float32))
        rows["die"].append(die)
        for key in ("defect_type", "n_stuck_on", "n_stuck_off", "fault_fraction",
                    "solver_max_residual", "solver_converged"):
            rows[key].append(s[key])
        rows["defect_params"].append(s["defect_params"])
        rows["layers_affected"].append(schema.encode_layers(s["layers_affected"]))
        rows["n_images"].append(len(y_test))
        rows["n_correct"].append(n_correct)
        rows["accuracy"].append(n_correct / len(y_test))
        rows["elapsed_s"].append(time.perf_counter() - t0)
    columns = {k: params_array(v) if k == "defect_params" else np.asarray(v) for k, v in rows.items()}
    voltages = {k: np.stack(v) if v else np.empty((0, 0, 0), np.float32) for k, v in volts.items()}
    return columns, voltages


def labels_for(spec: ModelSpec, store_voltages: str) -> dict[str, np.ndarray]:
    """Image set -> true class of each image, for the sets the run stores."""
    model = die_model(spec)
    return {name: model.images(name)[1] for name in VOLTAGE_SETS[store_voltages]}


def _write_chunk(spec: ModelSpec, store: RunStore, chunk: int,
                 computed: tuple[dict, dict]) -> tuple[ChunkRecord, np.ndarray]:
    """Write one simulated chunk's files; the record and the chunk's accuracies."""
    columns, voltages = computed
    labels = labels_for(spec, store.info["store_voltages"])
    record = store.write_chunk_files(chunk, columns, voltages or None, labels or None)
    return record, np.asarray(columns["accuracy"])


def _chunk_task(spec: ModelSpec, store: RunStore, chunk: int,
                parent_pid: int | None = None) -> tuple[ChunkRecord, np.ndarray]:
    """One worker task: simulate a chunk on one thread, write its files, return the record
    and accuracies. ``parent_pid``: the sweep's process, watched by a loky worker (None:
    not watched)."""
    backends.watch_parent(parent_pid)
    with backends.thread_limits(1):
        computed = simulate_chunk(spec, store.chunk_range(chunk), store.info["store_voltages"])
    return _write_chunk(spec, store, chunk, computed)


def _check_layers(config: Config) -> None:
    """``defects.layers`` against the network's layer count, before anything slow or written
    (the die model checks it again, with the same message)."""
    n_layers = len(config.network.hidden) + 1
    bad = [layer for layer in config.defects.layers if layer >= n_layers]
    if bad:
        raise ConfigError(f"defects.layers {bad} out of range: the network has {n_layers} layers "
                          f"(0..{n_layers - 1})")


def _weights_path(config: Config, own: Path | None, cache_dir: str | Path | None = None) -> Path:
    """The run's own weights (``own``: a resumed run's network.npz) or the cache's
    (trained there once per network setting, :func:`yieldmc.cache.network_cache_path`)."""
    return own or network_cache_path(config, cache_dir)


def _preparing_message(weights: Path) -> str:
    if not weights.is_file():
        return ("preparing the die model: training the network and compiling numba kernels "
                "(once per machine and network setting, about a minute)...")
    return ("preparing the die model: compiling numba kernels (once per machine, about 40 s; "
            "later runs load them from numba's cache)...")


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


def _warm_up(model, dies: range, engine: str = "reference", store_voltages: str = "test") -> int:
    """Simulate dies here so that every kernel a worker runs is compiled and cached once,
    before the workers start: they would otherwise all compile at the same time, each for
    up to a minute. The compiled engine is one kernel (one die compiles it all, and builds
    this process's design); the reference path simulates dies until they have used every
    update method of the device (at most :data:`WARM_UP_DIES`). Returns the number of dies
    simulated."""
    if effective_engine(engine, model.config) == "compiled":
        from yieldmc.engine.chunk import design_for, simulate_chunk_compiled

        with backends.thread_limits(1):
            simulate_chunk_compiled(design_for(model, VOLTAGE_SETS[store_voltages] or ("test",)),
                                    np.arange(dies.start, dies.start + 1, dtype=np.int64))
        return 1
    wanted = UPDATE_METHODS.get(model.config.device.model, frozenset())
    seen: set[str] = set()
    x = model.images("test")[0]
    n = 0
    with backends.thread_limits(1):
        for n, die in enumerate(dies[:WARM_UP_DIES], start=1):  # noqa: B007 - n, the dies run, is returned
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


def default_chunk_size(n_dies: int, jobs: int, bytes_per_die: int = 0) -> int:
    """About eight chunks per worker, between 16 and 2000 dies each, and at most
    :data:`CHUNK_VOLTAGE_BYTES` of stored voltages per chunk (``bytes_per_die``)."""
    size = int(min(2000, max(16, math.ceil(n_dies / (8 * max(jobs, 1))))))
    if bytes_per_die > 0:
        size = min(size, max(16, CHUNK_VOLTAGE_BYTES // bytes_per_die))
    return size


def check_dies_count(config: Config, n_dies: int | None) -> int:
    """The number of dies of a run: ``n_dies``, or a wafer run's die count.

    Raises
    ------
    ConfigError
        ``n_dies`` not a positive integer; None without wafers; a wafer run's ``n_dies``
        other than its die count.
    """
    given = n_dies is not None
    if given and (isinstance(n_dies, bool) or not isinstance(n_dies, numbers.Integral) or n_dies < 1):
        raise ConfigError(f"--dies must be a positive integer, got {n_dies!r}")
    w = config.wafer
    if not w.enabled:
        if not given:
            raise ConfigError("give the number of dies (--dies N), or place them on wafers (--wafers W)")
        return int(n_dies)
    from yieldmc.waferdies import wafer_die_count

    count = wafer_die_count(config)
    if given and int(n_dies) != count:
        raise ConfigError(f"--dies {n_dies} does not match the wafers: {w.lots} lot(s) x {w.wafers} wafer(s) x "
                          f"{count // (w.lots * w.wafers)} dies = {count} dies; leave --dies out")
    return count


def resolve_backend(backend: str, engine: str, config: Config) -> str:
    """``auto`` -> ``threads`` when the compiled engine simulates the dies, else ``loky``."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    if backend != "auto":
        return backend
    return "threads" if effective_engine(engine, config) == "compiled" else "loky"


def run_sample(
    config: Config,
    n_dies: int | None,
    out: str | Path,
    *,
    jobs: int = 1,
    chunk_size: int | None = None,
    backend: str = "auto",
    engine: str = "compiled",
    scheduler_address: str | None = None,
    scheduler_file: str | Path | None = None,
    store_voltages: str = "test",
    compress: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Simulate ``n_dies`` dies of ``config`` into the run directory ``out``.

    Parameters
    ----------
    config : Config
        The die design, defects and root seed; with ``config.wafer.wafers > 0`` the dies
        lie on wafers (docs/wafer.md).
    n_dies : int or None
        Dies in the run (>= 1). A wafer run holds every die site of its wafers
        (:func:`yieldmc.waferdies.wafer_die_count`): None, or that number.
    out : path
        Run directory (see docs/data.md); refused if it exists and is not empty, unless
        ``resume`` (finish it) or ``overwrite`` (replace yieldmc's files there). Nothing is
        written there before the settings are checked against the network (the die model
        is built first).
    jobs : int
        Workers (-1: all cores): numba threads (``threads``) or worker processes. Local
        workers are capped at the available cores (a warning through ``log``); processes
        also at the chunks left to do; above :data:`MAX_JOBS_PER_CORE` per core ``jobs``
        is refused. With a given dask scheduler, the cluster's thread count when larger:
        it sizes the default chunks and the tasks kept in flight.
    chunk_size : int, optional
        Dies per task; default about eight chunks per worker process (eight in all with
        ``threads``, which split every chunk), at most 2000 dies and
        :data:`CHUNK_VOLTAGE_BYTES` of voltages (kept from run.json on resume).
    backend : {"auto", "threads", "loky", "dask"}
        This process's threads, joblib's loky processes, or dask.distributed (a scheduler
        address or file, or a local cluster of ``jobs`` workers); ``auto``: ``threads``
        for the compiled engine, ``loky`` for the reference one (:mod:`yieldmc.backends`).
    scheduler_address, scheduler_file : optional
        The dask scheduler (one of them, and only with ``backend="dask"``); neither: a
        local cluster.
    engine : {"compiled", "reference"}
        One compiled call per chunk, or the readable per-die path (the same dies; recorded
        in run.json and compared on resume). ``sinh`` dies take the reference path.
    store_voltages : {"none", "test", "all"}
        Which images' output voltages to keep in HDF5.
    compress : {None, "none", "lzf", "gzip"}
        HDF5 filter of the stored voltages (None or "none": uncompressed, the fastest; gzip
        with shuffle is about 16 % smaller).
    threshold : float
        Accuracy threshold of the summary's yield.
    progress : callable, optional
        Called as ``progress(dies_done, n_dies)`` once before the workers start and after
        every chunk.
    log : callable, optional
        Called with one-line messages for the user: ``"warning: ..."`` (``jobs`` lowered)
        and a notice when preparing the model takes long (first run: numba compiles).
    cache_dir : path, optional
        Cache directory of the task data and the trained network
        (:mod:`yieldmc.cache`); default :func:`yieldmc.cache.default_cache_dir`.

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
    if scheduler_address and scheduler_file:
        raise ConfigError("give --scheduler-address or --scheduler-file, not both")
    if (scheduler_address or scheduler_file) and backend != "dask":
        raise ConfigError("--scheduler-address/--scheduler-file need --backend dask")
    scheduler_file = str(scheduler_file) if scheduler_file else None
    n_dies = check_dies_count(config, n_dies)
    backend = resolve_backend(backend, engine, config)
    compress = None if compress == "none" else compress
    if compress not in COMPRESSIONS:
        raise ConfigError(f"--compress must be lzf or gzip (or none), got {compress!r}")
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
            client, _ = backends.dask_client(scheduler_address, scheduler_file, jobs)
            stack.callback(client.close)
            jobs = max(jobs, sum(client.nthreads().values()))
        if backend == "threads" and jobs > 1 and effective_engine(engine, config) != "compiled" and log:
            log(f"warning: the reference engine simulates one die at a time: --backend threads runs "
                f"on one core whatever --jobs; use --backend loky for {jobs} worker processes")
        return _sweep(config, n_dies, out, jobs=jobs, chunk_size=chunk_size, backend=backend,
                      engine=engine, compress=compress, client=client, stack=stack,
                      store_voltages=store_voltages, resume=resume, overwrite=overwrite,
                      threshold=threshold, progress=progress, log=log,
                      cache_dir=None if cache_dir is None else str(cache_dir))


def _sweep(config: Config, n_dies: int, out: Path, *, jobs: int, chunk_size: int | None, backend: str,
           engine: str, compress: str | None, client, stack: contextlib.ExitStack, store_voltages: str,
           resume: bool, overwrite: bool, threshold: float, progress: Callable[[int, int], None] | None,
           log: Callable[[str], None] | None, cache_dir: str | None) -> dict[str, Any]:
    """:func:`run_sample` after its checks; ``client``: a connected dask client or None."""
    if chunk_size is None and resume and (out / RUN_FILE).exists():
        from yieldmc.store import read_run_info

        chunk_size = int(read_run_info(out).get("chunk_size") or 0) or None

    def run_info(size: int | None) -> dict[str, Any]:
        return {"config": config.to_dict(), "seed": config.seed, "n_dies": n_dies,
                "chunk_size": chunk_size or size or default_chunk_size(n_dies, jobs),
                "store_voltages": store_voltages, "engine": engine, "compress": compress,
                "backend": backend, "device": config.device.model}

    store = None
    if out.exists() and (not out.is_dir() or (not overwrite and any(out.iterdir()))):
        # a refusal (which touches nothing) or the resume of a run whose settings, checked
        # against its run.json, already built a model: neither waits for the model build
        store = RunStore.create(out, run_info(None), resume=resume, overwrite=overwrite)
        stack.callback(store.release)  # the run's lock, also on failure (no-op after finish)
    hint = None  # the resume hint, once ``out`` holds a run
    try:
        own = store.network_path if store is not None and store.network_path.is_file() else None
        weights = _weights_path(config, own, cache_dir)
        with _notice_if_slow(log, _preparing_message(weights)):
            with backends.thread_limits(1):  # as in the workers, where _chunk_task builds the model
                from yieldmc.die import DieModel

                model = DieModel.build(config, weights, cache_dir=cache_dir)  # a bad setting fails here
            if store is None:
                per_die = 4 * sum(model.images(name)[0].shape[0] for name in VOLTAGE_SETS[store_voltages]) \
                    * model.network.layer_sizes[-1]
                # threads split every chunk: size the chunks as for one worker
                workers_per_chunk = 1 if backend == "threads" else jobs
                store = RunStore.create(out, run_info(default_chunk_size(n_dies, workers_per_chunk, per_die)),
                                        resume=resume, overwrite=overwrite)
                stack.callback(store.release)
            hint = _kept_hint(out)
            if not store.network_path.is_file():
                try:
                    with atomic_path(store.network_path) as tmp:
                        shutil.copyfile(weights, tmp)
                except OSError as exc:  # name the run's file, not the cache copy it read
                    raise store_write_error(exc, store.network_path, out,
                                            f"run again with --resume --out {out}") from None
            done = store.finished_chunks(verify=False)  # create() verified and repaired them
            todo = [c for c in range(store.n_chunks) if c not in done]
            # never more worker processes than chunks; threads split every chunk
            workers = jobs if backend == "threads" else max(1, min(jobs, len(todo)))
            if todo and (workers > 1 or backend != "loky"):  # compile before workers start
                _warm_up(model, range(store.chunk_range(todo[0]).start, n_dies), engine, store_voltages)
        # the in-process paths (threads, one loky worker) use ``model``; worker processes
        # get the spec without it and build their own (die_model)
        spec = ModelSpec(config, str(store.network_path), engine, cache_dir, model=model)
        return _run_chunks(store, spec, model, todo, done, workers=workers, backend=backend,
                           client=client, stack=stack, threshold=threshold, progress=progress)
    except YieldmcError:
        raise  # the store's own one-line errors (a full disk: StoreWriteError) pass unchanged
    except OSError as exc:
        if hint is not None and backends.worker_died(exc):
            raise SweepFailed(f"a worker process died (killed, or out of memory?); {hint}") from None
        if hint is None and os_errno(exc) not in DISK_ERRNOS:
            raise  # e.g. a missing data file: the user's input, reported as such
        raise SweepFailed(describe_os_error(exc) + (f"; {hint}" if hint else "")) from exc
    except Exception as exc:
        if backends.worker_died(exc):
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
        client, cluster = backends.dask_client(None, None, workers)
        stack.callback(cluster.close)
        stack.callback(client.close)  # callbacks run last-in first-out: the client closes first
    if not todo:  # a finished run: start no workers
        runner = iter(())
    elif backend == "threads":  # this process: numba threads split each chunk
        def compute(chunk: int) -> tuple[dict, dict]:
            with backends.thread_limits(workers):
                return simulate_chunk(spec, store.chunk_range(chunk), store.info["store_voltages"])

        runner = backends.run_threads(compute, lambda c, r: _write_chunk(spec, store, c, r), todo)
    elif backend == "loky":  # a loky worker watches this process and ends when it dies
        runner = backends.run_loky(_chunk_task, ((spec, store, c, os.getpid()) for c in todo), workers)
    else:  # dask's worker processes end with their parent by themselves
        runner = backends.run_dask(_chunk_task, ((spec, store, c) for c in todo), workers, client)
    for record, _acc in runner:
        store.record_chunk(record)
        simulated += record.n_rows
        n_done += record.n_rows
        if progress:
            progress(n_done, n_dies)
    elapsed = time.perf_counter() - start

    table = load_dies(store.path, columns=["accuracy", "solver_converged"], verify=False)  # 9 bytes a die
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
        "engine": effective_engine(spec.engine, spec.config),
        "chunk_size": store.info["chunk_size"],
    }
    store.finish(summary)
    return summary
