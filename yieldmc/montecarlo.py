"""The Monte Carlo sweep: chunks of dies on joblib (loky) or dask workers, streamed to disk.

One task is one chunk of consecutive dies. A worker builds the :class:`~yieldmc.die.DieModel`
once per process (from the config and the run's trained network), simulates its chunk,
writes the chunk's files itself (:meth:`RunStore.write_chunk_files`) and returns the small
record; the parent alone updates the manifest. Die ``d`` depends only on
``(config, seed, d)``, so results do not depend on workers, chunk size, backend or order.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yieldmc.config import Config
from yieldmc.errors import ConfigError
from yieldmc import schema
from yieldmc.store import STORE_VOLTAGES, ChunkRecord, RunStore, atomic_path, load_dies

#: Accuracy a die must reach to count as good in the sweep's one-line summary.
DEFAULT_THRESHOLD = 0.8
BACKENDS = ("loky", "dask")


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


def _chunk_task(spec: ModelSpec, store: RunStore, chunk: int) -> tuple[ChunkRecord, np.ndarray]:
    """One task: simulate a chunk, write its files, return the record and accuracies."""
    store_voltages = store.info["store_voltages"]
    with _one_thread():
        columns, voltages = simulate_chunk(spec, store.chunk_range(chunk), store_voltages)
    labels = labels_for(spec, store_voltages)
    record = store.write_chunk_files(chunk, columns, voltages or None, labels or None)
    return record, columns["accuracy"]


def _run_model(config: Config, store: RunStore):
    """The die model of a run, and the run's copy of its network weights (network.npz).

    A new run takes the weights from the user cache (``$YIELDMC_CACHE``; trained there once
    per network setting) and copies them into the run; a resumed run reads its own copy.
    """
    from yieldmc.die import DieModel, _training_key, default_cache_dir

    if store.network_path.is_file():
        return DieModel.build(config, store.network_path)
    cached = default_cache_dir() / f"network-{_training_key(config)}.npz"
    model = DieModel.build(config, cached)  # trains (once) into the cache if it is not there
    with atomic_path(store.network_path) as tmp:
        shutil.copyfile(cached, tmp)
    return model


def _parse_jobs(jobs: int) -> int:
    if jobs == 0 or jobs < -1:
        raise ConfigError(f"--jobs must be a positive number of workers or -1 (all cores), got {jobs}")
    return os.cpu_count() or 1 if jobs == -1 else jobs


def default_chunk_size(n_dies: int, jobs: int) -> int:
    """About eight chunks per worker, between 16 and 2000 dies each."""
    return int(min(2000, max(16, math.ceil(n_dies / (8 * max(jobs, 1))))))


def _run_loky(tasks, jobs: int) -> Iterator:
    from joblib import Parallel, delayed

    if jobs == 1:
        for spec, store, chunk in tasks:
            yield _chunk_task(spec, store, chunk)
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
                           dashboard_address=None)
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
        ``resume`` (finish it) or ``overwrite`` (replace yieldmc's files there).
    jobs : int
        Worker processes (-1: all cores). With a given dask scheduler, the cluster's thread
        count when larger: it sizes the default chunks and the tasks kept in flight.
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
        Called as ``progress(dies_done, n_dies)`` after every chunk.

    Returns
    -------
    dict
        Summary: dies, mean_accuracy, yield, threshold, elapsed_s, dies_per_s, ...
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
    jobs = _parse_jobs(jobs)
    out = Path(out)
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"--chunk-size must be a positive integer, got {chunk_size}")
    with contextlib.ExitStack() as stack:
        client = None
        if backend == "dask" and (scheduler_address or scheduler_file):
            # connect before touching ``out`` (a bad address leaves no run behind), and size the
            # chunks and the task window by the cluster's threads rather than by ``jobs``
            client, _ = _dask_client(scheduler_address, scheduler_file, jobs)
            stack.callback(client.close)
            jobs = max(jobs, sum(client.nthreads().values()))
        return _sweep(config, n_dies, out, jobs=jobs, chunk_size=chunk_size, backend=backend,
                      client=client, stack=stack, store_voltages=store_voltages, resume=resume,
                      overwrite=overwrite, threshold=threshold, progress=progress)


def _sweep(config: Config, n_dies: int, out: Path, *, jobs: int, chunk_size: int | None, backend: str,
           client, stack: contextlib.ExitStack, store_voltages: str, resume: bool, overwrite: bool,
           threshold: float, progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    """:func:`run_sample` after its checks; ``client``: a connected dask client or None."""
    if chunk_size is None and resume and (out / "run.json").exists():
        from yieldmc.store import read_run_info

        chunk_size = int(read_run_info(out).get("chunk_size") or 0) or None
    chunk_size = chunk_size or default_chunk_size(n_dies, jobs)
    run_info = {"config": config.to_dict(), "seed": config.seed, "n_dies": n_dies,
                "chunk_size": chunk_size, "store_voltages": store_voltages,
                "device": config.device.model}
    store = RunStore.create(out, run_info, resume=resume, overwrite=overwrite)

    with _one_thread():  # as in the workers, where _chunk_task builds the model
        model = _run_model(config, store)
    spec = ModelSpec(config, str(store.network_path))
    _MODELS.clear()
    _MODELS[spec.key] = model  # the in-process path (jobs = 1) reuses it

    done = store.finished_chunks(verify=False)  # create() verified and repaired them
    todo = [c for c in range(store.n_chunks) if c not in done]
    n_done = sum(len(store.chunk_range(c)) for c in done)
    if progress:
        progress(n_done, n_dies)
    start = time.perf_counter()
    simulated = 0
    tasks = ((spec, store, c) for c in todo)
    if backend == "dask" and client is None and todo:  # a LocalCluster of ``jobs`` workers, for this run
        client, cluster = _dask_client(None, None, jobs)
        stack.callback(cluster.close)
        stack.callback(client.close)  # callbacks run last-in first-out: the client closes first
    if not todo:  # a finished run: start no workers
        runner = iter(())
    else:
        runner = _run_loky(tasks, jobs) if backend == "loky" else _run_dask(tasks, jobs, client)
    for record, _acc in runner:
        store.record_chunk(record)
        simulated += record.n_rows
        n_done += record.n_rows
        if progress:
            progress(n_done, n_dies)
    elapsed = time.perf_counter() - start

    table = load_dies(out, columns=["accuracy", "defect_type", "solver_converged"])
    acc = table["accuracy"].to_numpy()
    summary = {
        "out": str(out),
        "dies": int(len(acc)),
        "dies_simulated_now": simulated,
        "mean_accuracy": float(acc.mean()),
        "threshold": threshold,
        "yield": float(np.mean(acc >= threshold)),
        "software_accuracy": model.software_accuracy(),
        "fault_free_accuracy": model.fault_free_accuracy(),
        "unconverged_dies": int((~table["solver_converged"]).sum()),
        "device": config.device.model,
        "elapsed_s": elapsed,
        "dies_per_s": simulated / elapsed if simulated and elapsed > 0 else None,
        "jobs": jobs,
        "backend": backend,
        "chunk_size": chunk_size,
    }
    store.finish(summary)
    return summary
