"""Correct the dies of a finished run: per-die correctors or one population corrector.

The die table is never rewritten: results go to ``<run>/corrected/<mode>.parquet``, keyed
by ``die``, written atomically and recorded in the run's manifest (so that ``yieldmc sample
--overwrite`` knows yieldmc wrote them). The run is verified before anything is computed
(:func:`yieldmc.store.load_dies`: complete, checksums, unedited run.json), and its lock is
held while correcting, after checking that ``corrected/`` can be written at all. The dies'
voltages are recomputed from the run's config and network (a die is a pure function of
``(config, seed, die)``), so a run stored with ``--store-voltages test`` or ``none`` can be
corrected too.

* ``per-die``: every die gets its own corrector, trained on the output voltages it gives
  for the training images and scored on its test images (on-chip calibration). Many dies
  are fitted at once (:func:`yieldmc.corrector_batch.fit_predict_many`).
* ``population``: one corrector is trained on the training images' voltages of a random
  half of the selected dies and scored on the test images of the other half.

``sample=K`` corrects a uniform random subsample of K dies (seeded); yields computed on it
estimate the population's corrected yield with a binomial interval over K, not n_dies.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from yieldmc.config import from_dict
from yieldmc.errors import ConfigError
from yieldmc.runcheck import embedded_run_id
from yieldmc.store import CORRECTED_DIR, RunStore, load_dies, sha256_file

MODES = ("per-die", "population")
METHODS = ("rff-ridge", "linear-ridge", "mlp")
#: Dies whose voltages are computed and fitted together (memory: D x 1617 x 10 doubles).
BATCH_DIES = 64
#: Population mode: at most this many (die, image) rows train the one corrector.
POPULATION_MAX_ROWS = 20_000


def corrected_path(run: str | Path, mode: str) -> Path:
    """Where :func:`correct_run` writes the corrected accuracies of ``mode``."""
    return Path(run) / CORRECTED_DIR / f"{mode}.parquet"


def _select_dies(all_dies: np.ndarray, sample: int | None, seed: int) -> np.ndarray:
    if sample is None or sample >= len(all_dies):
        return np.sort(all_dies)
    if sample < 1:
        raise ConfigError(f"--sample must be a positive number of dies, got {sample}")
    rng = np.random.default_rng([seed, 0x5A3])  # its own stream, apart from the dies'
    return np.sort(rng.choice(all_dies, size=sample, replace=False))


def _voltages(model, dies: np.ndarray, which: tuple[str, ...]) -> list[np.ndarray]:
    """Output voltages (dies, images, outputs) for each image set; each die is made once."""
    xs = [model.images(w)[0] for w in which]
    out: list[list[np.ndarray]] = [[] for _ in which]
    for d in dies:
        for slot, v in zip(out, model.die_outputs(int(d), xs)[0], strict=True):
            slot.append(v)
    return [np.stack(v) for v in out]


def correct_run(
    run: str | Path,
    mode: str = "per-die",
    *,
    method: str = "rff-ridge",
    sample: int | None = None,
    seed: int = 0,
    hidden: tuple[int, ...] = (16,),
    overwrite: bool = False,
    verify: bool = True,
    progress: Callable[[int, int], None] | None = None,
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
    overwrite : bool
        Replace an existing ``corrected/<mode>.parquet`` (one that yieldmc wrote for this run).
    verify : bool
        Check the run's checksums and settings before reading it (``False``: sizes only).

    Returns
    -------
    dict
        Summary: dies corrected, mean accuracy before/after, elapsed, dies/s, output path.

    Raises
    ------
    ConfigError
        Bad arguments; the run is incomplete, damaged or edited (one line naming the file).
    RunLockedError
        Another process writes the run.
    StoreWriteError
        ``corrected/`` cannot be written (read-only run, full disk): raised before any
        die is computed.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads only oversubscribe the cores
        return _correct_run(run, mode, method=method, sample=sample, seed=seed, hidden=hidden,
                            overwrite=overwrite, verify=verify, progress=progress)


def _correct_run(run, mode, *, method, sample, seed, hidden, overwrite, verify, progress) -> dict[str, Any]:
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
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
                        progress=progress)


def _compute(store: RunStore, table, out: Path, mode: str, *, method, sample, seed, hidden,
             progress) -> dict[str, Any]:
    """Correct the dies of ``table`` (the run's verified die table) and write ``out``."""
    from yieldmc.corrector import MLPCorrector, n_parameters
    from yieldmc.corrector_batch import fit_predict_many
    from yieldmc.die import DieModel

    run, info = store.path, store.info
    config = from_dict(info["config"])
    model = DieModel.build(config, store.network_path)
    dies = _select_dies(table["die"].to_numpy(), sample, seed)
    before = table.set_index("die").loc[dies, "accuracy"].to_numpy()
    _, y_train = model.images("train")
    _, y_test = model.images("test")
    start = time.perf_counter()
    rows: dict[str, list] = {"die": [], "accuracy_corrected": [], "n_correct_corrected": [],
                             "role": []}
    if mode == "per-die":
        for b0 in range(0, len(dies), BATCH_DIES):
            batch = dies[b0:b0 + BATCH_DIES]
            v_train, v_test = _voltages(model, batch, ("train", "test"))
            pred = fit_predict_many(v_train, y_train, v_test, method=method,
                                    hidden=hidden, random_state=seed)
            n_ok = (pred == y_test).sum(axis=1)
            rows["die"] += batch.tolist()
            rows["n_correct_corrected"] += n_ok.tolist()
            rows["accuracy_corrected"] += (n_ok / len(y_test)).tolist()
            rows["role"] += ["corrected"] * len(batch)
            if progress:
                progress(b0 + len(batch), len(dies))
        n_params = _per_die_params(method, hidden, y_train, model)
    else:
        if len(dies) < 2:
            raise ConfigError("population mode needs at least 2 dies (half train, half evaluate)")
        perm = np.random.default_rng([seed, 0xC0]).permutation(len(dies))
        train_dies = np.sort(dies[perm[: len(dies) // 2]])
        eval_dies = np.sort(dies[perm[len(dies) // 2:]])
        per_die = max(1, POPULATION_MAX_ROWS // len(train_dies))
        img_rng = np.random.default_rng([seed, 0xC1])
        X, Y = [], []
        x_train, _ = model.images("train")
        for d in train_dies:
            pick = np.sort(img_rng.choice(len(y_train), size=min(per_die, len(y_train)), replace=False))
            X.append(model.die_outputs(int(d), [x_train[pick]])[0][0])
            Y.append(y_train[pick])
        corrector = MLPCorrector(hidden=hidden, random_state=seed).fit(np.concatenate(X), np.concatenate(Y))
        n_params = n_parameters(corrector)
        for i, d in enumerate(eval_dies):
            (v,) = _voltages(model, np.array([d]), ("test",))
            v = v[0]
            n_ok = int((corrector.predict(v) == y_test).sum())
            rows["die"].append(int(d))
            rows["n_correct_corrected"].append(n_ok)
            rows["accuracy_corrected"].append(n_ok / len(y_test))
            rows["role"].append("evaluated")
            if progress:
                progress(i + 1, len(eval_dies))
        before = table.set_index("die").loc[eval_dies, "accuracy"].to_numpy()
    elapsed = time.perf_counter() - start
    n_rows = len(rows["die"])
    tbl = pa.table({
        "die": pa.array(rows["die"], pa.int64()),
        "accuracy_corrected": pa.array(rows["accuracy_corrected"], pa.float64()),
        "n_correct_corrected": pa.array(rows["n_correct_corrected"], pa.int32()),
        "role": pa.array(rows["role"], pa.string()),
        "mode": pa.array([mode] * n_rows, pa.string()),
        "method": pa.array([method if mode == "per-die" else "mlp"] * n_rows, pa.string()),
        "corrector_params": pa.array([n_params] * n_rows, pa.int32()),
    })
    meta = {"run_id": info.get("run_id", ""), "mode": mode, "method": method,
            "sample": str(sample), "seed": str(seed), "hidden": ",".join(map(str, hidden)),
            "n_dies_run": str(len(table)), "n_dies_corrected": str(n_rows)}
    store.write_file(f"{CORRECTED_DIR}/{mode}.parquet", lambda tmp: pq.write_table(
        tbl.replace_schema_metadata({f"yieldmc.{k}": v for k, v in meta.items()}), tmp, compression="zstd"))
    after = np.asarray(rows["accuracy_corrected"])
    return {"run": str(run), "out": str(out), "mode": mode, "method": tbl["method"][0].as_py(),
            "dies_corrected": n_rows, "dies_in_run": int(len(table)),
            "mean_accuracy_before": float(before.mean()), "mean_accuracy_after": float(after.mean()),
            "corrector_params": int(n_params), "elapsed_s": elapsed,
            "dies_per_s": n_rows / elapsed if elapsed > 0 else None}


def _per_die_params(method: str, hidden, y_train, model) -> int:
    """Trainable parameters of one die's corrector for ``method``."""
    from yieldmc.corrector import MLPCorrector, RidgeCorrector, n_parameters

    x, _ = model.images("train")
    v = model.forward(model.T0, x[:200])
    y = y_train[:200]
    if method == "mlp":
        est = MLPCorrector(hidden=hidden, random_state=0, max_iter=5)
    else:
        est = RidgeCorrector(features="rff" if method == "rff-ridge" else "linear", random_state=0)
    return n_parameters(est.fit(v, y))


def load_corrected(run: str | Path, mode: str = "per-die", *, verify: bool = True):
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
