"""Corrector sweeps: size and depth, calibration budget, and yield after correction per budget.

Three questions the study's single size sweep (:func:`yieldmc.reproduce.score_size_sweep`,
one hidden layer narrowed from 128 to 2) cannot separate:

* :func:`size_sweep`: accuracy against trainable parameters for correctors of several
  *shapes* -- the linear corrector (:class:`~yieldmc.correctors.LinearCorrector`, no
  bottleneck at all) and MLPs of depth 1, 2 and 3 at several widths -- so that size and
  bottleneck width are not confounded; the raw argmax accuracy is the floor on every row.
* :func:`budget_sweep`: accuracy against the number of labelled training images a circuit's
  corrector is trained on (its calibration budget), for the study's MLP and for the batched
  random-feature ridge corrector of the population.
* :func:`population_budget`: the population's yield after per-die correction at each budget
  (:func:`yieldmc.correction.correct_voltages`), with Wilson 95 % intervals; the voltages are
  simulated once and reused for every budget.

Budgets are stratified subsamples of the training images
(:func:`yieldmc.correction.stratified_subsample`): keyed by ``seed``, every class present,
**nested** (the images of a budget are among those of every larger budget, so a budget curve
compares the same images plus more, not independent draws) and the same images for every
circuit / die. A budget at or above the number of training images is the full training set,
exactly the result without a budget.

Every fit is seeded and single-threaded, so every result is a function of its arguments
alone: the same for any ``n_jobs``. (:mod:`yieldmc.correction` is imported where it is used, so
that a joblib worker of :func:`size_sweep` imports scikit-learn but not the run store.)
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from yieldmc.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from yieldmc.die import DieModel

__all__ = ["BUDGETS", "BUDGET_METHODS", "DEFAULT_SHAPES", "CorrectorSpec", "budget_sweep", "default_specs",
           "parse_spec", "population_budget", "size_sweep"]

#: Hidden layers of the default MLPs of :func:`size_sweep`: depth 1, 2 and 3 at several widths.
DEFAULT_SHAPES: tuple[tuple[int, ...], ...] = (
    (2,), (4,), (8,), (16,), (32,), (64,), (4, 4), (8, 8), (16, 16), (8, 8, 8), (16, 16, 16))
#: Calibration budgets (training images) of :func:`budget_sweep`; 1617 is the full digits set.
BUDGETS: tuple[int, ...] = (25, 50, 100, 200, 400, 800, 1617)
#: Methods of :func:`budget_sweep`: the study's MLP (hidden (16,)) and the population's ridge.
BUDGET_METHODS: tuple[str, ...] = ("mlp", "rff-ridge")
#: Accuracy thresholds of :func:`population_budget`.
POPULATION_THRESHOLDS: tuple[float, ...] = (0.8, 0.9)

#: ``circuits`` of the sweeps: ``{key: (v_train, v_test)}`` or ``[(key, (v_train, v_test)), ...]``,
#: where ``key`` is the defect type or a tuple starting with it (``(kind, severity, instance)``).
_Pair = tuple[np.ndarray, np.ndarray]
CircuitsLike = Mapping[Hashable, _Pair] | Iterable[tuple[Hashable, _Pair]]


@dataclass(frozen=True)
class CorrectorSpec:
    """One corrector of :func:`size_sweep`: a name and the model it builds.

    Attributes
    ----------
    kind : {"linear", "mlp"}
        :class:`~yieldmc.correctors.LinearCorrector` or :class:`~yieldmc.correctors.MLPCorrector`.
    hidden : tuple of int
        MLP hidden layer sizes (empty for ``"linear"``).
    """

    kind: str
    hidden: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "mlp"):
            raise ConfigError(f"corrector kind must be 'linear' or 'mlp', got {self.kind!r}")
        if self.kind == "mlp" and (not self.hidden or any(int(h) < 1 for h in self.hidden)):
            raise ConfigError(f"an MLP corrector needs positive hidden sizes, got {self.hidden!r}")
        if self.kind == "linear" and self.hidden:
            raise ConfigError("the linear corrector has no hidden layers")

    @property
    def name(self) -> str:
        """``"linear"``, ``"mlp-16"``, ``"mlp-8x8"``, ..."""
        return "linear" if self.kind == "linear" else f"mlp-{self.hidden_str}"

    @property
    def depth(self) -> int:
        """Hidden layers (0 for the linear corrector)."""
        return len(self.hidden)

    @property
    def hidden_str(self) -> str:
        """Hidden sizes joined by ``x`` (``""`` for the linear corrector)."""
        return "x".join(map(str, self.hidden))

    def make(self, seed: int):
        """A fresh, unfitted estimator with ``random_state=seed``."""
        from yieldmc.correctors import LinearCorrector, MLPCorrector

        if self.kind == "linear":
            return LinearCorrector(random_state=seed)
        return MLPCorrector(hidden=self.hidden, random_state=seed)


def parse_spec(spec: str | CorrectorSpec) -> CorrectorSpec:
    """A :class:`CorrectorSpec` from its name: ``"linear"``, ``"mlp-16"``, ``"mlp-8x8"``."""
    if isinstance(spec, CorrectorSpec):
        return spec
    if spec == "linear":
        return CorrectorSpec("linear")
    m = re.fullmatch(r"mlp-(\d+(?:x\d+)*)", str(spec))
    if not m:
        raise ConfigError(f"unknown corrector {spec!r}: use 'linear' or 'mlp-<h>[x<h>...]', e.g. 'mlp-8x8'")
    return CorrectorSpec("mlp", tuple(int(h) for h in m.group(1).split("x")))


def default_specs() -> list[CorrectorSpec]:
    """The linear corrector, then an MLP per :data:`DEFAULT_SHAPES`."""
    return [CorrectorSpec("linear"), *(CorrectorSpec("mlp", h) for h in DEFAULT_SHAPES)]


def _circuit_items(circuits: CircuitsLike) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(defect type, v_train, v_test)`` per circuit, in the given order."""
    items = circuits.items() if isinstance(circuits, Mapping) else circuits
    out = []
    for key, (v_train, v_test) in items:
        kind = key[0] if isinstance(key, tuple) else key
        out.append((str(kind), np.asarray(v_train), np.asarray(v_test)))
    if not out:
        raise ConfigError("no circuits to sweep")
    return out


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof 1); 0 for a single value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _fit_score(spec: CorrectorSpec, seed: int, v_train, y_train, v_test, y_test) -> tuple[float, int]:
    """Test accuracy and parameter count of one corrector on one circuit (single-threaded BLAS)."""
    from threadpoolctl import threadpool_limits

    from yieldmc.correctors import n_parameters

    with threadpool_limits(1):
        model = spec.make(seed).fit(v_train, y_train)
        return float(model.score(v_test, y_test)), n_parameters(model)


def size_sweep(circuits: CircuitsLike, labels: tuple[np.ndarray, np.ndarray], *,
               correctors: Sequence[str | CorrectorSpec] | None = None, seed: int = 0,
               n_jobs: int = 1) -> pd.DataFrame:
    """Corrected accuracy against corrector size and shape, per defect type.

    Every corrector is trained on each circuit's full training voltages and scored on its
    test voltages.

    Parameters
    ----------
    circuits : mapping or iterable of pairs
        ``{key: (v_train, v_test)}`` (or ``(key, (v_train, v_test))`` pairs), volts of shape
        (n_train, outputs) and (n_test, outputs); ``key`` is the defect type or a tuple that
        starts with it, as :data:`yieldmc.reproduce.Circuits`.
    labels : (y_train, y_test)
    correctors : sequence of str or CorrectorSpec, optional
        Names as :func:`parse_spec` reads them; default :func:`default_specs`.
    seed : int
        ``random_state`` of every corrector.
    n_jobs : int
        joblib workers over (circuit, corrector) fits; the result does not depend on it.

    Returns
    -------
    pandas.DataFrame
        One row per (defect type, corrector), types in first-seen order, correctors in the
        given order: ``defect_type, corrector, depth, hidden, corrector_params,
        accuracy_raw_mean, accuracy_corrected_mean, accuracy_corrected_std, n_circuits``
        (std: ddof 1 over circuits; ``accuracy_raw_mean`` is the uncorrected floor).
    """
    import pandas as pd
    from joblib import Parallel, delayed

    specs = [parse_spec(s) for s in (default_specs() if correctors is None else correctors)]
    items = _circuit_items(circuits)
    y_train, y_test = (np.asarray(y) for y in labels)
    tasks = [(s, c) for c in range(len(items)) for s in specs]
    args = [(s, seed, items[c][1], y_train, items[c][2], y_test) for s, c in tasks]
    if n_jobs == 1:
        results = [_fit_score(*a) for a in args]
    else:
        results = Parallel(n_jobs=n_jobs)(delayed(_fit_score)(*a) for a in args)
    raw = [float(np.mean(v_te.argmax(axis=1) == y_test)) for _, _, v_te in items]
    scores = {(s.name, c): r for (s, c), r in zip(tasks, results, strict=True)}
    rows = []
    for kind in dict.fromkeys(k for k, _, _ in items):
        members = [c for c, (k, _, _) in enumerate(items) if k == kind]
        for s in specs:
            acc = [scores[s.name, c][0] for c in members]
            rows.append({"defect_type": kind, "corrector": s.name, "depth": s.depth, "hidden": s.hidden_str,
                         "corrector_params": scores[s.name, members[0]][1],
                         "accuracy_raw_mean": float(np.mean([raw[c] for c in members])),
                         "accuracy_corrected_mean": float(np.mean(acc)), "accuracy_corrected_std": _std(acc),
                         "n_circuits": len(members)})
    return pd.DataFrame(rows)


def budget_sweep(circuits: CircuitsLike, labels: tuple[np.ndarray, np.ndarray], *,
                 budgets: Sequence[int] = BUDGETS, methods: Sequence[str] = BUDGET_METHODS,
                 seed: int = 0, n_jobs: int = 1) -> pd.DataFrame:
    """Corrected accuracy against the calibration budget (labelled training images), per defect type.

    For each budget ``b`` every circuit's corrector is trained on the stratified subsample
    :func:`yieldmc.correction.stratified_subsample` ``(y_train, b, seed)`` -- nested across
    budgets, the same images for every circuit, the full training set when ``b >= n_train`` --
    and scored on all test images (:func:`yieldmc.correction.correct_voltages`).

    Parameters
    ----------
    circuits, labels
        As in :func:`size_sweep`.
    budgets : sequence of int
        Training images per corrector, each at least the number of classes.
    methods : sequence of {"mlp", "rff-ridge", "linear-ridge"}
        ``"mlp"``: :class:`~yieldmc.correctors.MLPCorrector` ``(hidden=(16,))``, the study's;
        ``"rff-ridge"``: the batched random-feature ridge corrector of per-die population
        correction (:func:`yieldmc.correction.correct_per_die`).
    seed : int
        ``random_state`` of the correctors and key of the subsample.
    n_jobs : int
        joblib workers of the ``"mlp"`` fits; the result does not depend on it.

    Returns
    -------
    pandas.DataFrame
        One row per (defect type, method, budget): ``defect_type, method, budget,
        n_calibration`` (images used: ``min(budget, n_train)``) ``, corrector_params,
        accuracy_raw_mean, accuracy_corrected_mean, accuracy_corrected_std, n_circuits``.
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from yieldmc.correction import check_calibration, correct_voltages
    from yieldmc.correctors import method_parameters

    items = _circuit_items(circuits)
    y_train, y_test = (np.asarray(y) for y in labels)
    for b in budgets:
        check_calibration(b, y_train)
    v_train = np.stack([v for _, v, _ in items])
    v_test = np.stack([v for _, _, v in items])
    kinds = [k for k, _, _ in items]
    rows = []
    with threadpool_limits(1):
        for method in methods:
            n_params = method_parameters(method, v_train[0], y_train)
            for b in budgets:
                before, after = correct_voltages(v_train, y_train, v_test, y_test, method=method, seed=seed,
                                                 n_calibration=int(b), n_jobs=n_jobs)
                for kind in dict.fromkeys(kinds):
                    m = np.array([k == kind for k in kinds])
                    acc = after[m] / len(y_test)
                    rows.append({"defect_type": kind, "method": method, "budget": int(b),
                                 "n_calibration": min(int(b), len(y_train)), "corrector_params": n_params,
                                 "accuracy_raw_mean": float(np.mean(before[m] / len(y_test))),
                                 "accuracy_corrected_mean": float(np.mean(acc)),
                                 "accuracy_corrected_std": _std(acc), "n_circuits": int(m.sum())})
    return pd.DataFrame(rows)


def population_budget(model: DieModel, dies: int | Sequence[int], budgets: Sequence[int] = BUDGETS, *,
                      method: str = "rff-ridge", seed: int = 0,
                      thresholds: Sequence[float] = POPULATION_THRESHOLDS, batch: int = 256,
                      voltages: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """Yield after per-die correction against the calibration budget, for a population of dies.

    The dies' voltages are simulated once (:func:`yieldmc.correction.die_voltages`) and every
    budget corrects them (:func:`yieldmc.correction.correct_voltages`, which
    :func:`~yieldmc.correction.correct_per_die` ``(..., n_calibration=b)`` runs batch by
    batch: same results).

    Parameters
    ----------
    model : DieModel
        The design; its dies are the population.
    dies : int or sequence of int
        Die indices (an int ``n`` means ``range(n)``).
    budgets : sequence of int
        Training images per die's corrector (stratified, nested, the same for every die).
    method : {"rff-ridge", "linear-ridge", "mlp"}
    seed : int
        ``random_state`` of the correctors and key of the subsample.
    thresholds : sequence of float
        Accuracy thresholds of the yield.
    batch : int
        Dies simulated at a time.
    voltages : (v_train, v_test), optional
        The dies' voltages if already simulated (shapes (D, n_train, outputs), (D, n_test,
        outputs)); ``dies`` then only sets the reported count.

    Returns
    -------
    pandas.DataFrame
        One row per (budget, threshold): ``budget, n_calibration, threshold, n_dies,
        accuracy_before_mean, accuracy_after_mean, yield_before, yield_after, k_after, lo,
        hi`` (``lo``, ``hi``: Wilson 95 % interval of ``yield_after``,
        :func:`yieldmc.stats.wilson_interval`).
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from yieldmc import stats
    from yieldmc.correction import check_calibration, correct_voltages, die_voltages

    dies = np.arange(dies) if isinstance(dies, (int, np.integer)) else np.asarray(dies, dtype=np.int64)
    _, y_train = model.images("train")
    _, y_test = model.images("test")
    for b in budgets:
        check_calibration(b, y_train)
    rows = []
    with threadpool_limits(1):
        if voltages is None:
            parts = [die_voltages(model, dies[i:i + batch], ("train", "test")) for i in range(0, len(dies), batch)]
            voltages = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        v_train, v_test = voltages
        if len(v_train) != len(dies) or len(v_test) != len(dies):
            raise ConfigError(f"voltages hold {len(v_train)} dies, but {len(dies)} dies were named")
        for b in budgets:
            before, after = correct_voltages(v_train, y_train, v_test, y_test, method=method, seed=seed,
                                             n_calibration=int(b))
            acc_before, acc_after = before / len(y_test), after / len(y_test)
            for t in thresholds:
                est = stats.yield_estimate(acc_after, t, method="wilson")
                rows.append({"budget": int(b), "n_calibration": min(int(b), len(y_train)), "threshold": float(t),
                             "n_dies": est.n, "accuracy_before_mean": float(acc_before.mean()),
                             "accuracy_after_mean": float(acc_after.mean()),
                             "yield_before": float(np.mean(acc_before >= t)), "yield_after": est.yield_,
                             "k_after": est.k, "lo": est.lo, "hi": est.hi})
    return pd.DataFrame(rows)
