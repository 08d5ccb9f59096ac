"""The publication's study, end to end: per-type correction, transfer protocols, corrector
size and calibration budget, yield.

Two kinds of circuit (a circuit: the output voltages one defective die gives for the 1,617
training and the 180 test images):

* **instances** (DESIGN.md section 6): die ``i`` of the paper die with ``defects.kind = A``,
  ``defects.severity = [s, s]`` on every layer; placement and ON/OFF cells are drawn per
  die. They make ``types.csv`` (each circuit's own corrector), the size and budget sweeps
  and ``voltages.h5``.
* **canonical circuits** (:func:`yieldmc.masks.canonical_masks`): one fixed, centred
  pattern per type, with one ON/OFF map that every type shares (or every stuck cell ON, or
  OFF). They make the transfer protocols of :mod:`yieldmc.protocols` (A: 6x6 A->B; B: leave
  one type out; C: one layer at a time; D: a family of drawn dies -> unseen dies), each at
  :attr:`StudySettings.protocol_severities` and for all-ON, all-OFF and per-cell stuck
  cells, under each :attr:`StudySettings.schemes` weight mapping (``mapping.scheme``:
  ``differential``, where stuck-OFF cells mostly do nothing, and ``midrange``, where ON and
  OFF are symmetric).

Files (columns in :data:`yieldmc.tables.STUDY_TABLES`): ``types.csv``, ``protocols.csv``
(one row per training set and test circuit), ``protocol_summary.csv``
(:func:`yieldmc.protocols.summarize`), ``size_sweep.csv`` (:func:`yieldmc.sweeps.size_sweep`:
linear and MLPs of depth 1-3, parameters vs accuracy, raw floor), ``budget.csv``
(:func:`yieldmc.sweeps.budget_sweep`: labelled images per circuit), ``yield.csv`` (a
population of ``mixed`` dies, yield vs threshold before and after per-die ``rff-ridge``
correction with every training image), ``yield_budget.csv``
(:func:`yieldmc.sweeps.population_budget`: the same population's yield at 0.8 and 0.9 per
calibration budget), ``voltages.h5`` and the figures.

:func:`run_study` runs four stages, each a function of this module: **simulate**
(:func:`simulate_circuits`), **correct** (:func:`score_types`, :func:`score_protocols`,
:func:`score_sweeps`, :func:`correct_population`), **statistics** (:func:`study_tables`),
**write** (:func:`write_study`).
"""

from __future__ import annotations

import functools
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
from yieldmc.network import network_fingerprint
from yieldmc.tables import STUDY_TABLES

if TYPE_CHECKING:
    import pandas as pd

    from yieldmc.die import DieModel

OUTPUT_FILES = (*(t.path for t in STUDY_TABLES), "voltages.h5", "summary.json", "accuracy_by_type.png",
                "protocols.png", "protocol_summary.png", "size_sweep.png", "budget.png", "yield_curve.png",
                "yield_budget.png")
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
        Faulty share of every array, per type (the instance circuits' severity grid).
    main_severity : float
        Severity of the size and budget sweeps (in ``severities``).
    n_instances : int
        Instance circuits per (type, severity).
    hidden : tuple of int
        The corrector (MLP hidden layers) of ``types.csv`` and the protocols.
    protocol_severities : tuple of float
        Severities of the transfer protocols.
    on_modes : tuple of str
        Stuck-cell polarities of protocols A-C (:data:`yieldmc.protocols.ON_MODES`).
    family_on_modes : tuple of str
        Polarities of protocol D (a family of drawn dies; its ``mixed`` fit on every type's
        family is the study's largest).
    n_family, n_unseen : int
        Protocol D: training dies and unseen test dies per type.
    schemes : tuple of str
        Weight mappings (``mapping.scheme``); protocols A-D run under the first, A and B
        under the others (the ON/OFF comparison).
    sweep_correctors : tuple of str
        Correctors of the size sweep (:func:`yieldmc.sweeps.parse_spec` names; empty:
        :func:`yieldmc.sweeps.default_specs`).
    sweep_instances : int
        Instance circuits per type in the size and budget sweeps.
    budgets : tuple of int
        Labelled calibration images per circuit / die of the budget sweeps.
    population_dies : int
        Dies of the yield population (per-die corrected with batched ridge).
    seed : int
        Seed of the correctors (the circuits use the preset's root seed).
    """

    severities: tuple[float, ...] = (0.02, 0.05, 0.1)
    main_severity: float = 0.05
    n_instances: int = 5
    hidden: tuple[int, ...] = (16,)
    protocol_severities: tuple[float, ...] = (0.02, 0.05)
    on_modes: tuple[str, ...] = ("cell", "on", "off")
    family_on_modes: tuple[str, ...] = ("cell",)
    n_family: int = 20
    n_unseen: int = 5
    schemes: tuple[str, ...] = ("differential", "midrange")
    sweep_correctors: tuple[str, ...] = ()
    sweep_instances: int = 3
    budgets: tuple[int, ...] = (25, 50, 100, 200, 400, 800, 1617)
    population_dies: int = 1000
    seed: int = 0

    @classmethod
    def quick(cls) -> StudySettings:
        return cls(severities=(0.05,), n_instances=2, protocol_severities=(0.05,), on_modes=("cell",),
                   n_family=2, n_unseen=1, schemes=("differential",),
                   sweep_correctors=("linear", "mlp-4", "mlp-16", "mlp-8x8"), sweep_instances=1,
                   budgets=(50, 200, 1617), population_dies=100)

    def __post_init__(self) -> None:
        if self.main_severity not in self.severities:
            raise ConfigError("main_severity must be one of the severities")
        if self.n_instances < 1 or self.sweep_instances > self.n_instances:
            raise ConfigError("n_instances must be >= 1 and >= sweep_instances")
        if not self.schemes:
            raise ConfigError("schemes must name at least one weight mapping")


class Scores(NamedTuple):
    """Accuracies of a group of circuits: raw argmax and corrected, in circuit order."""

    raw: list[float]
    corrected: list[float]
    corrector_params: int



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


def _own_fit(hidden: tuple[int, ...], seed: int, v_train: np.ndarray, y_train: np.ndarray, v_test: np.ndarray,
             y_test: np.ndarray) -> tuple[float, int]:
    """Test accuracy and parameters of one circuit's own MLP corrector (one BLAS thread)."""
    from threadpoolctl import threadpool_limits

    from yieldmc.correctors import MLPCorrector, n_parameters

    with threadpool_limits(1):
        model = MLPCorrector(hidden=hidden, random_state=seed).fit(v_train, y_train)
        return float(model.score(v_test, y_test)), n_parameters(model)


def score_types(circuits: Circuits, labels: tuple[np.ndarray, np.ndarray], settings: StudySettings,
                n_jobs: int = 1) -> dict[tuple[str, float], Scores]:
    """Per (kind, severity): every instance's raw accuracy and that of its own MLP corrector
    (``settings.hidden``), fitted in ``n_jobs`` joblib processes (results do not depend on it)."""
    from joblib import Parallel, delayed

    y_train, y_test = labels
    fits = Parallel(n_jobs=n_jobs)(delayed(_own_fit)(tuple(settings.hidden), settings.seed, v_tr, y_train, v_te,
                                                     y_test) for v_tr, v_te in circuits.values())
    out: dict[tuple[str, float], Scores] = {}
    for (kind, sev, _), (_, v_te), (acc, n_params) in zip(circuits, circuits.values(), fits, strict=True):
        scores = out.setdefault((kind, sev), Scores([], [], n_params))
        scores.raw.append(_raw(v_te, y_test))
        scores.corrected.append(acc)
    return out


def score_protocols(base: DieModel, settings: StudySettings, *, n_jobs: int = 1,
                    log: Callable[[str], Any] = lambda m: None) -> pd.DataFrame:
    """Transfer protocols A-D (:func:`yieldmc.protocols.run_protocols`) on the canonical
    circuits of ``base``'s die, under every weight mapping of ``settings.schemes``.

    The first scheme runs A, B and C for ``settings.on_modes`` and D for
    ``settings.family_on_modes``; the others run A and B (the ON/OFF comparison)."""
    import pandas as pd

    from yieldmc.correctors import MLPCorrector
    from yieldmc.die import DieModel
    from yieldmc.protocols import die_sources, run_protocols

    frames = []
    for i, scheme in enumerate(settings.schemes):
        model = base if scheme == base.config.mapping.scheme else DieModel(
            base.config.replace(**{"mapping.scheme": scheme}), base.network, base.dataset)
        src = die_sources(model)
        runs = [(("A", "B", "C"), settings.on_modes), (("D",), settings.family_on_modes)] if i == 0 else [
            (("A", "B"), settings.on_modes)]
        for protocols, modes in runs:
            if not modes:
                continue
            frames.append(run_protocols(
                src.canonical, src.family, src.labels, severities=settings.protocol_severities,
                on_modes=modes, scheme=scheme, n_layers=src.n_layers, protocols=protocols,
                n_family=settings.n_family, n_unseen=settings.n_unseen, seed=settings.seed,
                make_corrector=functools.partial(MLPCorrector, hidden=tuple(settings.hidden),
                                                 random_state=settings.seed),
                n_jobs=n_jobs))
            log(f"protocols {'+'.join(protocols)} under {scheme} mapping done")
    return pd.concat(frames, ignore_index=True)


def score_sweeps(circuits: Circuits, labels: tuple[np.ndarray, np.ndarray], settings: StudySettings,
                 n_jobs: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Size sweep and calibration-budget sweep (:mod:`yieldmc.sweeps`) on the first
    ``sweep_instances`` instance circuits of every type at the main severity."""
    from yieldmc.sweeps import budget_sweep, size_sweep

    chosen = {k: v for k, v in circuits.items()
              if k[1] == settings.main_severity and k[2] < settings.sweep_instances}
    size = size_sweep(chosen, labels, correctors=list(settings.sweep_correctors) or None, seed=settings.seed,
                      n_jobs=n_jobs)
    budget = budget_sweep(chosen, labels, budgets=settings.budgets, seed=settings.seed, n_jobs=n_jobs)
    return size, budget


def correct_population(base: DieModel, settings: StudySettings) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                         pd.DataFrame]:
    """Dies ``0 .. population_dies-1`` of ``base`` before and after per-die correction.

    The dies are simulated once (:func:`yieldmc.correction.die_voltages`); every die gets its
    own :data:`POPULATION_METHOD` corrector (as ``yieldmc correct --mode per-die``), fitted on
    every training image (the accuracies before and after, for ``yield.csv``) and on each
    budget of ``settings.budgets`` (:func:`yieldmc.sweeps.population_budget`).
    """
    from yieldmc.correction import correct_voltages, die_voltages
    from yieldmc.sweeps import population_budget

    (_, y_train), (_, y_test) = base.images("train"), base.images("test")
    dies = range(settings.population_dies)
    voltages = tuple(die_voltages(base, dies, ("train", "test")))
    before, after = correct_voltages(voltages[0], y_train, voltages[1], y_test, method=POPULATION_METHOD,
                                     seed=settings.seed)
    budget = population_budget(base, dies, settings.budgets, method=POPULATION_METHOD, seed=settings.seed,
                               voltages=voltages)
    return (before / len(y_test), after / len(y_test)), budget


# --- 3. statistics -------------------------------------------------------------------------

def study_tables(types: dict[tuple[str, float], Scores], protocols: pd.DataFrame, sweeps: tuple[pd.DataFrame,
                 pd.DataFrame], population: tuple[tuple[np.ndarray, np.ndarray], pd.DataFrame],
                 settings: StudySettings, fault_free: float) -> dict[str, pd.DataFrame]:
    """The study's tables (:data:`yieldmc.tables.STUDY_TABLES`, by name) from the scores.

    Means and sample standard deviations (ddof 1; NaN for one circuit) over circuits; the
    protocols' summary (:func:`yieldmc.protocols.summarize`); the yield curves of the
    population before and after correction over :data:`YIELD_THRESHOLDS`
    (:func:`yieldmc.stats.yield_curve`).
    """
    import pandas as pd

    from yieldmc import stats
    from yieldmc.protocols import summarize

    def sd(values: list[float]) -> float:
        return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")

    accuracies, budget = population
    tables = {
        "types": pd.DataFrame([{
            "defect_type": kind, "severity": sev, "layers": "all", "n_instances": len(s.raw),
            "accuracy_fault_free": fault_free,
            "accuracy_defective_mean": np.mean(s.raw), "accuracy_defective_std": sd(s.raw),
            "accuracy_corrected_mean": np.mean(s.corrected), "accuracy_corrected_std": sd(s.corrected),
            "corrector_params": s.corrector_params} for (kind, sev), s in types.items()]),
        "protocols": protocols,
        "protocol_summary": summarize(protocols),
        "size_sweep": sweeps[0],
        "budget": sweeps[1],
        "yield": pd.concat([stats.yield_curve(acc, YIELD_THRESHOLDS).assign(stage=stage)
                            for stage, acc in zip(("before", "after"), accuracies, strict=True)],
                           ignore_index=True),
        "yield_budget": budget,
    }
    return {t.name: t.build(tables[t.name]).to_pandas() for t in STUDY_TABLES}


def study_summary(tables: dict[str, pd.DataFrame], population: tuple[np.ndarray, np.ndarray],
                  settings: StudySettings, base: DieModel, fault_free: float) -> dict[str, Any]:
    """``summary.json``: the headline numbers at the main severity, of the protocols and of
    the population."""
    from yieldmc.protocols import transfer_regime

    types = tables["types"]
    main = types[types.severity == settings.main_severity]
    worst = main.loc[main.accuracy_defective_mean.idxmin()]
    regime = transfer_regime(tables["protocols"])
    return {
        "settings": asdict(settings),
        "software_accuracy": base.software_accuracy(),
        "fault_free_accuracy": fault_free,
        "network_fingerprint": network_fingerprint(base.network),
        "worst_type": worst.defect_type,
        "worst_defective": float(worst.accuracy_defective_mean),
        "worst_corrected": float(worst.accuracy_corrected_mean),
        "mean_defective": float(main.accuracy_defective_mean.mean()),
        "mean_corrected": float(main.accuracy_corrected_mean.mean()),
        "population_mean_before": float(np.mean(population[0])),
        "population_mean_after": float(np.mean(population[1])),
        "transfer_positive": [v for v, r in zip(regime.verdict, regime.regime, strict=True) if r == "positive"],
    }


# --- 4. write ------------------------------------------------------------------------------

def write_study(out: Path, tables: dict[str, pd.DataFrame], circuits: Circuits,
                labels: tuple[np.ndarray, np.ndarray], summary: dict[str, Any], settings: StudySettings,
                *, started: float) -> dict[str, Any]:
    """Write every file of :data:`OUTPUT_FILES` into ``out``, each atomically.

    CSV files of :data:`yieldmc.tables.STUDY_TABLES` (6 significant digits), ``voltages.h5``
    (:func:`yieldmc.h5layout.write_study_voltages`, the instance circuits), the figures, and
    last ``summary.json``: ``summary`` with ``elapsed_s``, the seconds since ``started``
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
    report.plot_protocol_heatmaps(tables["protocols"], out / "protocols.png")
    report.plot_protocol_summary(tables["protocols"], out / "protocol_summary.png")
    report.plot_size_sweep(tables["size_sweep"], out / "size_sweep.png")
    report.plot_budget_sweep(tables["budget"], out / "budget.png")
    report.plot_yield_curve(tables["yield"], out / "yield_curve.png")
    report.plot_population_budget(tables["yield_budget"], out / "yield_budget.png")
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
              cache_dir: str | Path | None = None, n_jobs: int = 1) -> dict[str, Any]:
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
    n_jobs : int
        joblib processes for the correctors' fits (the results do not depend on it).

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
        circuits = simulate_circuits(base, settings)
        done(f"simulated {len(circuits)} instance circuits")
        types = score_types(circuits, labels, settings, n_jobs)
        done("per-type correction done")
        protocols = score_protocols(base, settings, n_jobs=n_jobs, log=done)
        sweeps = score_sweeps(circuits, labels, settings, n_jobs)
        done("size and budget sweeps done")
        population = correct_population(base, settings)
        done("population yield done")
        tables = study_tables(types, protocols, sweeps, population, settings, fault_free)
        summary = study_summary(tables, population[0], settings, base, fault_free)
        summary = write_study(out, tables, circuits, labels, summary, settings, started=t_start)
    log(f"wrote {out} ({summary['elapsed_s']:.0f} s)")
    return summary
