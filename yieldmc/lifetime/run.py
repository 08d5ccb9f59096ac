"""``yieldmc lifetime``: the dies of a finished run, followed from test to end of life.

For each die of the run (its defects at test, ``t_0``, are the run's), at checkpoints
``t_0 < t_1 < ... < t_K``: the faults grown since ``t_0`` (:mod:`~yieldmc.lifetime.faults`),
the drifted circuit solved by the exact update route (:mod:`~yieldmc.lifetime.circuit`), the
output voltages of the test images, of the calibration images and of the on-line stream, and
the accuracy of every correction policy (:mod:`~yieldmc.lifetime.policies`). Rows, one per
(die, checkpoint), go to ``<run>/lifetime/part-NNNNN.parquet`` (one part per chunk of dies,
atomic, recorded in the run's manifest) beside ``<run>/lifetime/lifetime.json`` (the settings,
the checkpoint times, and the summary once complete). An interrupted lifetime resumes
(``resume=True``): the settings must be the same, finished parts are kept.

The images: the calibration set is the first ``budget`` training images of
:func:`yieldmc.correction.stratified_order` (every class present: the budget must be at least
the number of classes, :func:`check_budget`; the same images for every
die and checkpoint); checkpoint ``c >= 1``'s stream is the next ``stream`` images after the
ones already streamed (cycling through the training set). Results depend on the run, the
settings and the dies only: not on ``jobs`` or ``chunk_dies``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from yieldmc.errors import ConfigError
from yieldmc.lifetime.circuit import (
    NUMBA_LOCK,
    CheckpointCircuit,
    check_lifetime_design,
    checkpoint_transfers,
    drift_factor,
    forward_many,
)
from yieldmc.lifetime.faults import YEAR_S, FaultModel, codes_at, fault_history
from yieldmc.lifetime.policies import PolicyRun, PolicySettings
from yieldmc.runformat import LIFETIME_DIR, part_name

SETTINGS_FILE = "lifetime.json"
#: Dies per part (one chunk of work; memory about dies x 430 images x outputs x checkpoints).
CHUNK_DIES = 64
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0, "y": YEAR_S}
_DURATION = re.compile(r"\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([smhdwy]?)\s*")


def parse_duration(text: str | float) -> float:
    """Seconds of a duration: a number of seconds or a number with a unit ``s m h d w y``
    (``y`` = 365.25 days), e.g. ``3600``, ``1h``, ``10y``, ``2.5e3d``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _DURATION.fullmatch(str(text))
        if not m:
            raise ConfigError(f"a duration is a number of seconds or a number with a unit (s, m, h, d, w, y), "
                              f"e.g. 10y; got {text!r}")
        value = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"a duration must be finite and > 0, got {text!r}")
    return value


def checkpoint_times(t0_s: float, t_end_s: float, checkpoints: int) -> np.ndarray:
    """``K + 1`` log-spaced times from ``t0_s`` to ``t_end_s`` (s), ``K = checkpoints``."""
    if isinstance(checkpoints, bool) or not isinstance(checkpoints, (int, np.integer)) or checkpoints < 1:
        raise ConfigError(f"--checkpoints must be an integer >= 1, got {checkpoints!r}")
    if not t_end_s > t0_s:
        raise ConfigError(f"--t-end ({t_end_s:g} s) must come after --t0 ({t0_s:g} s)")
    return np.geomspace(t0_s, t_end_s, int(checkpoints) + 1)


def check_times(times: Sequence[float]) -> np.ndarray:
    """Checkpoint times (s) as given: finite, > 0, strictly increasing, at least two."""
    t = np.asarray([parse_duration(x) for x in times], dtype=np.float64)
    if t.size < 2:
        raise ConfigError(f"give at least two checkpoint times (t0 and a later one), got {t.size}")
    if np.any(np.diff(t) <= 0):
        i = int(np.argmax(np.diff(t) <= 0))
        raise ConfigError(f"checkpoint times must increase: {t[i + 1]:g} s follows {t[i]:g} s")
    return t


@dataclass(frozen=True)
class LifetimeSettings:
    """Everything a lifetime depends on besides the run (see the package docs).

    Attributes
    ----------
    times_s : tuple of float
        Checkpoint times ``t_0 .. t_K`` (s, increasing); ``t_0`` is the die's test.
    drift_nu : float
        Drift exponent of the programmed cells, ``G(t) = G(t_0) (t / t_0)^-nu`` (>= 0).
    faults : FaultModel
    policies : PolicySettings
    threshold : float
        Accuracy a die needs to count as good (yield, time to failure).
    """

    times_s: tuple[float, ...]
    drift_nu: float = 0.01
    faults: FaultModel = field(default_factory=FaultModel)
    policies: PolicySettings = field(default_factory=PolicySettings)
    threshold: float = 0.8

    def __post_init__(self) -> None:
        object.__setattr__(self, "times_s", tuple(float(t) for t in check_times(self.times_s)))
        if not (isinstance(self.drift_nu, (int, float)) and 0 <= self.drift_nu < math.inf):
            raise ConfigError(f"--drift-nu must be a finite number >= 0, got {self.drift_nu!r}")
        if not (isinstance(self.threshold, (int, float)) and 0 <= self.threshold <= 1):
            raise ConfigError(f"--threshold must lie in [0, 1], got {self.threshold!r}")

    def as_dict(self) -> dict:
        return {"times_s": list(self.times_s), "drift_nu": self.drift_nu, "faults": self.faults.as_dict(),
                "policies": self.policies.as_dict(), "threshold": self.threshold}

    @property
    def ages_s(self) -> np.ndarray:
        return np.asarray(self.times_s) - self.times_s[0]

    @property
    def drift_factors(self) -> np.ndarray:
        return np.asarray(drift_factor(np.asarray(self.times_s), self.times_s[0], self.drift_nu))


# --- the work ---------------------------------------------------------------------------------
def check_budget(policies: PolicySettings, y_train: np.ndarray) -> None:
    """A calibration (when a policy calibrates) needs at least one image of every class."""
    n_classes = np.unique(y_train).size
    if policies.labelled and policies.budget < n_classes:
        raise ConfigError(f"--budget {policies.budget}: a calibration needs at least one image of each of the "
                          f"{n_classes} classes")


class LifetimeContext:
    """What every chunk of a lifetime shares, built once: the model, its compiled design at
    ``t_0`` (the run's defects), the checkpoints' circuits (one drifted inverse per checkpoint
    and array, built in ``jobs`` threads) and the test, calibration and stream images."""

    def __init__(self, model, settings: LifetimeSettings, jobs: int = 1) -> None:
        from yieldmc.correction import stratified_order
        from yieldmc.engine.chunk import design_for

        self.model, self.settings = model, settings
        self.design = design_for(model, ("test",))
        self.shapes = [tuple(int(v) for v in s) for s in self.design.shapes]
        self.cell_off = self.design.cell_off
        from threadpoolctl import threadpool_limits

        factors = sorted(set(float(f) for f in settings.drift_factors))  # one circuit per distinct drift
        with threadpool_limits(1), ThreadPoolExecutor(max_workers=jobs) as pool:  # LAPACK releases the GIL
            built = dict(zip(factors, pool.map(lambda f: CheckpointCircuit.build(model, f), factors), strict=True))
        self.circuits = [built[float(f)] for f in settings.drift_factors]
        self.x_test, self.y_test = model.images("test")
        x_train, y_train = model.images("train")
        p = settings.policies
        check_budget(p, y_train)
        order = stratified_order(y_train, p.seed)
        cal = order[:min(p.budget, order.size)]
        self.x_cal, self.y_cal = x_train[cal], y_train[cal]
        self.streams = []
        for c in range(1, len(settings.times_s)):
            pick = order[(p.budget + (c - 1) * p.stream + np.arange(p.stream)) % order.size]
            self.streams.append((x_train[pick], y_train[pick]))

    def affected(self, dies: np.ndarray):
        if self.model.config.wafer.enabled:
            return self.model.wafer_dies(dies).affected
        return None


def _chunk_rows(ctx: LifetimeContext, dies: np.ndarray) -> tuple[pa.Table, dict]:
    """The (die, checkpoint) rows of one chunk of dies."""
    from yieldmc.engine.chunk import simulate_chunk_compiled

    s = ctx.settings
    with NUMBA_LOCK:
        t0 = simulate_chunk_compiled(ctx.design, dies, affected=ctx.affected(dies), keep_masks=True, n_blocks=1)
        ages, codes = fault_history(s.faults, ctx.design.seed, dies, t0.masks, ctx.shapes, ctx.cell_off)
    n_t0 = np.count_nonzero(t0.masks, axis=1)
    run = PolicyRun(s.policies, ctx.y_test, ctx.y_cal)
    pol = s.policies.policies
    # only the images some policy reads: the calibration inputs (every corrected policy), the stream (online)
    n_test, n_cal = len(ctx.y_test), len(ctx.y_cal) if s.policies.labelled else 0
    streaming = "online" in pol
    parts: dict[str, list] = {}
    routes = {"same": 0, "update": 0, "solve": 0}
    for c, (t, age, circuit) in enumerate(zip(s.times_s, s.ages_s, ctx.circuits, strict=True)):
        now = codes_at(ages, codes, float(age))
        transfers, r = checkpoint_transfers(circuit, now, ctx.cell_off)
        for k in routes:
            routes[k] += r[k]
        xs = [ctx.x_test, ctx.x_cal[:n_cal]] + ([ctx.streams[c - 1][0]] if c and streaming else [])
        V = forward_many(ctx.model, transfers, np.concatenate(xs))
        stream = (V[:, n_test + n_cal:], ctx.streams[c - 1][1]) if c and streaming else (None, None)
        out = run.step(c, V[:, :n_test], V[:, n_test:n_test + n_cal], *stream)
        if c == 0:  # raw accuracy at t0, whatever the policies: the check against the run's table
            raw_t0 = (V[:, :n_test].argmax(axis=2) == ctx.y_test[None, :]).sum(axis=1)
        n_stuck = np.count_nonzero(now, axis=1)
        cols = {"die": dies, "checkpoint": np.full(dies.size, c, np.int16), "time_s": np.full(dies.size, t),
                "drift_factor": np.full(dies.size, circuit.factor), "n_stuck": n_stuck.astype(np.int32),
                "n_new_faults": (n_stuck - n_t0).astype(np.int32), "fault_fraction": n_stuck / now.shape[1], **out}
        for k, v in cols.items():
            parts.setdefault(k, []).append(np.asarray(v))
    table = pa.table({k: np.concatenate(v) for k, v in parts.items()})
    order = np.lexsort((table["checkpoint"].to_numpy(), table["die"].to_numpy()))
    return table.take(pa.array(order)), {"routes": routes, "dies": dies, "t0_correct": raw_t0}


# --- the run directory ------------------------------------------------------------------------
def lifetime_dir(run: str | Path) -> Path:
    return Path(run) / LIFETIME_DIR


def _chunks(dies: np.ndarray, chunk_dies: int) -> list[np.ndarray]:
    return [dies[i:i + chunk_dies] for i in range(0, dies.size, chunk_dies)]


def run_lifetime(run: str | Path, settings: LifetimeSettings, *, n_dies: int | None = None,
                 chunk_dies: int = CHUNK_DIES, jobs: int = 1, resume: bool = False, overwrite: bool = False,
                 progress: Callable[[int, int], None] | None = None,
                 log: Callable[[str], None] | None = None, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Follow the dies of a finished run through their lifetime and store the rows.

    Parameters
    ----------
    run : path
        A complete run of ``yieldmc sample`` (verified before anything is computed).
    settings : LifetimeSettings
    n_dies : int, optional
        Follow the first ``n_dies`` dies of the run (default: all).
    chunk_dies : int
        Dies per part file (does not change the results).
    jobs : int
        Chunks computed at once (threads).
    resume, overwrite : bool
        Continue an interrupted lifetime with the same settings / replace an existing one.
    progress : callable, optional
        ``progress(dies done, dies)``.
    log : callable, optional
        Notices and warnings (one line each).

    Returns
    -------
    dict
        The summary (also stored in ``lifetime.json``): yield per policy at ``t_0`` and at the
        end of life with Wilson intervals, labelled images and training MFLOP per die, routes
        of the transfer matrices, elapsed time.

    Raises
    ------
    ConfigError
        Bad settings, a run that is incomplete or outside the lifetime's scope, an existing
        lifetime without ``resume``/``overwrite``, or one with other settings on ``resume``.
    """
    from threadpoolctl import threadpool_limits

    from yieldmc.config import from_dict
    from yieldmc.die import DieModel
    from yieldmc.runcheck import load_dies
    from yieldmc.store import RunStore

    say = log or (lambda m: None)
    if isinstance(chunk_dies, bool) or not isinstance(chunk_dies, (int, np.integer)) or chunk_dies < 1:
        raise ConfigError(f"--chunk-dies must be an integer >= 1, got {chunk_dies!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ConfigError(f"--jobs must be an integer >= 1 (or -1: all cores), got {jobs!r}")
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    run = Path(run)
    store = RunStore.open(run)
    config = from_dict(store.info["config"])
    check_lifetime_design(config)
    table = load_dies(run, columns=["die", "n_correct"])
    if table.empty:
        raise ConfigError(f"{run} has no finished dies")
    dies = table["die"].to_numpy(dtype=np.int64)
    if n_dies is not None:
        if isinstance(n_dies, bool) or not isinstance(n_dies, (int, np.integer)) or not 1 <= n_dies:
            raise ConfigError(f"--dies must be an integer >= 1, got {n_dies!r}")
        if n_dies > dies.size:
            raise ConfigError(f"--dies {n_dies}: the run has {dies.size} dies")
        dies = dies[:n_dies]
    head = {"run_id": store.run_id, "settings": settings.as_dict(), "dies": int(dies.size),
            "chunk_dies": int(chunk_dies)}
    head["digest"] = _digest(head)
    folder = lifetime_dir(run)
    chunks = _chunks(dies, int(chunk_dies))
    model = DieModel.build(config, store.network_path, cache_dir=cache_dir)
    check_budget(settings.policies, model.images("train")[1])  # before anything is written
    with store.locked("lifetime", again=f"run `yieldmc lifetime {run} --resume` again"):
        store.check_writable(LIFETIME_DIR)
        done = _prepare(store, folder, head, len(chunks), resume, overwrite)
        start = time.perf_counter()
        ctx = LifetimeContext(model, settings, int(jobs))
        say(f"{len(settings.times_s)} checkpoints, {dies.size} dies, {len(chunks) - len(done)} of {len(chunks)} "
            f"parts to compute (inverses built in {time.perf_counter() - start:.1f} s)")
        todo = [c for c in range(len(chunks)) if c not in done]
        finished = sum(chunks[c].size for c in done)
        if progress:
            progress(finished, dies.size)
        routes = {"same": 0, "update": 0, "solve": 0}
        run_correct = table.set_index("die")["n_correct"]
        mismatches = 0
        pool = ThreadPoolExecutor(max_workers=int(jobs))
        try:
            with threadpool_limits(1):
                for c, (tbl, info) in zip(todo, pool.map(lambda c: _chunk_rows(ctx, chunks[c]), todo), strict=True):
                    tbl = tbl.replace_schema_metadata({"yieldmc.run_id": store.run_id, "yieldmc.part": str(c),
                                                       "yieldmc.digest": head["digest"]})
                    store.write_file(f"{LIFETIME_DIR}/{part_name(c, 'parquet')}",
                                     lambda tmp, tbl=tbl: pq.write_table(tbl, tmp, compression="zstd"))
                    for k in routes:
                        routes[k] += info["routes"][k]
                    mismatches += int(np.count_nonzero(run_correct.loc[info["dies"]].to_numpy() != info["t0_correct"]))
                    finished += chunks[c].size
                    if progress:
                        progress(finished, dies.size)
        finally:  # Ctrl-C or an error: the chunks not yet started are dropped, not computed
            pool.shutdown(wait=True, cancel_futures=True)
        elapsed = time.perf_counter() - start
        df = load_lifetime(run, allow_partial=True)
        summary = lifetime_summary(df, settings) | {
            "elapsed_s": elapsed, "dies_per_s": (sum(chunks[c].size for c in todo) / elapsed) if todo else None,
            "routes_this_call": routes, "t0_mismatches_this_call": mismatches}
        if mismatches:
            say(f"warning: {mismatches} dies classify a different number of test images at t0 than in the run's table")
        _write_settings(store, head | {"status": "complete", "summary": summary})
    return summary


def _digest(head: dict) -> str:
    """sha256 of what a lifetime's rows depend on (run, settings, dies, chunking)."""
    return hashlib.sha256(json.dumps(head, sort_keys=True, default=float).encode()).hexdigest()


def _part_digest(path: Path) -> str | None:
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = meta.get(b"yieldmc.digest")
    return value.decode() if value else None


def _prepare(store, folder: Path, head: dict, n_parts: int, resume: bool, overwrite: bool) -> set[int]:
    """Check what is there; return the parts already done (``resume``). Parts of another
    lifetime (other settings, dies, chunking or run) are never counted as done."""
    path = folder / SETTINGS_FILE
    parts = sorted(folder.glob("part-*.parquet"))
    foreign = [p for p in parts if not store.wrote(f"{LIFETIME_DIR}/{p.name}")]
    if foreign:
        raise ConfigError(f"{foreign[0]} was not written by `yieldmc lifetime` for this run; move it away")
    if path.exists() and not store.wrote(f"{LIFETIME_DIR}/{SETTINGS_FILE}"):
        raise ConfigError(f"{path} was not written by `yieldmc lifetime` for this run; move it away")
    if resume:
        if not path.exists():
            raise ConfigError(f"--resume: {folder} holds no lifetime to finish")
        old = json.loads(path.read_text())
        if old.get("digest") != head["digest"]:
            raise ConfigError(f"--resume: {path} was made with other settings (or dies, or --chunk-dies); "
                              "give the same ones, or --overwrite")
        names = {part_name(c, "parquet"): c for c in range(n_parts)}
        done = {names[p.name] for p in parts if p.name in names and _part_digest(p) == head["digest"]}
        for p in parts:  # a part of another lifetime, left by a crash: computed again
            if p.name not in names or names[p.name] not in done:
                p.unlink()
        return done
    if (path.exists() or parts) and not overwrite:
        raise ConfigError(f"{folder} holds a lifetime already; pass --resume to finish it or --overwrite "
                          "to replace it")
    _write_settings(store, head | {"status": "running"})  # first: a crash below leaves "running"
    for p in parts:
        p.unlink()
    return set()


def _write_settings(store, obj: dict) -> None:
    text = json.dumps(obj, indent=1, default=float)
    store.write_file(f"{LIFETIME_DIR}/{SETTINGS_FILE}", lambda tmp: tmp.write_text(text))


def read_settings(run: str | Path) -> dict:
    """``lifetime.json`` of a run, checked against the run (ConfigError naming the fix)."""
    from yieldmc.runformat import read_run_info

    path = lifetime_dir(run) / SETTINGS_FILE
    if not path.exists():
        raise ConfigError(f"{run} has no lifetime; run `yieldmc lifetime {run}` first")
    info = json.loads(path.read_text())
    if info.get("run_id") != read_run_info(run).get("run_id"):
        raise ConfigError(f"the lifetime in {lifetime_dir(run)} belongs to an earlier run in {run} (the run was "
                          f"replaced); run `yieldmc lifetime {run} --overwrite`")
    return info


def load_lifetime(run: str | Path, *, allow_partial: bool = False) -> pd.DataFrame:
    """The (die, checkpoint) rows of a run's lifetime, sorted by die then checkpoint.

    Every part must carry the digest of ``lifetime.json`` (its settings, dies and chunking)
    and, unless ``allow_partial``, the lifetime must be complete with every part present.

    Raises
    ------
    ConfigError
        No lifetime, one of an earlier run, an unfinished one, or parts missing or foreign.
    """
    info = read_settings(run)
    if info.get("status") != "complete" and not allow_partial:
        raise ConfigError(f"the lifetime of {run} is unfinished; run `yieldmc lifetime {run} --resume`")
    n_parts = -(-int(info["dies"]) // int(info["chunk_dies"]))
    files = [lifetime_dir(run) / part_name(c, "parquet") for c in range(n_parts)]
    good = [f for f in files if f.exists() and _part_digest(f) == info.get("digest")]
    if len(good) < n_parts and not allow_partial:
        bad = next(f for f in files if f not in good)
        raise ConfigError(f"{bad} is missing or belongs to another lifetime; run `yieldmc lifetime {run} "
                          "--resume` (same settings) or --overwrite")
    if not good:
        raise ConfigError(f"the lifetime of {run} has no rows yet")
    df = pd.concat([pq.read_table(f).to_pandas() for f in good], ignore_index=True)
    return df.sort_values(["die", "checkpoint"], kind="stable").reset_index(drop=True)


def policies_of(df: pd.DataFrame) -> list[str]:
    """The policies with an ``accuracy_<policy>`` column, in column order."""
    return [c.removeprefix("accuracy_") for c in df.columns if c.startswith("accuracy_")]


def yield_over_time(df: pd.DataFrame, threshold: float, confidence: float = 0.95) -> pd.DataFrame:
    """Yield (share of dies with accuracy >= ``threshold``) per checkpoint and policy, with
    intervals as ``yieldmc yield`` makes them (Wilson, Clopper-Pearson near 0 and 1:
    :func:`yieldmc.stats.choose_method`): columns checkpoint, time_s, policy, good, dies,
    yield, low, high, method."""
    from yieldmc.stats import choose_method, interval

    rows = []
    for (c, t), g in df.groupby(["checkpoint", "time_s"], sort=True):
        for p in policies_of(df):
            k, n = int((g[f"accuracy_{p}"] >= threshold).sum()), len(g)
            lo, hi = interval(k, n, confidence)
            rows.append({"checkpoint": int(c), "time_s": float(t), "policy": p, "good": k, "dies": n,
                         "yield": k / n, "low": float(lo), "high": float(hi), "method": choose_method(k, n)})
    return pd.DataFrame(rows)


def yield_at(df: pd.DataFrame, at_s: float, threshold: float, confidence: float = 0.95) -> pd.DataFrame:
    """:func:`yield_over_time` at the last checkpoint at or before ``at_s`` (s)."""
    times = np.sort(df["time_s"].unique())
    if at_s < times[0] * (1 - 1e-12):
        raise ConfigError(f"--at {at_s:g} s comes before t0 = {times[0]:g} s")
    if at_s > times[-1] * (1 + 1e-12):
        raise ConfigError(f"--at {at_s:g} s comes after the last checkpoint, {times[-1]:g} s: the lifetime "
                          "did not simulate it (give a later --t-end)")
    i = max(int(np.searchsorted(times, at_s * (1 + 1e-12), side="right")) - 1, 0)
    return yield_over_time(df[df["time_s"] == times[i]], threshold, confidence)


def lifetime_summary(df: pd.DataFrame, settings: LifetimeSettings, confidence: float = 0.95) -> dict[str, Any]:
    """Per policy: yield at ``t_0`` and end of life (with intervals), mean test accuracy at the
    end, mean labelled images and training MFLOP per die over the life, and the dies that fell
    below the threshold at some checkpoint (``failed_dies``, time-to-failure events)."""
    curve = yield_over_time(df, settings.threshold, confidence)
    last = df["checkpoint"].max()
    end = df[df["checkpoint"] == last]
    out: dict[str, Any] = {"dies": int(df["die"].nunique()), "checkpoints": int(last) + 1,
                           "threshold": settings.threshold, "policies": {}}
    for p in policies_of(df):
        c0 = curve[(curve.policy == p) & (curve.checkpoint == 0)].iloc[0]
        cK = curve[(curve.policy == p) & (curve.checkpoint == last)].iloc[0]
        out["policies"][p] = {
            "yield_t0": float(c0["yield"]), "yield_t0_ci": [float(c0.low), float(c0.high)],
            "yield_end": float(cK["yield"]), "yield_end_ci": [float(cK.low), float(cK.high)],
            "mean_accuracy_end": float(end[f"accuracy_{p}"].mean()),
            "failed_dies": int(df.loc[df[f"accuracy_{p}"] < settings.threshold, "die"].nunique()),
            "labelled_images_per_die": float(end[f"labels_{p}"].mean()),
            "training_mflop_per_die": float(end[f"flops_{p}"].mean() / 1e6)}
    return out


__all__ = ["CHUNK_DIES", "SETTINGS_FILE", "LifetimeContext", "LifetimeSettings", "check_budget", "check_times",
           "checkpoint_times", "lifetime_dir", "lifetime_summary", "load_lifetime", "parse_duration", "policies_of",
           "read_settings", "run_lifetime", "yield_at", "yield_over_time"]
