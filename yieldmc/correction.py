"""Correcting a finished run: per-die correctors or one population corrector, written beside the dies.

The corrector *models* are :mod:`yieldmc.correctors`; this module applies them to the dies of
a run. The die table is never rewritten: results go to ``<run>/corrected/<mode>.parquet``
(:data:`yieldmc.tables.CORRECTED_TABLE`), keyed by ``die``, written atomically and recorded in
the run's manifest (so that ``yieldmc sample --overwrite`` knows yieldmc wrote them). The run
is verified before anything is computed (:func:`yieldmc.store.load_dies`: complete,
checksums, unedited run.json), and its lock is held while correcting, after checking that
``corrected/`` can be written at all. The dies' voltages are recomputed from the run's config
and network (:func:`die_voltages`: a die is a pure function of ``(config, seed, die)``), so a
run stored with ``--store-voltages test`` or ``none`` can be corrected too.

* ``per-die``: every die gets its own corrector, trained on the output voltages it gives
  for the training images and scored on its test images (on-chip calibration). Many dies
  are fitted at once (:func:`correct_per_die`, :func:`yieldmc.correctors.fit_predict_many`).
* ``population``: one corrector is trained on the training images' voltages of a random
  half of the selected dies and scored on the test images of the other half.

``sample=K`` corrects a uniform random subsample of K dies (seeded); yields computed on it
estimate the population's corrected yield with a binomial interval over K, not n_dies.
The study (:mod:`yieldmc.reproduce`) uses :func:`die_voltages` and :func:`correct_per_die`.

**Calibration budget.** ``correct_per_die(..., n_calibration=K)`` trains every die's corrector
on K of the training images instead of all of them: the first K of
:func:`stratified_order` (per-class shuffles interleaved in proportion to the class sizes,
keyed by ``seed``), so every class is present, the subsample for K is contained in the one
for any larger K (nested budgets), and it is **the same images for every die** (as a fab
would calibrate every die on one stored image set), whatever the batch. ``K >= n_train``
is every training image, exactly as ``n_calibration=None``. :func:`correct_voltages` does the
same on voltages computed beforehand (:mod:`yieldmc.sweeps` simulates a population once and
corrects it at many budgets).
:func:`correct_run` takes the budget too (per-die mode only; ``yieldmc correct --calibration K``)
and records it in the corrected table's metadata as ``yieldmc.n_calibration``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from yieldmc.config import from_dict
from yieldmc.correctors import METHODS, MLPCorrector, fit_predict_many, method_parameters, n_parameters
from yieldmc.errors import ConfigError
from yieldmc.runcheck import embedded_run_id
from yieldmc.store import CORRECTED_DIR, RunStore, load_dies, sha256_file
from yieldmc.tables import CORRECTED_TABLE

if TYPE_CHECKING:
    import pandas as pd

    from yieldmc.die import DieModel

__all__ = ["BATCH_DIES", "METHODS", "MODES", "POPULATION_MAX_ROWS", "check_calibration", "correct_per_die",
           "correct_run", "correct_voltages", "corrected_path", "die_voltages", "load_corrected",
           "stratified_order", "stratified_subsample"]

MODES = ("per-die", "population")
#: Dies whose voltages are computed and fitted together (memory: D x 1617 x 10 doubles).
BATCH_DIES = 64
#: Population mode: at most this many (die, image) rows train the one corrector.
POPULATION_MAX_ROWS = 20_000
#: The columns of ``corrected/<mode>.parquet`` a writer fills (the others are the same on every row).
_ROW_COLUMNS = ("die", "accuracy_corrected", "n_correct_corrected", "role")
#: Tag of the calibration subsample's random stream (apart from the dies' and the correctors').
_CALIBRATION_TAG = 0xCA1


def corrected_path(run: str | Path, mode: str) -> Path:
    """Where :func:`correct_run` writes the corrected accuracies of ``mode``."""
    return Path(run) / CORRECTED_DIR / f"{mode}.parquet"


def die_voltages(model: DieModel, dies: Sequence[int], which: Sequence[str]) -> list[np.ndarray]:
    """Output voltages of ``dies`` for each image set of ``which``: the readable per-die path.

    Each die is made once (:meth:`yieldmc.die.DieModel.die_outputs`, float64, strict: a die
    whose circuit solve missed its tolerance raises :class:`~yieldmc.errors.SolverError`).

    Parameters
    ----------
    model : DieModel
        The design; die ``d`` is drawn from ``DieStream(config.seed, d)``.
    dies : sequence of int
        Die indices.
    which : sequence of str
        Image sets (``"train"``, ``"test"``).

    Returns
    -------
    list of ndarray
        One (len(dies), images, outputs) array in volts per image set.
    """
    xs = [model.images(w)[0] for w in which]
    out: list[list[np.ndarray]] = [[] for _ in which]
    for d in dies:
        for slot, v in zip(out, model.die_outputs(int(d), xs)[0], strict=True):
            slot.append(v)
    return [np.stack(v) for v in out]


def stratified_order(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """An order of the images whose every prefix is a stratified subsample.

    Each class's images are shuffled (``numpy.random.default_rng([seed, 0xCA1])``); the
    ``j``-th image of a class of ``n_c`` images gets the key ``j / n_c``, and the images are
    sorted by key (ties, among them the first image of every class at key 0, in a random
    class order). A prefix of length ``n >= n_classes`` therefore holds every class, and each
    class ``c`` about ``n * n_c / len(y)`` times (within a few images).

    Parameters
    ----------
    y : ndarray of int, shape (n_images,)
        Labels.
    seed : int
        Key of the shuffle.

    Returns
    -------
    ndarray of int64, shape (n_images,)
        A permutation of ``range(n_images)``.
    """
    y = np.asarray(y)
    rng = np.random.default_rng([int(seed), _CALIBRATION_TAG])
    classes = np.unique(y)
    tie = rng.permutation(len(classes))
    idx, key, tie_key = [], [], []
    for c, t in zip(classes, tie, strict=True):
        members = rng.permutation(np.flatnonzero(y == c))
        idx.append(members)
        key.append(np.arange(len(members)) / len(members))
        tie_key.append(np.full(len(members), t))
    idx, key, tie_key = np.concatenate(idx), np.concatenate(key), np.concatenate(tie_key)
    return idx[np.lexsort((tie_key, key))].astype(np.int64)


def check_calibration(n_calibration, y: np.ndarray) -> int | None:
    """Validate a calibration budget against labels ``y``: None, or an int >= the classes.

    Raises
    ------
    ConfigError
        Not an integer, or fewer images than classes (a corrector must see every class).
    """
    if n_calibration is None:
        return None
    n_classes = len(np.unique(y))
    if isinstance(n_calibration, bool) or not isinstance(n_calibration, (int, np.integer)):
        raise ConfigError(f"n_calibration must be an integer number of training images, got {n_calibration!r}")
    if n_calibration < n_classes:
        raise ConfigError(f"n_calibration must be at least the number of classes ({n_classes}) so that every "
                          f"class is seen, got {n_calibration}")
    return int(n_calibration)


def stratified_subsample(y: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Indices of a stratified subsample of ``n`` images: the first ``n`` of :func:`stratified_order`.

    Nested: the subsample for ``n`` lies inside the one for any larger ``n`` (same ``seed``).

    Parameters
    ----------
    y : ndarray of int, shape (n_images,)
        Labels.
    n : int or None
        Subsample size, at least the number of classes; None or ``n >= n_images`` means every
        image (``arange(n_images)``, in order).
    seed : int
        Key of the subsample.

    Returns
    -------
    ndarray of int64
        Sorted image indices.

    Raises
    ------
    ConfigError
        ``n`` is not an integer or is below the number of classes.

    Examples
    --------
    >>> y = np.repeat(np.arange(3), 4)
    >>> idx = stratified_subsample(y, 6, seed=0)
    >>> len(idx), np.bincount(y[idx]).tolist()
    (6, [2, 2, 2])
    """
    n = check_calibration(n, y)
    if n is None or n >= len(y):
        return np.arange(len(y), dtype=np.int64)
    return np.sort(stratified_order(y, seed)[:n])


def correct_voltages(v_train: np.ndarray, y_train: np.ndarray, v_test: np.ndarray, y_test: np.ndarray, *,
                     method: str = "rff-ridge", hidden: tuple[int, ...] = (16,), seed: int = 0,
                     n_calibration: int | None = None, n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """:func:`correct_per_die` on voltages computed beforehand (a stack of dies).

    Parameters
    ----------
    v_train : ndarray, shape (D, n_train, outputs)
        Volts of D dies for the training images.
    y_train : ndarray, shape (n_train,)
    v_test : ndarray, shape (D, n_test, outputs)
    y_test : ndarray, shape (n_test,)
    method, hidden, seed, n_calibration
        As in :func:`correct_per_die`.
    n_jobs : int
        joblib workers: processes for ``"mlp"``, threads over blocks of dies for the ridge
        methods (:func:`~yieldmc.correctors.fit_predict_many`; results do not depend on it).

    Returns
    -------
    n_correct_before, n_correct_after : ndarray of int64, shape (D,)
    """
    pick = stratified_subsample(y_train, n_calibration, seed)
    if len(pick) < len(y_train):
        v_train, y_train = v_train[:, pick], y_train[pick]
    before = (v_test.argmax(axis=2) == y_test).sum(axis=1)
    pred = fit_predict_many(v_train, y_train, v_test, method=method, hidden=hidden, random_state=seed,
                            n_jobs=n_jobs)
    return before.astype(np.int64), (pred == y_test).sum(axis=1).astype(np.int64)


def correct_per_die(model: DieModel, dies: Sequence[int], *, method: str = "rff-ridge",
                    hidden: tuple[int, ...] = (16,), seed: int = 0, batch: int = BATCH_DIES,
                    n_calibration: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Give every die its own corrector: trained on its training voltages, scored on its test images.

    Dies are simulated (:func:`die_voltages`) and fitted ``batch`` at a time
    (:func:`correct_voltages`, :func:`~yieldmc.correctors.fit_predict_many`); a die's result
    does not depend on the batch it is in.

    Parameters
    ----------
    model : DieModel
    dies : sequence of int
    method : {"rff-ridge", "linear-ridge", "mlp"}
    hidden : tuple of int
        MLP hidden layer sizes (``"mlp"`` only).
    seed : int
        ``random_state`` of every die's corrector, and key of the calibration subsample.
    batch : int
        Dies per batch (memory: batch x train images x outputs doubles).
    n_calibration : int, optional
        Training images each die's corrector sees: the stratified, nested subsample
        :func:`stratified_subsample` ``(y_train, n_calibration, seed)``, the same images for
        every die. None (default) or at least the number of training images: all of them.
    progress : callable, optional
        Called as ``progress(dies done, dies)`` after each batch.

    Returns
    -------
    n_correct_before, n_correct_after : ndarray of int64, shape (len(dies),)
        Test images each die classifies correctly by the raw argmax of its voltages, and
        after correction.

    Raises
    ------
    ConfigError
        ``n_calibration`` is not an integer or is below the number of classes (checked
        before any die is simulated).
    """
    dies = np.asarray(dies, dtype=np.int64)
    _, y_train = model.images("train")
    _, y_test = model.images("test")
    check_calibration(n_calibration, y_train)
    before, after = [], []
    for b0 in range(0, len(dies), batch):
        part = dies[b0:b0 + batch]
        v_train, v_test = die_voltages(model, part, ("train", "test"))
        b, a = correct_voltages(v_train, y_train, v_test, y_test, method=method, hidden=hidden, seed=seed,
                                n_calibration=n_calibration)
        before.append(b)
        after.append(a)
        if progress:
            progress(b0 + len(part), len(dies))
    empty = [np.zeros(0, np.int64)]
    return np.concatenate(before or empty).astype(np.int64), np.concatenate(after or empty).astype(np.int64)


def correct_run(
    run: str | Path,
    mode: str = "per-die",
    *,
    method: str = "rff-ridge",
    sample: int | None = None,
    seed: int = 0,
    hidden: tuple[int, ...] = (16,),
    n_calibration: int | None = None,
    overwrite: bool = False,
    verify: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train correctors for the dies of a run and store the corrected accuracy per die.

    Parameters
    ----------
    run : path
        A run directory written by ``yieldmc sample``.
    mode : {"per-die", "population"}
    method : {"rff-ridge", "linear-ridge", "mlp"}
        Corrector of the per-die mode (population mode always uses an MLP corrector).
    sample : int, optional
        Correct a random subsample of this many dies (seeded by ``seed``).
    hidden : tuple of int
        MLP hidden layer sizes.
    n_calibration : int, optional
        Per-die mode only: the labelled training images each die's corrector sees (the
        calibration budget of :func:`correct_per_die`, at least the number of classes); None
        (default) or at least the training images: all of them. Recorded in the file's
        metadata (``yieldmc.n_calibration``) and the summary.
    overwrite : bool
        Replace an existing ``corrected/<mode>.parquet`` (one that yieldmc wrote for this run).
    verify : bool
        Check the run's checksums and settings before reading it (``False``: sizes only).
    progress : callable, optional
        Called as ``progress(dies done, dies)``.
    cache_dir : path, optional
        Where the image data is cached (:func:`yieldmc.cache.obtain_dataset`; default
        :func:`yieldmc.cache.default_cache_dir`); the network is the run's own.

    Returns
    -------
    dict
        Summary: dies corrected, mean accuracy before/after, elapsed, dies/s, output path.

    Raises
    ------
    ConfigError
        Bad arguments (``n_calibration`` with population mode, or below the number of
        classes); the run is incomplete, damaged or edited (one line naming the file).
    RunLockedError
        Another process writes the run.
    StoreWriteError
        ``corrected/`` cannot be written (read-only run, full disk): raised before any
        die is computed.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads only oversubscribe the cores
        return _correct_run(run, mode, method=method, sample=sample, seed=seed, hidden=hidden,
                            n_calibration=n_calibration, overwrite=overwrite, verify=verify, progress=progress,
                            cache_dir=cache_dir)


def _correct_run(run, mode, *, method, sample, seed, hidden, n_calibration, overwrite, verify, progress,
                 cache_dir) -> dict[str, Any]:
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if n_calibration is not None and mode != "per-die":
        raise ConfigError(f"--calibration is the training images of each die's own corrector: it goes with "
                          f"--mode per-die, not --mode {mode}")
    run = Path(run)
    store = RunStore.open(run)
    rel = f"{CORRECTED_DIR}/{mode}.parquet"
    out = corrected_path(run, mode)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    table = load_dies(run, columns=["die", "accuracy"], verify=verify)
    if table.empty:
        raise ConfigError(f"{run} has no finished dies to correct")
    with store.locked("correct", again=f"run `yieldmc correct {run} --mode {mode}` again"):
        store.check_writable(CORRECTED_DIR)  # a read-only run fails here, before any die is computed
        if os.path.lexists(out) and not store.wrote(rel):
            raise ConfigError(f"{out} was not written by `yieldmc correct` for this run; move it away and run again")
        return _compute(store, table, out, mode, method=method, sample=sample, seed=seed, hidden=hidden,
                        n_calibration=n_calibration, progress=progress, cache_dir=cache_dir)


def _select_dies(all_dies: np.ndarray, sample: int | None, seed: int) -> np.ndarray:
    if sample is None or sample >= len(all_dies):
        return np.sort(all_dies)
    if sample < 1:
        raise ConfigError(f"--sample must be a positive number of dies, got {sample}")
    rng = np.random.default_rng([seed, 0x5A3])  # its own stream, apart from the dies'
    return np.sort(rng.choice(all_dies, size=sample, replace=False))


def _compute(store: RunStore, table: pd.DataFrame, out: Path, mode: str, *, method: str, sample: int | None,
             seed: int, hidden: tuple[int, ...], n_calibration: int | None, progress,
             cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Correct the dies of ``table`` (the run's verified die table) and write ``out``."""
    from yieldmc.die import DieModel

    info = store.info
    model = DieModel.build(from_dict(info["config"]), store.network_path, cache_dir=cache_dir)
    try:  # before any die is simulated, with the option's name
        check_calibration(n_calibration, model.images("train")[1])
    except ConfigError as exc:
        raise ConfigError(f"--calibration {n_calibration!r}: {exc}") from None
    dies = _select_dies(table["die"].to_numpy(), sample, seed)
    n_test = len(model.images("test")[1])
    start = time.perf_counter()
    if mode == "per-die":
        _, n_ok = correct_per_die(model, dies, method=method, hidden=hidden, seed=seed, n_calibration=n_calibration,
                                  progress=progress)
        rows, role, n_params = dies, "corrected", _per_die_params(model, method, hidden)
    else:
        rows, n_ok, n_params = _population(model, dies, hidden=hidden, seed=seed, progress=progress)
        role = "evaluated"
    elapsed = time.perf_counter() - start
    before = table.set_index("die").loc[rows, "accuracy"].to_numpy()
    after = n_ok / n_test
    used = method if mode == "per-die" else "mlp"
    tbl = CORRECTED_TABLE.build({
        "die": rows, "accuracy_corrected": after, "n_correct_corrected": n_ok, "role": [role] * len(rows),
        "mode": [mode] * len(rows), "method": [used] * len(rows), "corrector_params": [n_params] * len(rows),
    }, metadata={f"yieldmc.{k}": v for k, v in {
        "run_id": info.get("run_id", ""), "mode": mode, "method": method, "sample": str(sample),
        "seed": str(seed), "hidden": ",".join(map(str, hidden)), "n_calibration": str(n_calibration),
        "n_dies_run": str(len(table)), "n_dies_corrected": str(len(rows))}.items()})
    store.write_file(f"{CORRECTED_DIR}/{mode}.parquet",
                     lambda tmp: pq.write_table(tbl, tmp, compression="zstd"))
    return {"run": str(store.path), "out": str(out), "mode": mode, "method": used,
            "dies_corrected": len(rows), "dies_in_run": int(len(table)),
            "mean_accuracy_before": float(before.mean()), "mean_accuracy_after": float(after.mean()),
            "corrector_params": int(n_params), "n_calibration": n_calibration, "elapsed_s": elapsed,
            "dies_per_s": len(rows) / elapsed if elapsed > 0 else None}


def _population(model: DieModel, dies: np.ndarray, *, hidden: tuple[int, ...], seed: int,
                progress) -> tuple[np.ndarray, np.ndarray, int]:
    """Population mode: one MLP trained on half the dies; (evaluated dies, their n_correct, parameters)."""
    if len(dies) < 2:
        raise ConfigError("population mode needs at least 2 dies (half train, half evaluate)")
    perm = np.random.default_rng([seed, 0xC0]).permutation(len(dies))
    train_dies = np.sort(dies[perm[: len(dies) // 2]])
    eval_dies = np.sort(dies[perm[len(dies) // 2:]])
    per_die = max(1, POPULATION_MAX_ROWS // len(train_dies))
    img_rng = np.random.default_rng([seed, 0xC1])
    x_train, y_train = model.images("train")
    _, y_test = model.images("test")
    X, Y = [], []
    for d in train_dies:
        pick = np.sort(img_rng.choice(len(y_train), size=min(per_die, len(y_train)), replace=False))
        X.append(model.die_outputs(int(d), [x_train[pick]])[0][0])
        Y.append(y_train[pick])
    corrector = MLPCorrector(hidden=hidden, random_state=seed).fit(np.concatenate(X), np.concatenate(Y))
    n_ok = []
    for i, d in enumerate(eval_dies):
        (v,) = die_voltages(model, [d], ("test",))
        n_ok.append(int((corrector.predict(v[0]) == y_test).sum()))
        if progress:
            progress(i + 1, len(eval_dies))
    return eval_dies, np.asarray(n_ok, dtype=np.int64), n_parameters(corrector)


def _per_die_params(model: DieModel, method: str, hidden: tuple[int, ...]) -> int:
    """Trainable parameters of one die's corrector, counted on the fault-free die's voltages."""
    x, y = model.images("train")
    return method_parameters(method, model.forward(model.T0, x[:200]), y[:200], hidden=hidden)


def load_corrected(run: str | Path, mode: str = "per-die", *, verify: bool = True) -> pd.DataFrame:
    """The corrected accuracies of ``mode`` as a DataFrame.

    With ``verify``, the file must match the sha256 the run's manifest recorded for it (runs
    corrected by an older yieldmc record none) and name the run's id in its metadata.

    Raises
    ------
    ConfigError
        The file is absent, changed since it was written, or of another run (one line).
    """
    path = corrected_path(run, mode)
    again = f"run `yieldmc correct {run} --mode {mode} --overwrite` again"
    if not path.exists():
        raise ConfigError(f"{path} does not exist; run `yieldmc correct {run} --mode {mode}` first")
    if verify:
        store = RunStore.open(run)
        meta = store.manifest["files"].get(f"{CORRECTED_DIR}/{mode}.parquet")
        if meta is not None and (path.stat().st_size != meta["bytes"] or sha256_file(path) != meta["sha256"]):
            raise ConfigError(f"{path} does not match its sha256 checksum in the run's manifest (corrupted or "
                              f"changed); {again}")
        owner = embedded_run_id(path)
        if owner is None:
            raise ConfigError(f"{path} cannot be read as a Parquet file (corrupted?); {again}")
        if owner != store.run_id:
            raise ConfigError(f"{path} was written for run {owner or '?'}, not for the run in {run} "
                              f"({store.run_id}); {again}")
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as exc:  # unverified and damaged: one line, not a traceback
        raise ConfigError(f"cannot read {path}: {exc}; {again}") from None
