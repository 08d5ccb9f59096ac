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

The columns and the HDF5 layout are declared in :mod:`yieldmc.schema` (:data:`STUDY_TABLES`,
:data:`STUDY_VOLTAGES`). :func:`run_study` runs four stages, each a function of this module:

1. **simulate** (:func:`simulate_circuits`): every circuit's voltages, on the library's
   per-die path (:func:`yieldmc.correction.die_voltages`, the one ``yieldmc correct`` uses);
2. **correct** (:func:`score_types`, :func:`score_generalization`, :func:`score_size_sweep`,
   :func:`correct_population`): accuracy of every circuit before and after its corrector
   (:class:`yieldmc.correctors.MLPCorrector`), and of the population's dies with per-die
   ``rff-ridge`` correction (:func:`yieldmc.correction.correct_per_die`);
3. **statistics** (:func:`study_tables`): means and standard deviations over circuits, and
   the yield curves (:func:`yieldmc.stats.yield_curve`), as the schema's tables;
4. **write** (:func:`write_study`): the CSV files, ``voltages.h5``, the figures
   (:mod:`yieldmc.report`) and ``summary.json``, each written atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from yieldmc import defect_kinds
from yieldmc.atomic import atomic_path
from yieldmc.config import Config, load_config
from yieldmc.errors import ConfigError
from yieldmc.schema import STUDY_TABLES, TABLES

if TYPE_CHECKING:
    import pandas as pd

    from yieldmc.die import DieModel

OUTPUT_FILES = ("types.csv", "generalization.csv", "size_sweep.csv", "yield.csv", "voltages.h5",
                "summary.json", "accuracy_by_type.png", "generalization.png", "size_sweep.png",
                "yield_curve.png")
#: Accuracy thresholds of ``yield.csv``: 0.50, 0.51, ..., 0.99.
YIELD_THRESHOLDS = np.round(np.arange(0.5, 0.9901, 0.01), 2)
#: The per-die corrector of the population's yield.
POPULATION_METHOD = "rff-ridge"

#: ``(defect type, severity, instance) -> (train voltages, test voltages)``, volts.
Circuits = dict[tuple[str, float, int], tuple[np.ndarray, np.ndarray]]


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


class Scores(NamedTuple):
    """Accuracies of a group of circuits: raw argmax and corrected, in circuit order."""

    raw: list[float]
    corrected: list[float]
    corrector_params: int


class _Fits:
    """Fitted MLP correctors, one per (training set, hidden sizes): each is fitted once and
    reused by the per-type table, the generalization matrix and the size sweep."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._fitted: dict = {}

    def get(self, key, hidden: tuple[int, ...], X, y):
        from yieldmc.correctors import MLPCorrector

        k = (key, tuple(hidden))
        if k not in self._fitted:
            self._fitted[k] = MLPCorrector(hidden=hidden, random_state=self.seed).fit(X, y)
        return self._fitted[k]


# --- 1. simulate ---------------------------------------------------------------------------

def instance_model(base: DieModel, kind: str, severity: float) -> DieModel:
    """The design whose die ``i`` is instance ``i`` of ``kind`` at ``severity`` on every layer."""
    from yieldmc.die import DieModel

    cfg = base.config.replace(**{"defects.kind": kind, "defects.severity": [severity, severity],
                                 "defects.layers": []})
    return DieModel(cfg, base.network, base.dataset)


def simulate_circuits(base: DieModel, settings: StudySettings) -> Circuits:
    """Voltages of every circuit: each spatial kind x severity x instance, train and test images.

    Instances ``0 .. n_instances-1`` are dies of :func:`instance_model`, simulated by
    :func:`yieldmc.correction.die_voltages` (float64, a failed solve raises).
    """
    from yieldmc.correction import die_voltages

    circuits: Circuits = {}
    for kind in defect_kinds.REGISTRY.spatial:
        for sev in settings.severities:
            v_train, v_test = die_voltages(instance_model(base, kind, sev), range(settings.n_instances),
                                           ("train", "test"))
            for i in range(settings.n_instances):
                circuits[kind, sev, i] = (v_train[i], v_test[i])
    return circuits


# --- 2. correct ----------------------------------------------------------------------------

def _raw(v: np.ndarray, y: np.ndarray) -> float:
    return np.mean(v.argmax(axis=1) == y)


def score_types(circuits: Circuits, labels: tuple[np.ndarray, np.ndarray], settings: StudySettings,
                fits: _Fits) -> dict[tuple[str, float], Scores]:
    """Per (kind, severity): every instance's raw accuracy and that of its own corrector."""
    from yieldmc.correctors import n_parameters

    y_train, y_test = labels
    out = {}
    for kind in defect_kinds.REGISTRY.spatial:
        for sev in settings.severities:
            raw, fixed, n_params = [], [], 0
            for i in range(settings.n_instances):
                v_tr, v_te = circuits[kind, sev, i]
                model = fits.get((kind, sev, i), settings.hidden, v_tr, y_train)
                raw.append(_raw(v_te, y_test))
                fixed.append(model.score(v_te, y_test))
                n_params = n_parameters(model)
            out[kind, sev] = Scores(raw, fixed, n_params)
    return out


def score_generalization(circuits: Circuits, labels: tuple[np.ndarray, np.ndarray], settings: StudySettings,
                         fits: _Fits) -> dict[tuple[str, str], Scores]:
    """Per (train type, test type) at the main severity: corrector i scored on instance (i + 1) % n.

    ``mixed`` trains on instance i of every type, stacked.
    """
    from yieldmc.correctors import n_parameters

    y_train, y_test = labels
    sev, n = settings.main_severity, settings.n_instances
    train_sets = {k: [(circuits[k, sev, i][0], y_train) for i in range(n)] for k in defect_kinds.REGISTRY.spatial}
    train_sets["mixed"] = [(np.concatenate([circuits[k, sev, i][0] for k in defect_kinds.REGISTRY.spatial]),
                            np.tile(y_train, len(defect_kinds.REGISTRY.spatial))) for i in range(n)]
    out = {}
    for train_kind, sets in train_sets.items():
        models = [fits.get((train_kind, sev, i), settings.hidden, X, y) for i, (X, y) in enumerate(sets)]
        for test_kind in defect_kinds.REGISTRY.spatial:
            tests = [circuits[test_kind, sev, (i + 1) % n][1] for i in range(n)]
            out[train_kind, test_kind] = Scores([_raw(t, y_test) for t in tests],
                                                [m.score(t, y_test) for m, t in zip(models, tests, strict=True)],
                                                n_parameters(models[0]))
    return out


def score_size_sweep(circuits: Circuits, labels: tuple[np.ndarray, np.ndarray], settings: StudySettings,
                     fits: _Fits) -> dict[tuple[str, int], Scores]:
    """Per (kind, hidden size) at the main severity: the first ``sweep_instances`` circuits."""
    from yieldmc.correctors import n_parameters

    y_train, y_test = labels
    sev = settings.main_severity
    out = {}
    for kind in defect_kinds.REGISTRY.spatial:
        for h in settings.sweep_hidden:
            raw, fixed, n_params = [], [], 0
            for i in range(settings.sweep_instances):
                v_tr, v_te = circuits[kind, sev, i]
                model = fits.get((kind, sev, i), (h,), v_tr, y_train)
                raw.append(_raw(v_te, y_test))
                fixed.append(model.score(v_te, y_test))
                n_params = n_parameters(model)
            out[kind, h] = Scores(raw, fixed, n_params)
    return out


def correct_population(base: DieModel, settings: StudySettings) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of dies ``0 .. population_dies-1`` of ``base`` before and after per-die correction.

    :func:`yieldmc.correction.correct_per_die` with :data:`POPULATION_METHOD`, as
    ``yieldmc correct --mode per-die`` corrects a run's dies.
    """
    from yieldmc.correction import correct_per_die

    n_test = len(base.images("test")[1])
    before, after = correct_per_die(base, range(settings.population_dies), method=POPULATION_METHOD,
                                    seed=settings.seed)
    return before / n_test, after / n_test


# --- 3. statistics -------------------------------------------------------------------------

def _std(values: list[float]) -> float:
    return np.std(values, ddof=1) if len(values) > 1 else 0.0


def study_tables(types: dict[tuple[str, float], Scores], generalization: dict[tuple[str, str], Scores],
                 size_sweep: dict[tuple[str, int], Scores], population: tuple[np.ndarray, np.ndarray],
                 settings: StudySettings, fault_free: float) -> dict[str, pd.DataFrame]:
    """The study's tables (:data:`yieldmc.schema.STUDY_TABLES`, by name) from the scores.

    Means and sample standard deviations (ddof 1) over circuits; the yield curves of the
    population before and after correction over :data:`YIELD_THRESHOLDS`
    (:func:`yieldmc.stats.yield_curve`).
    """
    import pandas as pd

    from yieldmc import stats

    def rows(name: str, dicts: list[dict[str, Any]]) -> dict[str, list]:
        return {c: [d[c] for d in dicts] for c in TABLES[name].names}

    tables = {
        "types": rows("types", [{
            "defect_type": kind, "severity": sev, "layers": "all", "n_instances": settings.n_instances,
            "accuracy_fault_free": fault_free,
            "accuracy_defective_mean": np.mean(s.raw), "accuracy_defective_std": np.std(s.raw, ddof=1),
            "accuracy_corrected_mean": np.mean(s.corrected), "accuracy_corrected_std": np.std(s.corrected, ddof=1),
            "corrector_params": s.corrector_params} for (kind, sev), s in types.items()]),
        "generalization": rows("generalization", [{
            "train_type": a, "test_type": b, "accuracy_defective_mean": np.mean(s.raw),
            "accuracy_corrected_mean": np.mean(s.corrected)} for (a, b), s in generalization.items()]),
        "size_sweep": rows("size_sweep", [{
            "defect_type": kind, "hidden": h, "corrector_params": s.corrector_params,
            "accuracy_corrected_mean": np.mean(s.corrected), "accuracy_corrected_std": _std(s.corrected)}
            for (kind, h), s in size_sweep.items()]),
        "yield": pd.concat([stats.yield_curve(acc, YIELD_THRESHOLDS).assign(stage=stage)
                            for stage, acc in zip(("before", "after"), population, strict=True)],
                           ignore_index=True),
    }
    return {t.name: t.build(tables[t.name]).to_pandas() for t in STUDY_TABLES}


def study_summary(tables: dict[str, pd.DataFrame], population: tuple[np.ndarray, np.ndarray],
                  settings: StudySettings, base: DieModel, fault_free: float) -> dict[str, Any]:
    """``summary.json``: the headline numbers at the main severity and of the population."""
    types = tables["types"]
    main = types[types.severity == settings.main_severity]
    worst = main.loc[main.accuracy_defective_mean.idxmin()]
    return {
        "settings": asdict(settings),
        "software_accuracy": base.software_accuracy(),
        "fault_free_accuracy": fault_free,
        "worst_type": worst.defect_type,
        "worst_defective": float(worst.accuracy_defective_mean),
        "worst_corrected": float(worst.accuracy_corrected_mean),
        "mean_defective": float(main.accuracy_defective_mean.mean()),
        "mean_corrected": float(main.accuracy_corrected_mean.mean()),
        "population_mean_before": float(np.mean(population[0])),
        "population_mean_after": float(np.mean(population[1])),
    }


# --- 4. write ------------------------------------------------------------------------------

def write_study(out: Path, tables: dict[str, pd.DataFrame], circuits: Circuits,
                labels: tuple[np.ndarray, np.ndarray], summary: dict[str, Any], settings: StudySettings,
                *, started: float) -> dict[str, Any]:
    """Write every file of :data:`OUTPUT_FILES` into ``out``, each atomically.

    CSV files of :data:`yieldmc.schema.STUDY_TABLES` (6 significant digits), ``voltages.h5``
    (:func:`yieldmc.h5layout.write_study_voltages`), the four figures, and last
    ``summary.json``: ``summary`` with ``elapsed_s``, the seconds since ``started``
    (a :func:`time.perf_counter` value), which it returns.
    """
    from yieldmc import report
    from yieldmc.h5layout import write_study_voltages

    for table in STUDY_TABLES:
        with atomic_path(out / table.path) as tmp:
            tables[table.name].to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out / "voltages.h5") as tmp:
        write_study_voltages(tmp, {"labels_train": labels[0], "labels_test": labels[1]}, circuits)
    report.plot_accuracy_by_type(tables["types"], settings.main_severity, out / "accuracy_by_type.png")
    report.plot_generalization(tables["generalization"], out / "generalization.png")
    report.plot_size_sweep(tables["size_sweep"], out / "size_sweep.png")
    report.plot_yield_curve(tables["yield"], out / "yield_curve.png")
    summary = {**summary, "elapsed_s": time.perf_counter() - started}
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# --- the whole study -----------------------------------------------------------------------

def _check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, lies under one or holds study results (without
    ``overwrite``), before any work (one-line ConfigError)."""
    for path in (out, *out.parents):
        if path.is_dir():
            break
        if path.exists() or path.is_symlink():  # a file, or a link to nothing / to a file
            where = "is a file" if path == out else f"lies under {str(path)!r}, which is a file"
            raise ConfigError(f"--out {str(out)!r} {where}; the study writes a directory of files there")
    existing = [f for f in OUTPUT_FILES if (out / f).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds study results ({', '.join(existing[:3])}...); "
                          "pass --overwrite to replace them")


def run_study(out: str | Path, settings: StudySettings | None = None, config: Config | None = None,
              *, overwrite: bool = False, log: Callable[[str], Any] = print,
              cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Run the whole study and write its files into ``out`` (see module docstring).

    BLAS is limited to one thread: the correctors' matrices are small, and threads only
    oversubscribe the cores (measured 10-30x slower fits with the default threads).

    Parameters
    ----------
    out : path
        Directory for the files of :data:`OUTPUT_FILES` (created).
    settings : StudySettings, optional
        Sizes (default: the full study).
    config : Config, optional
        The die (default: the ``paper`` preset).
    overwrite : bool
        Replace study files already in ``out``.
    log : callable
        Called with a line of progress after each stage.
    cache_dir : path, optional
        Where the image data and the trained network are cached
        (:func:`yieldmc.cache.default_cache_dir` by default).

    Returns
    -------
    dict
        The contents of ``summary.json``.

    Raises
    ------
    ConfigError
        Before any simulation: ``out`` is a file or lies under one, or already holds study
        results and ``overwrite`` is false.
    """
    from threadpoolctl import threadpool_limits

    from yieldmc.die import DieModel

    out = Path(out)
    settings = settings or StudySettings()
    _check_out_dir(out, overwrite)
    with threadpool_limits(1):
        out.mkdir(parents=True, exist_ok=True)
        t_start = time.perf_counter()

        def done(what: str) -> None:
            log(f"{what} ({time.perf_counter() - t_start:.0f} s)")

        base = DieModel.build(config or load_config("paper"), cache_dir=cache_dir)
        labels = (base.images("train")[1], base.images("test")[1])
        fault_free = base.fault_free_accuracy()
        fits = _Fits(settings.seed)
        circuits = simulate_circuits(base, settings)
        done(f"simulated {len(circuits)} circuits")
        types = score_types(circuits, labels, settings, fits)
        done("per-type correction done")
        generalization = score_generalization(circuits, labels, settings, fits)
        done("generalization done")
        size_sweep = score_size_sweep(circuits, labels, settings, fits)
        done("size sweep done")
        population = correct_population(base, settings)
        done("population yield done")
        tables = study_tables(types, generalization, size_sweep, population, settings, fault_free)
        summary = study_summary(tables, population, settings, base, fault_free)
        summary = write_study(out, tables, circuits, labels, summary, settings, started=t_start)
    log(f"wrote {out} ({summary['elapsed_s']:.0f} s)")
    return summary
