"""The publication's study, end to end: per-type correction, generalization, size sweep, yield.

Instance mode (DESIGN.md section 6): a *circuit* of type A at severity s is die ``i`` of the
paper die with ``defects.kind = A``, ``defects.severity = [s, s]`` on every layer; its
pattern parameters are drawn from die ``i``'s stream, so instances differ in placement and
ON/OFF cells but have the same faulty share. A corrector is trained on the output voltages
one circuit gives for the 1,617 training images and scored on the voltages the same or
another circuit gives for the 180 test images.

* ``types.csv``: per type and severity, accuracy before/after correction over instances.
* ``generalization.csv``: train on instance i of type A (``mixed``: instance i of every
  type, stacked), test on instance ``(i + 1) % n`` of type B; the diagonal therefore tests
  on a *different* circuit of the same type, like every other cell.
* ``size_sweep.csv``: corrector hidden size vs accuracy and parameter count.
* ``yield.csv``: a population of ``mixed`` dies (the preset's severity range) with yield vs
  threshold before and after per-die correction (Wilson / Clopper-Pearson intervals).
* ``voltages.h5``: every instance's voltages and the labels, to re-train correctors.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from yieldmc.config import Config, load_config
from yieldmc.defects import SPATIAL_KINDS
from yieldmc.errors import ConfigError
from yieldmc.store import atomic_path

OUTPUT_FILES = ("types.csv", "generalization.csv", "size_sweep.csv", "yield.csv", "voltages.h5",
                "summary.json", "accuracy_by_type.png", "generalization.png", "size_sweep.png",
                "yield_curve.png")


@dataclass(frozen=True)
class StudySettings:
    """Sizes of the study. ``quick()`` is the under-3-minute version.

    Attributes
    ----------
    severities : tuple of float
        Faulty share of every array, per type (the severity grid).
    main_severity : float
        Severity of the generalization matrix and the size sweep (in ``severities``).
    n_instances : int
        Circuits per (type, severity).
    hidden : tuple of int
        The corrector (MLP hidden layers) of the main tables.
    sweep_hidden : tuple of int
        Hidden sizes of the size sweep (one hidden layer each).
    sweep_instances : int
        Circuits per type in the size sweep.
    population_dies : int
        Dies of the yield population (per-die corrected with batched ridge).
    seed : int
        Seed of the correctors (the circuits use the preset's root seed).
    """

    severities: tuple[float, ...] = (0.02, 0.05, 0.1)
    main_severity: float = 0.05
    n_instances: int = 5
    hidden: tuple[int, ...] = (16,)
    sweep_hidden: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128)
    sweep_instances: int = 3
    population_dies: int = 1000
    seed: int = 0

    @classmethod
    def quick(cls) -> StudySettings:
        return cls(severities=(0.05,), n_instances=2, sweep_hidden=(4, 16, 64),
                   sweep_instances=1, population_dies=100)

    def __post_init__(self) -> None:
        if self.main_severity not in self.severities:
            raise ConfigError("main_severity must be one of the severities")
        if self.n_instances < 2:
            raise ConfigError("n_instances must be >= 2 (generalization tests on another instance)")


def _instance_model(base, kind: str, severity: float):
    from yieldmc.die import DieModel

    cfg = base.config.replace(**{"defects.kind": kind, "defects.severity": [severity, severity],
                                 "defects.layers": []})
    return DieModel(cfg, base.network, base.dataset)


class _Correctors:
    """Fitted MLP correctors, one per (training set, hidden sizes): each is fitted once and
    reused by the per-type table, the generalization matrix and the size sweep."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._fitted: dict = {}

    def get(self, key, hidden: tuple[int, ...], X, y):
        from yieldmc.corrector import MLPCorrector

        k = (key, tuple(hidden))
        if k not in self._fitted:
            self._fitted[k] = MLPCorrector(hidden=hidden, random_state=self.seed).fit(X, y)
        return self._fitted[k]


def _check_out_dir(out: Path) -> None:
    """Refuse an ``out`` that is a file or lies under one, before any work (one-line ConfigError)."""
    for path in (out, *out.parents):
        if path.is_dir():
            return
        if path.exists() or path.is_symlink():  # a file, or a link to nothing / to a file
            where = "is a file" if path == out else f"lies under {str(path)!r}, which is a file"
            raise ConfigError(f"--out {str(out)!r} {where}; the study writes a directory of files there")


def run_study(out: str | Path, settings: StudySettings | None = None, config: Config | None = None,
              *, overwrite: bool = False, log=print) -> dict[str, Any]:
    """Run the whole study and write its files into ``out`` (see module docstring).

    BLAS is limited to one thread: the correctors' matrices are small, and threads only
    oversubscribe the cores (measured 10-30x slower fits with the default threads).

    Raises
    ------
    ConfigError
        Before any simulation: ``out`` is a file or lies under one, or already holds study
        results and ``overwrite`` is false.
    """
    from threadpoolctl import threadpool_limits

    _check_out_dir(Path(out))

    with threadpool_limits(1):
        return _run_study(out, settings, config, overwrite=overwrite, log=log)


def _run_study(out, settings, config, *, overwrite, log) -> dict[str, Any]:
    from yieldmc import report, stats
    from yieldmc.corrector import n_parameters
    from yieldmc.corrector_batch import fit_predict_many
    from yieldmc.die import DieModel

    settings = settings or StudySettings()
    out = Path(out)
    existing = [f for f in OUTPUT_FILES if (out / f).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds study results ({', '.join(existing[:3])}...); "
                          "pass --overwrite to replace them")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    config = config or load_config("paper")
    base = DieModel.build(config)
    x_train, y_train = base.images("train")
    x_test, y_test = base.images("test")
    fault_free = base.fault_free_accuracy()
    seed = settings.seed
    correctors = _Correctors(seed)

    # 1. Circuits: voltages of every (type, severity, instance).
    volts: dict[tuple[str, float, int], tuple[np.ndarray, np.ndarray]] = {}
    for kind in SPATIAL_KINDS:
        for sev in settings.severities:
            model = _instance_model(base, kind, sev)
            for i in range(settings.n_instances):
                v_tr, v_te = model.die_outputs(i, [x_train, x_test])[0]
                volts[kind, sev, i] = (v_tr, v_te)
    log(f"simulated {len(volts)} circuits ({time.perf_counter() - t_start:.0f} s)")

    # 2. Per-type correction.
    rows = []
    for kind in SPATIAL_KINDS:
        for sev in settings.severities:
            raw, fixed = [], []
            for i in range(settings.n_instances):
                v_tr, v_te = volts[kind, sev, i]
                raw.append(np.mean(v_te.argmax(axis=1) == y_test))
                model = correctors.get((kind, sev, i), settings.hidden, v_tr, y_train)
                fixed.append(model.score(v_te, y_test))
                n_params = n_parameters(model)
            rows.append({"defect_type": kind, "severity": sev, "layers": "all",
                         "n_instances": settings.n_instances, "accuracy_fault_free": fault_free,
                         "accuracy_defective_mean": np.mean(raw), "accuracy_defective_std": np.std(raw, ddof=1),
                         "accuracy_corrected_mean": np.mean(fixed), "accuracy_corrected_std": np.std(fixed, ddof=1),
                         "corrector_params": n_params})
    types = pd.DataFrame(rows)
    log(f"per-type correction done ({time.perf_counter() - t_start:.0f} s)")

    # 3. Generalization at the main severity.
    sev, n = settings.main_severity, settings.n_instances
    train_sets = {k: [volts[k, sev, i][0] for i in range(n)] for k in SPATIAL_KINDS}
    labels_sets = {k: [y_train] * n for k in SPATIAL_KINDS}
    train_sets["mixed"] = [np.concatenate([volts[k, sev, i][0] for k in SPATIAL_KINDS]) for i in range(n)]
    labels_sets["mixed"] = [np.tile(y_train, len(SPATIAL_KINDS))] * n
    gen_rows = []
    for train_kind, sets in train_sets.items():
        models = [correctors.get((train_kind, sev, i), settings.hidden, sets[i], labels_sets[train_kind][i])
                  for i in range(n)]
        for test_kind in SPATIAL_KINDS:
            tests = [volts[test_kind, sev, (i + 1) % n][1] for i in range(n)]
            gen_rows.append({
                "train_type": train_kind, "test_type": test_kind,
                "accuracy_defective_mean": np.mean([np.mean(t.argmax(axis=1) == y_test) for t in tests]),
                "accuracy_corrected_mean": np.mean([m.score(t, y_test) for m, t in zip(models, tests, strict=True)]),
            })
    generalization = pd.DataFrame(gen_rows)
    log(f"generalization done ({time.perf_counter() - t_start:.0f} s)")

    # 4. Corrector size sweep at the main severity.
    sweep_rows = []
    for kind in SPATIAL_KINDS:
        for h in settings.sweep_hidden:
            accs = []
            for i in range(settings.sweep_instances):
                v_tr, v_te = volts[kind, sev, i]
                model = correctors.get((kind, sev, i), (h,), v_tr, y_train)
                accs.append(model.score(v_te, y_test))
                n_params = n_parameters(model)
            sweep_rows.append({"defect_type": kind, "hidden": h, "corrector_params": n_params,
                               "accuracy_corrected_mean": np.mean(accs),
                               "accuracy_corrected_std": np.std(accs, ddof=1) if len(accs) > 1 else 0.0})
    size_sweep = pd.DataFrame(sweep_rows)
    log(f"size sweep done ({time.perf_counter() - t_start:.0f} s)")

    # 5. Population yield before/after per-die correction.
    pop_before, pop_after = [], []
    dies = np.arange(settings.population_dies)
    for b0 in range(0, len(dies), 64):
        batch = dies[b0:b0 + 64]
        v_tr, v_te = [], []
        for d in batch:
            tr, te = base.die_outputs(int(d), [x_train, x_test])[0]
            v_tr.append(tr)
            v_te.append(te)
        v_tr, v_te = np.stack(v_tr), np.stack(v_te)
        pop_before += list((v_te.argmax(axis=2) == y_test).mean(axis=1))
        pred = fit_predict_many(v_tr, y_train, v_te, method="rff-ridge", random_state=seed)
        pop_after += list((pred == y_test).mean(axis=1))
    grid = np.round(np.arange(0.5, 0.9901, 0.01), 2)
    curve = pd.concat([stats.yield_curve(pop_before, grid).assign(stage="before"),
                       stats.yield_curve(pop_after, grid).assign(stage="after")], ignore_index=True)
    log(f"population yield done ({time.perf_counter() - t_start:.0f} s)")

    # 6. Files.
    for name, frame in (("types.csv", types), ("generalization.csv", generalization),
                        ("size_sweep.csv", size_sweep), ("yield.csv", curve)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out / "voltages.h5") as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["description"] = "Output voltages (V) of every circuit of the study"
        h5.attrs["command"] = "yieldmc reproduce"
        h5.create_dataset("labels_train", data=y_train.astype(np.int16))
        h5.create_dataset("labels_test", data=y_test.astype(np.int16))
        for (kind, s, i), (v_tr, v_te) in volts.items():
            g = h5.create_group(f"{kind}/severity_{s:g}/instance_{i}")
            g.attrs.update({"defect_type": kind, "severity": s, "die": i, "layers": "all", "units": "V"})
            g.create_dataset("train", data=v_tr.astype(np.float32), compression="gzip", shuffle=True)
            g.create_dataset("test", data=v_te.astype(np.float32), compression="gzip", shuffle=True)
    report.plot_accuracy_by_type(types, settings.main_severity, out / "accuracy_by_type.png")
    report.plot_generalization(generalization, out / "generalization.png")
    report.plot_size_sweep(size_sweep, out / "size_sweep.png")
    report.plot_yield_curve(curve, out / "yield_curve.png")
    main = types[types.severity == settings.main_severity]
    worst = main.loc[main.accuracy_defective_mean.idxmin()]
    summary = {
        "settings": asdict(settings),
        "software_accuracy": base.software_accuracy(),
        "fault_free_accuracy": fault_free,
        "worst_type": worst.defect_type,
        "worst_defective": float(worst.accuracy_defective_mean),
        "worst_corrected": float(worst.accuracy_corrected_mean),
        "mean_defective": float(main.accuracy_defective_mean.mean()),
        "mean_corrected": float(main.accuracy_corrected_mean.mean()),
        "population_mean_before": float(np.mean(pop_before)),
        "population_mean_after": float(np.mean(pop_after)),
        "elapsed_s": time.perf_counter() - t_start,
    }
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    log(f"wrote {out} ({summary['elapsed_s']:.0f} s)")
    return summary
